package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The initramfs's parts without booting: the cpio format as busybox reads it, and the modules' load order. */
class GuestInitramfsTest {
    @TempDir
    Path dir;

    @Test
    void busyboxCpioUnpacksTheArchiveAsWritten() throws Exception {
        assumeTrue(Files.isExecutable(Path.of(GuestInitramfs.BUSYBOX)), "busybox-static not installed");
        byte[] data = new byte[4099];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 31);
        }
        Path archive = dir.resolve("a.cpio");
        Files.write(archive, new CpioArchive().file("/usr/sbin/tool", 0755, data).symlink("/bin/sh", "busybox")
                .directory("/proc").file("/etc/x", 0644, "y\n".getBytes(StandardCharsets.UTF_8)).finish());
        Path out = Files.createDirectories(dir.resolve("out"));
        String listing = Qemu.run(List.of("sh", "-c", GuestInitramfs.BUSYBOX + " cpio -t < " + archive));
        assertEquals(List.of("usr", "usr/sbin", "usr/sbin/tool", "bin", "bin/sh", "proc", "etc", "etc/x"),
                listing.lines().toList());
        Qemu.run(List.of("sh", "-c", "cd " + out + " && " + GuestInitramfs.BUSYBOX + " cpio -id < " + archive));
        assertArrayEquals(data, Files.readAllBytes(out.resolve("usr/sbin/tool")));
        assertTrue(Files.isExecutable(out.resolve("usr/sbin/tool")));
        assertEquals("busybox", Files.readSymbolicLink(out.resolve("bin/sh")).toString());
        assertEquals("y\n", Files.readString(out.resolve("etc/x")));
    }

    @Test
    void modulesComeAfterWhatTheyDependOn() {
        GuestKernel kernel = GuestKernel.find().orElse(null);
        assumeTrue(kernel != null, "no /boot/vmlinuz-* with modules (apt-get install linux-image-amd64)");
        List<String> names = kernel.modulesInLoadOrder(GuestInitramfs.MODULES).stream()
                .map(GuestKernel::moduleName).toList();
        for (String[] before : new String[][] {{"virtio_ring", "virtio"}, {"virtio", "virtio_pci"},
                {"virtio", "virtio_blk"}, {"jbd2", "ext4"}, {"mbcache", "ext4"}}) {
            if (names.contains(before[0]) && names.contains(before[1])) {
                assertTrue(names.indexOf(before[0]) < names.indexOf(before[1]), before[0] + " before " + before[1]
                        + ": " + names);
            }
        }
        assertEquals(names.size(), names.stream().distinct().count(), "each module once: " + names);
    }

    @Test
    void moduleNamesAndKernelVersions() {
        assertEquals("virtio_rng", GuestKernel.moduleName("kernel/drivers/char/hw_random/virtio-rng.ko.xz"));
        assertEquals("ext4", GuestKernel.moduleName("kernel/fs/ext4/ext4.ko"));
        assertTrue(GuestKernel.compareVersions("6.1.0-57-amd64", "6.1.0-9-amd64") > 0);
        assertTrue(GuestKernel.compareVersions("5.10.0-1-amd64", "6.1.0-1-amd64") < 0);
    }
}
