package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.ChainEncryption;
import io.github.qcowloom.api.DiscardPolicy;
import io.github.qcowloom.api.ImageOptionsException;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.api.ProbedRawHeaderException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.storage.HoleMap;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A raw image: guest offset equals file offset. Used for raw backing files and raw convert targets.
 *
 * <p>Lock discipline: {@code firstSector}, held by the writes into the first sector of an image whose format was
 * probed, from the check of what the sector will hold to the write; it takes no other lock.
 */
public final class RawImage implements BlockDevice {
    private final Storage storage;
    /** Where the file has holes, or null: then everything is data. */
    private final HoleMap holes;
    /** What the guest's discards and zero writes do (QEMU's discard and detect-zeroes). */
    private final DiscardPolicy discards;
    /**
     * The format was probed, not given: a data write that would make the first sector probe as another format is
     * refused, as QEMU's raw_co_pwritev refuses it ({@link ProbedRawHeaderException}).
     */
    private final boolean probed;
    /** Writes into a probed image's first sector, one at a time: two could build a header that neither checked. */
    private final ReentrantLock firstSector = new ReentrantLock();

    public RawImage(Storage storage) {
        this(storage, null, DiscardPolicy.UNMAP, false);
    }

    /**
     * A raw image whose block status reports the holes of {@code holes} (closed with the image; null: none known)
     * as zeroes, whose discards and zero writes go as {@code discards} says, and whose first sector takes no other
     * format's header if its format was {@code probed}.
     */
    public RawImage(Storage storage, HoleMap holes, DiscardPolicy discards, boolean probed) {
        this.storage = storage;
        this.holes = holes;
        this.discards = discards;
        this.probed = probed;
    }

    /**
     * Refuses, in QEMU's words, encryption options given for a raw image (its format takes none: a LUKS volume is
     * another format) or for the backing files it cannot have.
     */
    static void refuseEncryptionOptions(ChainEncryption options) throws ImageOptionsException {
        String option = options.format().isPresent() ? "encrypt.format"
                : options.hasPassphrase() ? "encrypt.key-secret" : null;
        if (option != null) {
            throw new ImageOptionsException("Block format 'raw' does not support the option '" + option + "'");
        }
        if (options.saysAnythingBelow()) {
            throw new ImageOptionsException("Driver doesn't support backing files");
        }
    }

    /** The raw file's path, or null where its storage is no host file. */
    @Override
    public java.nio.file.Path path() {
        return storage.path();
    }

    /**
     * The file's length in whole 512-byte sectors, rounded up, as QEMU's raw driver serves a file (its
     * total_sectors): the tail past the file's end reads as zeroes, and a write there grows the file.
     */
    @Override
    public long size() {
        try {
            return sectors(storage.size());
        } catch (IOException e) {
            return 0;
        }
    }

    /** {@code bytes} rounded up to whole 512-byte sectors. */
    public static long sectors(long bytes) {
        return bytes + (-bytes & 511);
    }

    private void check(long offset, long length) throws IOException {
        long size = sectors(storage.size());
        if (offset < 0 || length < 0 || offset > size - length) {
            throw new OutOfRangeException("request of " + length + " bytes at offset " + offset
                    + " is outside the raw image of " + size + " bytes");
        }
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        check(offset, dst.remaining());
        storage.readFully(dst, offset);
    }

    /**
     * Data at the guest offset; with a hole map, holes read as zeroes (QEMU's file-posix: present, zero, no data),
     * else data everywhere.
     */
    @Override
    public BlockStatus blockStatus(long offset, long length) throws IOException {
        check(offset, length);
        if (length == 0) {
            throw new OutOfRangeException("block status of an empty range at offset " + offset);
        }
        BlockStatus.Host host = new BlockStatus.Host(BlockStatus.HostFile.IMAGE, offset);
        if (holes != null) {
            HoleMap.Run run = holes.run(offset, length);
            return new BlockStatus(run.length(), 0,
                    run.hole() ? BlockStatus.Allocation.ZERO : BlockStatus.Allocation.DATA, host);
        }
        return new BlockStatus(length, 0, BlockStatus.Allocation.DATA, host);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        if (ZeroData.writtenAsZeroes(discards, this, offset, src)) {
            return;
        }
        check(offset, src.remaining());
        if (probed && offset < FormatProbe.BYTES && src.hasRemaining()) {
            writeFirstSector(offset, src);
        } else {
            storage.write(src, offset);
        }
    }

    /**
     * A write into the first sector of a probed image: refused where the sector would then probe as another format
     * (QEMU probes it without the file's name, so a name ending in .dmg does not count). Zero writes are not
     * checked, as QEMU's are not.
     */
    private void writeFirstSector(long offset, ByteBuffer src) throws IOException {
        firstSector.lock();
        try {
            byte[] sector = new byte[FormatProbe.BYTES];
            int held = (int) Math.min(FormatProbe.BYTES, storage.size());
            storage.readFully(ByteBuffer.wrap(sector, 0, held), 0);
            int n = (int) Math.min(src.remaining(), FormatProbe.BYTES - offset);
            src.get(src.position(), sector, (int) offset, n);
            String format = FormatProbe.formatOf(sector, null);
            if (!format.equals("raw")) {
                throw new ProbedRawHeaderException("Operation not permitted: the write would make the first sector"
                        + " of an image whose format was probed as raw read as a " + format + " header (name the"
                        + " format, raw, to write it)");
            }
            storage.write(src, offset);
        } finally {
            firstSector.unlock();
        }
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        check(offset, length);
        if (discards.unmap()) { // discard=ignore drops it once checked, as QEMU's bdrv_co_pdiscard does
            storage.punchHole(offset, length);
        }
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        check(offset, length);
        if (discards.mayUnmap(mayUnmap)) {
            storage.punchHole(offset, length); // partial blocks at its ends get zeroes written
        } else {
            storage.zeroKeepingSpace(offset, length); // QEMU's file layer: fallocate(ZERO_RANGE) first
        }
    }

    /**
     * Fast where the host zeroes the range without writing: a hole punched where the zeroes may unmap, else (or
     * where the punch falls short) fallocate(ZERO_RANGE), as QEMU's file layer asks for them.
     */
    @Override
    public boolean writeZeroesFast(long offset, long length, boolean mayUnmap) throws IOException {
        check(offset, length);
        return storage.zeroWithoutWriting(offset, length, discards.mayUnmap(mayUnmap));
    }

    @Override
    public void flush() throws IOException {
        storage.flush();
    }

    @Override
    public void resize(long newSize) throws IOException {
        resize(newSize, Preallocation.OFF);
    }

    /** QEMU's raw truncate with a preallocation mode: see {@link #grow}. */
    @Override
    public void resize(long newSize, Preallocation mode) throws IOException {
        Limits.requireDiskLength(newSize);
        mode.requireGrowth(storage.size(), newSize);
        grow(storage, newSize, mode);
    }

    /**
     * Sets the raw file in {@code storage} to {@code newSize} bytes, as QEMU's raw_co_truncate does in {@code mode}:
     * what a growth adds is left sparse ({@code OFF}), reserved ({@code FALLOC}) or written with zeroes
     * ({@code FULL}); {@code METADATA} is refused, in QEMU's words, as a raw file has no metadata to preallocate.
     */
    public static void grow(Storage storage, long newSize, Preallocation mode) throws IOException {
        if (mode == Preallocation.METADATA) {
            throw new UnsupportedFeatureException("preallocation=metadata for raw",
                    "Unsupported preallocation mode: metadata");
        }
        long old = storage.size();
        if (mode == Preallocation.OFF) {
            try {
                storage.setLength(newSize);
            } catch (IOException e) {
                if (e.getClass() != IOException.class) {
                    throw e; // typed: a read-only file, ...
                }
                throw new IOException("Could not resize file: " + e.getMessage(), e); // file-posix's words
            }
        } else {
            HostSpace.prepare(storage, mode, old, newSize - old, true); // past the end: never written
        }
    }

    @Override
    public boolean readOnly() {
        return storage.readOnly();
    }

    @Override
    public void close() throws IOException {
        if (holes != null) {
            holes.close();
        }
        storage.close();
    }
}
