package io.github.qcowloom.fuzz;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.ReadOnlyImageException;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * What the fuzz targets share: a fuzzer's bytes as an image file in memory, and the one rule of every target.
 * Only the project's typed exceptions may end a run on a hostile image: the {@link ImageException} family (corrupt,
 * unsupported, too large), a request past the disk's end ({@link OutOfRangeException}) or a write to a read-only
 * image ({@link ReadOnlyImageException}). Anything else that escapes (an IllegalArgumentException, an index out of
 * bounds, a plain IOException without image context), a run over Jazzer's time limit, or an OutOfMemoryError at
 * the profile's -Xmx is a finding.
 */
public final class FuzzImage {
    /**
     * The most a fuzzed image file may grow to in memory. A write past it fails with {@link StorageFull}, the
     * target's stand-in for a full disk: an image may legitimately point far into a sparse file (offsets up to
     * 2^56), which a heap cannot hold.
     */
    static final long STORAGE_LIMIT = 64L << 20;

    private FuzzImage() {
    }

    /** The host ran out of space for the image file: the fuzz storage's limit, not a flaw of the driver. */
    static final class StorageFull extends IOException {
        StorageFull(long position, long length) {
            super("fuzz storage limit of " + STORAGE_LIMIT + " bytes: " + length + " bytes at " + position);
        }
    }

    /** A writable in-memory file holding {@code data}, whose growth past {@link #STORAGE_LIMIT} is a full disk. */
    public static Storage writable(byte[] data) {
        return new Bounded(new MemoryStorage(data, Math.max(data.length, STORAGE_LIMIT), false));
    }

    /** A read-only in-memory file holding {@code data}. */
    static Storage readOnly(byte[] data) {
        return MemoryStorage.readOnlyCopy(data);
    }

    /** Rethrows {@code e} unless it is one of the typed outcomes a hostile image may have. */
    public static void expected(IOException e) throws IOException {
        if (e instanceof ImageException || e instanceof OutOfRangeException || e instanceof ReadOnlyImageException
                || e instanceof StorageFull) {
            return;
        }
        throw e;
    }

    /** Refuses writes past the limit with {@link StorageFull} before the memory storage sees them. */
    private static final class Bounded extends ForwardingStorage {
        Bounded(Storage inner) {
            super(inner);
        }

        private static void check(long position, long length) throws StorageFull {
            if (position >= 0 && length >= 0 && position > STORAGE_LIMIT - length) {
                throw new StorageFull(position, length);
            }
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            check(position, src.remaining());
            super.write(src, position);
        }

        @Override
        public void writeZeroes(long position, long length) throws IOException {
            check(position, length);
            super.writeZeroes(position, length);
        }

        @Override
        public void reserve(long position, long length) throws IOException {
            check(position, length);
            super.reserve(position, length);
        }

        @Override
        public void setLength(long length) throws IOException {
            check(length, 0);
            super.setLength(length);
        }

        @Override
        public void extendTo(long end) throws IOException {
            check(end, 0);
            super.extendTo(end);
        }
    }
}
