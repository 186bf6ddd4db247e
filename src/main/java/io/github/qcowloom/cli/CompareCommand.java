package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code compare [-f FMT] [-F FMT] [-s] [-T CACHE] [-U] [-p] [-q] FILE1 FILE2}, as qemu-img compare: the guest
 * contents of two images, block status first, so that ranges both read as zeroes are never read; 2 MiB at a time
 * where one of them holds data. Exit codes as qemu-img's: 0 identical, 1 different, 2 an image could not be opened,
 * 3 block status failed, 4 a read failed. A mismatch is told at the start of the first 512-byte sector that
 * differs, as qemu-img tells it. {@code -s} (strict) also fails on different sizes and on any difference of block
 * status: data, zeroes, allocation, whether the bytes lie at a host offset and whether a run reaches the end of its
 * image (or of the backing file that answered), as QEMU's flags say them.
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

    @Option(names = "--image-opts", description = "FILE1 and FILE2 are option strings (driver=qcow2,"
            + "file.filename=PATH,...).")
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

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
        ImageOpts image;
        OpenOptions opened;
        try {
            image = ImageOpts.of(imageOpts, files.get(which), format, objects);
            opened = image.apply(options);
        } catch (ImageException e) {
            throw new Failure(2, e.getMessage()); // qemu-img's words already
        }
        try {
            return image.open(image.format(), opened);
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
        Reads reads = new Reads(a, b);
        try (ProgressBar bar = ProgressBars.open(progress && !quiet, "compare", total)) {
            Runs runsA = new Runs(a, sizeA, 0);
            Runs runsB = new Runs(b, sizeB, 1);
            String line = walk(offset -> commonChunk(offset, runsA, runsB), 0, common, reads, bar);
            if (line != null) {
                return line;
            }
            if (sizeA != sizeB) {
                if (!quiet) {
                    spec.commandLine().getOut().println("Warning: Image size mismatch!");
                }
                Runs over = sizeA > sizeB ? runsA : runsB;
                line = walk(offset -> tailChunk(offset, over), common, total, reads, bar);
                if (line != null) {
                    return line;
                }
            }
        }
        return "Images are identical.";
    }

    /** What qemu-img's img_compare does with a chunk, by the block status of the images at its start. */
    private enum Action {
        /** Both read as zeroes, or neither image holds it: nothing is read. */
        SKIP,
        /** Both hold it: both are read and compared. */
        COMPARE,
        /** Only FILE1 holds it (or FILE1 is the longer, past the shorter's end): it must read as zeroes. */
        CHECK_A,
        /** Only FILE2 holds it, likewise. */
        CHECK_B,
        /** -s: the images' block status differs. */
        FLAGS_DIFFER
    }

    /** One of qemu-img's chunks: what it does with {@code [start, end)}. */
    private record Chunk(Action action, long start, long end) {
    }

    /** qemu-img's chunk at {@code offset}, from the block status there. */
    @FunctionalInterface
    private interface ChunkPlan {
        Chunk at(long offset) throws Failure;
    }

    /** A chunk where both images have bytes: up to where either's run ends, at most CHUNK if anything is read. */
    private Chunk commonChunk(long offset, Runs runsA, Runs runsB) throws Failure {
        BlockStatus sa = runsA.at(offset);
        BlockStatus sb = runsB.at(offset);
        long leftA = runsA.left(offset);
        long leftB = runsB.left(offset);
        long length = Math.min(leftA, leftB);
        Action action;
        if (strict && !sameFlags(sa, runsA.reachesEnd(offset), sb, runsB.reachesEnd(offset))) {
            action = Action.FLAGS_DIFFER;
        } else if (sa.zero() && sb.zero()) {
            action = Action.SKIP;
        } else if (sa.present() == sb.present()) {
            action = sa.present() ? Action.COMPARE : Action.SKIP;
        } else {
            action = sa.present() ? Action.CHECK_A : Action.CHECK_B;
        }
        return new Chunk(action, offset, offset + (action == Action.SKIP ? length : Math.min(length, CHUNK)));
    }

    /** A chunk past the shorter image's end: the longer one's data there must read as zeroes. */
    private static Chunk tailChunk(long offset, Runs over) throws Failure {
        BlockStatus s = over.at(offset);
        long length = over.left(offset);
        if (!s.present() || s.zero()) {
            return new Chunk(Action.SKIP, offset, offset + length);
        }
        return new Chunk(over.which == 0 ? Action.CHECK_A : Action.CHECK_B, offset,
                offset + Math.min(length, CHUNK));
    }

    /**
     * Walks {@code [from, to)} in qemu-img's chunks; returns the line that ends the compare, or null. Chunks in a row
     * that qemu-img would each read the same way are read together, up to CHUNK: on a fragmented image every
     * cluster is a run of its own, and so one of qemu-img's chunks, where one read of many clusters goes to the
     * disk side by side ({@link io.github.qcowloom.image.PartTasks}). The answer stays qemu-img's: the first
     * difference is the same byte, and a read that fails is made again chunk by chunk, in qemu-img's order.
     */
    private String walk(ChunkPlan plan, long from, long to, Reads reads, ProgressBar bar) throws Failure {
        long offset = from;
        while (offset < to) {
            Chunk first = plan.at(offset);
            if (first.action() == Action.FLAGS_DIFFER) {
                return "Strict mode: Offset " + offset + " block status mismatch!";
            }
            List<Chunk> chunks = sameAhead(plan, first, to);
            String line = first.action() == Action.SKIP ? null : reads.chunks(chunks);
            if (line != null) {
                return line;
            }
            long end = chunks.getLast().end();
            ProgressBars.step(bar, end - offset);
            offset = end;
        }
        return null;
    }

    /**
     * {@code first} and the chunks after it that do the same, as long as all of them fit in CHUNK. A block status
     * that fails on the way ends them: the walk meets it again in qemu-img's order, after this read.
     */
    private static List<Chunk> sameAhead(ChunkPlan plan, Chunk first, long to) {
        List<Chunk> chunks = new ArrayList<>();
        chunks.add(first);
        if (first.action() == Action.SKIP) {
            return chunks;
        }
        for (long end = first.end(); end < to; ) {
            Chunk next;
            try {
                next = plan.at(end);
            } catch (Failure f) {
                break;
            }
            if (next.action() != first.action() || next.end() - first.start() > CHUNK) {
                break;
            }
            chunks.add(next);
            end = next.end();
        }
        return chunks;
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

        /**
         * Whether the run (after {@link #at}) ends where QEMU's block status says BDRV_BLOCK_EOF: at the image's end,
         * or, where a backing file that holds nothing there answered (zeroes, not allocated, so its EOF is kept), at
         * that file's end.
         */
        boolean reachesEnd(long offset) {
            long end = offset + left(offset);
            if (end == size) {
                return true;
            }
            if (status.allocation() != BlockStatus.Allocation.UNALLOCATED || status.depth() == 0) {
                return false;
            }
            BlockDevice layer = device;
            for (int d = 0; d < status.depth() && layer instanceof Qcow2Image q; d++) {
                layer = q.backing();
            }
            return layer != null && layer != device && end == layer.size();
        }
    }

    /**
     * QEMU's block status flags as compare -s compares them: data, zero, allocated, whether the bytes lie at a host
     * offset (BDRV_BLOCK_OFFSET_VALID: data stored as is, or a zero cluster with its host cluster kept), and whether
     * the run reaches the end of its image or of the backing file that answered for it ({@link Runs#reachesEnd},
     * BDRV_BLOCK_EOF: so two images whose runs end at different places differ there, as in qemu-img).
     */
    private static boolean sameFlags(BlockStatus a, boolean aToEnd, BlockStatus b, boolean bToEnd) {
        return a.data() == b.data() && a.zero() == b.zero() && a.allocated() == b.allocated()
                && (a.host() != null) == (b.host() != null) && aToEnd == bToEnd;
    }

    /** The reads of both images, into one buffer each, reused. */
    private final class Reads {
        private final BlockDevice a;
        private final BlockDevice b;
        private final ByteBuffer bufA = DirectBuffers.aligned(CHUNK);
        private final ByteBuffer bufB = DirectBuffers.aligned(CHUNK);

        Reads(BlockDevice a, BlockDevice b) {
            this.a = a;
            this.b = b;
        }

        /**
         * Does what {@code chunks} (in a row, of one action that reads) ask, in one read of each image; null if they
         * are the same. If a read fails, the chunks are done again one by one, as qemu-img does them, so that what is
         * told (a difference before the failing chunk, or the failure at its offset) is what qemu-img tells.
         */
        String chunks(List<Chunk> chunks) throws Failure {
            Chunk first = chunks.getFirst();
            try {
                return chunk(first.action(), first.start(), chunks.getLast().end());
            } catch (Failure f) {
                if (chunks.size() == 1) {
                    throw f;
                }
                for (Chunk c : chunks) {
                    String line = chunk(c.action(), c.start(), c.end());
                    if (line != null) {
                        return line;
                    }
                }
                throw f; // failed together only: the failure at the start of the chunks, one of qemu-img's
            }
        }

        private String chunk(Action action, long start, long end) throws Failure {
            int length = (int) (end - start);
            return switch (action) {
                case COMPARE -> {
                    readBoth(start, length);
                    int at = bufA.mismatch(bufB);
                    yield at < 0 ? null : mismatchAt(start, at);
                }
                case CHECK_A -> checkEmpty(a, start, length, 0);
                case CHECK_B -> checkEmpty(b, start, length, 1);
                case SKIP, FLAGS_DIFFER -> throw new IllegalArgumentException(action + " reads nothing");
            };
        }

        /**
         * Reads {@code length} bytes at {@code offset} of both images at once (FILE2's on a virtual thread), and
         * throws FILE1's failure first, as qemu-img, which reads FILE1 first, would.
         */
        private void readBoth(long offset, int length) throws Failure {
            // join() waits out interrupts: the thread reads into bufB, which must not be reused before it is done.
            CompletableFuture<Failure> readB = CompletableFuture.supplyAsync(() -> {
                try {
                    read(b, offset, bufB.clear().limit(length), 1);
                    return null;
                } catch (Failure f) {
                    return f;
                }
            }, task -> Thread.ofVirtual().name("qcow2-loom-compare").start(task));
            Failure failedA = null;
            try {
                read(a, offset, bufA.clear().limit(length), 0);
            } catch (Failure f) {
                failedA = f;
            }
            Failure failedB = readB.join();
            if (failedA != null) {
                throw failedA;
            }
            if (failedB != null) {
                throw failedB;
            }
            bufA.flip();
            bufB.flip();
        }

        /** qemu-img's check_empty_sectors: null if the range reads as zeroes, else the mismatch line. */
        private String checkEmpty(BlockDevice dev, long offset, int length, int which) throws Failure {
            read(dev, offset, bufA.clear().limit(length), which);
            int at = bufA.flip().mismatch(ZEROES.duplicate().limit(length));
            return at < 0 ? null : mismatchAt(offset, at);
        }
    }

    private void read(BlockDevice dev, long offset, ByteBuffer into, int which) throws Failure {
        try {
            dev.read(offset, into);
        } catch (IOException | RuntimeException e) {
            throw readFailure(offset, which, e);
        }
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
