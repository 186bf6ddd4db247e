package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The image's side of NBD_CMD_CACHE and FAST_ZERO that the wire tests against qemu-nbd do not show: a prefetch's
 * copies leave the dirty bitmaps alone (the guest's data did not change), and a version 2 image takes no fast zero
 * write, as QEMU's qcow2 takes none there.
 */
class CopyOnReadTest {
    private static final int C = 65536;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    @Test
    void aPrefetchCopiesTheChainAndMarksNoBitmap() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "1M");
        Qemu.io(base, "write -P 0x5a 0 512k");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString());
        Qemu.img("bitmap", "--add", top.toString(), "b");
        try (Qcow2Image image = Qcow2Image.open(top, OpenOptions.readWriteDefaults())) {
            image.prefetch(0, 1 << 20);
            DirtyBits bits = image.dirtyBits("b");
            assertEquals(bits.count(), bits.nextSet(0, bits.count()), "a prefetch set a bit");
        }
        String map = Qemu.img("map", "--output=json", top.toString());
        assertTrue(map.contains("{ \"start\": 0, \"length\": 524288, \"depth\": 0, \"present\": true, \"zero\": false,"
                + " \"data\": true"), map);
        assertTrue(map.contains("{ \"start\": 524288, \"length\": 524288, \"depth\": 0, \"present\": true, \"zero\":"
                + " true, \"data\": false"), map);
        assertEquals("Images are identical.\n", Qemu.img("compare", base.toString(), top.toString()));
    }

    @Test
    void aVersion2ImageTakesNoFastZeroWrite() throws Exception {
        for (String compat : new String[] {"0.10", "1.1"}) {
            Path img = dir.resolve("v" + compat + ".qcow2");
            Qemu.img("create", "-q", "-f", "qcow2", "-o", "compat=" + compat, img.toString(), "1M");
            Qemu.io(img, "write -P 0x5a 0 1M");
            try (Qcow2Image image = Qcow2Image.open(img, OpenOptions.readWriteDefaults())) {
                assertEquals(compat.equals("1.1"), image.writeZeroesFast(0, 2 * C, true), compat);
                assertFalse(image.writeZeroesFast(2 * C + 512, 512, true), "part of a cluster that holds data");
            }
            Qemu.io(img, "read -P " + (compat.equals("1.1") ? "0" : "0x5a") + " 0 128k", "read -P 0x5a 128k 896k");
        }
    }
}
