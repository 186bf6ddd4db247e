package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.BitmapFiles;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CyclicBarrier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bits a read-write open keeps: set by requests side by side, none lost; resized as QEMU resizes them. */
class KeptBitmapsTest {
    private static final long SIZE = 8 << 20;

    @TempDir
    Path dir;

    /** A fresh image with bitmap "on" (512 bytes a bit, enabled) and "off" (4 KiB, disabled), as its bytes. */
    private byte[] imageWithBitmaps(long size) throws Exception {
        return BitmapFiles.freshWithBitmaps(dir.resolve("k.qcow2"), size, 4096, 512, 4096);
    }

    private static KeptBitmaps load(byte[] image) throws Exception {
        MemoryStorage file = MemoryStorage.readOnlyCopy(image);
        Header header = ImageMetadata.readHeader(file);
        return KeptBitmaps.load(file, header, PersistentBitmaps.loadable(file, header).orElseThrow());
    }

    /**
     * Eight platform threads set interleaved bits of the same words at once (each bit its own mark, as 512-byte
     * requests would), over a 1 GiB disk: a plain read-modify-write of a word loses some of them.
     */
    @Test
    void marksSideBySideLoseNoBit() throws Exception {
        long size = 1L << 30;
        KeptBitmaps kept = load(imageWithBitmaps(size));
        int threads = 8;
        long bits = size / 512;
        CyclicBarrier start = new CyclicBarrier(threads);
        List<Thread> running = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int first = t;
            running.add(Thread.ofPlatform().start(() -> {
                try {
                    start.await();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
                for (long b = first; b < bits; b += threads) {
                    kept.mark(b * 512, 512);
                }
            }));
        }
        for (Thread t : running) {
            t.join();
        }
        long[] words = kept.words("on");
        for (long w : words) {
            assertEquals(-1L, w);
        }
        assertArrayEquals(new long[(int) (size / 4096 / 64)], kept.words("off"), "a disabled bitmap records nothing");
    }

    /** A mark covers every granule it touches, and no more; a resize keeps the bits below the new end. */
    @Test
    void marksCoverTheGranulesTouchedAndResizeKeepsThem() throws Exception {
        KeptBitmaps kept = load(imageWithBitmaps(SIZE));
        kept.mark(1000, 24); // bytes 1000..1023: granule 1 only
        kept.mark(4095, 2); // granules 7 and 8
        kept.mark(SIZE - 1, 1); // the last one
        long[] w = kept.words("on");
        assertEquals((1L << 1) | (1L << 7) | (1L << 8), w[0]);
        assertEquals(1L << 63, w[w.length - 1]);
        kept.resize(SIZE - 512, 12);
        assertEquals(0, kept.words("on")[w.length - 1], "the bit past the new end dropped");
        kept.resize(SIZE + 4096, 12);
        long[] grown = kept.words("on");
        assertEquals(w.length + 1, grown.length);
        assertEquals(w[0], grown[0]);
        assertEquals(0, grown[grown.length - 1], "the grown range clean");
    }

    /**
     * A resize that would take a bitmap to no bits, or past QEMU's 512 MiB of bits (512 bytes a bit over 3 TiB),
     * stops keeping it: it stays in use, the image is not marked corrupt, and it opens again, clean. ("off", 64 KiB
     * a bit, takes 6 MiB at 3 TiB: kept, whatever the heap.)
     */
    @Test
    void aResizePastTheLimitsLeavesTheBitmapInUse() throws Exception {
        for (long newSize : new long[] {0, 3L << 40}) {
            MemoryStorage memory = new MemoryStorage(BitmapFiles.freshWithBitmaps(dir.resolve("k.qcow2"), SIZE, 4096,
                    512, 65536));
            try (Qcow2Image img = Qcow2Image.open(memory, null, OpenOptions.readWriteDefaults().withPool(false))) {
                img.write(SIZE - 4096, java.nio.ByteBuffer.allocate(4096));
                img.discard(SIZE - 4096, 4096); // recorded, and leaves nothing that a shrink to 0 refuses
                img.resize(newSize);
            }
            byte[] closed = memory.snapshot();
            MemoryStorage reopened = new MemoryStorage(closed);
            Header header = ImageMetadata.readHeader(reopened);
            assertFalse(header.corrupt() || header.dirty(), "clean after close at " + newSize);
            try (Qcow2Image img = Qcow2Image.open(MemoryStorage.readOnlyCopy(closed), null,
                    OpenOptions.readOnlyDefaults())) {
                Map<String, Boolean> inUse = new TreeMap<>();
                img.persistentBitmaps().forEach(e -> inUse.put(e.name(), e.inUse()));
                assertEquals(Map.of("on", true, "off", newSize == 0), inUse, "at " + newSize);
            }
            Qcow2Image.open(reopened, null, OpenOptions.readWriteDefaults()).close();
        }
    }
}
