package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.ReferencedFiles;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.LockPermissions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code commit [-f FMT] [-t CACHE] [-b BASE] [-d] [-p] [-q] [-r RATE] FILE}, as qemu-img commit: what FILE and the
 * images between it and its base hold is written into the base (by default FILE's backing file; {@code -b} names
 * one deeper in the chain), which grows to FILE's size if smaller; then FILE is emptied, so that it reads through
 * to the base again, unless {@code -d} or {@code -b}. The copy is QEMU's commit job (a mirror with the base as its
 * target): the base's clusters of up to 64 KiB (at least 4 KiB) that the images above touch are copied whole, 1 MiB
 * at a time where they hold data, and ranges they hold as zeroes are written into the base as zeroes that may
 * unmap; so the base ends with the allocation qemu-img gives it. {@code -r} limits the copy to RATE bytes a second.
 */
@Command(description = "Write an image's data into its backing file, as qemu-img commit does.")
final class CommitCommand implements Callable<Integer> {
    /** QEMU's mirror buffer: the most copied in one pass over consecutive chunks. */
    private static final int BUFFER = 16 << 20;
    /** QEMU's MAX_IO_BYTES: data is copied at most this much at a time. */
    private static final int MAX_IO = 1 << 20;

    @Spec
    CommandSpec spec;

    @Option(names = "-f", paramLabel = "FMT", description = "FILE's format (probed when absent).")
    String format;

    @Option(names = "-t", paramLabel = "CACHE", description = "Cache mode: writeback (default), writethrough, none, "
            + "directsync or unsafe.")
    String cache = "writeback";

    @Option(names = "-b", paramLabel = "BASE", description = "The image of FILE's backing chain to commit into "
            + "(implies -d).")
    String baseName;

    @Option(names = "-d", description = "Leave FILE as it is rather than emptying it.")
    boolean drop;

    @Option(names = "-r", paramLabel = "RATE", description = "At most RATE bytes a second.")
    String rate;

    @Option(names = "-p", description = "Show a progress bar on stderr.")
    boolean progress;

    @Option(names = "-q", description = "Quiet: print nothing but errors.")
    boolean quiet;

    @Mixin
    OneImageFile file;

    @Override
    public Integer call() throws Exception {
        long rateLimit = rate == null ? 0 : Sizes.cvtnum("rate limit", rate);
        ImageOpts image = file.image(format).requireWritable();
        boolean direct = CacheMode.direct(cache); // its message is qemu-img's
        // Clusters placed as qemu-img's, none held; opened with unmap, as qemu-img commit opens it.
        OpenOptions options = image.apply(OpenOptions.readWriteDefaults().withDirect(direct)
                .withHostSyncs(CacheMode.syncs(cache)).withPool(false), true);
        Path path = image.path();
        String fmt = image.formatOrProbe(spec.commandLine().getErr());
        boolean keep = drop || baseName != null;
        // FILE is held for writing from the start, as qemu-img opens it: no one else may write it while its data
        // goes into the base, and a lock refused is refused before the base changes.
        FileStorage topFile = lockForWriting(path, options);
        try {
            // The chain read without lock bytes of its own: FILE's and the base's are the ones that matter, and a
            // second open of a file with lock bytes is refused where locks are POSIX ones (Java 21).
            try (BlockDevice top = image.open(fmt, options.withReadOnly(true)
                    .withLocking(ImageLocking.NONE))) {
                int depth = baseDepth(top, path);
                List<Qcow2Image> above = new ArrayList<>();
                BlockDevice dev = top;
                for (int i = 0; i < depth; i++) {
                    above.add((Qcow2Image) dev);
                    dev = ((Qcow2Image) dev).backing();
                }
                // As the chain names it: a base whose format the layer above does not record was probed, and a probed
                // raw base takes no write that would make its first sector read as another format's (QEMU's EPERM).
                String baseFormat = above.getLast().header().backingFormat().isEmpty() ? null
                        : dev instanceof Qcow2Image ? "qcow2" : "raw";
                // The base's own passphrase: what the options say of the image that deep (backing.encrypt.*).
                try (BlockDevice base = ImageFormat.open(fileOf(dev), baseFormat, options.forBackingDepth(depth))) {
                    copy(new CommitView(above, base), base, top.size(), rateLimit);
                }
            }
            if (!keep) {
                // On the storage held since the start; the image closes it.
                Qcow2Image top = Qcow2Image.open(topFile, path.toAbsolutePath().getParent(), options);
                topFile = null;
                try (top) {
                    top.makeEmpty();
                }
            }
        } finally {
            if (topFile != null) {
                topFile.close();
            }
        }
        if (!quiet) {
            spec.commandLine().getOut().println("Image committed.");
        }
        return 0;
    }

    /** The file of an image of the chain (every image opened from a path has one). */
    private static Path fileOf(BlockDevice dev) {
        Path p = dev.path();
        if (p == null) {
            throw new IllegalStateException("an image of the chain is no file");
        }
        return p;
    }

    private static FileStorage lockForWriting(Path path, OpenOptions options) throws IOException {
        try {
            return FileStorage.open(path, false, options.direct(), options.tuning().storage(),
                    LockPermissions.forImage(options.locking(), false));
        } catch (ImageLockedException e) {
            throw e.withContext("Could not open '" + path + "': ");
        }
    }

    /** How deep the base lies in {@code top}'s chain: its backing file (1), or the image {@code -b} names. */
    private int baseDepth(BlockDevice top, Path topPath) {
        if (!(top instanceof Qcow2Image q) || q.backing() == null) {
            throw new IllegalArgumentException("Image does not have a backing file");
        }
        if (baseName == null) {
            return 1;
        }
        // QEMU's bdrv_find_backing_image: the name taken relative to each image's folder, compared by real path.
        int depth = 1;
        Path dir = topPath.toAbsolutePath().getParent();
        for (Qcow2Image layer = q; layer.backing() != null; depth++) {
            BlockDevice next = layer.backing();
            try {
                Path wanted = ReferencedFiles.resolve(dir, baseName, "base").toRealPath();
                if (fileOf(next).toRealPath().equals(wanted)) {
                    return depth;
                }
            } catch (IOException e) {
                // not this one
            }
            if (!(next instanceof Qcow2Image n)) {
                break;
            }
            dir = fileOf(next).toAbsolutePath().getParent();
            layer = n;
        }
        throw new IllegalArgumentException("Did not find '" + baseName + "' in the backing chain of '"
                + file.name() + "'");
    }

    /**
     * QEMU's commit job: a mirror from the top's view into {@code base} of the chunks the images above it touch.
     * Chunks are the base's clusters, at least 4 KiB and at most 64 KiB (bdrv_get_default_bitmap_granularity).
     */
    private void copy(CommitView view, BlockDevice base, long size, long rateLimit) throws IOException {
        if (base.size() < size) {
            base.resize(size); // mirror_run truncates a shorter base to the top's size
        }
        long cluster = base instanceof Qcow2Image q ? q.header().clusterSize() : 0;
        long chunk = cluster == 0 ? 65536 : Math.min(65536, Math.max(4096, cluster));
        ByteBuffer buf = DirectBuffers.aligned(BUFFER);
        RateLimit limit = new RateLimit(rateLimit);
        long copied = 0;
        try (ProgressBar bar = ProgressBars.open(progress && !quiet, "commit", size)) {
            long offset = 0;
            while (offset < size) {
                // The next span of chunks the images above touch (mirror_dirty_init's bitmap, walked in order).
                CommitView.Run run = view.at(offset, size - offset);
                if (!run.aboveBase(base)) {
                    offset += run.status().length();
                    ProgressBars.step(bar, run.status().length());
                    continue;
                }
                long spanStart = offset / chunk * chunk;
                long spanEnd = alignUp(offset + run.status().length(), chunk);
                // Runs of the images above in the same or the next chunk continue the span; a whole chunk
                // without one ends it.
                for (long scan = offset + run.status().length(); scan < size && scan < spanEnd + chunk; ) {
                    CommitView.Run next = view.at(scan, size - scan);
                    if (next.aboveBase(base)) {
                        spanEnd = Math.max(spanEnd, alignUp(scan + next.status().length(), chunk));
                    }
                    scan += next.status().length();
                }
                spanEnd = Math.min(spanEnd, alignUp(size, chunk));
                copied += mirrorSpan(view, base, spanStart, spanEnd, size, chunk, Math.max(1, cluster), buf);
                ProgressBars.step(bar, Math.min(spanEnd, size) - offset);
                offset = Math.min(spanEnd, size);
                limit.await(copied);
            }
        }
    }

    /**
     * mirror_iteration over the dirty chunks {@code [start, end)}, in passes of at most the mirror buffer: each run
     * is copied where the top's view holds data (at most 1 MiB at a time); where it reads zeroes over whole clusters
     * of the base (QEMU 7.2's bdrv_round_to_clusters), it is zeroed there (may unmap); otherwise copied, at least one
     * chunk at a time. Returns the bytes copied.
     */
    private static long mirrorSpan(CommitView view, BlockDevice base, long start, long end, long size, long chunk,
            long cluster, ByteBuffer buf) throws IOException {
        long copied = 0;
        for (long pass = start; pass < end; pass += BUFFER) {
            long offset = pass;
            long chunks = (Math.min(end, pass + BUFFER) - pass) / chunk;
            while (chunks > 0 && offset < size) {
                BlockStatus s = view.at(offset, chunks * chunk).status();
                long io = s.data() ? Math.min(s.length(), MAX_IO) : s.length();
                io -= io % chunk;
                boolean copy = true;
                if (io < chunk) {
                    io = chunk;
                } else if (!s.data() && offset % cluster == 0 && io % cluster == 0) {
                    copy = false; // every status that is not data reads as zeroes
                }
                io = Math.min(io, size - offset);
                if (copy) {
                    io = Math.min(io, BUFFER);
                    view.read(offset, buf.clear().limit((int) io));
                    base.write(offset, buf.flip());
                    copied += io;
                } else {
                    base.writeZeroes(offset, io, true);
                }
                offset += io;
                chunks -= (io + chunk - 1) / chunk;
            }
        }
        return copied;
    }

    private static long alignUp(long v, long a) {
        return (v + a - 1) / a * a;
    }
}
