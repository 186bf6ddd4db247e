package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.RawImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code info [-f fmt] [--output=human|json] FILE}, as qemu-img info. It reads only the image's own metadata and
 * never opens the backing or data file the image names (CVE-2024-4467).
 */
final class InfoCommand implements Callable<Integer> {
    String format;
    String output = "human";
    boolean forceShare;
    String filename;

    final CommandSpec spec = CodeModel.of(this, "Show an image's metadata.")
            .option("-f", "format", "Image format (probed when absent).", v -> format = v)
            .option("--output", "output", "human (default) or json.", v -> output = v)
            .flag(new String[] {"-U", "--force-share"},
                    "Take no lock: read the image even while another process writes it.", v -> forceShare = v)
            .parameter(0, "FILE", v -> filename = v)
            .spec();

    @Override
    public Integer call() throws IOException {
        boolean json = Json.requested(output); // refused before the image is opened, as qemu-img does
        Path path = Path.of(filename);
        if (!Files.exists(path)) {
            throw new NoSuchFileException(filename);
        }
        String fmt = format != null ? format : ImageFormat.probe(path);
        Map<String, Object> info = switch (fmt) {
            case "qcow2" -> {
                OpenOptions o = OpenOptions.readOnlyDefaults().withFollowReferences(false)
                        .withLocking(forceShare ? ImageLocking.NONE : ImageLocking.METADATA_ONLY);
                try (Qcow2Image img = Qcow2Image.open(path, o)) {
                    yield ImageInfo.qcow2(filename, img.header(), img.snapshots(),
                            ImageInfo.persistentBitmaps(img, filename), DiskUsage.of(path));
                }
            }
            case "raw" -> ImageInfo.raw(filename, RawImage.sectors(Files.size(path)), DiskUsage.of(path));
            default -> throw ImageFormat.unknownDriver(path, fmt);
        };
        if (json) {
            spec.commandLine().getOut().println(Json.write(info));
        } else {
            spec.commandLine().getOut().print(ImageInfo.human(info));
        }
        return 0;
    }
}
