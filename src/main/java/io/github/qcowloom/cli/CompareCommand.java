package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.ImageFormat;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code compare [-f FMT] [-F FMT] [-s] [-T CACHE] [-U] [-p] [-q] FILE1 FILE2}, as qemu-img compare: the guest
 * contents of two images, block status first, so that ranges both read as zeroes are never read; 2 MiB at a time
 * where one of them holds data. Exit codes as qemu-img's: 0 identical, 1 different, 2 an image could not be opened,
 * 3 block status failed, 4 a read failed. A mismatch is told at the start of the first 512-byte sector that
 * differs, as qemu-img tells it. {@code -s} (strict) also fails on different sizes and on any difference of block
 * status: data, zeroes, allocation and whether the bytes lie at a host offset, as QEMU's flags say them.
 */
@Command(description = "Compare the guest contents of two images, as qemu-img compare does.")
final class CompareCommand implements Callable<Integer> {
    /** qemu-img's IO_BUF_SIZE: the most read from each image at once. */
    private static final int CHUNK = 2 << 20;
    private static final int SECTOR = 512;
    /** Zeroes to compare a range with where only one image holds it (never written). */
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(CHUNK).asReadOnlyBuffer();

    @Spec
    CommandSpec spec;

    @Option(names = {"-f", "--a-format"}, paramLabel = "FMT", description = "FILE1's format (probed when absent).")
    String format1;

    @Option(names = {"-F", "--b-format"}, paramLabel = "FMT", description = "FILE2's format (probed when absent).")
    String format2;

    @Option(names = {"-s", "--strict"}, description = "Strict: sizes and block status must match too.")
    boolean strict;

    @Option(names = {"-T", "--cache"}, paramLabel = "CACHE", description = "Cache mode of both images: writeback "
            + "(default) or none (O_DIRECT).")
    String cache = "writeback";

    @Option(names = {"-U", "--force-share"}, description = "Share the images with writers (qemu-img's -U).")
    boolean forceShare;

    @Option(names = {"-p", "--progress"}, description = "Show a progress bar on stderr.")
    boolean progress;

    @Option(names = {"-q", "--quiet"}, description = "Quiet: print nothing but errors.")
    boolean quiet;

    @Option(names = "--image-opts", description = "Not supported: FILE1 and FILE2 as option strings.")
    boolean imageOpts;

    @Parameters(arity = "0..*", paramLabel = "FILE")
    List<String> files = List.of();

    /** A failure with qemu-img compare's exit code for it. */
    private static final class Failure extends Exception {
        final int exitCode;

        Failure(int exitCode, String message) {
            super(message);
            this.exitCode = exitCode;
        }
    }

    @Override
    public Integer call() throws Exception {
        if (imageOpts) {
            throw new UnsupportedFeatureException("--image-opts");
        }
        if (files.size() != 2) {
            throw new IllegalArgumentException("Expecting two image file names");
        }
        boolean direct;
        try {
            direct = CacheMode.direct(cache);
        } catch (IllegalArgumentException e) {
            return fail(new Failure(2, "Invalid source cache option: " + cache));
        }
        OpenOptions options = OpenOptions.readOnlyDefaults().withDirect(direct)
                .withLocking(forceShare ? ImageLocking.FORCE_SHARE : ImageLocking.DEFAULT);
        try (BlockDevice a = open(0, format1, options); BlockDevice b = open(1, format2, options)) {
            String result = compare(a, b);
            if (!quiet) {
                spec.commandLine().getOut().println(result);
            }
            return result.equals("Images are identical.") ? 0 : 1;
        } catch (Failure f) {
            return fail(f);
        }
    }

    private BlockDevice open(int which, String format, OpenOptions options) throws Failure {
        try {
            return ImageFormat.open(Path.of(files.get(which)), format, options);
        } catch (IOException | RuntimeException e) {
            throw new Failure(2, Main.openFailure(files.get(which), e));
        }
    }

    private int fail(Failure f) {
        PrintWriter err = spec.commandLine().getErr();
        err.println("qcow2-loom: " + f.getMessage());
        err.flush();
        return f.exitCode;
    }

    /** qemu-img's img_compare loop; returns the line it prints last (its warning line is printed on the way). */
    private String compare(BlockDevice a, BlockDevice b) throws Failure {
        long sizeA = a.size();
        long sizeB = b.size();
        long common = Math.min(sizeA, sizeB);
        long total = Math.max(sizeA, sizeB);
        if (strict && sizeA != sizeB) {
            return "Strict mode: Image size mismatch!";
        }
        ByteBuffer bufA = DirectBuffers.aligned(CHUNK);
        ByteBuffer bufB = DirectBuffers.aligned(CHUNK);
        try (ProgressBar bar = ProgressBars.open(progress && !quiet, "compare", total)) {
            Runs runsA = new Runs(a, sizeA, 0);
            Runs runsB = new Runs(b, sizeB, 1);
            long offset = 0;
            while (offset < common) {
                BlockStatus sa = runsA.at(offset);
                BlockStatus sb = runsB.at(offset);
                long leftA = runsA.left(offset);
                long leftB = runsB.left(offset);
                long chunk = Math.min(leftA, leftB);
                if (strict && !sameFlags(sa, offset + leftA == sizeA, sb, offset + leftB == sizeB)) {
                    return "Strict mode: Offset " + offset + " block status mismatch!";
                }
                if (sa.zero() && sb.zero()) {
                    // both read as zeroes: nothing to read
                } else if (sa.present() == sb.present()) {
                    if (sa.present()) {
                        chunk = Math.min(chunk, CHUNK);
                        readBoth(a, b, offset, (int) chunk, bufA, bufB);
                        int at = bufA.mismatch(bufB);
                        if (at >= 0) {
                            return mismatchAt(offset, at);
                        }
                    }
                } else {
                    chunk = Math.min(chunk, CHUNK);
                    String nonZero = checkEmpty(sa.present() ? a : b, offset, (int) chunk, bufA,
                            sa.present() ? 0 : 1);
                    if (nonZero != null) {
                        return nonZero;
                    }
                }
                offset += chunk;
                ProgressBars.step(bar, chunk);
            }
            if (sizeA != sizeB) {
                if (!quiet) {
                    spec.commandLine().getOut().println("Warning: Image size mismatch!");
                }
                Runs over = sizeA > sizeB ? runsA : runsB;
                while (offset < total) {
                    BlockStatus s = over.at(offset);
                    long chunk = over.left(offset);
                    if (s.present() && !s.zero()) {
                        chunk = Math.min(chunk, CHUNK);
                        String nonZero = checkEmpty(over.device, offset, (int) chunk, bufA, over.which);
                        if (nonZero != null) {
                            return nonZero;
                        }
                    }
                    offset += chunk;
                    ProgressBars.step(bar, chunk);
                }
            }
        }
        return "Images are identical.";
    }

    /**
     * One image's block status, asked once a run: a run read in many chunks is not looked up again from each (a
     * 1 GiB run of data, read 2 MiB at a time, was looked up 512 times, each lookup walking the rest of the run).
     */
    private final class Runs {
        final BlockDevice device;
        final long size;
        /** 0 for FILE1, 1 for FILE2. */
        final int which;
        private BlockStatus status;
        private long start;

        Runs(BlockDevice device, long size, int which) {
            this.device = device;
            this.size = size;
            this.which = which;
        }

        /** The status of the run {@code offset} lies in. */
        BlockStatus at(long offset) throws Failure {
            if (status == null || offset < start || offset >= start + status.length()) {
                try {
                    status = device.blockStatus(offset, size - offset);
                } catch (IOException e) {
                    throw new Failure(3, "Sector allocation test failed for " + files.get(which));
                }
                start = offset;
            }
            return status;
        }

        /** The bytes from {@code offset} to the end of its run (after {@link #at}). */
        long left(long offset) {
            return start + status.length() - offset;
        }
    }

    /**
     * QEMU's block status flags as compare -s compares them: data, zero, allocated, whether the bytes lie at a host
     * offset (BDRV_BLOCK_OFFSET_VALID: data stored as is, or a zero cluster with its host cluster kept), and whether
     * the run reaches the end of its image (BDRV_BLOCK_EOF: so two images whose last runs end at different places
     * differ there, as in qemu-img).
     */
    private static boolean sameFlags(BlockStatus a, boolean aToEnd, BlockStatus b, boolean bToEnd) {
        return a.data() == b.data() && a.zero() == b.zero() && a.present() == b.present()
                && (a.host() != null) == (b.host() != null) && aToEnd == bToEnd;
    }

    /** Reads {@code length} bytes at {@code offset} of both images. */
    private void readBoth(BlockDevice a, BlockDevice b, long offset, int length, ByteBuffer bufA, ByteBuffer bufB)
            throws Failure {
        read(a, offset, bufA.clear().limit(length), 0);
        read(b, offset, bufB.clear().limit(length), 1);
        bufA.flip();
        bufB.flip();
    }

    private void read(BlockDevice dev, long offset, ByteBuffer into, int which) throws Failure {
        try {
            dev.read(offset, into);
        } catch (IOException | RuntimeException e) {
            throw readFailure(offset, which, e);
        }
    }

    /** qemu-img's check_empty_sectors: null if the range reads as zeroes, else the mismatch line. */
    private String checkEmpty(BlockDevice dev, long offset, int length, ByteBuffer buf, int which) throws Failure {
        read(dev, offset, buf.clear().limit(length), which);
        int at = buf.flip().mismatch(ZEROES.duplicate().limit(length));
        return at < 0 ? null : mismatchAt(offset, at);
    }

    /** qemu-img names the 512-byte sector the first difference lies in (compare_buffers, find_nonzero). */
    private static String mismatchAt(long offset, int byteIndex) {
        return "Content mismatch at offset " + (offset + (long) byteIndex / SECTOR * SECTOR) + "!";
    }

    private Failure readFailure(long offset, int which, Exception e) {
        return new Failure(4, "Error while reading offset " + offset + " of " + files.get(which) + ": "
                + Main.message(e));
    }
}
