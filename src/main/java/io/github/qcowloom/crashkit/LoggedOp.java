package io.github.qcowloom.crashkit;

import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Random;

/** One storage operation as a {@link CrashSimStorage} recorded it, replayable onto another storage. */
sealed interface LoggedOp {
    /** Replays the operation; {@code garbage} non-null fills space it newly extends with garbage (torn mode). */
    void apply(Storage s, Random garbage) throws IOException;

    /** Replays a dropped operation in torn mode: its region (and any gap it extends over) gets garbage. */
    void tear(Storage s, Random garbage) throws IOException;

    /** A write of {@code data} at {@code offset}. */
    record Write(long offset, byte[] data) implements LoggedOp {
        @Override
        public void apply(Storage s, Random garbage) throws IOException {
            fillGap(s, offset, garbage);
            s.write(ByteBuffer.wrap(data), offset);
        }

        @Override
        public void tear(Storage s, Random garbage) throws IOException {
            fillGap(s, offset, garbage);
            writeGarbage(s, offset, data.length, garbage);
        }
    }

    /** {@code length} zeroes at {@code offset} (write-zeroes, or a punched hole inside the file). */
    record Zero(long offset, long length) implements LoggedOp {
        @Override
        public void apply(Storage s, Random garbage) throws IOException {
            fillGap(s, offset, garbage);
            s.writeZeroes(offset, length);
        }

        @Override
        public void tear(Storage s, Random garbage) throws IOException {
            fillGap(s, offset, garbage);
            writeGarbage(s, offset, length, garbage);
        }
    }

    /** A truncation or extension to {@code length}. */
    record SetLength(long length) implements LoggedOp {
        @Override
        public void apply(Storage s, Random garbage) throws IOException {
            fillGap(s, length, garbage);
            s.setLength(length);
        }

        @Override
        public void tear(Storage s, Random garbage) {
            // A dropped size change leaves the old size.
        }
    }

    /** A completed flush: it closes an epoch. */
    record Flush() implements LoggedOp {
        @Override
        public void apply(Storage s, Random garbage) {
            // Ordering only; the bytes do not change.
        }

        @Override
        public void tear(Storage s, Random garbage) {
            // Ordering only; the bytes do not change.
        }
    }

    private static void fillGap(Storage s, long end, Random garbage) throws IOException {
        long size = s.size();
        if (garbage != null && end > size) {
            writeGarbage(s, size, end - size, garbage);
        }
    }

    private static void writeGarbage(Storage s, long offset, long length, Random garbage) throws IOException {
        byte[] junk = new byte[(int) length];
        garbage.nextBytes(junk);
        s.write(ByteBuffer.wrap(junk), offset);
    }
}
