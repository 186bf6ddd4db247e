package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.GatedStorage;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A close that races requests: the requests in flight when it begins finish (their data lands, their reads are
 * whole), the ones that arrive after it began are refused with an {@link ImageException}, never failed by the files
 * closing under them; after it, every request is refused the same way and a second close does nothing. Before, a
 * read or flush after close failed with a bare ClosedChannelException, a read in flight met the closed file, and a
 * second close after a failed flush flushed the closed files again and threw. The request in flight is parked in
 * the storage at its data's I/O (12 KiB, a length no metadata I/O has) while the close begins.
 */
class CloseRaceTest {
    private static final int CS = 65536;
    private static final int LENGTH = 12288;

    @TempDir
    Path dir;

    private Path imageWithData() throws Exception {
        Path image = dir.resolve("close.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(4L << 20).withClusterSize(CS));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            img.write(0, ByteBuffer.wrap(filled(0x11, 2 * CS)));
        }
        return image;
    }

    @Test
    void aWriteInFlightLandsAndALaterReadIsRefused() throws Exception {
        Path image = imageWithData();
        GatedStorage gated = new GatedStorage(FileStorage.open(image, false, false));
        Qcow2Image img = Qcow2Image.open(gated, dir, OpenOptions.readWriteDefaults());
        GatedStorage.Gate gate = gated.gateWrite((position, length) -> length == LENGTH);
        AtomicReference<Throwable> writeFailed = new AtomicReference<>();
        Thread writer = thread(() -> img.write(CS, ByteBuffer.wrap(filled(0x22, LENGTH))), writeFailed);
        assertTrue(gate.awaitParked(), "the write never reached its data");
        AtomicReference<Throwable> closeFailed = new AtomicReference<>();
        Thread closer = thread(img::close, closeFailed);
        GatedStorage.awaitDoneOrParked(closer);
        assertTrue(closer.isAlive(), "close must wait for the write in flight");
        AtomicReference<Throwable> readFailed = new AtomicReference<>();
        Thread reader = thread(() -> img.read(0, ByteBuffer.allocate(LENGTH)), readFailed);
        GatedStorage.awaitDoneOrParked(reader);
        gate.release();
        writer.join();
        closer.join();
        reader.join();
        assertEquals(null, writeFailed.get());
        assertEquals(null, closeFailed.get());
        assertInstanceOf(ImageException.class, readFailed.get(), "a read after close began");
        assertRefusedAfterClose(img);
        String check = Qemu.available() ? Qemu.img("check", "--output=json", image.toString()) : "";
        assertFalse(check.contains("\"corruptions\"") || check.contains("\"leaks\""), check);
        try (Qcow2Image again = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            ByteBuffer read = ByteBuffer.allocate(LENGTH);
            again.read(CS, read);
            assertArrayEquals(filled(0x22, LENGTH), read.array(), "the write in flight at close must land");
        }
    }

    @Test
    void aReadInFlightIsWholeAndTheClosedImageRefusesRequests() throws Exception {
        Path image = imageWithData();
        GatedStorage gated = new GatedStorage(FileStorage.open(image, true, false));
        Qcow2Image img = Qcow2Image.open(gated, dir, OpenOptions.readOnlyDefaults());
        GatedStorage.Gate gate = gated.gateRead((position, length) -> length == LENGTH);
        ByteBuffer read = ByteBuffer.allocate(LENGTH);
        AtomicReference<Throwable> readFailed = new AtomicReference<>();
        Thread reader = thread(() -> img.read(CS, read), readFailed);
        assertTrue(gate.awaitParked(), "the read never reached its data");
        AtomicReference<Throwable> closeFailed = new AtomicReference<>();
        Thread closer = thread(img::close, closeFailed);
        GatedStorage.awaitDoneOrParked(closer);
        assertTrue(closer.isAlive(), "close must wait for the read in flight");
        gate.release();
        reader.join();
        closer.join();
        assertEquals(null, readFailed.get());
        assertEquals(null, closeFailed.get());
        assertArrayEquals(filled(0x11, LENGTH), read.array());
        assertRefusedAfterClose(img);
    }

    /** Every request refused as the image's own error; close again, and again, does nothing. */
    private static void assertRefusedAfterClose(Qcow2Image img) throws Exception {
        assertThrows(ImageException.class, () -> img.read(0, ByteBuffer.allocate(512)));
        assertThrows(ImageException.class, () -> img.blockStatus(0, 512));
        assertThrows(ImageException.class, img::flush);
        img.close();
        img.close();
    }

    @FunctionalInterface
    private interface Body {
        void run() throws Exception;
    }

    private static Thread thread(Body body, AtomicReference<Throwable> failed) {
        return Thread.ofPlatform().start(() -> {
            try {
                body.run();
            } catch (Throwable t) {
                failed.set(t);
            }
        });
    }

    private static byte[] filled(int value, int length) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) value);
        return b;
    }
}
