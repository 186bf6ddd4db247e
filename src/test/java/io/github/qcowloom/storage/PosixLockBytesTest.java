package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.testing.LockHolder;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fallback where open-file-description locks are missing (Java 21): POSIX record locks through FileChannel,
 * which QEMU's OFD locks conflict with, and a second open of the same file in this process refused (its close
 * would drop the first open's locks).
 */
class PosixLockBytesTest {
    @TempDir
    Path dir;

    @Test
    void posixLocksAndQemuRefuseEachOther() throws Exception {
        Qemu.assume();
        Path image = dir.resolve("p.qcow2");
        String name = image.toString();
        Qemu.img("create", "-f", "qcow2", name, "1M");
        try (ImageLock lock = ImageLock.acquire(new PosixLockBytes(image), name, LockPermissions.readWrite())) {
            assertEquals("POSIX", lock.kind());
            assertEquals(List.of("POSIX READ 100-101", "POSIX READ 103-103", "POSIX READ 201-201",
                    "POSIX READ 203-203"), LockHolder.allLockBytes(image));
            Qemu.Result write = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", "write 0 4k", name));
            assertTrue(write.stderr().contains("Failed to get \"write\" lock"), write.stderr());
            Qemu.Result info = Qemu.exec(List.of("qemu-img", "info", name));
            assertTrue(info.stderr().contains("Failed to get shared \"write\" lock"), info.stderr());
            // Another open of the file in this process: refused, whatever it asks for.
            IOException twice = assertThrows(IOException.class,
                    () -> ImageLock.acquire(new PosixLockBytes(image), name, LockPermissions.readOnly()).close());
            assertTrue(twice.getMessage().contains("already open in this process"), twice.getMessage());
            // ...and the refused open's close left our locks in place.
            assertEquals(4, LockHolder.allLockBytes(image).size());
        }
        assertEquals(List.of(), LockHolder.allLockBytes(image));
        try (LockHolder qemu = LockHolder.start(image, LockHolder.WRITER, "qemu-io", "-f", "qcow2", name)) {
            ImageLockedException e = assertThrows(ImageLockedException.class,
                    () -> ImageLock.acquire(new PosixLockBytes(image), name, LockPermissions.readWrite()));
            assertEquals("Failed to get \"write\" lock\nIs another process using the image [" + name + "]?",
                    e.getMessage());
            // -U shares with the writer.
            ImageLock.acquire(new PosixLockBytes(image), name, LockPermissions.forceShare()).close();
        }
    }
}
