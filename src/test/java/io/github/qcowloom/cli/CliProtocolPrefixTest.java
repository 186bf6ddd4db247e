package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.sameAsQemuImg;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Names with a local file's protocol prefix ({@code file:}, {@code host_device:}, {@code host_cdrom:}) read as
 * qemu-img reads them: on the command line, for images opened and made, and as the backing file name an image
 * stores, which QEMU opens from its working directory. Each compared with qemu-img's output, errors and images.
 */
class CliProtocolPrefixTest {
    @TempDir
    Path dir;

    private Path base;
    private Path top;

    @BeforeEach
    void chain() {
        Qemu.assume();
        base = dir.resolve("base.qcow2");
        top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "64M");
        Qemu.io(base, "write -P 0x22 0 1M");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "file:" + base, "-F", "qcow2", top.toString());
    }

    @Test
    void imagesNamedWithAPrefixOpenAsInQemuImg() throws Exception {
        String info = sameAsQemuImg("info", "--backing-chain", "file:" + top);
        assertTrue(info.startsWith("image: " + top + "\n") && info.contains("backing file: file:" + base), info);
        sameAsQemuImg("info", "--output=json", "file:" + top);
        sameAsQemuImg("check", "file:" + top);
        assertTrue(sameAsQemuImg("map", "file:" + top).contains(" " + base + "\n")); // the File column
        sameAsQemuImg("compare", "file:" + base, "file:" + top);
        sameAsQemuImg("measure", "-O", "qcow2", "file:" + top);
        sameAsQemuImg("snapshot", "-l", "file:" + base);
        sameAsQemuImg("info", "host_device:/dev/null");
        // Refused in QEMU's words: no name after the prefix, a file of the wrong kind, one not there, a rest that
        // reads as a protocol (QEMU opens "./file:..."), a file.driver of the wrong kind.
        for (String name : List.of("file:", "host_device:", "host_cdrom:", "host_device:" + base,
                "host_cdrom:" + base, "file:/dev/null", "file:" + dir.resolve("missing"), "file:file:x")) {
            sameAsQemuImg("info", name);
        }
        sameAsQemuImg("check", "--image-opts", "driver=qcow2,file.driver=host_device,file.filename=" + base);
        sameAsQemuImg("check", "--image-opts", "file.driver=file,file.filename=/dev/null");
    }

    @Test
    void newImagesNamedWithAPrefixAreMadeAsQemuImgMakesThem() throws Exception {
        for (String tool : List.of("q", "o")) {
            Path created = dir.resolve(tool + "-created.qcow2");
            Path converted = dir.resolve(tool + "-converted.qcow2");
            Path copied = dir.resolve(tool + "-dd.qcow2");
            List<List<String>> commands = List.of(
                    List.of("create", "-q", "-f", "qcow2", "-b", "file:" + base, "-F", "qcow2", "file:" + created),
                    List.of("convert", "-O", "qcow2", "file:" + top, "file:" + converted),
                    List.of("dd", "-O", "qcow2", "if=file:" + top, "of=file:" + copied, "bs=64k", "count=32"));
            for (List<String> command : commands) {
                if (tool.equals("q")) {
                    Qemu.img(command.toArray(String[]::new));
                } else {
                    Cli.succeeding(command.toArray(String[]::new));
                }
            }
        }
        for (String made : List.of("created", "converted", "dd")) {
            Path theirs = dir.resolve("q-" + made + ".qcow2");
            Path ours = dir.resolve("o-" + made + ".qcow2");
            assertEquals(infoBesidesDiskSize(theirs).replace(theirs.toString(), ours.toString()),
                    infoBesidesDiskSize(ours), made);
            assertEquals("Images are identical.\n", Qemu.img("compare", theirs.toString(), ours.toString()), made);
            assertTrue(Qemu.img("check", ours.toString()).startsWith("No errors were found"), made);
        }
        // Refusals and a folder that is not there, in qemu-img's words; a convert -n into a missing target (plain
        // too: it was worded as if convert had made it).
        Path missing = dir.resolve("missing");
        sameAsQemuImg("create", "-q", "-f", "qcow2", "file:", "1M");
        sameAsQemuImg("create", "-f", "qcow2", "file:" + missing.resolve("c.qcow2"), "1M");
        sameAsQemuImg("create", "-q", "-f", "qcow2", "-b", "file:" + missing, "-F", "qcow2",
                dir.resolve("z.qcow2"));
        sameAsQemuImg("create", "-q", "-f", "qcow2", "-b", "file:/dev/null", "-F", "raw", dir.resolve("z.qcow2"));
        sameAsQemuImg("convert", "-O", "qcow2", top, "file:" + missing.resolve("t.qcow2"));
        sameAsQemuImg("convert", "-n", "-O", "qcow2", top, "file:" + missing);
        sameAsQemuImg("convert", "-n", "-O", "qcow2", top, missing);
        assertEquals(List.of("base.qcow2", "o-converted.qcow2", "o-created.qcow2", "o-dd.qcow2", "q-converted.qcow2",
                "q-created.qcow2", "q-dd.qcow2", "top.qcow2"), files());
    }

    @Test
    void aBackingFileNamedWithAPrefixOpensFromTheWorkingDirectory() throws Exception {
        // The name relative to the working directory (the test's, qemu-img's and ours alike), not to the image's.
        Path fromHere = Path.of("").toAbsolutePath().relativize(base);
        Path overlay = dir.resolve("overlay.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "file:" + fromHere, "-F", "qcow2", overlay.toString());
        sameAsQemuImg("info", "--backing-chain", overlay);
        sameAsQemuImg("map", overlay);
        sameAsQemuImg("compare", base, overlay);
        byte[] first = new byte[4096];
        try (BlockDevice d = ImageFormat.open(overlay, "qcow2", OpenOptions.readOnlyDefaults())) {
            d.read(0, ByteBuffer.wrap(first));
        }
        byte[] written = new byte[4096];
        Arrays.fill(written, (byte) 0x22);
        assertArrayEquals(written, first);
        // The same name beside the image, as the image's folder does not count for it: missing for both.
        Path beside = dir.resolve("beside.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "file:base.qcow2", "-F", "qcow2", beside.toString(), "64M");
        sameAsQemuImg("info", "--backing-chain", beside);
        sameAsQemuImg("map", beside);
        // A write into the overlay through ours, committed down to the base by ours: qemu-img reads it there.
        byte[] data = new byte[65536];
        Arrays.fill(data, (byte) 0x33);
        try (BlockDevice d = ImageFormat.open(overlay, "qcow2", OpenOptions.readWriteDefaults())) {
            d.write(2 << 20, ByteBuffer.wrap(data));
        }
        Cli.succeeding("commit", overlay.toString());
        assertTrue(Qemu.io(base, "read -P 0x33 2M 64k").contains("read 65536/65536"));
        assertTrue(Qemu.img("check", base.toString()).startsWith("No errors were found"));
    }

    /** qemu-img info but for the host space taken, which the file system decides. */
    private static String infoBesidesDiskSize(Path image) {
        return Qemu.img("info", image.toString()).replaceAll("disk size: .*\n", "");
    }

    private List<String> files() throws Exception {
        try (var list = Files.list(dir)) {
            return list.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
