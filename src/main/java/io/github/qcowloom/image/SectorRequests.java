package io.github.qcowloom.image;

import io.github.qcowloom.format.Bytes;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.function.LongSupplier;

/**
 * The guest requests of an encrypted image, made whole 512-byte sectors before they reach the read and write paths
 * (QEMU's request alignment for an encrypted qcow2 image): a partial first or last sector is read whole, and for a
 * write merged and written whole; the sectors between go as they are, straight from or into the caller's buffer, so
 * a request costs at most two sectors of memory whatever its length.
 *
 * <p>Lock discipline: a write, zeroing or discard enters {@link SerialisingWrites} first, before the image lock that
 * {@link Locked} takes (and the cluster locks within), so that its wait holds no lock; a merge then runs alone on
 * its sectors. Reads enter nothing: a read beside a write sees either side of it, as without encryption.
 */
final class SectorRequests {
    static final int SECTOR = EncryptedData.SECTOR;

    /** A request body, run under the image lock. */
    @FunctionalInterface
    interface Body {
        void run() throws IOException;
    }

    /** The image's own hold: checks and marks {@code [offset, offset + length)}, runs {@code body} holding it. */
    @FunctionalInterface
    interface Locked {
        void run(long offset, long length, boolean writes, Body body) throws IOException;
    }

    private final Locked locked;
    private final ReadPath readPath;
    /** Null when the image is open read-only. */
    private final WritePath writePath;
    private final DiscardPath discardPath;
    private final SerialisingWrites inFlight = new SerialisingWrites(SECTOR);

    SectorRequests(Locked locked, ReadPath readPath, WritePath writePath, DiscardPath discardPath) {
        this.locked = locked;
        this.readPath = readPath;
        this.writePath = writePath;
        this.discardPath = discardPath;
    }

    void read(long offset, ByteBuffer dst) throws IOException {
        int length = dst.remaining();
        locked.run(offset, length, false, () -> {
            int at = dst.position();
            forEachPart(offset, length, (from, bytes, whole) -> {
                ByteBuffer part = dst.slice(at + (int) (from - offset), (int) bytes);
                if (whole) {
                    readPath.read(from, part);
                } else {
                    ByteBuffer sector = readSector(from);
                    part.put(sector.slice((int) (from - sectorStart(from)), (int) bytes));
                }
            });
            dst.position(at + length);
        });
    }

    void write(long offset, ByteBuffer src) throws IOException {
        int length = src.remaining();
        serialised(offset, length, () -> locked.run(offset, length, true, () -> writeLocked(offset, src)));
    }

    /**
     * The whole sectors zeroed as the image zeroes them, then the partial sectors at either end written as zeroes;
     * {@code size} is the disk's, read under the lock. With {@code noFallback} (QEMU's BDRV_REQ_NO_FALLBACK), for a
     * range {@link #onWholeSectors} only, no zero bytes are written: false where a piece would need them, the
     * clusters before it zeroed. True once the range reads as zeroes.
     */
    boolean writeZeroes(long offset, long length, boolean mayUnmap, boolean noFallback, LongSupplier size)
            throws IOException {
        if (noFallback && !onWholeSectors(offset, length)) {
            throw new IllegalArgumentException("a fast zero write not on whole sectors: " + offset + "+" + length);
        }
        boolean[] zeroed = {true};
        serialised(offset, length, () -> locked.run(offset, length, true, () -> forEachPart(offset, length,
                (from, bytes, whole) -> {
                    if (whole) {
                        zeroed[0] = discardPath.writeZeroes(from, bytes, mayUnmap, noFallback, size.getAsLong());
                    } else {
                        writeLocked(from, ByteBuffer.allocate((int) bytes)); // inside one sector
                    }
                })));
        return zeroed[0];
    }

    /** True if {@code [offset, offset + length)} is whole sectors: QEMU's request alignment here needs no padding. */
    static boolean onWholeSectors(long offset, long length) {
        return offset % SECTOR == 0 && length % SECTOR == 0;
    }

    /** Discards only whole clusters, so reads nothing; entered so that no merge runs beside it. */
    void discard(long offset, long length, LongSupplier size) throws IOException {
        serialised(offset, length, () -> locked.run(offset, length, true,
                () -> discardPath.discard(offset, length, size.getAsLong())));
    }

    private void writeLocked(long offset, ByteBuffer src) throws IOException {
        int length = src.remaining();
        int at = src.position();
        forEachPart(offset, length, (from, bytes, whole) -> {
            ByteBuffer part = src.slice(at + (int) (from - offset), (int) bytes);
            if (whole) {
                writePath.write(from, part);
            } else {
                long start = sectorStart(from);
                ByteBuffer sector = readSector(from);
                sector.put((int) (from - start), part, 0, (int) bytes);
                writePath.write(start, sector);
            }
        });
        src.position(at + length);
    }

    private ByteBuffer readSector(long inside) throws IOException {
        ByteBuffer sector = ByteBuffer.allocate(SECTOR);
        readPath.read(sectorStart(inside), sector.duplicate());
        return sector;
    }

    /** A part of a request: {@code bytes} from {@code from}, whole sectors or inside one. */
    @FunctionalInterface
    private interface Part {
        void run(long from, long bytes, boolean whole) throws IOException;
    }

    /**
     * The whole sectors of {@code [offset, offset + length)}, then its partial first and last sectors: a write of the
     * whole ones first allocates their clusters with the data (an encrypted cluster's copy-on-write is written, not
     * left to holes), so the merges after it write in place.
     */
    private static void forEachPart(long offset, long length, Part part) throws IOException {
        long end = offset + length;
        long headEnd = Math.min(end, sectorEnd(offset));
        long tailStart = Math.max(headEnd, sectorStart(end));
        if (tailStart > headEnd) {
            part.run(headEnd, tailStart - headEnd, true);
        }
        if (headEnd > offset) {
            part.run(offset, headEnd - offset, false);
        }
        if (end > tailStart) {
            part.run(tailStart, end - tailStart, false);
        }
    }

    private void serialised(long offset, long length, Body body) throws IOException {
        SerialisingWrites.Entry entry = inFlight.enter(offset, length);
        try {
            body.run();
        } finally {
            inFlight.leave(entry);
        }
    }

    private static long sectorStart(long offset) {
        return offset - offset % SECTOR;
    }

    private static long sectorEnd(long offset) {
        return Bytes.alignUp(offset, SECTOR);
    }
}
