package io.github.qcowloom.image;

import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.Snapshot;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/** Reads an image's validated cluster 0 and snapshot table from any storage: for open, check and the crash kit. */
public final class ImageMetadata {
    private ImageMetadata() {
    }

    /** Reads and validates cluster 0 (header, extensions, backing file name). */
    public static Header readHeader(Storage storage) throws IOException {
        long length = storage.size();
        byte[] first = readBytes(storage, 0, (int) Math.min(length, Limits.V3_HEADER_LENGTH));
        int clusterBits = Header.peekClusterBits(first, length);
        return Header.parse(readBytes(storage, 0, (int) Math.min(length, 1L << clusterBits)), length);
    }

    /** Reads the snapshot table the header names (validated against QEMU's limits and the file length). */
    public static List<Snapshot> readSnapshots(Storage storage, Header header) throws IOException {
        return header.nbSnapshots() == 0 ? List.of()
                : SnapshotTable.parse((off, len) -> readBytes(storage, off, len), header.snapshotsOffset(),
                        header.nbSnapshots(), storage.size());
    }

    static byte[] readBytes(Storage storage, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        storage.readFully(ByteBuffer.wrap(b), offset);
        return b;
    }
}
