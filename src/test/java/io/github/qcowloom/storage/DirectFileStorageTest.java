package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class DirectFileStorageTest extends FileStorageContract {
    @Override
    protected boolean direct() {
        return true;
    }

    @Test
    void alignmentIsTheFileSystemBlockSize() throws IOException {
        Path file = dir.resolve("aligned");
        try (FileStorage s = FileStorage.create(file, true)) {
            assertEquals(Files.getFileStore(file).getBlockSize(), s.alignment());
        }
    }

    @Test
    void unalignedTailWritesLeaveTheHostFileExactlyAsLong() throws IOException {
        Path file = dir.resolve("tail");
        try (FileStorage s = FileStorage.create(file, true)) {
            s.write(ByteBuffer.wrap(pattern(5_000, 1)), 0);
            assertEquals(5_000, Files.size(file));
            s.write(ByteBuffer.wrap(pattern(10, 2)), 4_200);
            assertEquals(5_000, Files.size(file));
            s.write(ByteBuffer.wrap(pattern(10, 3)), 4_995);
            assertEquals(5_005, Files.size(file));
            s.write(ByteBuffer.wrap(pattern(10, 4)), 9_000);
            assertEquals(9_010, Files.size(file));
            assertEquals(9_010, s.size());
        }
    }
}
