package io.github.qcowloom.format;

import java.io.IOException;

/** Supplies bytes of the image file to a parser that does not know its size in advance. */
@FunctionalInterface
public interface RangeReader {
    /** Returns exactly {@code length} bytes at {@code offset}; the caller has checked they lie in the file. */
    byte[] read(long offset, int length) throws IOException;
}
