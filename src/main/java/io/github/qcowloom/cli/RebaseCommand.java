package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenFailures;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.BackingFileChange;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.ReferencedFiles;
import io.github.qcowloom.storage.Zeroes;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code rebase [-f FMT] [-t CACHE] [-T SRC_CACHE] [-p] [-q] [-U] [-u] -b BACKING [-F BACKING_FMT] FILE}, as
 * qemu-img rebase (img_rebase). Safe mode (the default) first makes FILE read the same through the new backing file:
 * wherever FILE itself holds nothing, the old backing chain and the new one are read 2 MiB at a time and the
 * 512-byte sectors that differ are written into FILE, the old chain's bytes (or zeroes, past its end). Then the header
 * names the new backing file ({@link BackingFileChange}); with {@code -b ""}, none. Where the new backing file is
 * an image of FILE's own chain, only the ranges that the images between change are compared, as in QEMU. {@code -u}
 * (unsafe) changes the name alone, without opening either backing file: for a backing file that was moved or
 * renamed. As in qemu-img, a new backing file needs its format (-F), and without it the copy is made and the change
 * then refused; if the process dies during the copy, FILE reads as before.
 */
@Command(description = "Change the backing file of an image, as qemu-img rebase does.")
final class RebaseCommand implements Callable<Integer> {
    /** qemu-img's IO_BUF_SIZE: the most compared at once. */
    private static final int CHUNK = 2 << 20;
    private static final int SECTOR = 512;

    @Spec
    CommandSpec spec;

    @Option(names = "-f", paramLabel = "FMT", description = "FILE's format (probed when absent).")
    String format;

    @Option(names = "-b", paramLabel = "BACKING", description = "The new backing file, relative to FILE's folder "
            + "unless absolute; \"\" for none.")
    String backing;

    @Option(names = "-F", paramLabel = "FMT", description = "The new backing file's format (qcow2 or raw).")
    String backingFormat;

    @Option(names = "-u", description = "Unsafe: change the name only, copying nothing.")
    boolean unsafe;

    @Option(names = "-t", paramLabel = "CACHE", description = "FILE's cache mode: writeback (default), "
            + "writethrough, none, directsync or unsafe.")
    String cache = "writeback";

    @Option(names = "-T", paramLabel = "CACHE", description = "The new backing file's cache mode: writeback "
            + "(default) or none.")
    String sourceCache = "writeback";

    @Option(names = {"-U", "--force-share"}, description = "Share the new backing file with writers.")
    boolean forceShare;

    @Option(names = "-p", description = "Show a progress bar on stderr.")
    boolean progress;

    @Option(names = "-q", description = "Quiet: print nothing but errors.")
    boolean quiet;

    @Mixin
    OneImageFile file;

    @Override
    public Integer call() throws Exception {
        ImageOpts image = file.image(format).requireWritable();
        String filename = image.fileName();
        if (!unsafe && backing == null) {
            throw new IllegalArgumentException("Must specify backing file (-b) or use unsafe mode (-u)");
        }
        boolean direct = CacheMode.direct(cache); // its message is qemu-img's
        boolean sourceDirect;
        try {
            sourceDirect = CacheMode.direct(sourceCache);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("Invalid source cache option: " + sourceCache);
        }
        Path path = image.path();
        String fmt = image.formatOrProbe(spec.commandLine().getErr());
        OpenOptions options = image.apply(OpenOptions.readWriteDefaults().withDirect(direct)
                .withHostSyncs(CacheMode.syncs(cache)).withPool(false)); // clusters placed as qemu-img's, none held
        if (backingFormat != null && !backingFormat.equals("qcow2") && !backingFormat.equals("raw")) {
            throw ImageFormat.QEMU_OTHER_FORMATS.contains(backingFormat)
                    ? new UnsupportedFeatureException("backing format " + backingFormat)
                    : new IllegalArgumentException("Invalid format name: '" + backingFormat + "'");
        }
        if (!fmt.equals("qcow2")) {
            try (BlockDevice ignored = image.open(fmt, options)) {
                // raw: every byte is its own, and it has no backing file to change
            }
            throw new IllegalArgumentException(cannotChange("Operation not supported"));
        }
        // Unsafe: QEMU opens FILE without its backing file (BDRV_O_NO_BACKING); only the header changes.
        if (unsafe) {
            Qcow2Image.requireOpenable(path, image.spec(), options.withBackingChain(false));
            image.refuseBackingOptions(); // left over by an open without the backing file
        } else {
            try (Qcow2Image overlay = (Qcow2Image) image.open(fmt, options)) {
                copyWhatDiffers(overlay, path, OpenOptions.readOnlyDefaults().withDirect(sourceDirect)
                        .withLocking(forceShare ? ImageLocking.FORCE_SHARE : ImageLocking.DEFAULT));
            }
        }
        String name = backing == null || backing.isEmpty() ? null : backing;
        if (name != null && backingFormat == null) {
            throw new IllegalArgumentException(cannotChange("backing format must be specified"));
        }
        try {
            BackingFileChange.change(path, name, name == null ? null : backingFormat, ImageLocking.DEFAULT);
        } catch (BackingFileChange.RefusedException e) {
            throw new IllegalArgumentException(cannotChange(e.refusal().qemuWords()), e);
        } catch (CorruptImageException e) {
            // what -u's open (which reads no table) lets through and the header's rewrite refuses, as an open words it
            throw e.withContext("Could not open '" + image.spec() + "': ");
        }
        return 0;
    }

    private String cannotChange(String reason) {
        return "Could not change the backing file to '" + backing + "': " + reason;
    }

    /**
     * img_rebase's safe-mode loop: where {@code overlay} holds nothing, the sectors in which its old backing chain
     * and the new backing file differ get the old chain's bytes (zeroes past its end, written as zeroes).
     */
    private void copyWhatDiffers(Qcow2Image overlay, Path path, OpenOptions newOptions) throws Exception {
        BlockDevice oldBacking = overlay.backing();
        BlockDevice prefix = null;
        BlockDevice opened = null;
        if (!backing.isEmpty()) {
            // Beside FILE as named (QEMU's bdrv_get_full_backing_filename_from_filename), so errors name it alike.
            ProtocolNames.refuseProtocol(backing, "Could not open new backing file '" + backing + "': ");
            Path newPath = ReferencedFiles.resolve(path.getParent(), backing, "backing file");
            prefix = inChain(overlay, newPath);
            if (prefix == null) {
                try {
                    opened = ImageFormat.open(newPath, backingFormat, newOptions);
                } catch (IOException | RuntimeException e) {
                    // The file's own refusal, as blk_new_open words it, not img_open's context around it.
                    Throwable reason = e instanceof IOException io
                            ? OpenFailures.withoutContext(io, "Could not open '" + newPath + "': ") : e;
                    throw new IllegalArgumentException("Could not open new backing file '" + backing + "': "
                            + Main.message(reason), e);
                }
            }
        }
        try (BlockDevice ignored = opened) {
            BlockDevice newBacking = prefix != null ? prefix : opened;
            compareAndCopy(overlay, oldBacking, newBacking, prefix);
        }
    }

    /**
     * The image of {@code overlay}'s backing chain that {@code file} is, by real path, or null (QEMU's
     * bdrv_find_backing_image): rebasing onto it needs no second open.
     */
    private static BlockDevice inChain(Qcow2Image overlay, Path file) {
        Path real;
        try {
            real = file.toRealPath();
        } catch (IOException e) {
            return null; // not there: opening it tells why
        }
        for (BlockDevice dev = overlay.backing(); dev != null; dev = dev instanceof Qcow2Image q ? q.backing() : null) {
            Path p = dev.path();
            try {
                if (p != null && p.toRealPath().equals(real)) {
                    return dev;
                }
            } catch (IOException e) {
                // gone since it was opened: not the one
            }
        }
        return null;
    }

    private void compareAndCopy(Qcow2Image overlay, BlockDevice oldBacking, BlockDevice newBacking,
            BlockDevice prefix) throws IOException {
        long size = overlay.size();
        long oldSize = oldBacking == null ? 0 : oldBacking.size();
        long newSize = newBacking == null ? 0 : newBacking.size();
        ByteBuffer bufOld = DirectBuffers.aligned(CHUNK);
        ByteBuffer bufNew = DirectBuffers.aligned(CHUNK);
        try (ProgressBar bar = ProgressBars.open(progress && !quiet, "rebase", size)) {
            long n;
            for (long offset = 0; offset < size; offset += n) {
                n = Math.min(CHUNK, size - offset);
                BlockStatus own = overlay.ownStatus(offset, n);
                n = own.length();
                if (own.present()) {
                    ProgressBars.step(bar, n);
                    continue;
                }
                if (prefix != null) {
                    long changed = changedAbove(overlay.backing(), prefix, offset, n);
                    if (changed < 0) { // the images between leave it alone: both chains read it alike
                        n = -changed;
                        ProgressBars.step(bar, n);
                        continue;
                    }
                    n = changed;
                }
                boolean oldIsZero = offset >= oldSize;
                if (!oldIsZero) {
                    n = Math.min(n, oldSize - offset);
                    read(oldBacking, offset, bufOld, (int) n, "old");
                }
                if (offset >= newSize) {
                    zero(bufNew, (int) n);
                } else {
                    n = Math.min(n, newSize - offset);
                    read(newBacking, offset, bufNew, (int) n, "new");
                }
                if (oldIsZero) {
                    zero(bufOld, (int) n);
                }
                writeDifferences(overlay, offset, (int) n, bufOld, bufNew, oldIsZero);
                ProgressBars.step(bar, n);
            }
        }
    }

    /**
     * QEMU's bdrv_is_allocated_above from {@code top} down to {@code base}, {@code base} left out: the length of
     * the run from {@code offset} (at most {@code n}) that some image between holds, or reads as zeroes because it
     * ends before the run (QEMU counts those zeroes as held there), or its length negated where none does.
     */
    private static long changedAbove(BlockDevice top, BlockDevice base, long offset, long n) throws IOException {
        for (BlockDevice dev = top; dev != base && dev instanceof Qcow2Image q; dev = q.backing()) {
            long size = q.size();
            if (offset >= size) {
                return n;
            }
            BlockStatus s = q.ownStatus(offset, Math.min(n, size - offset));
            if (s.present()) {
                return s.length();
            }
            n = s.length();
        }
        return -n;
    }

    private static void read(BlockDevice dev, long offset, ByteBuffer buf, int length, String which)
            throws IOException {
        try {
            dev.read(offset, buf.clear().limit(length));
        } catch (IOException | RuntimeException e) {
            throw new IOException("error while reading from " + which + " backing file: " + Main.message(e), e);
        }
        buf.flip();
    }

    private static void zero(ByteBuffer buf, int length) {
        Zeroes.fill(buf.clear().limit(length));
        buf.flip();
    }

    /**
     * qemu-img's compare_buffers loop: runs of 512-byte sectors that differ get the old chain's bytes, or zeroes
     * (written as such) where the old chain ended.
     */
    private static void writeDifferences(Qcow2Image overlay, long offset, int n, ByteBuffer bufOld, ByteBuffer bufNew,
            boolean oldIsZero) throws IOException {
        int written = 0;
        while (written < n) {
            boolean differs = differs(bufOld, bufNew, written, Math.min(SECTOR, n - written));
            int end = written + Math.min(SECTOR, n - written);
            while (end < n && differs(bufOld, bufNew, end, Math.min(SECTOR, n - end)) == differs) {
                end += Math.min(SECTOR, n - end);
            }
            if (differs) {
                try {
                    if (oldIsZero) {
                        overlay.writeZeroes(offset + written, end - written, false);
                    } else {
                        overlay.write(offset + written, bufOld.duplicate().limit(end).position(written));
                    }
                } catch (IOException | RuntimeException e) {
                    throw new IOException("Error while writing to COW image: " + Main.message(e), e);
                }
            }
            written = end;
        }
    }

    private static boolean differs(ByteBuffer a, ByteBuffer b, int from, int length) {
        return a.slice(from, length).mismatch(b.slice(from, length)) >= 0;
    }


}
