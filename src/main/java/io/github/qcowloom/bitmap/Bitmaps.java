package io.github.qcowloom.bitmap;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.util.List;

/**
 * The persistent dirty bitmaps of an open qcow2 image, as qemu-img bitmap changes them. An edit runs with the image
 * held exclusively and writes in QEMU's crash-safe order ({@link BitmapEdit}), on an image opened for its metadata
 * only ({@link io.github.qcowloom.api.OpenOptions#withGuestWrites}): an open for guest writes keeps the bitmaps it
 * found, in use, and stores those at its close.
 */
public final class Bitmaps {
    private Bitmaps() {
    }

    /**
     * The bitmaps of {@code image}, each not in use with its table read and checked, as QEMU loads them when it opens
     * an image; QEMU refuses the open of one it cannot load.
     *
     * @throws io.github.qcowloom.api.CorruptImageException in QEMU's words
     */
    public static List<BitmapDirectory.Entry> loaded(Qcow2Image image) throws IOException {
        List<BitmapDirectory.Entry> bitmaps = image.persistentBitmaps();
        for (BitmapDirectory.Entry e : bitmaps) {
            if (!e.inUse()) {
                image.bitmapBits(e);
            }
        }
        return bitmaps;
    }

    /**
     * Applies {@code actions} in order and stores what they made. Where QEMU refuses a step, the steps before it are
     * stored all the same (as qemu-img stores at its close what they made) and the refusal is thrown.
     *
     * @param imageName the image as QEMU's messages name it ("Can't make bitmap 'b' persistent in 'NAME': ...")
     * @param mergeSource the image whose bitmaps merges read; null for {@code image} itself. One that is not qcow2
     *     has none.
     * @throws BitmapActionException the first step refused, in QEMU's words
     * @throws UnsupportedFeatureException if {@code image} accepts guest writes: the bitmaps stored would not record
     *     them
     */
    public static void apply(Qcow2Image image, String imageName, List<BitmapAction> actions, BlockDevice mergeSource)
            throws IOException {
        if (image.acceptsGuestWrites()) {
            throw new UnsupportedFeatureException("bitmap edits beside guest writes", "Bitmaps are edited on an"
                    + " image opened for its metadata alone (OpenOptions.withGuestWrites(false)): an open for guest"
                    + " writes keeps the bitmaps it found, and stores them at its close");
        }
        BitmapActionException refused = image.editTables(tables -> {
            BitmapEdit edit = new BitmapEdit(image, tables, imageName);
            BitmapActionException first = null;
            for (BitmapAction action : actions) {
                try {
                    edit.apply(action, mergeSource);
                } catch (BitmapActionException e) {
                    first = e;
                    break;
                }
            }
            edit.store();
            return first;
        });
        if (refused != null) {
            throw refused;
        }
    }
}
