package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.testing.Qemu;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Real QEMU as the front end, without a guest OS: qemu-system-x86_64 (TCG) attaches the export as
 * vhost-user-blk-pci with memfd guest RAM, as the README says, and its BIOS (SeaBIOS, which drives virtio-blk
 * itself) loads the image's boot sector through our rings. That sector (test resource bootsector.S) writes itself
 * to sector 1, reads it back, compares, and prints the outcome on the serial port. Afterwards qemu-img finds the
 * qcow2 image clean and sector 1 written. Takes about a second; the guest-OS tests are another suite's.
 */
class VhostUserQemuBiosTest {
    private static final Path QEMU = Path.of("/usr/bin/qemu-system-x86_64");
    private static final String OK = "qcow2-loom vhost-user-blk: sector written and read back";

    @TempDir
    Path dir;

    static void assumeQemuSystem() {
        Qemu.assume();
        boolean present = Files.isExecutable(QEMU);
        if (!present && Boolean.getBoolean("qcowloom.requireQemu")) {
            fail("qemu-system-x86_64 is required (qcowloom.requireQemu) but not installed");
        }
        Assumptions.assumeTrue(present, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)");
        Assumptions.assumeTrue(VhostUserBlk.unavailableReason() == null, VhostUserBlk.unavailableReason());
    }

    @ParameterizedTest(name = "{0} queues")
    @ValueSource(ints = {1, 4})
    void qemusBiosBootsWritesAndReadsThroughTheExport(int queues) throws Exception {
        assumeQemuSystem();
        Path image = dir.resolve("disk.qcow2");
        Path sector = dir.resolve("boot.bin");
        try (InputStream in = getClass().getResourceAsStream("/virtio/bootsector.bin")) {
            Files.write(sector, in.readAllBytes());
        }
        Qemu.run(List.of("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "64M"));
        Qemu.run(List.of("qemu-io", "-c", "write -s " + sector + " 0 512", image.toString()));
        Path socket = dir.resolve("vhost.sock");
        Path serial = dir.resolve("serial.txt");
        try (BlockDevice disk = ImageFormat.open(image, null, OpenOptions.readWriteDefaults());
                VhostUserBlk.Server server = VhostUserBlk.serve(socket, disk,
                        VirtioBlkConfig.defaults().withNumQueues(queues), ExecutionModel.VIRTUAL)) {
            Process qemu = new ProcessBuilder(QEMU.toString(), "-accel", "tcg", "-m", "128", "-nodefaults",
                    "-object", "memory-backend-memfd,id=mem,size=128M,share=on", "-numa", "node,memdev=mem",
                    "-chardev", "socket,id=c,path=" + socket,
                    "-device", "vhost-user-blk-pci,chardev=c,num-queues=" + queues,
                    "-display", "none", "-serial", "file:" + serial, "-nic", "none", "-no-reboot")
                    .redirectErrorStream(true).redirectOutput(dir.resolve("qemu.log").toFile()).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (!(Files.exists(serial) && Files.readString(serial).contains("\n"))
                        && System.nanoTime() < deadline && qemu.isAlive()) {
                    Thread.sleep(50);
                }
            } finally {
                qemu.destroy();
                qemu.waitFor(10, TimeUnit.SECONDS);
            }
            String out = Files.exists(serial) ? Files.readString(serial) : "";
            assertTrue(out.contains(OK), "serial: '" + out + "', qemu: " + Files.readString(dir.resolve("qemu.log")));
        }
        Qemu.run(List.of("qemu-img", "check", image.toString()));
        Qemu.Result r = Qemu.exec(List.of("qemu-io", "-c", "read -P 0xfa 512 1", "-c", "read -P 0x31 513 1",
                image.toString()));
        assertEquals(0, r.exitCode(), r.stdout() + r.stderr());
        assertTrue(!r.stdout().contains("failed"), r.stdout());
    }

}
