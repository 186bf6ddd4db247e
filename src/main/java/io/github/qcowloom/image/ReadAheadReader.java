package io.github.qcowloom.image;

import io.github.qcowloom.format.RangeReader;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A {@link RangeReader} over a file that reads {@link #WINDOW} bytes at a time and serves the small reads that
 * follow from them: a snapshot table is read entry by entry, three reads each, and a table of 65536 entries would
 * otherwise cost 200 000 calls into the storage. Bytes past the end of the file read as zeros. Not thread-safe:
 * one reader per table read.
 */
final class ReadAheadReader implements RangeReader {
    static final int WINDOW = 64 << 10;

    private final Storage storage;
    private final byte[] window = new byte[WINDOW];
    /** File offset of window[0]; the window holds nothing until the first read. */
    private long windowStart = -1;

    ReadAheadReader(Storage storage) {
        this.storage = storage;
    }

    @Override
    public byte[] read(long offset, int length) throws IOException {
        if (length > WINDOW) {
            return ImageMetadata.readBytes(storage, offset, length);
        }
        if (windowStart < 0 || offset < windowStart || offset - windowStart > WINDOW - length) {
            storage.readFully(ByteBuffer.wrap(window), offset);
            windowStart = offset;
        }
        byte[] out = new byte[length];
        System.arraycopy(window, (int) (offset - windowStart), out, 0, length);
        return out;
    }
}
