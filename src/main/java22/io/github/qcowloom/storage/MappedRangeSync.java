package io.github.qcowloom.storage;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;

/**
 * A ranged fdatasync through a FileChannel, which has none of its own: msync of a shared mapping of the range, which
 * Linux makes vfs_fsync_range over the mapped part of the file, as a ranged io_uring fsync is. The mapping is made
 * for the call and unmapped by its arena before it returns. Loaded by {@link ReopeningChannel} by name: it exists
 * only in the jar's Java 22+ layer (Java 21's mappings stay until the garbage collector finds them).
 */
final class MappedRangeSync {
    private MappedRangeSync() {
    }

    /**
     * Makes {@code [position, position + length)} of {@code channel}'s file durable. The part past the end of the
     * file is left out, since a writable mapping would extend the file to cover it; the caller keeps the file from
     * shrinking meanwhile (FileStorage's size lock).
     */
    static void force(FileChannel channel, long position, long length) throws IOException {
        long inside = Math.min(length, channel.size() - position);
        if (inside <= 0) {
            return; // nothing of the range is in the file: a truncation took what was written there
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment range;
            try {
                range = channel.map(FileChannel.MapMode.READ_WRITE, position, inside, arena);
            } catch (ClosedChannelException e) {
                throw e; // an interrupt closed it (ReopeningChannel reopens): not a file system that cannot map
            } catch (IOException e) {
                // A file system that cannot map files, or a process out of mappings: the whole file's sync orders too.
                channel.force(false);
                return;
            }
            try {
                range.force();
            } catch (UncheckedIOException e) {
                throw e.getCause(); // msync's error, as FileChannel.force would throw fdatasync's
            }
        }
    }
}
