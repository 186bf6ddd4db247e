package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code dd} side by side with qemu-img dd 7.2, each in a folder of its own holding the same inputs (a raw file and
 * a qcow2 image with data and zeroes): the same exit code and messages, and the same output: the same bytes for raw,
 * the same contents and allocation for qcow2, and the qcow2 input as it was. In the arguments {@code @} stands for the
 * folder.
 */
class CliDdTest {
    private static final Pattern OFFSET = Pattern.compile(", \"offset\": \\d+");

    @TempDir
    Path dir;
    private int cases;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private static void inputs(Path f) throws IOException {
        try (RandomAccessFile r = new RandomAccessFile(f.resolve("in.raw").toFile(), "rw")) {
            r.setLength(3 << 20);
            r.seek(1 << 20);
            r.write("hello".getBytes());
            r.seek((3 << 20) - 1);
            r.write(9);
        }
        Path q = f.resolve("src.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", q.toString(), "3M");
        Qemu.io(q, "write -P 7 1000k 100k", "write -z 2M 64k", "write -P 8 3000k 10k");
    }

    @ParameterizedTest
    @ValueSource(strings = {"if=@/in.raw of=@/x.raw", "if=@/in.raw of=@/x.raw bs=1M skip=1 count=2",
            "-O qcow2 if=@/in.raw of=@/x.qcow2 bs=64k count=5", "if=@/in.raw of=@/x.raw skip=100000",
            "if=@/in.raw of=@/x.raw bs=1000 count=3 skip=1", "if=@/in.raw of=@/x.raw bs=1000 count=3000 skip=1",
            "-O qcow2 if=@/src.qcow2 of=@/x.qcow2 bs=4k skip=200", "if=@/src.qcow2 of=@/x.raw bs=100k count=20 skip=9",
            "-f raw if=@/src.qcow2 of=@/x.raw", "-O qcow2 if=@/src.qcow2 of=@/x.qcow2 bs=3M",
            "if=@/in.raw", "if=@/in.raw of=@/x.raw foo=1", "x", "if=@/in.raw of=@/x.raw bs=0",
            "if=@/in.raw of=@/x.raw bs=3G", "if=@/in.raw of=@/x.raw count=-1", "-O foo if=@/in.raw of=@/x",
            "if=@/nope of=@/x.raw", "if=@/in.raw of=@/no/x.raw",
            // OUTPUT that an open holds (here INPUT itself): refused before anything is written to it
            "if=@/src.qcow2 of=@/src.qcow2", "-O qcow2 if=@/src.qcow2 of=@/src.qcow2"})
    void sameAsQemuImg(String line) throws IOException {
        cases++;
        Path theirs = Files.createDirectories(dir.resolve("qemu" + cases));
        Path ours = Files.createDirectories(dir.resolve("ours" + cases));
        inputs(theirs);
        inputs(ours);
        List<String> q = new ArrayList<>(List.of("qemu-img", "dd"));
        List<String> o = new ArrayList<>(List.of("dd"));
        for (String a : line.split(" ")) {
            q.add(a.replace("@", theirs.toString()));
            o.add(a.replace("@", ours.toString()));
        }
        Qemu.Result r = Qemu.exec(q);
        Cli.Run mine = Cli.ours(o.toArray(String[]::new));
        String context = line + ": " + r.stderr() + " / " + mine.err();
        assertEquals(r.exitCode(), mine.code(), context);
        assertEquals(r.stdout(), mine.out(), context);
        assertEquals(r.stderr().replace(theirs.toString(), ours.toString()).replace("qemu-img: ", "qcow2-loom: "),
                mine.err(), context);
        for (String out : List.of("x.raw", "x.qcow2", "src.qcow2")) {
            Path a = theirs.resolve(out);
            Path b = ours.resolve(out);
            assertEquals(Files.exists(a), Files.exists(b), context);
            if (!Files.exists(a)) {
                continue;
            }
            if (out.endsWith(".raw")) {
                assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), context);
            } else {
                assertEquals("Images are identical.\n", Qemu.img("compare", a.toString(), b.toString()), context);
                assertEquals(OFFSET.matcher(Qemu.img("map", "--output=json", a.toString())).replaceAll(""),
                        OFFSET.matcher(Qemu.img("map", "--output=json", b.toString())).replaceAll(""), context);
                assertEquals(Arrays.asList(Qemu.img("info", a.toString()).split("\n")).subList(2, 3),
                        Arrays.asList(Qemu.img("info", b.toString()).split("\n")).subList(2, 3), "virtual size");
            }
        }
    }
}
