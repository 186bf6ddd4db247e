package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ProtocolPrefix;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.ReferencedFiles;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code map [-f fmt] [--output=human|json] [--start-offset N] [--max-length N] FILE}, as qemu-img map: the
 * block status of the range, run by run, merged as qemu-img merges them. Reads metadata only.
 */
@Command(description = "Show how an image's guest ranges are stored.")
final class MapCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "-f", description = "Image format (probed when absent).")
    String format;

    @Option(names = "--output", description = "human (default) or json.")
    String output = "human";

    @Option(names = "--start-offset", paramLabel = "N", description = "First guest byte to map (k, M, G… suffixes).")
    String startOffset;

    @Option(names = "--max-length", paramLabel = "N", description = "Map at most this many bytes.")
    String maxLength;

    @Option(names = {"-U", "--force-share"}, description = "Share the image with writers (qemu-img's -U).")
    boolean forceShare;

    @Option(names = "--image-opts", description = ImageOpts.HELP)
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

    @Parameters(index = "0", paramLabel = "FILE")
    String filename;

    /** The names qemu-img shows for one layer's files; {@code dataFile} null when it has none. */
    private record Layer(String file, String dataFile) {
    }

    @Override
    public Integer call() throws IOException {
        boolean json = Json.requested(output);
        long start = startOffset == null ? 0 : Sizes.cvtnum("start offset", startOffset);
        long max = maxLength == null ? -1 : Sizes.cvtnum("max length", maxLength);
        ImageOpts image = ImageOpts.of(imageOpts, filename, format, objects);
        Path path = image.path();
        String fmt = image.formatOrProbe();
        PrintWriter out = spec.commandLine().getOut();
        try (BlockDevice dev = image.open(fmt, image.apply(OpenOptions.readOnlyDefaults()
                .withLocking(forceShare ? ImageLocking.FORCE_SHARE : ImageLocking.DEFAULT)))) {
            List<Layer> layers = layers(dev, image.fileName());
            long end = max < 0 ? dev.size() : Math.min(dev.size(), start + Math.min(max, Long.MAX_VALUE - start));
            out.print(json ? "[" : MapEntry.humanHeader());
            MapEntry curr = MapEntry.empty(start);
            // qemu-img's img_map loop: extend the current entry while the next run merges into it, else print it.
            while (curr.end() < end) {
                long offset = curr.end();
                BlockStatus status = dev.blockStatus(offset, end - offset);
                MapEntry next = MapEntry.of(offset, status, fileName(layers, status));
                if (curr.mergeable(next)) {
                    curr = curr.extendedBy(next.length());
                    continue;
                }
                if (curr.length() > 0) {
                    print(out, curr, json, true);
                }
                curr = next;
            }
            // The human table leaves out runs that are not data; qemu-img's rewrite of the following entry's flags
            // to "zero" changes nothing here, as a status that is not data always reads as zeroes.
            print(out, curr, json, false);
            if (json) {
                out.println("]");
            }
        }
        return 0;
    }

    private static void print(PrintWriter out, MapEntry e, boolean json, boolean more) throws ImageException {
        if (json) {
            out.print(e.json());
            out.print(more ? ",\n" : "");
        } else {
            out.print(e.human());
        }
    }

    /**
     * Each layer's file names as qemu-img shows them: the name given, then each backing file's stored name
     * relative to the folder of the name above it (QEMU's bdrv_make_absolute_filename); a data file by its stored
     * name; either without a local file's protocol prefix.
     */
    private static List<Layer> layers(BlockDevice top, String name) {
        List<Layer> layers = new ArrayList<>();
        BlockDevice dev = top;
        while (dev != null) {
            if (!(dev instanceof Qcow2Image q)) {
                layers.add(new Layer(name, null));
                break;
            }
            layers.add(new Layer(name, q.header().dataFile().map(ProtocolPrefix::fileName).orElse(null)));
            String backing = q.header().backingFile();
            if (backing != null) {
                name = ReferencedFiles.openedName(name, backing);
            }
            dev = q.backing();
        }
        return layers;
    }

    private static String fileName(List<Layer> layers, BlockStatus status) {
        if (status.host() == null) {
            return null;
        }
        Layer layer = layers.get(status.depth());
        return status.host().file() == BlockStatus.HostFile.DATA_FILE ? layer.dataFile() : layer.file();
    }
}
