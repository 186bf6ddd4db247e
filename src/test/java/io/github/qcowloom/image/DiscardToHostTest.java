package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.snapshot.Snapshots;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Clusters that a guest's discard or write-zeroes with unmap frees go back to the host once their refcount is 0,
 * as qemu-io's do (QEMU's pass-discard-request): the image file shrinks on the host as QEMU's does and stays clean.
 * A copy on write frees its old cluster without that, as QEMU does (QCOW2_DISCARD_NEVER).
 */
class DiscardToHostTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    static Stream<Arguments> modes() {
        return Stream.of(Arguments.of(false, "discard 0 8M"), Arguments.of(true, "discard 0 8M"),
                Arguments.of(false, "write -z -u 0 8M"), Arguments.of(true, "write -z -u 0 8M"));
    }

    @ParameterizedTest(name = "O_DIRECT {0}: {1}")
    @MethodSource("modes")
    void freedClustersLeaveTheHostFileAsQemuIosDo(boolean direct, String request) throws IOException {
        Path theirs = dir.resolve("theirs.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", theirs.toString(), "64M");
        Path ours = dir.resolve("ours.qcow2");
        Files.copy(theirs, ours);
        Qemu.io(theirs, "write -P 0x11 0 8M");
        Qemu.io(theirs, request);

        byte[] data = new byte[8 * MIB];
        Arrays.fill(data, (byte) 0x11);
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults().withDirect(direct))) {
            img.write(0, ByteBuffer.wrap(data));
            img.flush();
            assertTrue(Images.hostBytes(ours) >= 8 * MIB, "written: " + Images.hostBytes(ours));
            if (request.startsWith("discard")) {
                img.discard(0, 8 * MIB);
            } else {
                img.writeZeroes(0, 8 * MIB, true);
            }
            img.flush();
            // The pool keeps a few clusters allocated ahead (written as zeroes where the host preallocates).
            assertTrue(Images.hostBytes(ours) < 2 * MIB, "after the flush: " + Images.hostBytes(ours));
            ByteBuffer back = ByteBuffer.allocate(8 * MIB);
            img.read(0, back);
            assertArrayEquals(new byte[8 * MIB], back.array());
        }
        long qemuBytes = Images.hostBytes(theirs);
        assertTrue(Images.hostBytes(ours) <= qemuBytes + MIB, "ours " + Images.hostBytes(ours) + ", qemu-io's " + qemuBytes);
        assertTrue(Qemu.img("compare", theirs.toString(), ours.toString()).contains("Images are identical"));
        assertClean(ours);
    }

    /**
     * In an external data file that is not raw, the clusters a discard or an unmapping write-zeroes drops leave the
     * host as qemu-io's do (QEMU's qcow2_free_any_cluster passes them to the data file; they have no refcounts).
     */
    @ParameterizedTest(name = "O_DIRECT {0}: {1}")
    @MethodSource("modes")
    void clustersDroppedFromANonRawDataFileLeaveTheHostAsQemuIosDo(boolean direct, String request)
            throws IOException {
        Path[] images = new Path[2];
        for (int i = 0; i < 2; i++) {
            Path sub = Files.createDirectory(dir.resolve(i == 0 ? "theirs" : "ours"));
            images[i] = sub.resolve("d.qcow2");
            // An absolute name: QEMU resolves a relative one against its working directory, not the image's.
            Qemu.img("create", "-q", "-f", "qcow2", "-o", "data_file=" + sub.resolve("d.data") + ",data_file_raw=off",
                    images[i].toString(), "64M");
        }
        Path theirs = images[0];
        Path ours = images[1];
        Qemu.io(theirs, "write -P 0x11 0 8M");
        Qemu.io(theirs, request);

        byte[] data = new byte[8 * MIB];
        Arrays.fill(data, (byte) 0x11);
        Path ourData = ours.resolveSibling("d.data");
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults().withDirect(direct))) {
            img.write(0, ByteBuffer.wrap(data));
            img.flush();
            assertTrue(Images.hostBytes(ourData) >= 8 * MIB, "written: " + Images.hostBytes(ourData));
            if (request.startsWith("discard")) {
                img.discard(0, 8 * MIB);
            } else {
                img.writeZeroes(0, 8 * MIB, true);
            }
            img.flush();
            ByteBuffer back = ByteBuffer.allocate(8 * MIB);
            img.read(0, back);
            assertArrayEquals(new byte[8 * MIB], back.array());
        }
        long qemuBytes = Images.hostBytes(theirs.resolveSibling("d.data"));
        assertTrue(qemuBytes < MIB, "qemu-io's data file keeps " + qemuBytes);
        assertTrue(Images.hostBytes(ourData) <= qemuBytes, "ours " + Images.hostBytes(ourData) + ", qemu-io's " + qemuBytes);
        assertTrue(Qemu.img("compare", theirs.toString(), ours.toString()).contains("Images are identical"));
        assertClean(ours);
    }

    /** Freed clusters handed out again hold what is written into them (the discard's hole comes before them). */
    @Test
    void clustersFreedAndWrittenAgainKeepTheirNewData() throws IOException {
        Path image = dir.resolve("reuse.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "64M");
        byte[] first = new byte[4 * MIB];
        Arrays.fill(first, (byte) 0x11);
        byte[] second = new byte[4 * MIB];
        Arrays.fill(second, (byte) 0x22);
        long hostOfFirst;
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(first));
            img.flush();
            hostOfFirst = img.blockStatus(0, MIB).host().offset();
            img.discard(0, 4 * MIB);
            img.flush();
            // No pool: the write is given the lowest free clusters, the ones just freed.
            img.write(16 * MIB, ByteBuffer.wrap(second));
            img.flush();
            assertEquals(hostOfFirst, img.blockStatus(16 * MIB, MIB).host().offset(), "the freed clusters reused");
        }
        String read = Qemu.io(image, "read -P 0x22 16M 4M");
        assertFalse(read.contains("Pattern verification failed"), read);
        assertClean(image);
    }

    /**
     * Deleting a snapshot frees the clusters only it held (and its L1 table), and they leave the host file as they do
     * under qemu-img snapshot -d (QEMU's pass-discard-snapshot).
     */
    @Test
    void deletingASnapshotGivesItsClustersBackAsQemuImgDoes() throws IOException {
        Path theirs = dir.resolve("theirs.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", theirs.toString(), "64M");
        Qemu.io(theirs, "write -P 0x11 0 8M");
        Qemu.img("snapshot", "-c", "s1", theirs.toString());
        Qemu.io(theirs, "write -P 0x22 0 8M");
        Path ours = dir.resolve("ours.qcow2");
        Files.copy(theirs, ours);
        long before = Images.hostBytes(ours);
        Qemu.img("snapshot", "-d", "s1", theirs.toString());
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults())) {
            Snapshots.delete(img, Snapshots.findByName(img.snapshots(), "s1").orElseThrow());
        }
        long qemuBytes = Images.hostBytes(theirs);
        assertTrue(before - qemuBytes > 7 * MIB, "qemu-img gave back " + (before - qemuBytes));
        assertTrue(Images.hostBytes(ours) <= qemuBytes + MIB, "ours " + Images.hostBytes(ours) + ", qemu-img's "
                + qemuBytes);
        assertTrue(Qemu.img("compare", theirs.toString(), ours.toString()).contains("Images are identical"));
        assertClean(ours);
    }

    /** A discard of clusters a snapshot shares leaves them in the host: their refcount drops to 1, not 0. */
    @Test
    void clustersASnapshotStillHoldsStayInTheHostFile() throws IOException {
        Path image = dir.resolve("shared.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "64M");
        Qemu.io(image, "write -P 0x33 0 8M");
        Qemu.img("snapshot", "-c", "s1", image.toString());
        long before = Images.hostBytes(image);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            img.discard(0, 8 * MIB);
            img.flush();
            img.flush();
        }
        assertTrue(Images.hostBytes(image) >= before - MIB, "before " + before + ", after " + Images.hostBytes(image));
        Path snapshot = dir.resolve("s1.raw");
        Qemu.img("convert", "-l", "snapshot.name=s1", "-O", "raw", image.toString(), snapshot.toString());
        byte[] expected = new byte[8 * MIB];
        Arrays.fill(expected, (byte) 0x33);
        assertArrayEquals(expected, Arrays.copyOf(Files.readAllBytes(snapshot), 8 * MIB));
        assertClean(image);
    }

    /**
     * Freed clusters the pool took again (zeroed and, with O_DIRECT, fallocated) and no write used go back to the host
     * when the image closes: a trim followed by a little new data does not leave the pool's run allocated.
     */
    @Test
    void freedClustersThePoolTookAndNoWriteUsedLeaveTheHostAtClose() throws IOException {
        Path image = dir.resolve("pooled.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "64M");
        byte[] data = new byte[8 * MIB];
        Arrays.fill(data, (byte) 0x44);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withDirect(true))) {
            img.write(0, ByteBuffer.wrap(data));
            img.flush();
            img.discard(0, 8 * MIB);
            img.flush();
            // The pool refills from the freed clusters now; one write takes one of them.
            img.write(32 * MIB, ByteBuffer.wrap(new byte[4096]).put(0, (byte) 1));
            img.flush();
        }
        assertTrue(Images.hostBytes(image) < 2 * MIB, "after close: " + Images.hostBytes(image));
        assertClean(image);
    }

    /** qemu-img check finds neither corruption nor leaks. */
    private static void assertClean(Path image) {
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
    }
}
