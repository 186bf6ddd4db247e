package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.format.Bytes;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One guest request that both our driver and qemu-io can run: a write of a byte pattern, write-zeroes (with or
 * without unmap) or a discard; and its effect on a byte-array model of the disk (a discard zeroes whole clusters
 * only, plus the partial last one, as QEMU discards).
 */
record GuestOp(Kind kind, long offset, long length, int pattern) {
    enum Kind {
        WRITE, ZERO, ZERO_UNMAP, DISCARD
    }

    static GuestOp write(long offset, long length, int pattern) {
        return new GuestOp(Kind.WRITE, offset, length, pattern);
    }

    static GuestOp zero(long offset, long length, boolean unmap) {
        return new GuestOp(unmap ? Kind.ZERO_UNMAP : Kind.ZERO, offset, length, 0);
    }

    static GuestOp discard(long offset, long length) {
        return new GuestOp(Kind.DISCARD, offset, length, 0);
    }

    /** The qemu-io command doing the same. */
    String qemuIo() {
        return switch (kind) {
            case WRITE -> "write -P " + pattern + " " + offset + " " + length;
            case ZERO -> "write -z " + offset + " " + length;
            case ZERO_UNMAP -> "write -z -u " + offset + " " + length;
            case DISCARD -> "discard " + offset + " " + length;
        };
    }

    void applyTo(BlockDevice dev) throws IOException {
        switch (kind) {
            case WRITE -> {
                byte[] data = new byte[(int) length];
                Arrays.fill(data, (byte) pattern);
                dev.write(offset, ByteBuffer.wrap(data));
            }
            case ZERO -> dev.writeZeroes(offset, length, false);
            case ZERO_UNMAP -> dev.writeZeroes(offset, length, true);
            case DISCARD -> dev.discard(offset, length);
        }
    }

    void applyTo(byte[] model, long clusterSize) {
        long from = offset;
        long to = offset + length;
        if (kind == Kind.DISCARD) {
            from = Bytes.alignUp(offset, clusterSize);
            to = to == model.length ? to : to / clusterSize * clusterSize;
        }
        if (to > from) {
            Arrays.fill(model, (int) from, (int) to, (byte) (kind == Kind.WRITE ? pattern : 0));
        }
    }

    @Override
    public String toString() {
        return qemuIo();
    }

    /**
     * {@code count} random requests on a disk of {@code size} bytes: unaligned offsets and lengths, biased to
     * subcluster and cluster edges and to small pieces, so that requests start, end and meet inside subclusters.
     */
    static List<GuestOp> random(long seed, int count, long size, int clusterSize) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int sub = Math.max(512, clusterSize / 32);
        List<GuestOp> ops = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            long offset = switch (rnd.nextInt(3)) {
                case 0 -> rnd.nextLong(size / sub) * sub;
                case 1 -> rnd.nextLong(size / sub) * sub + rnd.nextInt(1, 512) - (rnd.nextBoolean() ? 0 : 511);
                default -> rnd.nextLong(size);
            };
            offset = Math.max(0, Math.min(size - 1, offset));
            long length = switch (rnd.nextInt(4)) {
                case 0 -> rnd.nextInt(1, 600);
                case 1 -> rnd.nextInt(1, 4) * (long) sub + rnd.nextInt(-100, 100);
                case 2 -> rnd.nextInt(1, 3 * clusterSize);
                default -> rnd.nextInt(1, 5) * (long) clusterSize;
            };
            length = Math.max(1, Math.min(size - offset, length));
            int kind = rnd.nextInt(10);
            ops.add(kind < 6 ? write(offset, length, 1 + rnd.nextInt(255))
                    : kind < 8 ? zero(offset, length, rnd.nextBoolean()) : discard(offset, length));
        }
        return ops;
    }
}
