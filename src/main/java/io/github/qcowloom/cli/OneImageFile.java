package io.github.qcowloom.cli;

import io.github.qcowloom.api.UnsupportedFeatureException;
import java.util.List;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * The FILE of a command that changes one image (amend, commit, rebase), and qemu-img's {@code --image-opts}, which
 * is not taken here; a picocli mixin.
 */
final class OneImageFile {
    @Option(names = "--image-opts", description = "Not supported: FILE as an option string.")
    boolean imageOpts;

    @Parameters(arity = "0..*", paramLabel = "FILE")
    List<String> files = List.of();

    /** Refuses {@code --image-opts}, as a feature not done. */
    void refuseImageOpts() throws UnsupportedFeatureException {
        if (imageOpts) {
            throw new UnsupportedFeatureException("--image-opts");
        }
    }

    /** The one FILE given, or qemu-img's refusal. */
    String name() {
        if (files.size() != 1) {
            throw new IllegalArgumentException("Expecting one image file name");
        }
        return files.get(0);
    }
}
