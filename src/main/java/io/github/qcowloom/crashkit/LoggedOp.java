package io.github.qcowloom.crashkit;

import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;

/** One storage operation as a {@link CrashSimStorage} recorded it, replayable onto another storage. */
sealed interface LoggedOp {
    /** Replays the operation; {@code garbage} non-null may fill space it newly extends (torn modes). */
    void apply(Storage s, Garbage garbage) throws IOException;

    /** Replays a dropped operation in a torn mode: {@code garbage} decides what of its region gets garbage. */
    void tear(Storage s, Garbage garbage) throws IOException;

    /** A write of {@code data} at {@code offset}. */
    record Write(long offset, byte[] data) implements LoggedOp {
        @Override
        public void apply(Storage s, Garbage garbage) throws IOException {
            fillGap(s, offset, garbage);
            s.write(ByteBuffer.wrap(data), offset);
        }

        @Override
        public void tear(Storage s, Garbage garbage) throws IOException {
            garbage.tear(s, offset, data.length);
        }
    }

    /** {@code length} zeroes at {@code offset} (write-zeroes, or a punched hole inside the file). */
    record Zero(long offset, long length) implements LoggedOp {
        @Override
        public void apply(Storage s, Garbage garbage) throws IOException {
            fillGap(s, offset, garbage);
            s.writeZeroes(offset, length);
        }

        @Override
        public void tear(Storage s, Garbage garbage) throws IOException {
            garbage.tear(s, offset, length);
        }
    }

    /** A truncation or extension to {@code length}. */
    record SetLength(long length) implements LoggedOp {
        @Override
        public void apply(Storage s, Garbage garbage) throws IOException {
            fillGap(s, length, garbage);
            s.setLength(length);
        }

        @Override
        public void tear(Storage s, Garbage garbage) {
            // A dropped size change leaves the old size.
        }
    }

    /** A completed flush: it closes an epoch. */
    record Flush() implements LoggedOp {
        @Override
        public void apply(Storage s, Garbage garbage) {
            // Ordering only; the bytes do not change.
        }

        @Override
        public void tear(Storage s, Garbage garbage) {
            // Ordering only; the bytes do not change.
        }
    }

    private static void fillGap(Storage s, long end, Garbage garbage) throws IOException {
        if (garbage != null) {
            garbage.fillGap(s, end);
        }
    }
}
