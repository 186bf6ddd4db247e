package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.storage.FileStorage;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The repair of a dirty image on a read-write open recounts references within ImageOptions.recountMemoryBytes: a
 * recount that would need more is refused with a typed error naming the memory, and changes nothing.
 */
class RecountMemoryBoundTest {
    @TempDir
    Path dir;

    @Test
    void aRecountPastTheBoundIsRefusedAndTheImageStaysDirty() throws Exception {
        Path image = dir.resolve("b.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(16L << 20).withClusterSize(512));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            img.write(0, ByteBuffer.wrap(new byte[8192]));
        }
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.seek(72);
            long features = f.readLong();
            f.seek(72);
            f.writeLong(features | 1);
        }
        OpenOptions tight = OpenOptions.readWriteDefaults()
                .withTuning(OpenOptions.readWriteDefaults().tuning().withRecountMemoryBytes(4096));
        ImageTooLargeException e = assertThrows(ImageTooLargeException.class, () -> Qcow2Image.open(image, tight));
        assertTrue(e.getMessage().contains("Recounting the references needs more than"), e.getMessage());
        assertTrue(dirty(image), "a refused repair marked the image clean");
        // With the default bound the same image opens, repaired.
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            assertTrue(img.size() > 0);
        }
        assertTrue(!dirty(image));
    }

    private static boolean dirty(Path image) throws Exception {
        try (FileStorage f = FileStorage.open(image, true, false)) {
            return ImageMetadata.readHeader(f).dirty();
        }
    }
}
