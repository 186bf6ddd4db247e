package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.snapshot.Snapshots;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.GatedStorage;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A request is checked against the virtual size as it is while the request holds the image lock: one that arrives
 * while a shrink holds the lock, inside the old size but past the new one, waits and then fails with
 * {@link OutOfRangeException}; it never writes past the new end, where a later growth must show zeroes. The shrink
 * (a resize, or the apply of a snapshot of a smaller disk) is parked at its header write of the new size while the
 * request arrives.
 */
class RangeCheckRaceTest {
    private static final int CS = 65536;
    private static final long OLD_SIZE = 2L << 20;
    private static final long NEW_SIZE = 1L << 20;
    /** Inside the old size, past the new one, cluster-aligned (as a compressed write must be). */
    private static final long AT = NEW_SIZE + 8L * CS;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** The request that races the shrink. */
    enum Request {
        WRITE, COMPRESSED_WRITE, WRITE_ZEROES, DISCARD, READ, BLOCK_STATUS;

        void run(Qcow2Image img) throws Exception {
            byte[] data = new byte[CS];
            Arrays.fill(data, (byte) 0x3c);
            switch (this) {
                case WRITE -> img.write(AT, ByteBuffer.wrap(data));
                case COMPRESSED_WRITE -> img.writeCompressed(AT, ByteBuffer.wrap(data));
                case WRITE_ZEROES -> img.writeZeroes(AT, CS, false);
                case DISCARD -> img.discard(AT, CS);
                case READ -> img.read(AT, ByteBuffer.allocate(CS));
                case BLOCK_STATUS -> img.blockStatus(AT, CS);
            }
        }
    }

    /** How the disk gets smaller. */
    enum Shrink {
        RESIZE, SNAPSHOT_APPLY
    }

    @ParameterizedTest(name = "{0} during {1}")
    @CsvSource({"WRITE, RESIZE", "COMPRESSED_WRITE, RESIZE", "WRITE_ZEROES, RESIZE", "DISCARD, RESIZE",
            "READ, RESIZE", "BLOCK_STATUS, RESIZE", "WRITE, SNAPSHOT_APPLY", "COMPRESSED_WRITE, SNAPSHOT_APPLY",
            "READ, SNAPSHOT_APPLY"})
    void aRequestWaitingForAShrinkIsCheckedAgainstTheNewSize(Request request, Shrink how) throws Exception {
        Path image = dir.resolve("shrink.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(how == Shrink.RESIZE ? OLD_SIZE : NEW_SIZE)
                .withClusterSize(CS));
        GatedStorage gated = new GatedStorage(FileStorage.open(image, false, false));
        try (Qcow2Image img = Qcow2Image.open(gated, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            Snapshot small = null;
            if (how == Shrink.SNAPSHOT_APPLY) {
                small = Snapshots.create(img, "small");
                img.resize(OLD_SIZE);
            }
            Snapshot toApply = small;
            // The header's size field (offset 24) is written with the image lock held exclusively.
            GatedStorage.Gate gate = gated.gateWrite((position, length) -> position == 24 && length == 8);
            AtomicReference<Throwable> shrinkFailed = new AtomicReference<>();
            Thread shrink = Thread.ofPlatform().start(() -> {
                try {
                    if (toApply == null) {
                        img.resize(NEW_SIZE);
                    } else {
                        Snapshots.apply(img, toApply);
                    }
                } catch (Throwable t) {
                    shrinkFailed.set(t);
                }
            });
            assertTrue(gate.awaitParked(), "the shrink never wrote the new size");
            AtomicReference<Throwable> failed = new AtomicReference<>();
            Thread racer = Thread.ofPlatform().start(() -> {
                try {
                    request.run(img);
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            // The request is inside the size the header still has; it waits for the image lock.
            GatedStorage.awaitDoneOrParked(racer);
            gate.release();
            shrink.join();
            racer.join();
            assertEquals(null, shrinkFailed.get());
            assertEquals(NEW_SIZE, img.size());

            img.resize(OLD_SIZE);
            byte[] grown = new byte[(int) (OLD_SIZE - NEW_SIZE)];
            img.read(NEW_SIZE, ByteBuffer.wrap(grown));
            assertArrayEquals(new byte[grown.length], grown, "the grown range must read as zeroes");
            assertInstanceOf(OutOfRangeException.class, failed.get(), request + " past the new end must fail");
        }
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
    }

    /**
     * The zeroing of a grown range happens before the new size is visible: a write into the new range that arrives
     * while the resize zeroes it waits, and its data is not zeroed afterwards. Here the range is the stale tail of
     * the old last cluster (a shrink left it there), zeroed by a write of zero bytes, at which the resize is parked.
     */
    @Test
    void aWriteIntoTheGrownRangeKeepsItsData() throws Exception {
        Path image = dir.resolve("grow.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(NEW_SIZE).withClusterSize(CS));
        GatedStorage gated = new GatedStorage(FileStorage.open(image, false, false));
        long shrunk = NEW_SIZE - CS / 2;
        byte[] data = new byte[512];
        Arrays.fill(data, (byte) 0x4d);
        try (Qcow2Image img = Qcow2Image.open(gated, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] stale = new byte[CS];
            Arrays.fill(stale, (byte) 0x11);
            img.write(NEW_SIZE - CS, ByteBuffer.wrap(stale));
            img.resize(shrunk);
            // The zero bytes over the stale half cluster: the only write of that length.
            GatedStorage.Gate gate = gated.gateWrite((position, length) -> length == CS / 2);
            AtomicReference<Throwable> growFailed = new AtomicReference<>();
            Thread grow = Thread.ofPlatform().start(() -> {
                try {
                    img.resize(NEW_SIZE);
                } catch (Throwable t) {
                    growFailed.set(t);
                }
            });
            assertTrue(gate.awaitParked(), "the resize never zeroed the stale tail");
            AtomicReference<Throwable> failed = new AtomicReference<>();
            Thread writer = Thread.ofPlatform().start(() -> {
                try {
                    img.write(shrunk + 512, ByteBuffer.wrap(data));
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            GatedStorage.awaitDoneOrParked(writer);
            gate.release();
            grow.join();
            writer.join();
            assertEquals(null, growFailed.get());
            assertEquals(null, failed.get(), "the write into the grown range");
            byte[] tail = new byte[CS / 2];
            img.read(shrunk, ByteBuffer.wrap(tail));
            byte[] expected = new byte[CS / 2];
            System.arraycopy(data, 0, expected, 512, data.length);
            assertArrayEquals(expected, tail, "the grown range: zeroes and the write's data");
        }
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
    }
}
