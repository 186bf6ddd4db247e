package io.github.qcowloom.image;

import static io.github.qcowloom.image.ImagePoker.l2EntryOffset;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.BlockStatus.Allocation;
import io.github.qcowloom.api.BlockStatus.HostFile;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.storage.CountingStorage;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The block status query itself (CliMapTest compares it with qemu-img map on many images): what it answers at a
 * few known places, that it reads metadata only, and that bad entries and requests fail as QEMU's do.
 */
class BlockStatusTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private Path qcow2(String name, String... options) {
        Path img = dir.resolve(name);
        List<String> args = new java.util.ArrayList<>(List.of("create", "-q", "-f", "qcow2"));
        args.addAll(List.of(options));
        args.addAll(List.of(img.toString(), "4M"));
        Qemu.img(args.toArray(String[]::new));
        return img;
    }

    /**
     * Past the end of a shorter backing file no layer holds the range, but QEMU counts its zeroes as that file's
     * (bdrv_is_allocated_above, qemu-nbd's qemu:allocation-depth): {@link Allocation#PAST_BACKING_END}, answered by
     * the layer above it, whose allocation depth is the short file's; a range no layer holds has depth 0.
     */
    @Test
    void zeroesPastAShortBackingFileAreThatFilesInAllocationDepth() throws IOException {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "1M");
        Qemu.io(base, "write -P 1 0 64k");
        Path mid = dir.resolve("mid.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", mid.toString(), "2M");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", mid.toString(), "-F", "qcow2", top.toString(), "3M");
        Qemu.io(top, "write -z 2M 64k");
        try (Qcow2Image q = Qcow2Image.open(top, OpenOptions.readOnlyDefaults())) {
            BlockStatus data = q.blockStatus(0, 1 << 20);
            assertEquals(List.of(Allocation.DATA, 2, 3), List.of(data.allocation(), data.depth(),
                    data.allocationDepth()));
            BlockStatus none = q.blockStatus(64 << 10, 1 << 20);
            assertEquals(List.of(Allocation.UNALLOCATED, 2, 0, (1 << 20) - (64 << 10)), List.of(none.allocation(),
                    none.depth(), none.allocationDepth(), (int) none.length()));
            BlockStatus pastBase = q.blockStatus(1 << 20, 1 << 20);
            assertEquals(List.of(Allocation.PAST_BACKING_END, 1, 3), List.of(pastBase.allocation(),
                    pastBase.depth(), pastBase.allocationDepth()));
            assertTrue(!pastBase.present() && pastBase.zero() && !pastBase.data(), pastBase.toString());
            BlockStatus zero = q.blockStatus(2 << 20, 64 << 10);
            assertEquals(List.of(Allocation.ZERO, 0, 1), List.of(zero.allocation(), zero.depth(),
                    zero.allocationDepth()));
            BlockStatus pastMid = q.blockStatus((2 << 20) + (64 << 10), (1 << 20) - (64 << 10));
            assertEquals(List.of(Allocation.PAST_BACKING_END, 0, 2), List.of(pastMid.allocation(), pastMid.depth(),
                    pastMid.allocationDepth()));
        }
    }

    /**
     * Preallocated with metadata alone, open for writing: the host file's holes under data clusters are
     * {@link Allocation#UNWRITTEN}, and a write of ours turns the bytes it wrote into data at once.
     */
    @Test
    void unwrittenDataClustersOfAMetadataPreallocatedImage() throws IOException {
        Path img = qcow2("p.qcow2", "-o", "preallocation=metadata");
        Qemu.io(img, "write -P 1 1M 64k");
        try (Qcow2Image q = Qcow2Image.open(img, OpenOptions.readWriteDefaults())) {
            BlockStatus hole = q.blockStatus(0, q.size());
            assertEquals(Allocation.UNWRITTEN, hole.allocation());
            assertEquals(1 << 20, hole.length(), "up to the cluster written");
            assertTrue(hole.data() && hole.zero() && hole.present() && hole.host() != null, hole.toString());
            assertEquals(new BlockStatus(65536, 0, Allocation.DATA, new BlockStatus.Host(HostFile.IMAGE,
                    hole.host().offset() + (1 << 20))), q.blockStatus(1 << 20, q.size() - (1 << 20)));
            q.write(2 << 20, java.nio.ByteBuffer.wrap(new byte[] {7}));
            assertEquals(Allocation.DATA, q.blockStatus(2 << 20, 65536).allocation());
            BlockStatus after = q.blockStatus((2 << 20) + 4096, 65536);
            assertEquals(Allocation.UNWRITTEN, after.allocation(), "the rest of the cluster is still a hole");
            java.nio.ByteBuffer read = java.nio.ByteBuffer.allocate(8192);
            q.read((2 << 20) + 4096, read);
            assertTrue(java.util.Arrays.equals(new byte[8192], read.array()), "a hole reads as zeroes");
        }
    }

    @Test
    void answersForEachKindOfRunAndReadsNoData() throws IOException {
        Path img = qcow2("kinds.qcow2");
        Qemu.io(img, "write -P 1 0 1M", "write -z 1M 64k", "write -P 2 2M 64k", "write -z 2M 64k");
        CountingStorage counting = new CountingStorage(FileStorage.open(img, true, false));
        try (Qcow2Image q = Qcow2Image.open(counting, null, OpenOptions.readOnlyDefaults())) {
            CountingStorage.Counts opened = counting.counts();
            BlockStatus data = q.blockStatus(4096, q.size() - 4096);
            assertEquals(Allocation.DATA, data.allocation());
            assertEquals((1 << 20) - 4096, data.length(), "one run over contiguous host clusters");
            assertEquals(HostFile.IMAGE, data.host().file());
            assertEquals(4096, data.host().offset() % 65536);
            BlockStatus zero = q.blockStatus(1 << 20, 1 << 20);
            assertEquals(new BlockStatus(65536, 0, Allocation.ZERO, null), zero);
            BlockStatus preallocatedZero = q.blockStatus(2 << 20, 1 << 20);
            assertEquals(Allocation.ZERO, preallocatedZero.allocation());
            assertTrue(preallocatedZero.host() != null, "write -z keeps the cluster: " + preallocatedZero);
            assertEquals(new BlockStatus(100, 0, Allocation.UNALLOCATED, null), q.blockStatus(3 << 20, 100));
            CountingStorage.Counts queries = counting.counts().minus(opened);
            assertTrue(queries.bytesRead() <= 4096, "one L2 slice, no data: " + queries);
        }
    }

    @Test
    void backingFileAnswersOneLayerDownAndNotOpeningItIsAnError() throws IOException {
        Path base = qcow2("base.qcow2");
        Qemu.io(base, "write -P 1 0 64k");
        Path top = qcow2("top.qcow2", "-b", base.toString(), "-F", "qcow2");
        try (Qcow2Image q = Qcow2Image.open(top, OpenOptions.readOnlyDefaults())) {
            BlockStatus s = q.blockStatus(0, q.size());
            assertEquals(1, s.depth());
            assertEquals(Allocation.DATA, s.allocation());
            assertEquals(65536, s.length());
            BlockStatus rest = q.blockStatus(65536, q.size() - 65536);
            assertEquals(new BlockStatus(q.size() - 65536, 1, Allocation.UNALLOCATED, null), rest);
        }
        OpenOptions alone = OpenOptions.readOnlyDefaults().withFollowReferences(false);
        try (Qcow2Image q = Qcow2Image.open(top, alone)) {
            assertThrows(UnsupportedFeatureException.class, () -> q.blockStatus(0, 4096));
        }
    }

    @Test
    void requestsOutsideTheDiskOrEmptyAreRefused() throws IOException {
        Path img = qcow2("range.qcow2");
        Path raw = dir.resolve("r.raw");
        Files.write(raw, new byte[8192]);
        try (Qcow2Image q = Qcow2Image.open(img, OpenOptions.readOnlyDefaults());
                RawImage r = new RawImage(FileStorage.open(raw, true, false))) {
            assertThrows(OutOfRangeException.class, () -> q.blockStatus(q.size(), 1));
            assertThrows(OutOfRangeException.class, () -> q.blockStatus(0, 0));
            assertThrows(OutOfRangeException.class, () -> q.blockStatus(-1, 10));
            assertThrows(OutOfRangeException.class, () -> r.blockStatus(4096, 8192));
            assertThrows(OutOfRangeException.class, () -> r.blockStatus(0, 0));
            BlockStatus s = r.blockStatus(512, 1024);
            assertEquals(new BlockStatus(1024, 0, Allocation.DATA, new BlockStatus.Host(HostFile.IMAGE, 512)), s);
        }
    }

    /**
     * An invalid subcluster bitmap (allocated and zero at once) fails the query whether it is the first entry or
     * one met while counting a run, as QEMU's count_contiguous_subclusters does (qemu-img map exits 1 on both).
     */
    @Test
    void invalidSubclusterBitmapFailsTheQueryAsInQemu() throws IOException {
        Path img = qcow2("bad.qcow2", "-o", "extended_l2=on");
        Qemu.io(img, "write -P 1 0 128k");
        putLong(img, l2EntryOffset(img, 1) + 8, 0xffffffff00000001L);
        for (long start : new long[] {0, 65536}) {
            try (Qcow2Image q = Qcow2Image.open(img, OpenOptions.readOnlyDefaults())) {
                MetadataCorruptionException e = assertThrows(MetadataCorruptionException.class,
                        () -> q.blockStatus(start, q.size() - start));
                assertTrue(e.getMessage().contains("Invalid cluster entry found"), e.getMessage());
            }
            Qemu.Result theirs = Qemu.exec(List.of("qemu-img", "map", "--start-offset", Long.toString(start),
                    img.toString()));
            assertNotEquals(0, theirs.exitCode());
            assertTrue(theirs.stderr().contains("Invalid cluster entry found"), theirs.stderr());
        }
    }

    /**
     * An entry that fails qcow2_get_host_offset's checks (here a misaligned offset) but is met while counting a run
     * only ends the run, as in QEMU's count_contiguous_subclusters: the query that starts at it fails, with QEMU's
     * message. qemu-io's map likewise lists the first cluster, then fails.
     */
    @Test
    void aMisalignedEntryEndsTheRunBeforeIt() throws IOException {
        Path img = qcow2("misaligned.qcow2");
        Qemu.io(img, "write -P 1 0 128k");
        long entryAt = l2EntryOffset(img, 1);
        putLong(img, entryAt, ImagePoker.getLong(img, entryAt) + 512);
        try (Qcow2Image q = Qcow2Image.open(img, OpenOptions.readOnlyDefaults())) {
            BlockStatus first = q.blockStatus(0, q.size());
            assertEquals(Allocation.DATA, first.allocation());
            assertEquals(65536, first.length());
            MetadataCorruptionException e = assertThrows(MetadataCorruptionException.class,
                    () -> q.blockStatus(65536, q.size() - 65536));
            assertTrue(theirs(img).stderr().contains(e.getMessage()), e.getMessage());
        }
        Qemu.Result theirs = theirs(img);
        assertNotEquals(0, theirs.exitCode());
        assertTrue(theirs.stdout().matches("(?s)64 KiB \\(0x10000\\) bytes +allocated at offset 0 bytes.*"),
                theirs.stdout());
    }

    private static Qemu.Result theirs(Path img) {
        return Qemu.exec(List.of("qemu-io", "-r", "-c", "map", img.toString()));
    }
}
