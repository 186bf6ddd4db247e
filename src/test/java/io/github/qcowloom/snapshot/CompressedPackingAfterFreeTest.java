package io.github.qcowloom.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compressed clusters are packed back to back into a host cluster; when a snapshot delete or apply drops that
 * cluster's refcount to 0, the packing must stop there: the cluster can be handed out whole (for guest data, here)
 * and bytes packed into its tail would overwrite that data. Before the allocator heard of such frees only through
 * deferred frees, so a table edit left it packing into a cluster that held a normal write's data.
 */
class CompressedPackingAfterFreeTest {
    private static final int CS = 65536;
    private static final int CLUSTERS = 32;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** A cluster of {@code tag} bytes and a counter: compresses to a few hundred bytes, unlike any other cluster. */
    private static byte[] cluster(int tag) {
        byte[] b = new byte[CS];
        for (int i = 0; i < CS; i++) {
            b[i] = (byte) (i % 64 == 0 ? i >>> 6 : tag);
        }
        return b;
    }

    private static void write(Qcow2Image img, byte[] model, int guestCluster, int tag) throws IOException {
        byte[] data = cluster(tag);
        img.write((long) guestCluster * CS, ByteBuffer.wrap(data));
        System.arraycopy(data, 0, model, guestCluster * CS, CS);
    }

    private static void writeCompressed(Qcow2Image img, byte[] model, int guestCluster, int tag) throws IOException {
        byte[] data = cluster(tag);
        img.writeCompressed((long) guestCluster * CS, ByteBuffer.wrap(data));
        System.arraycopy(data, 0, model, guestCluster * CS, CS);
    }

    /**
     * Normal writes into enough clusters that the freed one is reused for guest data, then compressed writes that
     * must not pack into it; the disk reads back as written.
     */
    private static void reuseThenCompress(Qcow2Image img, byte[] model) throws IOException {
        for (int c = 8; c < 16; c++) {
            write(img, model, c, 0x40 + c);
        }
        for (int c = 16; c < 20; c++) {
            writeCompressed(img, model, c, 0x60 + c);
        }
        img.flush();
        long diff = Images.firstDifference(model, Images.readAll(img, CS));
        assertEquals(-1, diff, "the disk differs from what was written at guest offset " + diff);
    }

    /** After close: qemu-img check finds nothing, and a fresh open reads what was written. */
    private static void checkClosed(Path image, byte[] model) throws IOException {
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
        try (Qcow2Image again = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertEquals(-1, Images.firstDifference(model, Images.readAll(again, CS)));
        }
    }

    @Test
    void snapshotDeleteThatFreesThePackedClusterStopsThePacking() throws IOException {
        Path image = dir.resolve("delete.qcow2");
        ImageCreator.create(image, CreateOptions.defaults((long) CLUSTERS * CS));
        byte[] model = new byte[CLUSTERS * CS];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            // One compressed cluster: the packing continues in its host cluster's tail.
            writeCompressed(img, model, 0, 0x11);
            Snapshot s = Snapshots.create(img, "s");
            // The active image lets go of the packed cluster (after the flush the snapshot alone holds it)...
            write(img, model, 0, 0x22);
            img.flush();
            // ...and the delete drops its refcount to 0 through a table edit.
            Snapshots.delete(img, s);
            reuseThenCompress(img, model);
        }
        checkClosed(image, model);
    }

    @Test
    void snapshotApplyThatFreesThePackedClusterStopsThePacking() throws IOException {
        Path image = dir.resolve("apply.qcow2");
        ImageCreator.create(image, CreateOptions.defaults((long) CLUSTERS * CS));
        byte[] model = new byte[CLUSTERS * CS];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            write(img, model, 2, 0x33);
            Snapshot s = Snapshots.create(img, "s");
            byte[] atSnapshot = model.clone();
            // Only the active image holds the packed cluster; the apply drops it with the old active tree.
            writeCompressed(img, model, 0, 0x11);
            Snapshots.apply(img, s);
            System.arraycopy(atSnapshot, 0, model, 0, model.length);
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, CS)));
            reuseThenCompress(img, model);
        }
        checkClosed(image, model);
    }
}
