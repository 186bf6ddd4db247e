package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.api.DetectZeroes;
import io.github.qcowloom.api.DiscardPolicy;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.storage.AllocatedBytes;
import io.github.qcowloom.testing.ZeroRangeHere;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The image's side of QEMU's discard and detect-zeroes ({@link DiscardPolicy}): an ignored discard changes nothing,
 * not even a dirty bitmap; a zero write where discards are ignored keeps its clusters; zeroes detected over a
 * backing file read as zeroes (zero clusters, never the backing file's data), and the policy reaches raw images.
 */
class DiscardPolicyTest {
    private static final int C = 65536;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** A 1 MiB image whose clusters all hold 0x5a, with an empty persistent bitmap. */
    private Path image() {
        Path img = dir.resolve("a.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "1M");
        Qemu.io(img, "write -P 0x5a 0 1M");
        Qemu.img("bitmap", "--add", img.toString(), "b");
        return img;
    }

    private static OpenOptions options(DiscardPolicy policy) {
        return OpenOptions.readWriteDefaults().withDiscards(policy);
    }

    @Test
    void anIgnoredDiscardChangesNothingAndMarksNoBitmap() throws Exception {
        Path img = image();
        try (Qcow2Image image = Qcow2Image.open(img, options(DiscardPolicy.IGNORE))) {
            image.discard(0, 4 * C);
            DirtyBits bits = image.dirtyBits("b");
            assertEquals(bits.count(), bits.nextSet(0, bits.count()), "an ignored discard set a bit");
            image.writeZeroes(4 * C, 2 * C, true);
            assertTrue(bits.nextSet(0, bits.count()) < bits.count(), "the zero write set none");
        }
        Qemu.io(img, "read -P 0x5a 0 256k", "read -P 0 256k 128k", "read -P 0x5a 384k 640k");
        String map = Qemu.img("map", "--output=json", img.toString());
        // The zero write kept its clusters: zero, not data, and still at a host offset.
        assertTrue(map.matches("(?s).*\"start\": 262144, \"length\": 131072, \"depth\": 0, \"present\": true,"
                + " \"zero\": true, \"data\": false, \"offset\": \\d+.*"), map);
        assertTrue(Qemu.img("check", img.toString()).contains("No errors were found"));
    }

    @Test
    void zeroesDetectedOverABackingFileReadAsZeroes() throws Exception {
        Path base = image();
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString());
        for (DetectZeroes mode : DetectZeroes.values()) {
            try (Qcow2Image image = Qcow2Image.open(top, options(new DiscardPolicy(true, mode)))) {
                ByteBuffer zeroes = ByteBuffer.allocate(2 * C);
                image.write(mode.ordinal() * 2L * C, zeroes);
                assertEquals(0, zeroes.remaining(), "the write took its buffer");
            }
        }
        Qemu.io(top, "read -P 0 0 384k", "read -P 0x5a 384k 640k");
        String map = Qemu.img("map", "--output=json", top.toString());
        // off: data written; on and unmap: zero clusters of the top image (unallocated would show the base).
        assertTrue(map.contains("{ \"start\": 0, \"length\": 131072, \"depth\": 0, \"present\": true, \"zero\": false,"
                + " \"data\": true"), map);
        assertTrue(map.contains("{ \"start\": 131072, \"length\": 262144, \"depth\": 0, \"present\": true, \"zero\":"
                + " true, \"data\": false"), map);
    }

    @Test
    void rawImagesTakeThePolicy() throws Exception {
        Path raw = dir.resolve("r.raw");
        Qemu.img("create", "-q", "-f", "raw", raw.toString(), "1M");
        Qemu.ioFormat("raw", raw, "write -P 0x5a 0 1M");
        try (var image = ImageFormat.open(raw, "raw", options(new DiscardPolicy(false, DetectZeroes.ON)))) {
            image.discard(0, 4 * C);
            image.write(4 * C, ByteBuffer.allocate(C));
        }
        Qemu.ioFormat("raw", raw, "read -P 0x5a 0 256k", "read -P 0 256k 64k", "read -P 0x5a 320k 704k");
        try (var image = ImageFormat.open(raw, "raw", options(DiscardPolicy.UNMAP))) {
            image.discard(0, 4 * C);
        }
        Qemu.ioFormat("raw", raw, "read -P 0 0 320k", "read -P 0x5a 320k 704k");
        assertTrue(Qemu.img("map", "--output=json", "-f", "raw", raw.toString()).contains("{ \"start\": 0, \"length\":"
                + " 262144, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false"), "the discard punched");
    }

    /**
     * A raw image's zero write is fallocate's: a hole punched where it may unmap, else ZERO_RANGE, the space kept
     * (the file's blocks stay allocated, as QEMU's file layer leaves them); so a fast one succeeds either way.
     */
    @Test
    void rawZeroWritesAreFallocated() throws Exception {
        Path raw = dir.resolve("r.raw");
        Qemu.img("create", "-q", "-f", "raw", raw.toString(), "1M");
        Qemu.ioFormat("raw", raw, "write -P 0x5a 0 1M");
        assumeTrue(ZeroRangeHere.works(dir), "no fallocate(ZERO_RANGE) here: io_uring or the file system lacks it");
        long allocated = AllocatedBytes.of(raw).orElseThrow();
        try (var image = ImageFormat.open(raw, "raw", options(DiscardPolicy.IGNORE))) {
            assertTrue(image.writeZeroesFast(0, 2 * C, true), "ZERO_RANGE, as discard=ignore keeps the space");
        }
        assertEquals(allocated, AllocatedBytes.of(raw).orElseThrow(), "the space is kept");
        try (var image = ImageFormat.open(raw, "raw", options(DiscardPolicy.UNMAP))) {
            assertTrue(image.writeZeroesFast(4 * C, 2 * C, true));
        }
        assertEquals(allocated - 2 * C, AllocatedBytes.of(raw).orElseThrow(), "a hole punched");
        Qemu.ioFormat("raw", raw, "read -P 0 0 128k", "read -P 0x5a 128k 128k", "read -P 0 256k 128k",
                "read -P 0x5a 384k 640k");
    }
}
