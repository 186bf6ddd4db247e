package io.github.qcowloom.alloc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.RefcountOverflowException;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** RefcountTable on real image files, its refblocks and reftables checked by qemu-img check. */
class RefcountTableTest {
    @TempDir
    Path dir;

    private static TableCache cacheFor(Storage storage, Header h) {
        return new TableCache(storage, (int) Math.min(4096, h.clusterSize()), 1024);
    }

    @ParameterizedTest(name = "cluster {0}, refcount bits {1}")
    @CsvSource({"512,1", "512,2", "512,8", "512,16", "512,64", "4096,1", "4096,2", "4096,8", "4096,16", "4096,64",
            "65536,1", "65536,2", "65536,8", "65536,16", "65536,64"})
    void allocationsPassQemuImgCheck(int clusterSize, int refcountBits) throws IOException {
        Qemu.assume();
        Path image = dir.resolve("a.qcow2");
        TestImages.create(image, 1L << 30, clusterSize, refcountBits);
        long leaks;
        int growths = 0;
        try (Storage storage = FileStorage.open(image, false, false)) {
            Header h = TestImages.header(storage);
            TableCache cache = cacheFor(storage, h);
            RefcountTable rt = new RefcountTable(storage, h, cache);
            long perBlock = h.clusterSize() * 8 / refcountBits;
            long coverage = h.clusterSize() / 8 * perBlock;
            // 512-byte clusters: past 2.5 times the first table's coverage (several growths); otherwise a few
            // refblocks' worth; capped to keep the test fast.
            long count = Math.min(300_000, clusterSize == 512 ? coverage * 5 / 2 : 2 * perBlock + 100);
            long end = 0;
            long allocated = 0;
            long tableOffset = rt.tableOffset();
            int i = 0;
            while (allocated < count) {
                int n = 1 + (i++ % 5);
                long off = rt.allocate(n).bytes();
                assertEquals(0, off % h.clusterSize());
                assertTrue(off > 0);
                end = Math.max(end, off + n * h.clusterSize());
                allocated += n;
                if (rt.tableOffset() != tableOffset) {
                    growths++;
                    tableOffset = rt.tableOffset();
                }
            }
            // A cluster the caller counts by itself, in a range no refblock covers yet.
            long far = (end / h.clusterSize() / perBlock + 2) * perBlock + 7;
            assertEquals(0, rt.get(new HostCluster(far)));
            rt.update(new HostCluster(far), 1);
            assertEquals(1, rt.get(new HostCluster(far)));
            allocated++;
            end = Math.max(end, (far + 1) * h.clusterSize());
            leaks = allocated;
            cache.writeBack(cache.copyDirty());
            storage.flush();
            storage.setLength(Math.max(storage.size(), end));
            storage.flush();
            if (clusterSize == 512 && refcountBits >= 16) {
                assertTrue(growths >= 2, "reftable growths: " + growths);
            }
            assertEquals(rt.tableOffset(), Bytes.getLong(readBytes(storage, 48, 8), 0));
        }
        Qemu.Result r = Qemu.exec(List.of("qemu-img", "check", "--output=json", image.toString()));
        String json = r.stdout();
        assertEquals(3, r.exitCode(), "leaks only expected: " + json + r.stderr());
        assertFalse(json.contains("\"corruptions\"") && field(json, "corruptions") != 0, json);
        assertEquals(0, field(json, "check-errors"), json);
        assertEquals(leaks, field(json, "leaks"), json);
    }

    private static long field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\":\\s*(\\d+)").matcher(json);
        assertTrue(m.find(), name + " in " + json);
        return Long.parseLong(m.group(1));
    }

    private static byte[] readBytes(Storage s, long off, int len) throws IOException {
        byte[] b = new byte[len];
        s.readFully(ByteBuffer.wrap(b), off);
        return b;
    }

    @Test
    void underflowAndOverflow() throws IOException {
        Path image = dir.resolve("o.qcow2");
        TestImages.create(image, 1L << 20, 65536, 1);
        try (Storage storage = FileStorage.open(image, false, false)) {
            Header h = TestImages.header(storage);
            RefcountTable rt = new RefcountTable(storage, h, cacheFor(storage, h));
            long c = rt.allocate(1).bytes() / h.clusterSize();
            assertEquals(1, rt.get(new HostCluster(c)));
            RefcountOverflowException e = assertThrows(RefcountOverflowException.class, () -> rt.update(new HostCluster(c), 1));
            assertEquals(c, e.cluster());
            assertEquals(1, e.refcountBits());
            assertEquals(1, rt.get(new HostCluster(c)));
            rt.update(new HostCluster(c), -1);
            assertEquals(0, rt.get(new HostCluster(c)));
            assertThrows(CorruptImageException.class, () -> rt.update(new HostCluster(c), -1));
            assertEquals(c, rt.allocate(1).bytes() / h.clusterSize(), "freed cluster is found again");
        }
        Path wide = dir.resolve("w.qcow2");
        TestImages.create(wide, 1L << 20, 65536, 64);
        try (Storage storage = FileStorage.open(wide, false, false)) {
            Header h = TestImages.header(storage);
            RefcountTable rt = new RefcountTable(storage, h, cacheFor(storage, h));
            long c = rt.allocate(1).bytes() / h.clusterSize();
            rt.update(new HostCluster(c), Long.MAX_VALUE - 1);
            assertEquals(Long.MAX_VALUE, rt.get(new HostCluster(c)));
            rt.update(new HostCluster(c), Long.MAX_VALUE);
            assertEquals(-2L, rt.get(new HostCluster(c)), "2^64 - 2, unsigned");
            rt.update(new HostCluster(c), 1);
            assertEquals(-1L, rt.get(new HostCluster(c)));
            assertThrows(RefcountOverflowException.class, () -> rt.update(new HostCluster(c), 1));
            assertThrows(CorruptImageException.class, () -> rt.update(new HostCluster(c + 1), -1));
        }
    }

    @Test
    void reftableLimitAndMisalignedEntry() throws IOException {
        Path image = dir.resolve("l.qcow2");
        TestImages.create(image, 1L << 20, 512, 64);
        try (Storage storage = FileStorage.open(image, false, false)) {
            Header h = TestImages.header(storage);
            RefcountTable rt = new RefcountTable(storage, h, cacheFor(storage, h));
            // 8 MiB of entries, 64 refcounts per 512-byte block: 2^26 clusters at most.
            assertThrows(ImageTooLargeException.class, () -> rt.update(new HostCluster(1L << 27), 1));
            assertEquals(0, rt.get(new HostCluster(1L << 40)));
        }
        Path big = dir.resolve("m.qcow2");
        TestImages.create(big, 1L << 20, 65536, 16);
        try (Storage storage = FileStorage.open(big, false, false)) {
            Header h = TestImages.header(storage);
            // A reftable entry whose refblock offset is not cluster-aligned (above the reserved bits 0x1ff).
            byte[] bad = new byte[8];
            Bytes.putLong(bad, 0, 0x100000 + 0x400);
            storage.write(ByteBuffer.wrap(bad), h.refcountTableOffset() + 8);
            RefcountTable broken = new RefcountTable(storage, h, cacheFor(storage, h));
            assertThrows(CorruptImageException.class, () -> broken.get(new HostCluster(32768)));
            assertThrows(CorruptImageException.class, () -> broken.update(new HostCluster(32768), 1));
            assertEquals(1, broken.get(new HostCluster(0)));
        }
    }

    /**
     * A decrement of a cluster no refblock counts (a corrupt pointer far past the end, 1 TiB here) is refused as the
     * underflow it is, before anything is allocated: it made a refblock to count it, and so a file of 1 TiB.
     */
    @Test
    void aDecrementWhereNoRefblockCountsAllocatesNothing() throws IOException {
        Path image = dir.resolve("d.qcow2");
        TestImages.create(image, 1L << 30, 65536, 16);
        long size = Files.size(image);
        try (Storage storage = FileStorage.open(image, false, false)) {
            Header h = TestImages.header(storage);
            RefcountTable rt = new RefcountTable(storage, h, cacheFor(storage, h));
            assertThrows(CorruptImageException.class, () -> rt.update(new HostCluster((1L << 40) >>> 16), -1));
            assertEquals(size, storage.size());
        }
        assertEquals(size, Files.size(image));
    }
}
