package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.AsyncBlockDevice;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.BatchSubmitter;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Batch submit: clusters counted and reserved in one update, writes concurrent; unused reservations given back. */
class BatchSubmitTest {
    @TempDir
    Path dir;

    @Test
    void batchesLandAndLeaveACleanImage() throws Exception {
        Qemu.assume();
        Path image = dir.resolve("b.qcow2");
        int size = 16 << 20;
        ImageCreator.create(image, CreateOptions.defaults(size).withClusterSize(4096));
        byte[] model = new byte[size];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false));
                AsyncBlockDevice async = ExecutionModel.VIRTUAL.drive(img)) {
            BatchSubmitter submitter = new BatchSubmitter(async);
            for (int round = 0; round < 20; round++) {
                List<BatchSubmitter.Write> batch = new ArrayList<>();
                for (int i = 0; i < 64; i++) {
                    // Disjoint pieces, some overwriting clusters earlier rounds allocated.
                    long off = ((long) (round * 64 + i) * 12288) % (size - 6000);
                    byte[] data = new byte[6000];
                    Arrays.fill(data, (byte) (round + 1));
                    batch.add(new BatchSubmitter.Write(off, ByteBuffer.wrap(data)));
                    System.arraycopy(data, 0, model, (int) off, data.length);
                }
                submitter.submit(batch).join();
            }
            // A reservation no write uses is returned at close.
            img.reserve(10);
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)));
        }
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"leaks\"") || check.contains("\"corruptions\""), check);
        assertFalse(Qemu.img("info", "--output=json", image.toString()).contains("\"dirty-flag\": true"));
    }

    @Test
    void writesOfWholeClustersTakeTheClustersReservedForThem() throws Exception {
        Qemu.assume();
        Path image = dir.resolve("w.qcow2");
        int size = 16 << 20;
        ImageCreator.create(image, CreateOptions.defaults(size).withClusterSize(4096));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false));
                AsyncBlockDevice async = ExecutionModel.VIRTUAL.drive(img)) {
            BatchSubmitter submitter = new BatchSubmitter(async);
            for (int round = 0; round < 10; round++) {
                List<BatchSubmitter.Write> batch = new ArrayList<>();
                for (int i = 0; i < 64; i++) {
                    // Three whole new clusters each: a run, were it not for the reservation.
                    batch.add(new BatchSubmitter.Write((long) (round * 64 + i) * 12288, ByteBuffer.allocate(12288)));
                }
                submitter.submit(batch).join();
            }
        }
        // 1920 data clusters and a few of metadata: the reserved clusters were used, not left as a gap.
        String check = Qemu.img("check", "--output=json", image.toString());
        long end = Qemu.imageEndOffset(check);
        assertTrue(end <= (1920 + 64) * 4096L, "image end offset " + end);
    }
}
