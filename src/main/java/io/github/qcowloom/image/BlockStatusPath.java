package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostOffset;
import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.BlockStatus.Allocation;
import io.github.qcowloom.api.BlockStatus.Host;
import io.github.qcowloom.api.BlockStatus.HostFile;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.SubclusterType;
import java.io.IOException;
import java.util.Objects;

/**
 * Block status as straight-line metadata reads: what the L2 entries (and subcluster bitmaps) say about a guest
 * range, passed down the backing chain where this image holds nothing, as QEMU's qcow2_co_block_status and
 * bdrv_co_block_status do. Reads no guest data.
 */
final class BlockStatusPath {
    private final ImageGeometry geometry;
    private final ClusterMapper mapper;
    /** The backing image, or null when there is none or it was not opened. */
    private final BlockDevice backing;
    private final boolean hasBacking;
    /** Looks into the host file under data clusters where QEMU does. */
    private final HostHoles hostHoles;
    /**
     * True for an encrypted image: the host bytes of data clusters are ciphertext, so a hole in the file says
     * nothing of zeroes (it reads as noise), and the file is not looked into.
     */
    private final boolean ciphertext;

    BlockStatusPath(ImageGeometry geometry, ClusterMapper mapper, BlockDevice backing, boolean hasBacking,
            HostHoles hostHoles, boolean ciphertext) {
        this.ciphertext = ciphertext;
        this.geometry = geometry;
        this.mapper = mapper;
        this.backing = backing;
        this.hasBacking = hasBacking;
        this.hostHoles = hostHoles;
    }

    /** A run of guest bytes of one subcluster type in this image; {@code host} is -1 where the type has none. */
    private record Run(SubclusterType type, long length, long host) {
    }

    /** The status of the range from {@code offset}; the caller has checked that it is non-empty and inside the disk. */
    BlockStatus status(long offset, long length) throws IOException {
        BlockStatus own = ownStatus(offset, length);
        return switch (own.allocation()) {
            case DATA -> ciphertext ? own : hostHoles.refine(own);
            case UNALLOCATED -> throughBacking(offset, own.length(), own.host());
            default -> own;
        };
    }

    /**
     * QEMU's is_zero (bdrv_co_is_zero_fast): true if block status, asked through the backing chain, reports every
     * byte of {@code [from, to)} as reading zeroes. (A raw backing file reports data throughout where no hole map
     * serves it.)
     */
    boolean readsAsZero(long from, long to) throws IOException {
        while (from < to) {
            BlockStatus status = status(from, to - from);
            if (!status.zero()) {
                return false;
            }
            from += status.length();
        }
        return true;
    }

    /**
     * This image's own answer for the range from {@code offset}, its backing chain not asked: where it holds nothing,
     * {@link Allocation#UNALLOCATED} for the run of that (QEMU's bdrv_is_allocated, which asks one layer). The file
     * under data clusters is not looked into. The caller has checked the range as for {@link #status}.
     */
    BlockStatus ownStatus(long offset, long length) throws IOException {
        Run run = run(offset, length);
        Host host = run.host() < 0 ? null
                : new Host(geometry.hasDataFile() ? HostFile.DATA_FILE : HostFile.IMAGE, run.host());
        return switch (run.type()) {
            case NORMAL -> new BlockStatus(run.length(), 0, Allocation.DATA, host);
            case COMPRESSED -> new BlockStatus(run.length(), 0, Allocation.COMPRESSED, null);
            case ZERO_PLAIN, ZERO_ALLOC -> new BlockStatus(run.length(), 0, Allocation.ZERO, host);
            case UNALLOCATED_PLAIN, UNALLOCATED_ALLOC -> new BlockStatus(run.length(), 0, Allocation.UNALLOCATED, host);
            case INVALID -> throw new IllegalStateException("run() lets no invalid entry through");
        };
    }

    /**
     * Where this image holds nothing, the backing file answers (one layer deeper); without one, or past its end
     * ({@link Allocation#PAST_BACKING_END}), the range reads as zeroes and this image answers, keeping the host
     * offset of a preallocated cluster.
     */
    private BlockStatus throughBacking(long offset, long length, Host host) throws IOException {
        if (!hasBacking) {
            return new BlockStatus(length, 0, Allocation.UNALLOCATED, host);
        }
        if (backing == null) {
            throw new UnsupportedFeatureException("backing file not opened",
                    "This range is decided by the backing file, which was not opened");
        }
        long backingSize = backing.size();
        if (offset >= backingSize) {
            return new BlockStatus(length, 0, Allocation.PAST_BACKING_END, host);
        }
        return backing.blockStatus(offset, Math.min(length, backingSize - offset)).fromBacking();
    }

    /**
     * The run of one type from {@code offset}, QEMU's qcow2_get_host_offset and count_contiguous_subclusters: it
     * stays inside the L2 table of its first entry, continues into following clusters only where the type fills
     * them from their start, and, for types with a host cluster, only while the host clusters are contiguous. A
     * compressed cluster is a run of its own.
     */
    private Run run(long offset, long length) throws IOException {
        int bits = geometry.clusterBits();
        GuestCluster cluster = new GuestCluster(offset >>> bits);
        long tableEnd = ((cluster.index() >>> geometry.l2Bits()) + 1) << geometry.l2Bits();
        long limit = Math.min(offset + length, tableEnd << bits);
        L2Mapping mapping = mapper.lookup(cluster);
        if (mapping.l2Offset() == 0) {
            return new Run(SubclusterType.UNALLOCATED_PLAIN, limit - offset, -1);
        }
        int inCluster = (int) (offset & (geometry.clusterSize() - 1));
        int sc = geometry.extendedL2() ? inCluster / geometry.subclusterSize() : 0;
        SubclusterType type = mapping.subcluster(sc);
        requireValid(mapping, cluster);
        if (mapping instanceof L2Mapping.Compressed) {
            if (geometry.hasDataFile()) {
                throw new CorruptImageException("Compressed cluster in an image with an external data file");
            }
            return new Run(type, Math.min(limit, cluster.next().offset(bits)) - offset, -1);
        }
        HostOffset host = keptHost(mapping);
        long end = cluster.offset(bits) + sameTypeEnd(mapping, sc, type);
        // The run reached the end of its cluster: see whether the next cluster carries it on.
        for (GuestCluster next = cluster.next(); end == next.offset(bits) && end < limit; next = next.next()) {
            L2Mapping nextMapping;
            try {
                nextMapping = mapper.lookup(next);
            } catch (MetadataCorruptionException e) {
                // QEMU's count_contiguous_subclusters makes none of qcow2_get_host_offset's checks: an entry that
                // fails them (an unaligned or misplaced offset, a zero flag before v3) cannot carry the run on, so
                // the run ends before it and the call that starts there reports it.
                break;
            }
            // QEMU fails on an invalid entry it meets while counting, not only on the first.
            requireValid(nextMapping, next);
            HostOffset expected = host == null ? null : host.plus((next.index() - cluster.index()) << bits);
            if (nextMapping.subcluster(0) != type || !Objects.equals(keptHost(nextMapping), expected)) {
                break;
            }
            end = next.offset(bits) + sameTypeEnd(nextMapping, 0, type);
        }
        return new Run(type, Math.min(end, limit) - offset, host == null ? -1 : host.bytes() + inCluster);
    }

    /** The host cluster a mapping keeps (data, or a preallocated zero cluster); null if it has none. */
    private static HostOffset keptHost(L2Mapping mapping) {
        return switch (mapping) {
            case L2Mapping.Data data -> data.cluster();
            case L2Mapping.Zero zero -> zero.preallocated();
            case L2Mapping.Unallocated unallocated -> null;
            case L2Mapping.Compressed compressed -> null;
            case L2Mapping.Invalid invalid -> null;
        };
    }

    /** Bytes from the cluster's start to the end of the run of {@code type} that includes subcluster {@code sc}. */
    private long sameTypeEnd(L2Mapping mapping, int sc, SubclusterType type) {
        if (!geometry.extendedL2()) {
            return geometry.clusterSize();
        }
        int end = sc + 1;
        while (end < 32 && mapping.subcluster(end) == type) {
            end++;
        }
        return (long) end * geometry.subclusterSize();
    }

    private void requireValid(L2Mapping mapping, GuestCluster cluster) throws MetadataCorruptionException {
        if (mapping instanceof L2Mapping.Invalid) {
            throw L2Mapping.found(mapping, geometry.l2Index(cluster));
        }
    }
}
