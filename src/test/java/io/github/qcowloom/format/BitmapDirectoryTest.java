package io.github.qcowloom.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
        assertEquals(new BitmapDirectory.Entry(0x50000, 4, 2, 1, 16, "dirty"), d.entries().get(0));
        assertEquals(new BitmapDirectory.Entry(0x60000, 1, 0, 1, 20, "with extra data"), d.entries().get(1));
    }

    @Test
    void anEntryPastTheDirectoryEndsTheWalkKeepingThoseBefore() {
        // The second entry's name runs past the end: its table still counts, with an empty name.
        BitmapDirectory d = BitmapDirectory.parse(Arrays.copyOf(TWO, TWO.length - 8), 2);
        assertEquals(2, d.entries().size());
        assertEquals(new BitmapDirectory.Entry(0x60000, 1, 0, 1, 20, ""), d.entries().get(1));
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
