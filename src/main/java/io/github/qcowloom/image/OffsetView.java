package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.storage.Zeroes;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The part of a device from {@code offset} on, as QEMU's raw driver with an {@code offset} option shows it (what
 * qemu-nbd {@code -o} exports): offset 0 of the view is {@code offset} of the device, and the view's size is what
 * is left, rounded up to whole 512-byte sectors as QEMU's block layer rounds a node's length; the rounded tail past
 * the device's end reads as zeroes and takes no writes. Closing the view closes the device.
 */
public final class OffsetView implements BlockDevice {
    private final BlockDevice device;
    private final long offset;

    /**
     * @throws IllegalArgumentException in QEMU's words where {@code offset} lies past the device's end
     */
    public OffsetView(BlockDevice device, long offset) {
        if (offset < 0 || offset > device.size()) {
            throw new IllegalArgumentException("Offset (" + Long.toUnsignedString(offset) + ") cannot be greater than"
                    + " size of the containing file (" + device.size() + ")");
        }
        this.device = device;
        this.offset = offset;
    }

    /** Bytes of the device in the view: up to its end. */
    private long inside() {
        return device.size() - offset;
    }

    @Override
    public long size() {
        return RawImage.sectors(inside());
    }

    private void check(long at, long length) throws OutOfRangeException {
        if (at < 0 || length < 0 || at > size() - length) {
            throw new OutOfRangeException("request of " + length + " bytes at offset " + at + " is outside the view"
                    + " of " + size() + " bytes");
        }
    }

    /** Refuses a change past the device's end, in the rounded tail. */
    private void checkWritable(long at, long length) throws OutOfRangeException {
        check(at, length);
        if (at + length > inside()) {
            throw new OutOfRangeException("request of " + length + " bytes at offset " + at + " reaches past the end"
                    + " of the device, " + inside() + " bytes into the view");
        }
    }

    @Override
    public void read(long at, ByteBuffer dst) throws IOException {
        check(at, dst.remaining());
        int past = (int) Math.max(0, at + dst.remaining() - inside());
        ByteBuffer within = dst.slice(dst.position(), dst.remaining() - past);
        if (within.hasRemaining()) {
            device.read(offset + at, within);
        }
        dst.position(dst.position() + within.position());
        Zeroes.fill(dst);
    }

    @Override
    public void write(long at, ByteBuffer src) throws IOException {
        checkWritable(at, src.remaining());
        device.write(offset + at, src);
    }

    @Override
    public void discard(long at, long length) throws IOException {
        checkWritable(at, length);
        device.discard(offset + at, length);
    }

    @Override
    public void writeZeroes(long at, long length, boolean mayUnmap) throws IOException {
        checkWritable(at, length);
        device.writeZeroes(offset + at, length, mayUnmap);
    }

    @Override
    public boolean writeZeroesFast(long at, long length, boolean mayUnmap) throws IOException {
        checkWritable(at, length);
        return device.writeZeroesFast(offset + at, length, mayUnmap);
    }

    @Override
    public void prefetch(long at, long length) throws IOException {
        check(at, length);
        if (at < inside()) { // the rounded tail has nothing to fetch
            device.prefetch(offset + at, Math.min(length, inside() - at));
        }
    }

    @Override
    public void flush() throws IOException {
        device.flush();
    }

    @Override
    public void resize(long newSize) throws IOException {
        throw new UnsupportedFeatureException("resize of an offset view", "A view from an offset of a disk cannot"
                + " be resized");
    }

    @Override
    public boolean readOnly() {
        return device.readOnly();
    }

    @Override
    public BlockStatus blockStatus(long at, long length) throws IOException {
        check(at, length);
        if (length == 0) {
            throw new OutOfRangeException("block status of an empty range at offset " + at);
        }
        if (at >= inside()) {
            return new BlockStatus(length, 0, BlockStatus.Allocation.ZERO, null);
        }
        return device.blockStatus(offset + at, Math.min(length, inside() - at));
    }

    @Override
    public java.nio.file.Path path() {
        return device.path();
    }

    @Override
    public void close() throws IOException {
        device.close();
    }
}
