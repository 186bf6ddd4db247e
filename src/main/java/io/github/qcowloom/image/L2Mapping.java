package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostOffset;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.SubclusterType;

/**
 * What an L2 entry maps one guest cluster to, decoded once by {@link ClusterMapper#lookup} after QEMU's checks of
 * qcow2_get_host_offset (host offsets aligned, no zero flag before v3, a data file's clusters at their guest offset),
 * so that request paths switch over it instead of decoding bits in each branch; {@link L2Entry} keeps the encoding.
 * Each keeps the words it was decoded from (what a writer compares before replacing them) and the offset of its L2
 * table, 0 when the L1 entry is empty (for messages, and for writers, which allocate the table first).
 */
sealed interface L2Mapping {
    long l2Offset();

    L2Words words();

    /** The type of subcluster {@code sc} (0..31); with standard L2, where a cluster is its only subcluster, sc 0. */
    SubclusterType subcluster(int sc);

    /** No host cluster: the backing file or zeroes; with extended L2, subclusters whose zero bit is set are zeroes. */
    record Unallocated(long l2Offset, L2Words words) implements L2Mapping {
        @Override
        public SubclusterType subcluster(int sc) {
            return L2Entry.withoutClusterType(words.bitmap(), sc);
        }
    }

    /** Standard L2's zero flag: reads as zeroes; {@code preallocated} is the host cluster kept for it, or null. */
    record Zero(long l2Offset, L2Words words, HostOffset preallocated) implements L2Mapping {
        @Override
        public SubclusterType subcluster(int sc) {
            return preallocated == null ? SubclusterType.ZERO_PLAIN : SubclusterType.ZERO_ALLOC;
        }
    }

    /**
     * A host cluster at {@code cluster}; {@code copied}: this image owns it alone and may write it in place. With
     * extended L2 ({@code extended}), each subcluster is allocated, reads as zeroes, or is unallocated, by the bitmap.
     */
    record Data(long l2Offset, L2Words words, HostOffset cluster, boolean copied, boolean extended)
            implements L2Mapping {
        @Override
        public SubclusterType subcluster(int sc) {
            return extended ? L2Entry.withClusterType(words.bitmap(), sc) : SubclusterType.NORMAL;
        }

        /** Owned alone and, with extended L2, every subcluster of {@code [from, to)} allocated: written in place. */
        boolean writableInPlace(int fromSubcluster, int toSubcluster) {
            return copied && (!extended || (~words.bitmap() & L2Entry.allocRange(fromSubcluster, toSubcluster)) == 0);
        }
    }

    /** A compressed cluster: {@code length} bytes at {@code at} (sector-rounded, as the descriptor gives them). */
    record Compressed(long l2Offset, L2Words words, HostOffset at, int length) implements L2Mapping {
        @Override
        public SubclusterType subcluster(int sc) {
            return SubclusterType.COMPRESSED;
        }
    }

    /**
     * Extended L2: a bitmap the entry contradicts (allocated subclusters without a cluster, or a subcluster both
     * allocated and zero); QEMU calls every subcluster invalid. Reads report it with the entry's words, the other
     * paths with {@link #found}.
     */
    record Invalid(long l2Offset, L2Words words) implements L2Mapping {
        @Override
        public SubclusterType subcluster(int sc) {
            return SubclusterType.INVALID;
        }
    }

    /** QEMU's message for an invalid entry met outside a read: "Invalid cluster entry found". */
    static MetadataCorruptionException found(L2Mapping invalid, long l2Index) {
        return new MetadataCorruptionException(String.format(
                "Invalid cluster entry found (L2 offset: %#x, L2 index: %#x)", invalid.l2Offset(), l2Index));
    }
}
