package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Invariant g for a growing resize over a range that does not read as zeroes by itself: the old data of a partial
 * last cluster that a shrink left past the end, or a backing file longer than the disk. The new size may reach the
 * disk only once what makes that range read as zeroes is durable (QEMU's qcow2_co_truncate also zeroes the new
 * range before it writes the size), so no crash state shows the grown disk with stale data or the backing file's.
 */
class GrowCrashTest {
    private static final int CS = 65536;
    private static final long MIB = 1L << 20;

    @TempDir
    Path dir;

    /** Opens each crash state past {@code fromFlushes} and checks that, at {@code grownSize}, the range reads zero. */
    private static void checkStates(CrashSimStorage sim, Path imageDir, long fromFlushes, Set<Long> sizes,
            long grownSize, long exposedFrom) throws IOException {
        List<String> failed = new ArrayList<>();
        int grown = 0;
        for (CrashState s : (Iterable<CrashState>) sim.crashStates(CrashOptions.defaults())::iterator) {
            if (s.durableFlushes() < fromFlushes) {
                continue;
            }
            try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(s.image()), imageDir,
                    OpenOptions.readWriteDefaults().withPool(false))) {
                assertTrue(sizes.contains(img.size()), s + ": size " + img.size());
                if (img.size() != grownSize) {
                    continue;
                }
                grown++;
                byte[] exposed = new byte[(int) (grownSize - exposedFrom)];
                img.read(exposedFrom, ByteBuffer.wrap(exposed));
                if (!Arrays.equals(new byte[exposed.length], exposed)) {
                    failed.add(s.description());
                }
            }
        }
        assertTrue(grown > 0, "no crash state has the grown size");
        assertEquals(List.of(), failed, "crash states with the grown size whose new range is not zero");
    }

    @Test
    void staleDataOfAPartialClusterPastTheOldEndNeverShows() throws IOException {
        Path file = dir.resolve("stale.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(MIB).withClusterSize(CS));
        CrashSimStorage sim = new CrashSimStorage(Files.readAllBytes(file));
        long shrunk = MIB - CS / 2;
        long mark;
        try (Qcow2Image img = Qcow2Image.open(sim, null, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] data = new byte[CS];
            Arrays.fill(data, (byte) 0x55);
            img.write(MIB - CS, ByteBuffer.wrap(data)); // the last cluster, whole
            img.flush();
            // Its second half lies past the new end but stays in the cluster, which still holds the first half.
            img.resize(shrunk);
            img.flush();
            mark = sim.flushCount();
            img.resize(MIB);
        }
        checkStates(sim, null, mark, Set.of(shrunk, MIB), MIB, shrunk);
    }

    /** A 1 MiB overlay, its bytes, over a 2 MiB backing file full of 0x66. */
    private byte[] overlayOverALongerBase() throws IOException {
        Path base = dir.resolve("base.qcow2");
        ImageCreator.create(base, CreateOptions.defaults(2 * MIB).withClusterSize(CS));
        try (Qcow2Image img = Qcow2Image.open(base, OpenOptions.readWriteDefaults())) {
            byte[] data = new byte[(int) (2 * MIB)];
            Arrays.fill(data, (byte) 0x66);
            img.write(0, ByteBuffer.wrap(data));
        }
        Path overlay = dir.resolve("overlay.qcow2");
        ImageCreator.create(overlay, CreateOptions.defaults(MIB).withClusterSize(CS)
                .withBacking("base.qcow2", "qcow2"));
        return Files.readAllBytes(overlay);
    }

    @Test
    void aLongerBackingFileNeverShowsInTheGrownRange() throws IOException {
        CrashSimStorage sim = new CrashSimStorage(overlayOverALongerBase());
        long mark;
        try (Qcow2Image img = Qcow2Image.open(sim, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(new byte[] {1}));
            img.flush();
            mark = sim.flushCount();
            img.resize(2 * MIB);
        }
        checkStates(sim, dir, mark, Set.of(MIB, 2 * MIB), 2 * MIB, MIB);
    }

    /**
     * The same over many L2 tables (512-byte clusters: one table maps 32 KiB), so that the resize writes the tables
     * it zeroes back as it goes: no crash state shows the grown disk with the backing file's bytes.
     */
    @Test
    void aLongerBackingFileNeverShowsWhileTheZeroedTablesAreWrittenBack() throws IOException {
        Path base = dir.resolve("base.qcow2");
        ImageCreator.create(base, CreateOptions.defaults(MIB).withClusterSize(512));
        try (Qcow2Image img = Qcow2Image.open(base, OpenOptions.readWriteDefaults())) {
            byte[] data = new byte[(int) MIB];
            Arrays.fill(data, (byte) 0x66);
            img.write(0, ByteBuffer.wrap(data));
        }
        Path overlay = dir.resolve("overlay.qcow2");
        ImageCreator.create(overlay, CreateOptions.defaults(64 << 10).withClusterSize(512)
                .withBacking("base.qcow2", "qcow2"));
        CrashSimStorage sim = new CrashSimStorage(Files.readAllBytes(overlay));
        long mark;
        try (Qcow2Image img = Qcow2Image.open(sim, dir, OpenOptions.readWriteDefaults().withPool(false)
                .withL2CacheBytes(512))) {
            img.write(0, ByteBuffer.wrap(new byte[] {1}));
            img.flush();
            mark = sim.flushCount();
            img.resize(MIB);
            assertTrue(sim.flushCount() > mark + 2, "the zeroed tables were written back on the way");
        }
        checkStates(sim, dir, mark, Set.of(64L << 10, MIB), MIB, 64 << 10);
    }

    /**
     * A growth with preallocation over clusters a shrink freed, which still hold old data in the file: the clusters
     * it places for the new range may be those, and no crash state shows the grown disk with their old bytes, nor
     * with the backing file's, in any mode.
     */
    @ParameterizedTest
    @EnumSource(value = Preallocation.class, names = {"METADATA", "FALLOC", "FULL"})
    void aPreallocatingGrowthShowsNeitherFreedDataNorTheBackingFile(Preallocation mode) throws IOException {
        CrashSimStorage sim = new CrashSimStorage(overlayOverALongerBase());
        // A host that cannot punch holes: a freed cluster keeps its bytes until it is written again.
        Storage noHoles = new ForwardingStorage(sim) {
            @Override
            public boolean discard(long position, long length) {
                return false;
            }
        };
        long shrunk = MIB - 3 * CS - CS / 2;
        long mark;
        try (Qcow2Image img = Qcow2Image.open(noHoles, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] data = new byte[4 * CS];
            Arrays.fill(data, (byte) 0x55);
            img.write(MIB - 4 * CS, ByteBuffer.wrap(data));
            img.flush();
            img.discard(MIB - 3 * CS, 3 * CS); // three clusters freed, still holding 0x55 in the file
            img.flush();
            img.resize(shrunk);
            img.flush();
            mark = sim.flushCount();
            img.resize(MIB, mode);
        }
        checkStates(sim, dir, mark, Set.of(shrunk, MIB), MIB, shrunk);
    }
}
