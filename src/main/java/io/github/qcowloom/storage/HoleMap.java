package io.github.qcowloom.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where a host file has data and holes (lseek SEEK_DATA/SEEK_HOLE, in the jar's Java 22+ layer), so that a raw
 * image's block status can report holes as zeroes, as QEMU's file-posix does, and convert need not read them. On
 * Java 21, or for what is not a regular file, there is none and everything counts as data.
 */
public interface HoleMap extends Closeable {
    /** The first data byte at or after {@code offset}, or -1 if none follows. */
    long nextData(long offset) throws IOException;

    /** The first hole byte at or after {@code offset} (the end of the file is one), or -1 past the end. */
    long nextHole(long offset) throws IOException;

    /**
     * Where {@code offset} lies, and how far that lasts within {@code length} bytes (at least 1): QEMU's
     * file-posix block status. Past the end of the file, and in a hole that reaches it, all of {@code length} is
     * hole; a data extent that reaches the end of the file stops there.
     */
    default Run run(long offset, long length) throws IOException {
        long data = nextData(offset);
        if (data < 0 || data > offset) {
            return new Run(true, data < 0 ? length : Math.min(length, data - offset));
        }
        long hole = nextHole(offset);
        return new Run(false, hole > offset ? Math.min(length, hole - offset) : length);
    }

    /** A run of a file's bytes that are all holes (reading as zeroes) or all data. */
    record Run(boolean hole, long length) {
    }

    @Override
    void close();

    /** The map of {@code path}, or null where it cannot be had (Java 21, not a regular file, no native access). */
    static HoleMap open(Path path) {
        if (SeekHoleSupport.OPEN.handle() == null || !Files.isRegularFile(path)) {
            return null;
        }
        try {
            return (HoleMap) SeekHoleSupport.OPEN.handle().invokeExact(path);
        } catch (Throwable e) {
            return null; // everything reads as data, as before: slower, never wrong
        }
    }
}
