package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.image.DirtyBits;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.nbd.ExportedBitmap;
import java.io.IOException;

/**
 * serve's {@code -B NAME}, as qemu-nbd's: a persistent bitmap of the served image as NBD's qemu:dirty-bitmap:NAME
 * context, live where the open keeps the bitmap (a writable export: the guest's writes show in it at once), as
 * stored otherwise.
 */
record ServedBitmap(String name, DirtyBits bits) implements ExportedBitmap {
    /** Bitmap {@code name} of {@code device}, refused in qemu-nbd's words if it has none such or it is in use. */
    static ServedBitmap of(BlockDevice device, String name) throws IOException {
        if (!(device instanceof Qcow2Image image)) {
            throw new ImageException("Bitmap '" + name + "' is not found");
        }
        return new ServedBitmap(name, image.dirtyBits(name));
    }

    @Override
    public Runs runs() {
        DirtyBits reader = bits.reader();
        int g = reader.granularityBits();
        return (offset, limit) -> {
            long bit = offset >>> g;
            long count = reader.count();
            boolean dirty = reader.nextSet(bit, bit + 1) == bit;
            // From the next bit: one set meanwhile cannot end the run before it starts.
            long end = dirty ? reader.nextClear(bit + 1, count) : reader.nextSet(bit + 1, count);
            return new Run(end >= count ? limit : Math.min(limit, end << g), dirty);
        };
    }
}
