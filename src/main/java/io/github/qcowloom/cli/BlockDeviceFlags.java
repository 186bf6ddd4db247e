package io.github.qcowloom.cli;

import io.github.qcowloom.api.DetectZeroes;
import io.github.qcowloom.api.DiscardPolicy;
import java.util.List;
import java.util.Set;
import picocli.CommandLine.Option;

/**
 * qemu-nbd's block device options, {@code -n}, {@code --cache}, {@code --aio}, {@code --discard} and {@code
 * --detect-zeroes}, read in the order given as qemu-nbd reads them: each of the first four at most once ({@code -n}
 * and {@code --cache} together once), and a
 * {@code --detect-zeroes=unmap} refused unless a {@code --discard=unmap} came before it. Defaults are qemu-nbd's:
 * the cache mode and aio of the open (the profile's), discards ignored, no zero detection. A refusal is kept until
 * {@link #read} (the first one, as qemu-nbd stops at it), so that it comes before any other of the command's.
 */
final class BlockDeviceFlags {
    /** What the flags say: a cache mode and an aio mode as given (null: not given) and the discard policy. */
    record Given(String cache, String aio, DiscardPolicy discards) {
        /** Whether every write is made durable before it is acknowledged (QEMU's cache writethrough, directsync). */
        boolean writeThrough() {
            return "writethrough".equals(cache) || "directsync".equals(cache);
        }
    }

    private static final Set<String> CACHE_MODES = Set.of("none", "off", "directsync", "writeback", "writethrough",
            "unsafe");

    private String cache;
    private String aio;
    private boolean unmap;
    private boolean discardSeen;
    private DetectZeroes detectZeroes = DetectZeroes.OFF;
    /** The first refusal, in qemu-nbd's words; null if none. */
    private String refusal;

    // picocli calls these once per occurrence, with every value given so far (the last is the new one), and once
    // with none as it sets the defaults.
    @Option(names = "-n", description = "--cache=none, as qemu-nbd's --nocache.")
    void nocache(List<Boolean> times) {
        if (!times.isEmpty()) {
            cache("none");
        }
    }

    @Option(names = "--cache", paramLabel = "MODE", description = "The cache mode, as qemu-nbd's: none or directsync"
            + " (O_DIRECT), writeback (the page cache; without --cache, the profile's mode), writethrough or"
            + " directsync (each write durable before it is acknowledged), unsafe (flushes never sync the host's"
            + " files).")
    void cache(List<String> modes) {
        if (!modes.isEmpty()) {
            cache(modes.getLast());
        }
    }

    private void cache(String mode) {
        if (cache != null) {
            refuse("-n and --cache can only be specified once");
        }
        cache = mode;
        if (!CACHE_MODES.contains(mode)) {
            refuse("Invalid cache mode `" + mode + "'");
        }
    }

    @Option(names = "--aio", paramLabel = "MODE", description = "How the files are read and written, as qemu-nbd's:"
            + " io_uring, threads (FileChannel) or native (Linux AIO: not done).")
    void aio(List<String> modes) {
        if (modes.isEmpty()) {
            return;
        }
        String mode = modes.getLast();
        if (aio != null) {
            refuse("--aio can only be specified once");
        }
        aio = mode;
        if (!Set.of("threads", "native", "io_uring").contains(mode)) {
            refuse("Invalid aio mode '" + mode + "'");
        }
    }

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
    Given read() {
        if (refusal != null) {
            throw new IllegalArgumentException(refusal);
        }
        return new Given(cache, aio, new DiscardPolicy(unmap, detectZeroes));
    }
}
