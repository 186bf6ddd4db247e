package io.github.qcowloom.image;

import static io.github.qcowloom.image.ImagePoker.create;
import static io.github.qcowloom.image.ImagePoker.readGuest;
import static io.github.qcowloom.image.ImagePoker.replaceExtensions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.HeaderExtension;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * File names stored in an untrusted image: {@code json:} specifications and protocol prefixes are refused (but a
 * local file's, {@code file:} say, which names no more than a plain name does) rather than followed (CVE-2024-4467,
 * CVE-2024-32498), metadata-only opens ({@code followReferences=false})
 * do not touch them at all, and a backing chain that loops fails cleanly instead of overflowing the stack.
 */
class BadImageReferenceTest {
    private static final long SIZE = 1 << 20;

    @TempDir
    Path dir;

    private Path imageWithBacking(String name, String backing, String format) throws IOException {
        return create(dir.resolve(name), CreateOptions.defaults(SIZE).withBacking(backing, format));
    }

    // CVE-2024-4467 / CVE-2024-32498: never open a resource named by a json: spec or a protocol prefix.
    @ParameterizedTest
    @ValueSource(strings = {
        "json:{\"file\":{\"driver\":\"file\",\"filename\":\"/etc/passwd\"}}",
        "nbd://host/x",
        "gluster://host/volume/x",
        "http://example.com/disk.qcow2",
    })
    void backingFileSpecificationsAreRefusedAtOpen(String backing) throws IOException {
        Path image = imageWithBacking("top.qcow2", backing, null);
        assertEquals(backing, ImagePoker.header(image).backingFile());
        UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                () -> Qcow2Image.open(image, OpenOptions.readOnlyDefaults()).close());
        assertTrue(e.feature().startsWith("backing file"), e.feature());
        assertTrue(e.getMessage().contains(backing), e.getMessage());
    }

    // Metadata-only inspection opens the image without following the name; reads that need it fail typed.
    @ParameterizedTest
    @ValueSource(strings = {"json:{\"driver\":\"nbd\",\"host\":\"x\"}", "nbd://host/x", "ssh://host/x"})
    void backingFileSpecificationsAreIgnoredWithoutFollowingReferences(String backing) throws IOException {
        Path image = imageWithBacking("top.qcow2", backing, "qcow2");
        OpenOptions noFollow = OpenOptions.readOnlyDefaults().withFollowReferences(false);
        try (Qcow2Image img = Qcow2Image.open(image, noFollow)) {
            assertNull(img.backing());
            assertEquals(backing, img.header().backingFile());
            UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                    () -> img.read(0, ByteBuffer.allocate(512)));
            assertEquals("backing file not opened", e.feature());
        }
    }

    // CVE-2024-32498: for untrusted images (followReferences=false) not even a plain absolute path is opened.
    @Test
    void absolutePathsAreNotOpenedWithoutFollowingReferences() throws IOException {
        Path image = imageWithBacking("top.qcow2", "/etc/passwd", "raw");
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults().withFollowReferences(false))) {
            assertNull(img.backing());
            assertThrows(UnsupportedFeatureException.class, () -> img.read(0, ByteBuffer.allocate(512)));
        }
        Path df = create(dir.resolve("df.qcow2"), CreateOptions.defaults(SIZE).withDataFile("d.raw", true));
        replaceExtensions(df, new HeaderExtension(HeaderExtension.DATA_FILE,
                "/etc/passwd".getBytes(StandardCharsets.UTF_8)));
        try (Qcow2Image img = Qcow2Image.open(df, OpenOptions.readOnlyDefaults().withFollowReferences(false))) {
            UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                    () -> img.read(0, ByteBuffer.allocate(512)));
            assertEquals("external data file not opened", e.feature());
        }
    }

    // The same rule for the external data file name (the data-file extension).
    @ParameterizedTest
    @ValueSource(strings = {"json:{\"driver\":\"file\",\"filename\":\"/dev/sda\"}", "nbd://host/x", "ssh://host/d.raw"})
    void dataFileSpecificationsAreRefusedAtOpen(String name) throws IOException {
        Path image = create(dir.resolve("df.qcow2"), CreateOptions.defaults(SIZE).withDataFile("d.raw", false));
        replaceExtensions(image, new HeaderExtension(HeaderExtension.DATA_FILE, name.getBytes(StandardCharsets.UTF_8)));
        UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                () -> Qcow2Image.open(image, OpenOptions.readOnlyDefaults()).close());
        assertTrue(e.feature().startsWith("data file"), e.feature());
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults().withFollowReferences(false))) {
            assertEquals(name, img.header().dataFile().orElseThrow());
        }
    }

    // A well-formed relative backing file is followed: the references rule is not "refuse everything".
    @Test
    void plainRelativeBackingFileIsFollowed() throws IOException {
        create(dir.resolve("base.qcow2"), CreateOptions.defaults(SIZE));
        Path top = imageWithBacking("top.qcow2", "base.qcow2", "qcow2");
        try (Qcow2Image img = Qcow2Image.open(top, OpenOptions.readOnlyDefaults())) {
            assertTrue(img.backing() instanceof Qcow2Image);
        }
        assertArrayEquals(new byte[512], readGuest(top, 0, 512));
    }

    // QEMU keeps stored names as C strings: a NUL byte ends them. (A NUL reaching java.nio's Path.of would throw
    // InvalidPathException, an unchecked exception, out of open.)
    @Test
    void backingFileNameEndsAtItsFirstNulByte() throws IOException {
        create(dir.resolve("base.qcow2"), CreateOptions.defaults(SIZE));
        Path top = imageWithBacking("top.qcow2", "base.qcow2\0/etc/passwd", "qcow2\0junk");
        assertEquals("base.qcow2", ImagePoker.header(top).backingFile());
        assertEquals("qcow2", ImagePoker.header(top).backingFormat().orElseThrow());
        try (Qcow2Image img = Qcow2Image.open(top, OpenOptions.readOnlyDefaults())) {
            assertTrue(img.backing() instanceof Qcow2Image);
        }
    }

    @Test
    void backingFileNameStartingWithNulMeansNoBackingFile() throws IOException {
        Path top = imageWithBacking("top.qcow2", "\0base.qcow2", null);
        assertNull(ImagePoker.header(top).backingFile());
        assertArrayEquals(new byte[512], readGuest(top, 0, 512));
    }

    @Test
    void dataFileNameEndsAtItsFirstNulByte() throws IOException {
        Path image = create(dir.resolve("df.qcow2"), CreateOptions.defaults(SIZE).withDataFile("d.raw", true));
        replaceExtensions(image, new HeaderExtension(HeaderExtension.DATA_FILE,
                "d.raw\0x".getBytes(StandardCharsets.UTF_8)));
        assertEquals("d.raw", ImagePoker.header(image).dataFile().orElseThrow());
        assertArrayEquals(new byte[512], readGuest(image, 0, 512));
    }

    // a -> b -> a: refused where the chain first names a file again, with qemu-img's message.
    @Test
    void backingChainLoopOfTwoFailsCleanly() throws IOException {
        imageWithBacking("b.qcow2", "a.qcow2", "qcow2");
        Path a = imageWithBacking("a.qcow2", "b.qcow2", "qcow2");
        assertLoopRefused(a);
    }

    @Test
    void imageThatIsItsOwnBackingFileFailsCleanly() throws IOException {
        Path a = imageWithBacking("self.qcow2", "self.qcow2", "qcow2");
        assertLoopRefused(a);
    }

    // Without a backing format the format is probed at each level; the loop is still found.
    @Test
    void probedBackingChainLoopFailsCleanly() throws IOException {
        imageWithBacking("q.qcow2", "p.qcow2", null);
        Path p = imageWithBacking("p.qcow2", "q.qcow2", null);
        assertLoopRefused(p);
    }

    // A long but finite chain below the limit opens and reads through every level.
    @Test
    void deepButFiniteChainOpens() throws IOException {
        List<Path> chain = new ArrayList<>();
        chain.add(create(dir.resolve("c0.qcow2"), CreateOptions.defaults(SIZE)));
        for (int i = 1; i <= 20; i++) {
            chain.add(imageWithBacking("c" + i + ".qcow2", "c" + (i - 1) + ".qcow2", "qcow2"));
        }
        assertArrayEquals(new byte[512], readGuest(chain.get(chain.size() - 1), 4096, 512));
    }

    // A chain of distinct files is cut at a fixed depth, with no StackOverflowError.
    @Test
    void chainDeeperThanTheLimitIsRefused() throws IOException {
        create(dir.resolve("d0.qcow2"), CreateOptions.defaults(SIZE));
        Path top = null;
        for (int i = 1; i <= Qcow2Image.MAX_BACKING_DEPTH + 1; i++) {
            top = imageWithBacking("d" + i + ".qcow2", "d" + (i - 1) + ".qcow2", "qcow2");
        }
        Path image = top;
        UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                () -> Qcow2Image.open(image, OpenOptions.readOnlyDefaults()).close());
        assertTrue(e.getMessage().contains("Backing chain is deeper than 64"), e.getMessage());
    }

    // A FIFO's open waits for a writer: a backing or data file named after one is refused, not waited for.
    @ParameterizedTest
    @ValueSource(strings = {"backing", "data file"})
    void aFifoAsAReferencedFileIsRefusedAtOnce(String role) throws Exception {
        Path fifo = dir.resolve("fifo");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        assertEquals(0, mkfifo.waitFor());
        CreateOptions options = role.equals("backing") ? CreateOptions.defaults(SIZE).withBacking("fifo", "raw")
                : CreateOptions.defaults(SIZE).withDataFile("d.raw", false);
        Path image = create(dir.resolve("top.qcow2"), options);
        if (!role.equals("backing")) {
            replaceExtensions(image, new HeaderExtension(HeaderExtension.DATA_FILE,
                    "fifo".getBytes(StandardCharsets.UTF_8)));
        }
        IOException e = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> assertThrows(IOException.class,
                () -> Qcow2Image.open(image, OpenOptions.readOnlyDefaults()).close()));
        assertTrue(e.getMessage().contains("it is a FIFO"), e.getMessage());
    }

    private static void assertLoopRefused(Path image) {
        UnsupportedFeatureException e = assertTimeoutPreemptively(Duration.ofSeconds(20),
                () -> assertThrows(UnsupportedFeatureException.class,
                        () -> Qcow2Image.open(image, OpenOptions.readOnlyDefaults()).close()));
        assertTrue(e.getMessage().contains("creates an infinite loop"), e.getMessage());
    }
}
