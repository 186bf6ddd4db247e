package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.testing.ZeroRangeHere;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The file contract through io_uring, with O_DIRECT. */
class UringDirectFileStorageTest extends FileStorageContract {
    @Override
    protected boolean direct() {
        return true;
    }

    @Override
    protected StorageBackend backend() {
        return StorageBackend.IO_URING;
    }

    /**
     * Through io_uring the alignment is the kernel's for the file (statx), as QEMU probes its own: where that is
     * smaller than the file system's block (512 on a disk of 512-byte sectors), a sector's write reads nothing first,
     * and a write of part of a sector is a read-modify-write of that sector alone.
     */
    @Test
    void sectorWritesNeedNoReadModifyWrite() throws IOException {
        Path file = dir.resolve("sectors");
        byte[] data = pattern(65536, 14);
        Files.write(file, data);
        AtomicInteger reads = new AtomicInteger();
        try (FileStorage s = FileStorage.openWrapped(file, true, inner -> new ForwardingFileIo(inner) {
            @Override
            public int read(ByteBuffer dst, long position) throws IOException {
                reads.incrementAndGet();
                return super.read(dst, position);
            }
        })) {
            assumeTrue(s.backend() == StorageBackend.IO_URING, "io_uring runs here");
            boolean sectorsRead = ZeroRangeHere.readsDirectSectors(file);
            int fileSystemBlock = (int) Files.getFileStore(file).getBlockSize();
            assumeTrue(sectorsRead && fileSystemBlock > 512,
                    "O_DIRECT takes no 512-byte sector here, or the file system's blocks are as small");
            assumeTrue(DirectIoAlignment.of(file, fileSystemBlock, true) == 512,
                    "the kernel does not tell its O_DIRECT alignment (statx, Linux 6.1 on)");
            assertEquals(512, s.alignment());
            ByteBuffer sector = ByteBuffer.allocateDirect(2 * s.alignment()).alignedSlice(s.alignment())
                    .limit(s.alignment());
            Arrays.fill(data, 5 * s.alignment(), 6 * s.alignment(), (byte) 0x77);
            while (sector.hasRemaining()) {
                sector.put((byte) 0x77);
            }
            s.write(sector.flip(), 5L * s.alignment());
            assertEquals(0, reads.get(), "an aligned sector is written as it is");
            s.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), 9L * s.alignment() + 10);
            assertEquals(1, reads.get(), "part of a sector: that sector read");
            data[9 * s.alignment() + 10] = 1;
            data[9 * s.alignment() + 11] = 2;
            data[9 * s.alignment() + 12] = 3;
            assertArrayEquals(data, readAll(s));
        }
    }
}
