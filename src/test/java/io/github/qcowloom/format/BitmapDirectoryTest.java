package io.github.qcowloom.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class BitmapDirectoryTest {
    private static final byte[] TWO = ByteBuffer.allocate(32 + 56)
            .put(FormatFuzzTest.bitmapEntry(0x50000, 4, 2, 16, "dirty", new byte[0]))
            .put(FormatFuzzTest.bitmapEntry(0x60000, 1, 0, 20, "with extra data", new byte[12])).array();

    @Test
    void entriesAreReadWithTheirPaddingAndExtraData() {
        assertEquals(32 + 56, TWO.length);
        BitmapDirectory d = BitmapDirectory.parse(TWO, 2);
        assertNull(d.error());
        assertEquals(new BitmapDirectory.Entry(0x50000, 4, 2, 1, 16, 5, "dirty", 0, 0), d.entries().get(0));
        assertEquals(new BitmapDirectory.Entry(0x60000, 1, 0, 1, 20, 15, "with extra data", 12, 32), d.entries().get(1));
    }

    // QEMU's check_dir_entry: each of these makes it refuse to open the image.
    @Test
    void entriesOutsideQemusConstraintsAreKnown() {
        BitmapDirectory.Entry ok = new BitmapDirectory.Entry(0x50000, 4, 3, 1, 16, 5, "dirty", 0, 0);
        assertFalse(ok.breaksConstraints(65536));
        assertFalse(new BitmapDirectory.Entry(0x50000, 0x8000000, 0, 1, 9, 1023, "", 0, 0).breaksConstraints(65536));
        assertFalse(new BitmapDirectory.Entry(0x50000, 1, 0, 1, 31, 0, "", 0, 0).breaksConstraints(65536));
        for (BitmapDirectory.Entry bad : new BitmapDirectory.Entry[] {
            new BitmapDirectory.Entry(0x50000, 0, 0, 1, 16, 5, "empty table", 0, 0),
            new BitmapDirectory.Entry(0, 4, 0, 1, 16, 5, "table at 0", 0, 0),
            new BitmapDirectory.Entry(0x50200, 4, 0, 1, 16, 5, "misaligned table", 0, 0),
            new BitmapDirectory.Entry(0x50000, 0x8000001, 0, 1, 16, 5, "table too large", 0, 0),
            new BitmapDirectory.Entry(0x50000, 4, 0, 1, 8, 5, "granularity 8", 0, 0),
            new BitmapDirectory.Entry(0x50000, 4, 0, 1, 32, 5, "granularity 32", 0, 0),
            new BitmapDirectory.Entry(0x50000, 4, 4, 1, 16, 5, "reserved flag", 0, 0),
            new BitmapDirectory.Entry(0x50000, 4, 0, 2, 16, 5, "type 2", 0, 0),
            new BitmapDirectory.Entry(0x50000, 4, 0, 1, 16, 1024, "long name", 0, 0),
        }) {
            assertTrue(bad.breaksConstraints(65536), bad.name());
        }
    }

    /** QEMU's bitmap_list_load and check_dir_entry: what makes it refuse a directory it can walk, in its words. */
    @Test
    void whatQemuRefusesToLoad() {
        long disk = 1L << 30;
        byte[] one = FormatFuzzTest.bitmapEntry(0x50000, 1, 2, 16, "dirty", new byte[0]);
        BitmapDirectory ok = BitmapDirectory.parse(one, 1);
        assertEquals(32, ok.end());
        assertNull(ok.qemuRefusal(32, 65536, disk), "one table cluster: 2^19 bits of 64 KiB each, 32 GiB");
        assertEquals("Broken bitmap directory", ok.qemuRefusal(40, 65536, disk), "the walk must end at the end");
        assertEquals("Bitmap extra data is not supported",
                BitmapDirectory.parse(TWO, 2).qemuRefusal(TWO.length, 65536, 1L << 20));
        // A table too small for the disk: refused unless the bitmap is in use (stale after a resize, as allowed).
        byte[] small = FormatFuzzTest.bitmapEntry(0x50000, 1, 2, 9, "small", new byte[0]);
        long covered = 65536L * 8 * 512;
        assertNull(BitmapDirectory.parse(small, 1).qemuRefusal(32, 65536, covered));
        assertEquals("Bitmap 'small' doesn't satisfy the constraints",
                BitmapDirectory.parse(small, 1).qemuRefusal(32, 65536, covered + 1));
        byte[] inUse = FormatFuzzTest.bitmapEntry(0x50000, 1, 3, 9, "small", new byte[0]);
        assertNull(BitmapDirectory.parse(inUse, 1).qemuRefusal(32, 65536, covered + 1));
        // Over QEMU's 512 MiB of bitmap in memory.
        byte[] huge = FormatFuzzTest.bitmapEntry(0x50000, 8193, 2, 16, "huge", new byte[0]);
        assertNotNull(BitmapDirectory.parse(huge, 1).qemuRefusal(32, 65536, disk));
        assertNull(BitmapDirectory.parse(FormatFuzzTest.bitmapEntry(0x50000, 8192, 2, 16, "max", new byte[0]), 1)
                .qemuRefusal(32, 65536, disk));
        // Fewer entries than the header says, filling the directory; more; one cut short (before its extra data).
        assertEquals("Less bitmaps found than specified in header extension",
                BitmapDirectory.parse(one, 2).qemuRefusal(32, 65536, disk));
        byte[] twoPlain = ByteBuffer.allocate(64).put(one).put(one).array();
        assertEquals("More bitmaps found than specified in header extension",
                BitmapDirectory.parse(twoPlain, 1).qemuRefusal(64, 65536, disk));
        assertEquals("Broken bitmap directory",
                BitmapDirectory.parse(Arrays.copyOf(TWO, TWO.length - 8), 2).qemuRefusal(TWO.length - 8, 65536, disk));
        // The in-use flag word of each entry.
        BitmapDirectory.Entry second = BitmapDirectory.parse(TWO, 2).entries().get(1);
        assertEquals(32 + 12, second.flagsPosition());
        assertEquals(1, second.inUseFlags());
    }

    @Test
    void anEntryPastTheDirectoryEndsTheWalkKeepingThoseBefore() {
        // The second entry's name runs past the end: its table still counts, with an empty name.
        BitmapDirectory d = BitmapDirectory.parse(Arrays.copyOf(TWO, TWO.length - 8), 2);
        assertEquals(2, d.entries().size());
        assertEquals(new BitmapDirectory.Entry(0x60000, 1, 0, 1, 20, 15, "", 12, 32), d.entries().get(1));
        assertTrue(d.error().contains("entry 1 extends past the directory"), d.error());
        // Its fixed part cut: only the first.
        assertEquals(1, BitmapDirectory.parse(Arrays.copyOf(TWO, 32 + 20), 2).entries().size());
        // An extra-data size near 2^32 must not wrap around into the directory.
        byte[] huge = TWO.clone();
        ByteBuffer.wrap(huge).putInt(20, -1);
        BitmapDirectory wrapped = BitmapDirectory.parse(huge, 2);
        assertEquals("ERROR bitmap directory entry 0 extends past the directory", wrapped.error());
        assertEquals(1, wrapped.entries().size());
        assertEquals(2, BitmapDirectory.parse(TWO, 3).entries().size());
    }
}
