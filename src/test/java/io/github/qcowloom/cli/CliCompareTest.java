package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * compare against qemu-img compare on the same pairs of images: the exit code, what it prints and its errors, word
 * for word (our name for qemu-img's in the errors).
 */
class CliCompareTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private Path qcow2(String name, String size, String... ioCommands) {
        Path p = dir.resolve(name);
        Qemu.img("create", "-q", "-f", "qcow2", p.toString(), size);
        for (String c : ioCommands) {
            Qemu.io(p, c);
        }
        return p;
    }

    private static String both(Object... args) {
        return Cli.sameAsQemuImg("compare", args);
    }

    @Test
    void sameContentsWhateverTheirLayout() throws Exception {
        Path a = qcow2("a.qcow2", "64M", "write -P 0x11 1M 3M", "write -z 8M 1M", "write -P 0 16M 64k");
        Path b = qcow2("b.qcow2", "64M", "write -P 0x11 1M 3M");
        assertEquals("Images are identical.\n", both(a, b));
        both(b, a);
        both("-q", a, b);
        Path raw = dir.resolve("a.raw");
        Qemu.img("convert", "-O", "raw", a.toString(), raw.toString());
        both(a, raw);
        both("-f", "qcow2", "-F", "raw", a, raw);
        both("-T", "none", a, raw);
        Path compressed = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", a.toString(), compressed.toString());
        both(compressed, b);
        // A backing file's data read through an overlay that holds none.
        Path overlay = dir.resolve("o.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", b.toString(), "-F", "qcow2", overlay.toString());
        both(overlay, a);
    }

    @Test
    void theFirstDifferingSectorIsNamed() throws Exception {
        Path a = qcow2("a.qcow2", "64M", "write -P 0x11 1M 3M");
        Path b = qcow2("b.qcow2", "64M", "write -P 0x11 1M 3M", "write -P 0x12 2101000 1");
        assertEquals("Content mismatch at offset 2100736!\n", both(a, b));
        // Data in one, nothing in the other: the sector of the first byte that is not zero.
        Path c = qcow2("c.qcow2", "64M", "write -P 0x11 1M 3M", "write -P 0x13 40000005 3");
        both(a, c);
        both(c, a);
        Path empty = qcow2("e.qcow2", "64M");
        both(empty, a);
        // The first sector of a chunk that differs names the chunk's start.
        Path d = qcow2("d.qcow2", "64M", "write -P 0x11 1M 3M", "write -P 0x14 1M 1");
        both(a, d);
    }

    @Test
    void differentSizes() throws Exception {
        Path small = qcow2("s.qcow2", "32M", "write -P 0x11 0 1M");
        Path zeroTail = qcow2("z.qcow2", "64M", "write -P 0x11 0 1M", "write -z 40M 1M");
        Path dataTail = qcow2("d.qcow2", "64M", "write -P 0x11 0 1M", "write -P 0x22 50M 4k");
        assertEquals("Warning: Image size mismatch!\nImages are identical.\n", both(small, zeroTail));
        both(dataTail, small);
        both("-s", small, zeroTail);
        both("-s", "-q", small, dataTail);
    }

    @Test
    void strictModeComparesBlockStatus() throws Exception {
        Path a = qcow2("a.qcow2", "64M", "write -P 0x11 1M 3M");
        Path same = qcow2("b.qcow2", "64M", "write -P 0x11 1M 3M");
        both("-s", a, same);
        Path zeroes = qcow2("z.qcow2", "64M", "write -P 0x11 1M 3M", "write -z 8M 1M");
        both("-s", a, zeroes);
        Path compressed = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", a.toString(), compressed.toString());
        both("-s", a, compressed);
        // The same flags but for BDRV_BLOCK_EOF: one image's first run reaches its end, the other's does not.
        Path whole = qcow2("w.qcow2", "1M", "write -P 1 0 1M");
        Path halves = qcow2("h.qcow2", "1M", "write -P 1 512k 512k", "write -P 1 0 512k");
        assertEquals("Strict mode: Offset 0 block status mismatch!\n", both("-s", whole, halves));
        both("-T", "off", whole, halves);
    }

    @Test
    void errorsAsQemuImgs() throws Exception {
        Path a = qcow2("a.qcow2", "1M");
        both(a, dir.resolve("missing.qcow2"));
        both(dir.resolve("missing.qcow2"), a);
        both("-T", "bogus", a, a);
        both("-f", "bogus", a, a);
        Files.writeString(dir.resolve("text.raw"), "hello");
        both(a, dir.resolve("text.raw"));
    }
}
