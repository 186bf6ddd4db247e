package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.storage.MemoryStorage;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The mapper's lookups of extended L2 entries against a writer that keeps changing both words. */
class ClusterMapperTest {
    private static final int CLUSTER_BITS = 16;
    private static final long L2_OFFSET = 1L << CLUSTER_BITS;

    /**
     * A writer flips one entry between "unallocated, all zeroes" and "allocated, all subclusters allocated" as
     * discard and allocation do; a lookup pairing one state's entry with the other's bitmap would be corrupt.
     * Without the mapper's guard this fails within the 300 ms in most runs (the race window is two stores wide).
     */
    @Test
    void lookupsNeverPairWordsOfTwoStates() throws Exception {
        ImageGeometry g = new ImageGeometry(CLUSTER_BITS, CLUSTER_BITS - 4, 16, true, false, 3);
        MemoryStorage file = new MemoryStorage();
        file.setLength(2 * L2_OFFSET);
        TableCache cache = new TableCache(file, 4096, 4);
        ClusterMapper mapper = new ClusterMapper(g, cache, new long[] {L1Entry.of(L2_OFFSET, true)});
        L2Words empty = new L2Words(0, L2Entry.BITMAP_ALL_ZEROES);
        L2Words full = new L2Words((5L << CLUSTER_BITS) | L2Entry.COPIED, L2Entry.BITMAP_ALLOC_MASK);
        Slice slice = cache.get(mapper.sliceOffset(L2_OFFSET, 3));
        mapper.setWords(slice, 3, empty);
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong flips = new AtomicLong();
        Thread writer = Thread.ofPlatform().start(() -> {
            while (!stop.get()) {
                mapper.setWords(slice, 3, flips.incrementAndGet() % 2 == 0 ? empty : full);
            }
        });
        long reads = 0;
        try {
            long end = System.nanoTime() + 300_000_000L;
            while (System.nanoTime() < end) {
                L2Words seen = mapper.lookup(new GuestCluster(3)).words();
                assertTrue(Set.of(empty, full).contains(seen), () -> "half-changed entry " + seen);
                reads++;
            }
        } finally {
            stop.set(true);
            writer.join();
        }
        assertTrue(flips.get() > 0 && reads > 0, "the writer and the reader both ran");
    }
}
