package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.api.Profiles;
import java.io.IOException;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code resize [-f fmt] [--shrink] [--preallocation=MODE] FILE [+|-]SIZE}, as qemu-img resize. A negative relative
 * size is taken as the size, not as an option (Main tells picocli so, as qemu-img takes it off argv before getopt).
 */
@Command(description = "Change the virtual size of an image.")
final class ResizeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "-f", description = "Image format (probed when absent).")
    String format;

    @Option(names = "--shrink", description = "Allow making the image smaller.")
    boolean shrink;

    @Option(names = "--profile", description = ProfileOption.DESCRIPTION)
    String profile = "default";

    @Option(names = "--preallocation", paramLabel = "MODE", description = "Preallocate the space a growth adds: off"
            + " (default), metadata (qcow2), falloc or full, as qemu-img resize does.")
    String preallocation = "off";

    @Option(names = "-q", description = "Quiet.")
    boolean quiet;

    @Option(names = "--image-opts", description = ImageOpts.HELP)
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

    @Parameters(index = "0", paramLabel = "FILE")
    String filename;

    @Parameters(index = "1", paramLabel = "SIZE", description = "New size, or +SIZE / -SIZE relative to the current one.")
    String size;

    @Override
    public Integer call() throws IOException {
        Preallocation mode = Preallocation.named(preallocation)
                .orElseThrow(() -> new ImageException("Invalid preallocation mode '" + preallocation + "'"));
        // No pool: a preallocation places its clusters where qemu-img does, with no batch of pooled ones before them.
        OpenOptions options = Profiles.apply(Profiles.load(profile), OpenOptions.readWriteDefaults()).withPool(false);
        ImageOpts image = ImageOpts.of(imageOpts, filename, format, objects).requireWritable();
        image.formatOrProbe(spec.commandLine().getErr()); // its warning; the open probes again, to guard a raw one
        try (BlockDevice img = image.open(image.format(), image.apply(options))) {
            long current = img.size();
            long newSize = newSize(current, size);
            mode.requireGrowth(current, newSize); // before --shrink is looked at, as in qemu-img
            if (newSize < current && !shrink) {
                throw new ImageException("Use the --shrink option to perform a shrink operation.\nqcow2-loom: "
                        + "warning: Shrinking an image will delete all data beyond the shrunken image's end. Before "
                        + "performing such an operation, make sure there is no important data there."); // qemu-img's
            }
            img.resize(newSize, mode);
        }
        if (!quiet) {
            spec.commandLine().getOut().println("Image resized.");
        }
        return 0;
    }

    /** The absolute size a SIZE argument asks for, given the current one. */
    static long newSize(long current, String arg) throws ImageException {
        char sign = arg.isEmpty() ? ' ' : arg.charAt(0);
        // qemu-img's int64_t arithmetic: a size of 2^63 or more, or a sum past it, comes out negative.
        long n = Sizes.option("size", sign == '+' || sign == '-' ? arg.substring(1) : arg);
        long result = switch (sign) {
            case '+' -> current + n;
            case '-' -> current - n;
            default -> n;
        };
        if (result <= 0) {
            throw new ImageException("New image size must be positive");
        }
        return result;
    }
}
