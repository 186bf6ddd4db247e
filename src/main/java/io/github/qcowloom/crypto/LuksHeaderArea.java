package io.github.qcowloom.crypto;

import java.io.IOException;

/**
 * A LUKS header area that can be written too: its first 592 bytes are the header, the key slots' material after
 * them, wherever it lives (in a qcow2 image, the clusters its crypto header extension names).
 */
public interface LuksHeaderArea extends KeyMaterialReader {
    /** Writes {@code src} at {@code offsetInHeader} bytes past the start of the header. */
    void write(long offsetInHeader, byte[] src) throws IOException;

    /** Makes the writes of {@code length} bytes from {@code offsetInHeader} durable. */
    void sync(long offsetInHeader, long length) throws IOException;
}
