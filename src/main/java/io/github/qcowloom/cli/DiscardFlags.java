package io.github.qcowloom.cli;

import io.github.qcowloom.api.DetectZeroes;
import io.github.qcowloom.api.DiscardPolicy;
import java.util.List;
import picocli.CommandLine.Option;

/**
 * qemu-nbd's {@code --discard} and {@code --detect-zeroes}, read in the order given as qemu-nbd reads them: a
 * {@code --detect-zeroes=unmap} is refused unless a {@code --discard=unmap} came before it. Defaults are
 * qemu-nbd's: discards ignored, no zero detection. A refusal is kept until {@link #policy} (the first one, as
 * qemu-nbd stops at it), so that it comes before any other of the command's.
 */
final class DiscardFlags {
    private boolean unmap;
    private boolean discardSeen;
    private DetectZeroes detectZeroes = DetectZeroes.OFF;
    /** The first refusal, in qemu-nbd's words; null if none. */
    private String refusal;

    // picocli calls these once per occurrence, with every value given so far (the last is the new one), and once
    // with none as it sets the defaults.
    @Option(names = "--discard", paramLabel = "MODE", description = "What a client's trims do, as qemu-nbd's"
            + " --discard: ignore (the default: checked and dropped) or unmap (the image frees the clusters and the"
            + " host file gives their space back).")
    void discard(List<String> modes) {
        if (modes.isEmpty()) {
            return;
        }
        String mode = modes.getLast();
        if (discardSeen) {
            refuse("--discard can only be specified once");
        }
        discardSeen = true;
        DiscardPolicy.unmaps(mode).ifPresentOrElse(u -> unmap = u,
                () -> refuse("Invalid discard mode `" + mode + "'"));
    }

    @Option(names = "--detect-zeroes", paramLabel = "MODE", description = "Whether a write of zeroes is made a zero"
            + " write, as qemu-nbd's --detect-zeroes: off (the default), on, or unmap (which needs --discard=unmap"
            + " before it).")
    void detectZeroes(List<String> modes) {
        if (modes.isEmpty()) {
            return;
        }
        String mode = modes.getLast();
        DetectZeroes.named(mode).ifPresentOrElse(d -> {
            detectZeroes = d;
            if (d == DetectZeroes.UNMAP && !unmap) {
                refuse(DiscardPolicy.UNMAP_NEEDS_DISCARD);
            }
        }, () -> refuse("Failed to parse detect_zeroes mode: invalid parameter value: " + mode));
    }

    private void refuse(String message) {
        if (refusal == null) {
            refusal = message;
        }
    }

    /**
     * What the flags say.
     *
     * @throws IllegalArgumentException the first refusal, in qemu-nbd's words
     */
    DiscardPolicy policy() {
        if (refusal != null) {
            throw new IllegalArgumentException(refusal);
        }
        return new DiscardPolicy(unmap, detectZeroes);
    }
}
