package io.github.qcowloom.alloc;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/** Helpers for the alloc tests: fresh images made as qemu-img makes them, and their parsed headers. */
final class TestImages {
    private TestImages() {
    }

    static void create(Path path, long size, int clusterSize, int refcountBits) throws IOException {
        ImageCreator.create(path, CreateOptions.defaults(size).withClusterSize(clusterSize)
                .withRefcountBits(refcountBits));
    }

    /** Parses the header as Qcow2Image.readHeader does. */
    static Header header(Storage storage) throws IOException {
        long length = storage.size();
        byte[] first = read(storage, 0, (int) Math.min(length, Limits.V3_HEADER_LENGTH));
        int clusterBits = Header.peekClusterBits(first);
        return Header.parse(read(storage, 0, (int) Math.min(length, 1L << clusterBits)), length);
    }

    private static byte[] read(Storage storage, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        storage.readFully(ByteBuffer.wrap(b), offset);
        return b;
    }
}
