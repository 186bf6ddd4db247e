package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The repair of a dirty image on read-write open fixes COPIED flags as QEMU's does (qcow2_do_open runs
 * qcow2_check with BDRV_FIX_ERRORS, and check_oflag_copied then sets each flag from the refcount): after our open
 * and after QEMU's, qemu-img check finds nothing, the active tables are the same, and a write to a cluster a
 * snapshot shares no longer lands in place.
 */
class DirtyCopiedRepairTest {
    private static final int CLUSTER = 4096;

    @TempDir
    Path dir;

    /**
     * A dirty image whose active tree has three wrong flags: COPIED set on a data cluster a snapshot shares
     * (refcount 2: a write in place would change the snapshot), cleared on a data cluster and on an L2 table that
     * the active image owns alone (refcount 1).
     */
    private Path dirtyImageWithWrongFlags() throws Exception {
        Path image = dir.resolve("d.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=" + CLUSTER, image.toString(), "1M");
        Qemu.io(image, "write -P 0x11 0 12k");
        Qemu.img("snapshot", "-c", "s", image.toString());
        // Copies the shared L2 table and cluster 0; clusters 1 and 2 stay shared with the snapshot.
        Qemu.io(image, "write -P 0x22 0 4k");
        long l1Entry = ImagePoker.getLong(image, ImagePoker.header(image).l1TableOffset());
        long l2 = L1Entry.l2Offset(l1Entry);
        long own = ImagePoker.getLong(image, l2);
        long shared = ImagePoker.getLong(image, l2 + 8);
        assertTrue(L2Entry.copied(own) && !L2Entry.copied(shared) && L1Entry.copied(l1Entry));
        ImagePoker.putLong(image, l2, own & ~L2Entry.COPIED);
        ImagePoker.putLong(image, l2 + 8, shared | L2Entry.COPIED);
        ImagePoker.putLong(image, ImagePoker.header(image).l1TableOffset(), l1Entry & ~L1Entry.COPIED);
        ImagePoker.putLong(image, HeaderField.INCOMPATIBLE_FEATURES, Features.INCOMPAT_DIRTY);
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(3, check.stderr().lines().filter(l -> l.startsWith("ERROR OFLAG_COPIED")).count(),
                check.stderr());
        return image;
    }

    @Test
    void aReadWriteOpenOfADirtyImageFixesCopiedFlagsAsQemuDoes() throws Exception {
        Qemu.assume();
        Path ours = dirtyImageWithWrongFlags();
        Path theirs = dir.resolve("q.qcow2");
        Files.copy(ours, theirs);

        Qemu.io(theirs, "read 0 512"); // QEMU's read-write open repairs
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults().withPool(false))) {
            assertFalse(img.header().dirty());
        }
        for (Path p : List.of(ours, theirs)) {
            String check = Qemu.img("check", "--output=json", p.toString());
            assertFalse(check.contains("\"corruptions\"") || check.contains("\"leaks\""), p + ": " + check);
        }
        long l1Offset = ImagePoker.header(ours).l1TableOffset();
        assertEquals(ImagePoker.getLong(theirs, l1Offset), ImagePoker.getLong(ours, l1Offset), "L1 entry");
        long l2 = L1Entry.l2Offset(ImagePoker.getLong(ours, l1Offset));
        assertArrayEquals(ImagePoker.read(theirs, l2, CLUSTER), ImagePoker.read(ours, l2, CLUSTER), "L2 table");

        // The shared cluster copies on write again: the snapshot keeps its data.
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(CLUSTER, ByteBuffer.wrap(new byte[CLUSTER]));
        }
        Path raw = dir.resolve("s.raw");
        Qemu.img("convert", "-l", "snapshot.name=s", "-O", "raw", ours.toString(), raw.toString());
        byte[] snapshot = Files.readAllBytes(raw);
        for (int i = 0; i < 3 * CLUSTER; i++) {
            assertEquals(0x11, snapshot[i], "snapshot byte " + i);
        }
        String check = Qemu.img("check", "--output=json", ours.toString());
        assertFalse(check.contains("\"corruptions\"") || check.contains("\"leaks\""), check);
    }
}
