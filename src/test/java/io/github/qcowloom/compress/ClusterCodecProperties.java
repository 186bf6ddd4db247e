package io.github.qcowloom.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** Properties both codecs share: round trips, QEMU's trailing bytes, and typed failure on bad input. */
class ClusterCodecProperties {
    /** Far above the slowest legitimate call: exceeding it means a hang. */
    private static final Duration HANG = Duration.ofSeconds(10);

    @Provide
    Arbitrary<ClusterCodec> codecs() {
        return Arbitraries.of(ZlibCodec.INSTANCE, ZstdCodec.INSTANCE);
    }

    @Provide
    Arbitrary<BufferKind> writable() {
        return Arbitraries.of(BufferKind.class).filter(BufferKind::writable);
    }

    /** Cluster sizes 512 B .. 2 MiB, as qcow2 allows. */
    private static byte[] cluster(long seed, int clusterBits, boolean compressible) {
        Random random = new Random(seed);
        int size = 1 << clusterBits;
        return compressible ? ClusterData.compressible(random, size) : ClusterData.random(random, size);
    }

    @Property(tries = 60)
    void roundTrip(
            @ForAll("codecs") ClusterCodec codec,
            @ForAll @IntRange(min = 9, max = 21) int clusterBits,
            @ForAll long seed,
            @ForAll BufferKind srcKind,
            @ForAll("writable") BufferKind dstKind)
            throws CorruptImageException {
        byte[] data = cluster(seed, clusterBits, true);
        ByteBuffer src = srcKind.wrap(data);
        byte[] packed = codec.compress(src);
        assertNotNull(packed, "compressible data must shrink");
        assertTrue(packed.length < data.length);
        assertEquals(data.length, src.remaining(), "compress leaves src's position alone");

        ByteBuffer in = srcKind.wrap(packed);
        ByteBuffer dst = dstKind.allocate(data.length);
        int start = dst.position();
        codec.decompress(in, dst);
        assertEquals(dst.limit(), dst.position(), "dst is filled to its limit");
        assertArrayEquals(data, BufferKind.remaining(dst.position(start)));
        assertEquals(packed.length, in.remaining(), "decompress leaves src's position alone");
        assertTrue(BufferKind.guardsIntact(in) && BufferKind.guardsIntact(dst));
    }

    @Property(tries = 20)
    void incompressibleGivesNull(
            @ForAll("codecs") ClusterCodec codec,
            @ForAll @IntRange(min = 9, max = 21) int clusterBits,
            @ForAll long seed,
            @ForAll BufferKind srcKind) {
        assertNull(codec.compress(srcKind.wrap(cluster(seed, clusterBits, false))));
    }

    /** qcow2 records the compressed size to the sector, and the next cluster's bytes may follow at once. */
    @Property(tries = 40)
    void trailingBytesAreIgnored(
            @ForAll("codecs") ClusterCodec codec,
            @ForAll @IntRange(min = 9, max = 17) int clusterBits,
            @ForAll long seed,
            @ForAll @IntRange(min = 0, max = 3) int tailKind,
            @ForAll BufferKind srcKind)
            throws CorruptImageException {
        byte[] data = cluster(seed, clusterBits, true);
        byte[] packed = codec.compress(ByteBuffer.wrap(data));
        Random random = new Random(~seed);
        byte[] tail = switch (tailKind) {
            case 0 -> new byte[511 - (packed.length + 511) % 512]; // zero padding to the sector
            case 1 -> codec.compress(ByteBuffer.wrap(cluster(seed + 1, clusterBits, true))); // next cluster
            case 2 -> ClusterData.random(random, 1 + random.nextInt(4096));
            default -> packed.clone(); // the same stream again
        };
        byte[] input = Arrays.copyOf(packed, packed.length + tail.length);
        System.arraycopy(tail, 0, input, packed.length, tail.length);

        ByteBuffer dst = ByteBuffer.allocate(data.length);
        codec.decompress(srcKind.wrap(input), dst);
        assertArrayEquals(data, dst.array());
    }

    /** A cut stream never passes for data: it fails, or (zlib) still holds every byte of the cluster. */
    @Property(tries = 60)
    void truncatedFailsOrIsComplete(
            @ForAll("codecs") ClusterCodec codec,
            @ForAll @IntRange(min = 9, max = 17) int clusterBits,
            @ForAll long seed,
            @ForAll @IntRange(min = 1, max = 1 << 16) int cut,
            @ForAll BufferKind srcKind) {
        byte[] data = cluster(seed, clusterBits, true);
        byte[] packed = codec.compress(ByteBuffer.wrap(data));
        int kept = Math.max(0, packed.length - cut);
        ByteBuffer dst = ByteBuffer.allocate(data.length);
        try {
            codec.decompress(srcKind.wrap(Arrays.copyOf(packed, kept)), dst);
        } catch (CorruptImageException e) {
            return;
        }
        // Success is possible only for zlib, when just the end-of-block code and padding were cut (at most
        // 15 + 7 bits, so fewer than 3 bytes), as QEMU accepts a full output buffer before the stream end.
        assertTrue(codec instanceof ZlibCodec && packed.length - kept < 3, "cut " + (packed.length - kept));
        assertArrayEquals(data, dst.array());
    }

    @Property(tries = 300)
    void garbageFailsTyped(
            @ForAll("codecs") ClusterCodec codec,
            @ForAll @IntRange(min = 9, max = 16) int clusterBits,
            @ForAll long seed,
            @ForAll @IntRange(min = 0, max = 8192) int length,
            @ForAll BufferKind srcKind) {
        byte[] garbage = ClusterData.random(new Random(seed), length);
        decodesOrFailsTyped(codec, srcKind.wrap(garbage), 1 << clusterBits);
    }

    /** Damaged valid streams reach deeper decoder states than noise does, such as lying frame headers. */
    @Property(tries = 200)
    void damagedStreamFailsTyped(
            @ForAll("codecs") ClusterCodec codec,
            @ForAll @IntRange(min = 9, max = 16) int clusterBits,
            @ForAll long seed,
            @ForAll @IntRange(min = 1, max = 8) int flips) {
        Random random = new Random(seed);
        byte[] packed = codec.compress(ByteBuffer.wrap(cluster(seed, clusterBits, true)));
        for (int i = 0; i < flips; i++) {
            // Bias damage to the stream's head, where block and frame headers live.
            int at = random.nextBoolean() ? random.nextInt(Math.min(16, packed.length)) : random.nextInt(packed.length);
            packed[at] ^= (byte) (1 + random.nextInt(255));
        }
        decodesOrFailsTyped(codec, ByteBuffer.wrap(packed), 1 << clusterBits);
    }

    /** Decoding ends in time either filling the cluster or with CorruptImageException, never anything else. */
    private static void decodesOrFailsTyped(ClusterCodec codec, ByteBuffer src, int clusterSize) {
        ByteBuffer dst = ByteBuffer.allocate(clusterSize);
        assertTimeoutPreemptively(HANG, () -> {
            try {
                codec.decompress(src, dst);
                assertEquals(clusterSize, dst.position());
            } catch (CorruptImageException e) {
                assertNotNull(e.getMessage());
            }
        });
    }

    @Property(tries = 50)
    void zstdGarbageAlwaysFails(@ForAll long seed, @ForAll @IntRange(min = 0, max = 4096) int length) {
        byte[] garbage = ClusterData.random(new Random(seed), length);
        // No frame magic (0xFD2FB528, or 0x184D2A5? for skippable frames): nothing to decode.
        if (length >= 4) {
            garbage[3] = 0;
        }
        assertThrows(
                CorruptImageException.class,
                () -> ZstdCodec.INSTANCE.decompress(ByteBuffer.wrap(garbage), ByteBuffer.allocate(4096)));
    }
}
