package io.github.qcowloom.image;

import static io.github.qcowloom.image.ImagePoker.getLong;
import static io.github.qcowloom.image.ImagePoker.putByte;
import static io.github.qcowloom.image.ImagePoker.putInt;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.alloc.ClusterPool;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.check.RepairMode;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Offsets from the file with bit 63 set (negative as a Java long) and positions that overflow an int: each is
 * corruption with a diagnosis, never an IllegalArgumentException or ArrayIndexOutOfBoundsException, in the
 * check's walk, in requests and on the cluster pool's thread.
 */
class HostileOffsetTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private Path image(String... qemuIo) throws IOException {
        Path image = dir.resolve("h.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "64M");
        for (String c : qemuIo) {
            Qemu.io(image, c);
        }
        return image;
    }

    private static void setBit63InFirstReftableEntry(Path image) throws IOException {
        long reftable = ImagePoker.header(image).refcountTableOffset();
        putLong(image, reftable, getLong(image, reftable) | Long.MIN_VALUE);
    }

    @Test
    void aWriteThatAllocatesThroughABit63RefblockMarksTheImageCorrupt() throws Exception {
        Path image = image("write -P 0x5a 0 1M");
        setBit63InFirstReftableEntry(image);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            ClusterPool pool = img.clusterPool();
            MetadataCorruptionException e = assertThrows(MetadataCorruptionException.class,
                    () -> img.write(8 << 20, ByteBuffer.allocate(4096)));
            assertTrue(e.getMessage().contains("Refblock offset 0x8000000000"), e.getMessage());
            assertTrue(e.getMessage().contains("reftable index: 0x0"), e.getMessage());
            // The pool's thread, asked for a refill by that write, meets the same entry: it records the typed
            // exception (not an IllegalArgumentException with a stack trace).
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (pool.failure() == null && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertInstanceOf(MetadataCorruptionException.class, pool.failure());
            assertThrows(MetadataCorruptionException.class, () -> img.read(0, ByteBuffer.allocate(512)));
        }
        assertTrue(ImagePoker.header(image).corrupt(), "the corrupt bit was not written");
        assertThrows(CorruptImageException.class, () -> Qcow2Image.open(image, OpenOptions.readWriteDefaults()));
    }

    @Test
    void checkReportsABit63RefblockAsCheckErrorsAndRepairAllRebuilds() throws IOException {
        Path image = image("write -P 0x5a 0 1M");
        setBit63InFirstReftableEntry(image);
        CheckResult r = ImageChecker.check(image, "h.qcow2");
        assertTrue(r.checkErrors() > 0, r.messages().toString());
        assertEquals(1, r.exitCode());
        CheckResult after = ImageChecker.repair(image, "h.qcow2", RepairMode.ALL).result();
        assertEquals(0, after.exitCode(), after.messages().toString());
        assertEquals(0, Qemu.exec(java.util.List.of("qemu-img", "check", image.toString())).exitCode());
    }

    @Test
    void aSnapshotL1OffsetWithBit63IsACorruptionForCheck() throws IOException {
        Path image = image("write -P 0x5a 0 1M");
        Qemu.img("snapshot", "-c", "s1", image.toString());
        long table = ImagePoker.header(image).snapshotsOffset();
        putLong(image, table, getLong(image, table) | Long.MIN_VALUE);
        CheckResult r = ImageChecker.check(image, "h.qcow2");
        assertTrue(r.corruptions() > 0, r.messages().toString());
    }

    /** The bitmap directory: its offset in the file and the position of entry 0. */
    private static long bitmapDirectory(Path image) throws IOException {
        Header h = ImagePoker.header(image);
        byte[] ext = h.extension(HeaderExtension.BITMAPS).orElseThrow().data();
        return ByteBuffer.wrap(ext).getLong(16);
    }

    @Test
    void anExtraDataSizeThatOverflowsTheDirectoryPositionIsACorruption() throws IOException {
        Path image = image("write -P 0x5a 0 1M");
        Qemu.img("bitmap", "--add", image.toString(), "b0");
        Qemu.img("bitmap", "--add", image.toString(), "b1");
        // Entry 0's extra_data_size (u32 at +20): the next entry's position passes 2^31.
        putInt(image, bitmapDirectory(image) + 20, 0x80000000);
        CheckResult r = ImageChecker.check(image, "h.qcow2");
        assertTrue(r.corruptions() > 0, r.messages().toString());
        // Entry 0 itself runs past the directory now (its name cannot be read): its table still counts.
        assertTrue(r.messages().stream().anyMatch(m -> m.contains("bitmap directory entry 0 extends past")),
                r.messages().toString());
    }

    /** A granularity QEMU refuses (its check cannot even open the image): check says so, no "No errors". */
    @Test
    void aBitmapOutsideQemusConstraintsIsACorruption() throws IOException {
        Path image = image("write -P 0x5a 0 1M");
        Qemu.img("bitmap", "--add", image.toString(), "b0");
        CheckResult clean = ImageChecker.check(image, "h.qcow2");
        assertEquals(0, clean.corruptions(), clean.messages().toString());
        putByte(image, bitmapDirectory(image) + 17, 63); // granularity_bits
        Qemu.Result theirs = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertTrue(theirs.exitCode() != 0 && theirs.stderr().contains("doesn't satisfy the constraints"),
                theirs.stderr());
        CheckResult r = ImageChecker.check(image, "h.qcow2");
        assertTrue(r.messages().contains("ERROR bitmap 'b0' doesn't satisfy the constraints"),
                r.messages().toString());
        assertTrue(r.corruptions() > 0);
    }

    @Test
    void aBitmapTableOffsetWithBit63IsACorruption() throws IOException {
        Path image = image("write -P 0x5a 0 1M");
        Qemu.img("bitmap", "--add", image.toString(), "b0");
        long entry = bitmapDirectory(image);
        putLong(image, entry, 0x8000000000000000L);
        CheckResult r = ImageChecker.check(image, "h.qcow2");
        assertTrue(r.corruptions() > 0, r.messages().toString());
    }
}
