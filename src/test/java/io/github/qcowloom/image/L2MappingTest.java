package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.alloc.HostOffset;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.SubclusterType;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;
import org.junit.jupiter.api.Test;

/** What {@link ClusterMapper#lookup} decodes an L2 entry into, and the checks it makes before any path uses one. */
class L2MappingTest {
    private static final int CLUSTER_BITS = 16;
    private static final long L2_OFFSET = 1L << CLUSTER_BITS;
    private static final long HOST = 5L << CLUSTER_BITS;
    private static final GuestCluster CLUSTER = new GuestCluster(3);

    /** The mapping of guest cluster 3 when its entry holds {@code words}. */
    private static L2Mapping lookup(ImageGeometry g, L2Words words) throws IOException {
        MemoryStorage file = new MemoryStorage();
        file.setLength(2 * L2_OFFSET);
        TableCache cache = new TableCache(file, 4096, 4);
        ClusterMapper mapper = new ClusterMapper(g, cache, new long[] {L1Entry.of(L2_OFFSET, true)});
        mapper.setWords(cache.get(mapper.sliceOffset(L2_OFFSET, CLUSTER.index())), CLUSTER.index(), words);
        return mapper.lookup(CLUSTER);
    }

    private static ImageGeometry standard(int version, boolean dataFile) {
        return new ImageGeometry(CLUSTER_BITS, CLUSTER_BITS - 3, 8, false, dataFile, version);
    }

    private static ImageGeometry extended() {
        return new ImageGeometry(CLUSTER_BITS, CLUSTER_BITS - 4, 16, true, false, 3);
    }

    @Test
    void standardEntriesDecodeIntoTheirMappings() throws IOException {
        ImageGeometry g = standard(3, false);
        assertInstanceOf(L2Mapping.Unallocated.class, lookup(g, new L2Words(0, 0)));
        assertEquals(new L2Mapping.Zero(L2_OFFSET, new L2Words(L2Entry.ZERO, 0), null),
                lookup(g, new L2Words(L2Entry.ZERO, 0)));
        long preallocated = L2Entry.withZeroFlag(HOST);
        assertEquals(new HostOffset(HOST), ((L2Mapping.Zero) lookup(g, new L2Words(preallocated, 0))).preallocated());
        L2Mapping.Data owned = (L2Mapping.Data) lookup(g, new L2Words(L2Entry.owned(HOST), 0));
        assertEquals(new HostOffset(HOST), owned.cluster());
        assertTrue(owned.copied() && owned.writableInPlace(0, 1));
        L2Mapping.Data shared = (L2Mapping.Data) lookup(g, new L2Words(HOST, 0));
        assertFalse(shared.copied() || shared.writableInPlace(0, 1));
        long descriptor = CompressedDescriptor.encode(HOST + 1024, 3000, CLUSTER_BITS);
        L2Mapping.Compressed compressed = (L2Mapping.Compressed) lookup(g, new L2Words(descriptor, 0));
        assertEquals(new HostOffset(HOST + 1024), compressed.at());
        assertEquals(CompressedDescriptor.decode(descriptor, CLUSTER_BITS).length(), compressed.length());
        assertEquals(SubclusterType.COMPRESSED, compressed.subcluster(0));
    }

    @Test
    void hostOffsetsAreCheckedBeforeAnyPathSeesThem() {
        MetadataCorruptionException unaligned = assertThrows(MetadataCorruptionException.class,
                () -> lookup(standard(3, false), new L2Words(L2Entry.owned(HOST + 512), 0)));
        assertEquals("Cluster allocation offset 0x50200 unaligned (L2 offset: 0x10000, L2 index: 0x3)", unaligned.getMessage());
        assertThrows(MetadataCorruptionException.class,
                () -> lookup(standard(3, false), new L2Words(L2Entry.withZeroFlag(HOST + 512), 0)),
                "a preallocated zero cluster's offset is checked too");
        MetadataCorruptionException v2 = assertThrows(MetadataCorruptionException.class,
                () -> lookup(standard(2, false), new L2Words(L2Entry.ZERO, 0)));
        assertEquals("Zero cluster entry found in pre-v3 image (L2 offset: 0x10000, L2 index: 0x3)", v2.getMessage());
        MetadataCorruptionException elsewhere = assertThrows(MetadataCorruptionException.class,
                () -> lookup(standard(3, true), new L2Words(L2Entry.owned(HOST), 0)));
        assertTrue(elsewhere.getMessage().startsWith("External data file host cluster offset 0x50000"),
                elsewhere.getMessage());
    }

    @Test
    void aDataFileClusterAtItsGuestOffsetIsData() throws IOException {
        long atGuest = CLUSTER.offset(CLUSTER_BITS);
        L2Mapping m = lookup(standard(3, true), new L2Words(L2Entry.owned(atGuest), 0));
        assertEquals(new HostOffset(atGuest), ((L2Mapping.Data) m).cluster());
    }

    @Test
    void extendedEntriesGiveEachSubclusterItsType() throws IOException {
        long bitmap = L2Entry.allocRange(0, 2) | L2Entry.zeroRange(2, 3);
        L2Mapping.Data data = (L2Mapping.Data) lookup(extended(), new L2Words(L2Entry.owned(HOST), bitmap));
        assertEquals(SubclusterType.NORMAL, data.subcluster(1));
        assertEquals(SubclusterType.ZERO_ALLOC, data.subcluster(2));
        assertEquals(SubclusterType.UNALLOCATED_ALLOC, data.subcluster(3));
        assertTrue(data.writableInPlace(0, 2));
        assertFalse(data.writableInPlace(1, 3), "subcluster 2 reads as zeroes: it must be filled, not written over");
        L2Mapping hole = lookup(extended(), new L2Words(0, L2Entry.zeroRange(4, 5)));
        assertEquals(SubclusterType.ZERO_PLAIN, hole.subcluster(4));
        assertEquals(SubclusterType.UNALLOCATED_PLAIN, hole.subcluster(5));
    }

    @Test
    void anExtendedEntrysBitZeroIsReservedNotAZeroFlag() throws IOException {
        // QEMU reads zeroes from the bitmap alone in an extended entry, and writes such a cluster in place.
        long entry = L2Entry.withZeroFlag(L2Entry.owned(HOST));
        L2Mapping m = lookup(extended(), new L2Words(entry, L2Entry.allocRange(0, 32)));
        L2Mapping.Data data = assertInstanceOf(L2Mapping.Data.class, m);
        assertEquals(new HostOffset(HOST), data.cluster());
        assertEquals(SubclusterType.NORMAL, data.subcluster(0));
        assertTrue(data.writableInPlace(0, 32));
    }

    @Test
    void contradictoryBitmapsAreInvalidForEveryPathToReportInItsWords() throws IOException {
        L2Mapping allocatedWithoutCluster = lookup(extended(), new L2Words(0, L2Entry.allocRange(0, 1)));
        assertInstanceOf(L2Mapping.Invalid.class, allocatedWithoutCluster);
        L2Mapping allocatedAndZero = lookup(extended(),
                new L2Words(L2Entry.owned(HOST + 512), L2Entry.allocRange(0, 1) | L2Entry.zeroRange(0, 1)));
        assertInstanceOf(L2Mapping.Invalid.class, allocatedAndZero, "invalid before its offset is checked, as QEMU");
        assertEquals(SubclusterType.INVALID, allocatedAndZero.subcluster(7));
    }
}
