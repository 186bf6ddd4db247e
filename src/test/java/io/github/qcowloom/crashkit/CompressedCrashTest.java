package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.format.L2Entry;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Compressed writes packed into shared host clusters, then overwritten, discarded, zeroed and compressed again:
 * every crash state passes the crash kit's invariants (at worst leaks; no lost flushed data, no reference to a free
 * or reused cluster), with and without lazy refcounts and the pool.
 */
class CompressedCrashTest {
    static Stream<CrashDisk> disks() throws IOException {
        CreateOptions base = CreateOptions.defaults(1 << 20).withClusterSize(4096);
        return Stream.of(new CrashDisk(base, false), new CrashDisk(base.withLazyRefcounts(true), false),
                new CrashDisk(base.withCompressionType("zstd"), true));
    }

    @ParameterizedTest
    @MethodSource("disks")
    void everyCrashStatePasses(CrashDisk d) throws IOException {
        int cs = d.clusterSize;
        d.writeCompressed(0, 6 * cs);
        d.flush();
        d.write(2L * cs + 1024, 1024); // copy-on-write out of a shared compressed cluster
        d.discard(3L * cs, cs);
        d.writeZeroes(4L * cs, cs, false);
        d.flush();
        d.writeCompressed(3L * cs, cs); // into the discarded (plain zero) cluster
        d.writeCompressed(8L * cs, 2 * cs);
        d.write(0, cs);
        d.flush();
        d.discard(5L * cs, cs);
        d.writeCompressed(9L * cs + cs, cs);
        d.img.close();
        assertEquals(5, compressedEntries(d.sim.currentImage()), "clusters 1, 3, 8, 9 and 10 stay compressed");

        List<CrashCheck> failed = d.sim.crashStates(CrashOptions.defaults())
                .map(s -> CrashInvariants.check(s, d.history)).filter(c -> !c.ok()).toList();
        assertEquals(List.of(), failed, d.toString());
        assertTrue(d.sim.flushCount() > 3);
    }

    /** Compressed L2 entries in the first L2 table (the whole 1 MiB disk at 4 KiB clusters). */
    private static int compressedEntries(byte[] image) {
        ByteBuffer b = ByteBuffer.wrap(image);
        long l2 = b.getLong((int) b.getLong(40)) & L2Entry.OFFSET_MASK;
        int n = 0;
        for (int i = 0; i < 4096 / 8; i++) {
            n += (b.getLong((int) l2 + 8 * i) & L2Entry.COMPRESSED) != 0 ? 1 : 0;
        }
        return n;
    }
}
