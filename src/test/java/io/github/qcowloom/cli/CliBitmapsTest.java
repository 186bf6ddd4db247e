package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Images with persistent dirty bitmaps, made by qemu-img bitmap: info lists them and measure counts what they
 * would take, as qemu-img does (the driver reads the directory; it does not keep bitmaps up to date).
 */
class CliBitmapsTest {
    private static final int BITMAPS_EXTENSION = 0x23852875;

    @TempDir
    Path dir;
    private Path image;

    @BeforeEach
    void image() {
        Qemu.assume();
        image = dir.resolve("b.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "3G");
        Qemu.io(image, "write -P 1 0 5M");
        Qemu.img("bitmap", "--add", image.toString(), "first");
        Qemu.img("bitmap", "--add", "-g", "512", image.toString(), "a-fine-grained-bitmap-with-a-longer-name");
        Qemu.img("bitmap", "--add", "-g", "2M", "--disable", image.toString(), "b3");
    }

    @Test
    void infoListsThemAsQemuImgDoes() throws Exception {
        String human = Cli.sameAsQemuImg("info", image);
        assertTrue(human.contains("    bitmaps:\n        [0]:\n            flags:\n                [0]: auto\n"
                + "            name: first\n            granularity: 65536\n"), human);
        Cli.sameAsQemuImg("info", "--output=json", image);
        // A bitmap a writer left open (killed before it stored the bitmap): in use, so stale.
        setFlagsOfFirstBitmap(image, 3);
        assertTrue(Cli.sameAsQemuImg("info", image).contains("[0]: in-use\n"));
        Cli.sameAsQemuImg("info", "--output=json", image);
    }

    @Test
    void measureCountsThemAsQemuImgDoes() {
        for (String o : new String[] {"cluster_size=64k", "cluster_size=512", "cluster_size=2M",
            "cluster_size=4k,compat=0.10", "extended_l2=on"}) {
            String out = Cli.sameAsQemuImg("measure", "-O", "qcow2", "-o", o, image);
            assertEquals(!o.contains("compat=0.10"), out.contains("bitmaps size: "), out);
            assertFalse(out.contains("bitmaps size: 0\n"), out);
        }
        Cli.sameAsQemuImg("measure", "-O", "qcow2", "--output=json", image);
        Cli.sameAsQemuImg("measure", "-O", "raw", image);
    }

    /** Sets the flags of the directory's first entry, found through the header's bitmaps extension. */
    private static void setFlagsOfFirstBitmap(Path image, int flags) throws Exception {
        try (FileChannel f = FileChannel.open(image, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(8);
            f.read(b.clear().limit(4), 100);
            long at = b.getInt(0); // header_length: the extensions follow
            while (true) {
                f.read(b.clear(), at);
                int type = b.getInt(0);
                int length = b.getInt(4);
                assertTrue(type != 0, "no bitmaps extension");
                if (type == BITMAPS_EXTENSION) {
                    f.read(b.clear(), at + 8 + 16);
                    long directory = b.getLong(0);
                    f.write(ByteBuffer.allocate(4).putInt(0, flags), directory + 12);
                    return;
                }
                at += 8 + ((length + 7) & -8);
            }
        }
    }
}
