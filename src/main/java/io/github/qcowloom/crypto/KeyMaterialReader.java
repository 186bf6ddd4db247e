package io.github.qcowloom.crypto;

import java.io.IOException;

/**
 * Reads a LUKS header area, wherever it lives: at the start of a raw LUKS file, or in the clusters a qcow2
 * image's crypto header extension points at.
 */
@FunctionalInterface
public interface KeyMaterialReader {
    /** Fills {@code dst} from {@code offsetInHeader} bytes past the start of the header; all of it or throws. */
    void read(long offsetInHeader, byte[] dst) throws IOException;
}
