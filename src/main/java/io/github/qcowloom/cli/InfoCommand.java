package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.image.ReferencedFiles;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code info [-f fmt] [--output=human|json] [--backing-chain] FILE}, as qemu-img info. It reads only each image's
 * own metadata and never opens the data file an image names (CVE-2024-4467); a backing file only with
 * {@code --backing-chain}, and then only its metadata, as qemu-img's collect_image_info_list does.
 */
final class InfoCommand implements Callable<Integer>, QemuObjects.Holder {
    String format;
    String output = "human";
    boolean forceShare;
    boolean backingChain;
    boolean imageOpts;
    String filename;

    final QemuObjects objects = new QemuObjects();
    final CommandSpec spec = CodeModel.of(this, "Show an image's metadata.")
            .option("-f", "format", "Image format (probed when absent).", v -> format = v)
            .option("--output", "output", "human (default) or json.", v -> output = v)
            .flag(new String[] {"-U", "--force-share"},
                    "Take no lock: read the image even while another process writes it.", v -> forceShare = v)
            .flag(new String[] {"--backing-chain"}, "Also show each image of the backing chain.",
                    v -> backingChain = v)
            .repeatableOption("--object", "objectdef", QemuObjects.HELP, objects.definitions)
            .flag(new String[] {"--image-opts"}, ImageOpts.HELP,
                    v -> imageOpts = v)
            .parameter(0, "FILE", v -> filename = v)
            .spec();

    @Override
    public QemuObjects secretObjects() {
        return objects;
    }

    @Override
    public Integer call() throws IOException {
        boolean json = Json.requested(output); // refused before the image is opened, as qemu-img does
        List<Map<String, Object>> chain = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        // qemu-img's collect_image_info_list: -f applies to the top alone; each backing file is named as its
        // image's info names it in full-backing-filename, in the format it records or probed, and a name met
        // twice (compared as a string, as QEMU compares it) is a loop. Names that differ and lead to the same
        // file (a.qcow2 naming ./a.qcow2) end at the driver's depth limit, as its open ends them.
        ImageOpts top = ImageOpts.of(imageOpts, filename, format, objects);
        String name = top.fileName();
        String fmt = top.format();
        while (name != null) {
            if (!seen.add(name)) {
                throw new UnsupportedFeatureException("backing chain loop",
                        "Backing file '" + name + "' creates an infinite loop.");
            }
            if (chain.size() > Qcow2Image.MAX_BACKING_DEPTH) {
                throw Qcow2Image.chainTooDeep();
            }
            Map<String, Object> info;
            try {
                info = infoOf(chain.isEmpty() ? top : ImageOpts.of(false, name, fmt));
            } catch (NoSuchFileException | AccessDeniedException e) {
                if (chain.isEmpty()) {
                    throw e; // Main words a file named on the command line as qemu-img does
                }
                throw new IOException(Main.openFailure(name, e), e);
            }
            chain.add(info);
            name = null;
            if (backingChain && info.containsKey("backing-filename")) {
                // json: specifications and protocols are refused, as every open of a backing file refuses them
                ReferencedFiles.resolve(null, (String) info.get("backing-filename"), "backing file");
                name = (String) info.get("full-backing-filename");
                fmt = (String) info.get("backing-filename-format");
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            out.println(Json.write(backingChain ? chain : chain.get(0)));
        } else {
            out.print(chain.stream().map(ImageInfo::human).collect(Collectors.joining("\n")));
        }
        return 0;
    }

    /** The info of the image {@code opts} name, opened as they say (the top's --image-opts). */
    private Map<String, Object> infoOf(ImageOpts opts) throws IOException {
        String name = opts.fileName();
        Path path = opts.path();
        String probed = opts.formatOrProbe();
        return switch (probed) {
            case "qcow2" -> {
                OpenOptions o = opts.apply(OpenOptions.readOnlyDefaults().withFollowReferences(false)
                        .withLocking(forceShare ? ImageLocking.NONE : ImageLocking.METADATA_ONLY));
                try (Qcow2Image img = (Qcow2Image) opts.open("qcow2", o)) {
                    // qemu-img's info opens each image without its backing file: options for one are left over
                    opts.refuseBackingOptions();
                    yield ImageInfo.qcow2(name, img.header(), img.snapshots(),
                            ImageInfo.persistentBitmaps(img, name), DiskUsage.of(path),
                            img.encryption().orElse(null));
                }
            }
            case "raw" -> {
                opts.refuseBackingOptions();
                yield ImageInfo.raw(name, RawImage.sectors(Files.size(path)), DiskUsage.of(path));
            }
            default -> throw ImageFormat.unknownDriver(path, probed);
        };
    }
}
