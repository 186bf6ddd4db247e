package io.github.qcowloom.crashkit;


/** One storage operation as a {@link CrashSimStorage} recorded it, replayable onto a crash state's bytes. */
sealed interface LoggedOp {
    /** Replays the operation; {@code garbage} non-null fills space it newly extends with garbage (torn mode). */
    void apply(StateImage s, Garbage garbage);

    /** Replays a dropped operation in torn mode: its region (and any gap it extends over) gets garbage. */
    void tear(StateImage s, Garbage garbage);

    /** The file's size after the operation, applied ({@code kept}) or torn, on a file of {@code size} bytes. */
    long sizeAfter(long size, boolean kept);

    /** A write of {@code data} at {@code offset}. */
    record Write(long offset, byte[] data) implements LoggedOp {
        @Override
        public void apply(StateImage s, Garbage garbage) {
            fillGap(s, offset, garbage);
            s.write(offset, data);
        }

        @Override
        public void tear(StateImage s, Garbage garbage) {
            garbage.tear(s, offset, data.length);
        }

        @Override
        public long sizeAfter(long size, boolean kept) {
            return Math.max(size, offset + data.length);
        }
    }

    /** {@code length} zeroes at {@code offset} (write-zeroes, or a punched hole inside the file). */
    record Zero(long offset, long length) implements LoggedOp {
        @Override
        public void apply(StateImage s, Garbage garbage) {
            fillGap(s, offset, garbage);
            s.zero(offset, length);
        }

        @Override
        public void tear(StateImage s, Garbage garbage) {
            garbage.tear(s, offset, length);
        }

        @Override
        public long sizeAfter(long size, boolean kept) {
            return Math.max(size, offset + length);
        }
    }

    /** A truncation or extension to {@code length}. */
    record SetLength(long length) implements LoggedOp {
        @Override
        public void apply(StateImage s, Garbage garbage) {
            fillGap(s, length, garbage);
            s.setLength(length);
        }

        @Override
        public void tear(StateImage s, Garbage garbage) {
            // A dropped size change leaves the old size.
        }

        @Override
        public long sizeAfter(long size, boolean kept) {
            return kept ? length : size;
        }
    }

    /** A completed flush of either kind: it orders writes and changes no byte. */
    sealed interface Ordering extends LoggedOp {
        @Override
        default void apply(StateImage s, Garbage garbage) {
        }

        @Override
        default void tear(StateImage s, Garbage garbage) {
        }

        @Override
        default long sizeAfter(long size, boolean kept) {
            return size;
        }
    }

    /** A completed flush: it closes an epoch. */
    record Flush() implements Ordering {
    }

    /**
     * A completed ranged flush ({@link io.github.qcowloom.storage.Storage#flushRange}): the writes before it that lie
     * wholly inside its range survive any later crash; it closes no epoch. A write reaching past the range stays
     * free to be lost (the disk keeps only the range's pages): the model errs towards more crash states.
     */
    record RangeFlush(long offset, long length) implements Ordering {
        /** True if {@code op} writes only bytes inside this range. */
        boolean covers(LoggedOp op) {
            return switch (op) {
                case Write w -> inside(w.offset(), w.data().length);
                case Zero z -> inside(z.offset(), z.length());
                case SetLength s -> false;
                case Ordering o -> false;
            };
        }

        private boolean inside(long start, long bytes) {
            return start >= offset && start + bytes <= offset + length;
        }
    }

    private static void fillGap(StateImage s, long end, Garbage garbage) {
        if (garbage != null) {
            garbage.fillGap(s, end);
        }
    }
}
