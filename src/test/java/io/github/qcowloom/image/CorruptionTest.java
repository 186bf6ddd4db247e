package io.github.qcowloom.image;

import static io.github.qcowloom.image.ImagePoker.getLong;
import static io.github.qcowloom.image.ImagePoker.l2EntryOffset;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * QEMU iotest 060: an L2 entry that points into metadata. A write there is refused, the image is marked corrupt,
 * later requests fail, and the image opens read-only only.
 */
class CorruptionTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private static long snapshotL1(Path image) throws java.io.IOException {
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            return img.snapshots().get(0).l1TableOffset();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"l1", "reftable", "refblock", "l2", "snapshot table", "snapshot l1"})
    void writeOverMetadataMarksTheImageCorrupt(String target) throws Exception {
        Path image = dir.resolve("c.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "8M");
        Qemu.io(image, "write -P 0x11 0 64k");
        if (target.startsWith("snapshot")) {
            Qemu.img("snapshot", "-c", "s", image.toString());
        }
        var h = ImagePoker.header(image);
        long at = switch (target) {
            case "l1" -> h.l1TableOffset();
            case "reftable" -> h.refcountTableOffset();
            case "refblock" -> getLong(image, h.refcountTableOffset());
            case "l2" -> ImagePoker.l2Offset(image, 0);
            case "snapshot table" -> h.snapshotsOffset();
            case "snapshot l1" -> snapshotL1(image);
            default -> throw new IllegalArgumentException(target);
        };
        long entryAt = l2EntryOffset(image, 0);
        putLong(image, entryAt, at | L2Entry.COPIED);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            MetadataCorruptionException e = assertThrows(MetadataCorruptionException.class,
                    () -> img.write(0, ByteBuffer.allocate(512)));
            assertTrue(e.getMessage().contains("Preventing invalid write on metadata"), e.getMessage());
            // Every later request fails too.
            assertThrows(MetadataCorruptionException.class, () -> img.read(1 << 20, ByteBuffer.allocate(512)));
        }
        String info = Qemu.img("info", "--output=json", "-U", image.toString());
        assertTrue(info.contains("\"corrupt\": true"), info);
        assertThrows(CorruptImageException.class, () -> Qcow2Image.open(image, OpenOptions.readWriteDefaults()));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            img.read(1 << 20, ByteBuffer.allocate(512));
        }
        // The metadata itself is untouched: qemu-img check -r all can repair the image.
        Qemu.exec(java.util.List.of("qemu-img", "check", "-r", "all", image.toString()));
    }

    /**
     * A table that corrupt pointers place over other metadata is not written there: an L1 entry that names the
     * refcount table as its L2 table, a reftable entry that names the active L1 table as a refcount block. The
     * cached table's write-back is refused by the overlap check, as QEMU's qcow2_cache_entry_flush refuses it, the
     * flush fails and the image is marked corrupt. Before, the L2 entries went over the reftable, and refcounts over
     * the L1 table, which then mapped nothing: the disk, and writes acknowledged as flushed, read as zeroes.
     */
    @ParameterizedTest
    @ValueSource(strings = {"l2 over the reftable", "refblock over the l1 table"})
    void aTableOverOtherMetadataIsNotWrittenThere(String target) throws Exception {
        Path image = dir.resolve("t.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "4M");
        Qemu.io(image, "write -P 0xaa 0 64k");
        var h = ImagePoker.header(image);
        long victim = target.startsWith("l2") ? h.refcountTableOffset() : h.l1TableOffset();
        if (target.startsWith("l2")) {
            putLong(image, h.l1TableOffset(), victim | L1Entry.COPIED);
        } else {
            putLong(image, h.refcountTableOffset(), victim);
        }
        byte[] before = java.nio.file.Files.readAllBytes(image);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            assertThrows(MetadataCorruptionException.class, () -> {
                img.write(0, ByteBuffer.allocate(4096));
                img.write(1 << 20, ByteBuffer.allocate(4096));
                img.flush();
            });
        } catch (MetadataCorruptionException closing) {
            // close's own flush may meet it first
        }
        byte[] after = java.nio.file.Files.readAllBytes(image);
        assertTrue(java.util.Arrays.equals(before, (int) victim, (int) victim + 512, after, (int) victim,
                (int) victim + 512), target + ": the table there was written over");
        String info = Qemu.img("info", "--output=json", "-U", image.toString());
        assertTrue(info.contains("\"corrupt\": true"), info);
    }
}
