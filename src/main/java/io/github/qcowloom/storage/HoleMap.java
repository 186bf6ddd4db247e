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
