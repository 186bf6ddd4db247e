package io.github.qcowloom.image;

import static io.github.qcowloom.format.HeaderField.INCOMPATIBLE_FEATURES;
import static io.github.qcowloom.image.ImagePoker.create;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static io.github.qcowloom.image.ImagePoker.readGuest;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Features;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The corrupt and dirty bits decide which opens are allowed (qcow2.md §1 and §4): a corrupt image opens
 * read-only but never read-write ("qcow2: Image is corrupt; cannot be opened read/write", iotest 060); a dirty
 * image opens read-only without repair (iotest 039).
 */
class BadImageOpenModeTest {
    @TempDir
    Path dir;

    private Path imageWith(long incompatible) throws IOException {
        Path image = create(dir.resolve("flags.qcow2"));
        putLong(image, INCOMPATIBLE_FEATURES, incompatible);
        return image;
    }

    @Test
    void corruptImageIsRefusedReadWrite() throws IOException {
        Path image = imageWith(Features.INCOMPAT_CORRUPT);
        CorruptImageException e = assertThrows(CorruptImageException.class,
                () -> Qcow2Image.open(image, OpenOptions.readWriteDefaults()).close());
        assertEquals(CorruptImageException.class, e.getClass());
        assertTrue(e.getMessage().contains("qcow2: Image is corrupt; cannot be opened read/write"), e.getMessage());
    }

    @Test
    void corruptImageOpensReadOnly() throws IOException {
        Path image = imageWith(Features.INCOMPAT_CORRUPT);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertTrue(img.header().corrupt());
            assertTrue(img.readOnly());
        }
        assertArrayEquals(new byte[4096], readGuest(image, 0, 4096));
    }

    @Test
    void dirtyImageOpensReadOnly() throws IOException {
        Path image = imageWith(Features.INCOMPAT_DIRTY);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertTrue(img.header().dirty());
        }
        assertArrayEquals(new byte[4096], readGuest(image, (1 << 20) - 4096, 4096));
    }

    @Test
    void dirtyAndCorruptImageOpensReadOnly() throws IOException {
        Path image = imageWith(Features.INCOMPAT_DIRTY | Features.INCOMPAT_CORRUPT);
        assertArrayEquals(new byte[512], readGuest(image, 0, 512));
        assertThrows(CorruptImageException.class, () -> Qcow2Image.open(image, OpenOptions.readWriteDefaults()));
    }
}
