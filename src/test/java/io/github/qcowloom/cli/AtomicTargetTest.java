package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The rename discipline of {@link AtomicTarget}: what the target holds before, after and without a commit. */
class AtomicTargetTest {
    @TempDir
    Path dir;

    private long entries() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.count();
        }
    }

    @Test
    void theTargetChangesOnlyAtCommitAndKeepsItsMode() throws IOException {
        Path target = dir.resolve("t.img");
        Files.write(target, new byte[] {1});
        Files.setPosixFilePermissions(target, PosixFilePermissions.fromString("rw-r-----"));
        try (AtomicTarget out = AtomicTarget.begin(target)) {
            assertEquals(dir, out.file().getParent(), "built beside the target: the rename stays in one file system");
            assertEquals("rw-r-----", PosixFilePermissions.toString(Files.getPosixFilePermissions(out.file())),
                    "the temporary file shows the guest's data to no more readers than the target does");
            Files.write(out.file(), new byte[] {2, 2});
            assertArrayEquals(new byte[] {1}, Files.readAllBytes(target), "the old file until the commit");
            out.commit(true);
        }
        assertArrayEquals(new byte[] {2, 2}, Files.readAllBytes(target));
        assertEquals("rw-r-----", PosixFilePermissions.toString(Files.getPosixFilePermissions(target)));
        assertEquals(1, entries(), "no temporary file left");
    }

    @Test
    void withoutACommitTheTemporaryFileGoesAndTheTargetStays() throws IOException {
        Path target = dir.resolve("t.img");
        Files.write(target, new byte[] {1});
        try (AtomicTarget out = AtomicTarget.begin(target)) {
            Files.write(out.file(), new byte[] {2});
        }
        assertArrayEquals(new byte[] {1}, Files.readAllBytes(target));
        assertEquals(1, entries());

        Path absent = dir.resolve("new.img");
        try (AtomicTarget out = AtomicTarget.begin(absent)) {
            Files.write(out.file(), new byte[] {3});
        }
        assertFalse(Files.exists(absent));
        assertEquals(1, entries());
    }

    @Test
    void aSymbolicLinkIsWrittenInPlaceSoRelativeNamesResolveBesideIt() throws IOException {
        Path real = Files.createDirectory(dir.resolve("real")).resolve("r.img");
        Files.write(real, new byte[] {1});
        Path link = Files.createSymbolicLink(dir.resolve("link.img"), real);
        try (AtomicTarget out = AtomicTarget.begin(link)) {
            assertEquals(link, out.file());
            Files.write(out.file(), new byte[] {4});
            out.commit(true);
        }
        assertTrue(Files.isSymbolicLink(link));
        assertArrayEquals(new byte[] {4}, Files.readAllBytes(real));
    }

    @Test
    void aHardLinkedFileIsWrittenInPlaceSoEveryNameSeesTheNewImage() throws IOException {
        Path target = dir.resolve("t.img");
        Files.write(target, new byte[] {1});
        Path other = Files.createLink(dir.resolve("other.img"), target);
        try (AtomicTarget out = AtomicTarget.begin(target)) {
            assertEquals(target, out.file());
            Files.write(out.file(), new byte[] {5});
            out.commit(true);
        }
        assertArrayEquals(new byte[] {5}, Files.readAllBytes(other));
    }

    @Test
    void aDeviceIsWrittenInPlace() throws IOException {
        Path dev = Path.of("/dev/null");
        try (AtomicTarget out = AtomicTarget.begin(dev)) {
            assertEquals(dev, out.file());
            out.commit(true);
        }
        assertTrue(Files.exists(dev) && !Files.isRegularFile(dev));
    }
}
