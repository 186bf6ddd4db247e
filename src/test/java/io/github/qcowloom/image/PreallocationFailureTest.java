package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A resize with falloc or full preallocation on a host without room for the growth fails before it changes the
 * image, as qemu-img's does (its truncate takes the space before it places a cluster): the old size, the data, no
 * leaked cluster, no entry placed, the file as long as before.
 */
class PreallocationFailureTest {
    private static final long MIB = 1L << 20;

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(value = Preallocation.class, names = {"FALLOC", "FULL"})
    void aGrowthTheHostHasNoRoomForLeavesTheImageAsItWas(Preallocation mode) throws IOException {
        Path file = dir.resolve("f.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(MIB));
        MemoryStorage memory = new MemoryStorage(Files.readAllBytes(file));
        // Room for a few MiB more: the driver's own small zeroes fit, a growth of 64 MiB does not.
        Storage nearlyFull = new ForwardingStorage(memory) {
            @Override
            public void reserve(long position, long length) throws IOException {
                refuseBeyond(position + length);
                super.reserve(position, length);
            }

            @Override
            public void writeZeroes(long position, long length) throws IOException {
                refuseBeyond(position + length);
                super.writeZeroes(position, length);
            }

            private void refuseBeyond(long end) throws IOException {
                if (end > 8 * MIB) {
                    throw new IOException("No space left on device");
                }
            }
        };
        byte[] data = new byte[65536];
        Arrays.fill(data, (byte) 0x5c);
        long lengthBefore;
        try (Qcow2Image img = Qcow2Image.open(nearlyFull, null, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(data));
            img.flush();
            lengthBefore = memory.size();
            IOException e = assertThrows(IOException.class, () -> img.resize(64 * MIB, mode));
            assertTrue(e.getMessage().contains("No space left"), e.getMessage());
            assertEquals(MIB, img.size());
            assertEquals(lengthBefore, memory.size(), "the file cut back");
        }
        CheckResult check = ImageChecker.check(new MemoryStorage(memory.snapshot()), "f.qcow2");
        assertEquals(0, check.corruptions() + check.leaks() + check.checkErrors(), check.messages().toString());
        try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(memory.snapshot()), null,
                OpenOptions.readOnlyDefaults())) {
            assertEquals(MIB, img.size());
            byte[] back = new byte[data.length];
            img.read(0, ByteBuffer.wrap(back));
            assertEquals(-1, Arrays.mismatch(data, back));
            assertEquals(1, img.header().l1Size(), "no table placed past the old size");
        }
    }
}
