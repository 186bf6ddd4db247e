package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.bitmap.BitmapAction;
import io.github.qcowloom.bitmap.BitmapActionException;
import io.github.qcowloom.bitmap.Bitmaps;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * convert's {@code --bitmaps}: the source's persistent bitmaps copied into the target once the data is, as qemu-img
 * convert_copy_bitmaps does (each added with the source's granularity, merged from it, disabled where the source's
 * is), with qemu-img's checks and words. QEMU walks an image's bitmaps newest first, so its messages name them in
 * the reverse of the directory's order; so do these, while the target's directory keeps the source's order, as
 * QEMU's ends with it.
 */
final class BitmapCopy {
    private BitmapCopy() {
    }

    /**
     * Refuses, before anything is written, a source without bitmaps (not qcow2 version 3) and, unless
     * {@code skipBroken}, one with a bitmap in use.
     */
    static void checkSource(BlockDevice source, boolean skipBroken) throws IOException {
        if (!(source instanceof Qcow2Image q) || q.header().version() < 3) {
            throw new ImageException("Source lacks bitmap support");
        }
        if (!skipBroken) {
            for (BitmapDirectory.Entry e : q.persistentBitmaps().reversed()) {
                if (e.inUse()) {
                    throw new ImageException("Cannot copy inconsistent bitmap '" + e.name() + "'\nTry "
                            + "--skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it");
                }
            }
        }
    }

    /** Refuses a target format that keeps no bitmaps: raw, or qcow2 version 2. */
    static void checkTarget(String format, int version) throws ImageException {
        if (!format.equals("qcow2") || version < 3) {
            throw new ImageException("Format driver '" + format + "' does not support bitmaps");
        }
    }

    /**
     * Copies the bitmaps of {@code source} into the qcow2 image {@code target}, opened for its metadata alone with
     * {@code options}; one in use is skipped with a warning on {@code err}.
     */
    static void copy(BlockDevice source, Path target, OpenOptions options, PrintWriter err) throws IOException {
        Qcow2Image src = (Qcow2Image) source;
        List<BitmapDirectory.Entry> bitmaps = src.persistentBitmaps();
        if (bitmaps.isEmpty()) {
            return;
        }
        try (Qcow2Image dst = Qcow2Image.open(target, options.withGuestWrites(false).withFollowReferences(false))) {
            // QEMU copies them newest first, warning of each one in use as it meets it, and stops at the first it
            // cannot add (the name taken) or fill (another disk size): those before it stay. Those are added here,
            // all in one edit, in the source's order, which the target's directory keeps, as QEMU's does.
            List<String> existing = dst.persistentBitmaps().stream().map(BitmapDirectory.Entry::name).toList();
            List<BitmapDirectory.Entry> done = new ArrayList<>();
            String failure = null;
            for (BitmapDirectory.Entry e : bitmaps.reversed()) {
                if (e.inUse()) {
                    err.println("qcow2-loom: warning: Skipping inconsistent bitmap '" + e.name() + "'");
                    continue;
                }
                if (existing.contains(e.name())) {
                    failure = "Failed to create bitmap " + e.name() + ": Bitmap already exists: " + e.name();
                    break;
                }
                long to = dst.header().diskSize();
                long from = src.header().diskSize();
                if (to != from) {
                    failure = "Failed to populate bitmap " + e.name() + ": Bitmaps are of different sizes (destination"
                            + " size is " + to + ", source size is " + from + ") and can't be merged";
                    break;
                }
                done.addFirst(e);
            }
            List<BitmapAction> actions = new ArrayList<>();
            for (BitmapDirectory.Entry e : done) {
                actions.add(new BitmapAction.Add(e.name(), 1L << e.granularityBits()));
                actions.add(new BitmapAction.Merge(e.name(), e.name()));
                if (!e.auto()) {
                    actions.add(new BitmapAction.Disable(e.name()));
                }
            }
            try {
                if (!actions.isEmpty()) {
                    Bitmaps.apply(dst, target.toString(), actions, src);
                }
            } catch (BitmapActionException refused) {
                String name = refused.action().bitmap();
                throw new ImageException((refused.action() instanceof BitmapAction.Add ? "Failed to create bitmap "
                        : "Failed to populate bitmap ") + name + ": " + refused.getMessage(), refused);
            }
            if (failure != null) {
                throw new ImageException(failure);
            }
        }
    }
}
