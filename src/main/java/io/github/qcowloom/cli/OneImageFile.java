package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageException;
import java.util.List;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The FILE of a command that changes one image (amend, commit, rebase), or with --image-opts its options. */
final class OneImageFile {
    @Option(names = "--image-opts", description = ImageOpts.HELP)
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

    @Parameters(arity = "0..*", paramLabel = "FILE")
    List<String> files = List.of();

    /** The one FILE given, or qemu-img's refusal. */
    String name() {
        if (files.size() != 1) {
            throw new IllegalArgumentException("Expecting one image file name");
        }
        return files.get(0);
    }

    /** The image FILE names, of {@code format} (-f; null to probe), or as its options say with --image-opts. */
    ImageOpts image(String format) throws ImageException {
        return ImageOpts.of(imageOpts, name(), format, objects);
    }
}
