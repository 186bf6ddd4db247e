package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.LockHolder;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * --image-opts (and convert's --target-image-opts) against qemu-img's: each command names its image by options and
 * does what it does with the name alone; the options taken change the open (locks, read-only); names and options
 * qemu-img refuses are refused in its words.
 */
class CliImageOptsTest extends QemuFolderTest {
    private String image() {
        String img = path("a.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img, "4M");
        Qemu.io(Path.of(img), "write -P 0x11 0 1M", "write -z 2M 64k");
        return img;
    }

    private static String opts(String img) {
        return "driver=qcow2,file.driver=file,file.filename=" + img;
    }

    /** Our run's exit code and output, then qemu-img's for the same arguments. */
    private static void same(String... args) {
        List<String> q = new ArrayList<>(List.of("qemu-img"));
        q.addAll(List.of(args));
        Qemu.Result theirs = Qemu.exec(q);
        Cli.Run mine = ours(args);
        String what = String.join(" ", args);
        assertEquals(theirs.exitCode(), mine.code(), what + ": " + theirs.stderr() + " / " + mine.err());
        assertEquals(theirs.stderr().replace("qemu-img: ", "qcow2-loom: "), mine.err(), what);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"a.qcow2", "file=a.qcow2", "driver=qcow2", "driver=qcow2,file=a.qcow2",
        "driver=qcow2,file.filename=a.qcow2,bogus=1", "driver=raw,file.filename=a.qcow2,bogus=1",
        "driver=qcow2,file.filename=a.qcow2,file.bogus=1", "driver=qcow2,file.filename=a.qcow2,cache.direct=maybe",
        "driver=qcow2,file.filename=a.qcow2,file.locking=maybe",
        "driver=qcow2,file.filename=a.qcow2,l2-cache-size=xyz", "driver=qcow2,file.filename=a.qcow2,discard=bogus",
        "driver=qcow2,file.filename=a.qcow2,detect-zeroes=bogus", "driver=qcow2,file.filename=a.qcow2,detect-zeroes=",
        "driver=qcow2,file.filename=a.qcow2,detect-zeroes=unmap",
        "driver=qcow2,file.filename=a.qcow2,discard=off,detect-zeroes=unmap",
        "driver=qcow2,file.filename=a.qcow2,discard=on,detect-zeroes=unmap"})
    void refusesAsQemuImg(String spec) {
        String img = image();
        String named = spec.replace("a.qcow2", img);
        same("info", "--image-opts", named);
        same("check", "--image-opts", named);
        same("map", "--image-opts", named);
    }

    /** A file that is not there is named inside the options' context, as qemu-img's file layer names it. */
    @Test
    void aMissingFileIsNamedWithinTheOptionString() {
        String missing = opts(path("missing.qcow2"));
        same("info", "--image-opts", missing);
        same("check", "--image-opts", missing);
        same("map", "--image-opts", missing);
        same("snapshot", "-l", "--image-opts", missing);
        same("measure", "-O", "qcow2", "--image-opts", missing);
        same("compare", "--image-opts", missing, opts(image()));
        same("bench", "-c", "1", "--image-opts", missing);
        same("dd", "--image-opts", "if=" + missing, "of=" + path("out.raw"));
    }

    @Test
    void aFormatBesideTheOptionsIsRefused() {
        same("info", "-f", "qcow2", "--image-opts", opts(image()));
    }

    @Test
    void anEmptyOptionIsPassedOver() {
        String img = image();
        assertEquals(ours("info", img).out(), ours("info", "--image-opts", opts(img) + ",").out());
    }

    @Test
    void readCommandsAnswerAsForTheName() {
        String img = image();
        for (List<String> command : List.of(List.of("info"), List.of("info", "--output=json"), List.of("check"),
                List.of("map", "--output=json"), List.of("measure", "-O", "qcow2"))) {
            List<String> byName = new ArrayList<>(command);
            byName.add(img);
            List<String> byOpts = new ArrayList<>(command);
            byOpts.addAll(List.of("--image-opts", opts(img) + ",cache.direct=on,l2-cache-size=64k"));
            Cli.Run a = ours(byName.toArray(String[]::new));
            Cli.Run b = ours(byOpts.toArray(String[]::new));
            assertEquals(0, b.code(), b.err());
            assertEquals(a.out(), b.out(), command.toString());
        }
        Cli.Run raw = ours("info", "--image-opts", "driver=raw,file.filename=" + img);
        assertTrue(raw.out().contains("file format: raw"), raw.out());
        assertEquals(0, ours("compare", "--image-opts", opts(img), "driver=qcow2,file.filename=" + img).code());
        String out = path("out.raw");
        Cli.Run dd = ours("dd", "--image-opts", "if=" + opts(img), "of=" + out, "bs=64k", "count=16");
        assertEquals(0, dd.code(), dd.err());
        Qemu.ioFormat("raw", Path.of(out), "read -P 0x11 0 1M");
    }

    @Test
    void commandsThatChangeTheImageTakeItsOptions() {
        String img = image();
        assertEquals(0, ours("resize", "--image-opts", opts(img), "8M").code());
        assertEquals(0, ours("snapshot", "-c", "s1", "--image-opts", opts(img)).code());
        assertEquals(0, ours("bitmap", "--add", "--image-opts", opts(img), "b0").code());
        assertEquals(0, ours("amend", "-o", "lazy_refcounts=on", "--image-opts", opts(img)).code());
        String info = Qemu.img("info", img);
        assertTrue(info.contains("8 MiB") && info.contains("s1") && info.contains("b0")
                && info.contains("lazy refcounts: true"), info);
        Qemu.img("check", img);
        String top = path("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", top);
        Qemu.io(Path.of(top), "write -P 0x22 0 64k");
        assertEquals(0, ours("rebase", "-u", "-b", "", "--image-opts", opts(top)).code());
        assertTrue(!Qemu.img("info", top).contains("backing file"));
        Qemu.img("rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", top);
        assertEquals(0, ours("commit", "--image-opts", opts(top)).code());
        Qemu.io(Path.of(img), "read -P 0x22 0 64k", "read -P 0x11 64k 960k");
        // read-only=on: every command that writes is refused, in qemu-img's words
        String readOnly = opts(img) + ",read-only=on";
        same("resize", "--image-opts", readOnly, "16M");
        same("check", "-r", "all", "--image-opts", readOnly);
        same("amend", "-o", "lazy_refcounts=off", "--image-opts", readOnly);
        same("snapshot", "-c", "s2", "--image-opts", readOnly);
        same("bitmap", "--add", "--image-opts", readOnly, "b1");
        same("commit", "--image-opts", opts(top) + ",read-only=on");
        same("rebase", "-u", "-b", "", "--image-opts", opts(top) + ",read-only=on");
        String raw = path("r.raw");
        Qemu.img("create", "-q", "-f", "raw", raw, "8M");
        same("convert", "-n", "-C", "--target-image-opts", img, "driver=raw,file.filename=" + raw + ",read-only=on");
        assertTrue(Qemu.img("info", img).contains("lazy refcounts: true"), "unchanged");
    }

    /**
     * detect-zeroes=unmap needs discards passed on: qemu-img's commit and convert's target (unless -S 0) open with
     * them, its other commands without, as its refusals show.
     */
    @Test
    void detectZeroesUnmapWhereQemuImgOpensWithUnmap() {
        String img = image();
        String unmapping = ",detect-zeroes=unmap";
        same("bench", "-c", "1", "-w", "--image-opts", opts(img) + unmapping);
        same("resize", "--image-opts", opts(img) + unmapping, "8M");
        String raw = path("r.raw");
        Qemu.img("create", "-q", "-f", "raw", raw, "4M");
        same("convert", "-n", "--target-image-opts", img, "driver=raw,file.filename=" + raw + unmapping);
        same("convert", "-n", "-S", "0", "--target-image-opts", img, "driver=raw,file.filename=" + raw + unmapping);
        for (String who : List.of("theirs", "mine")) {
            String top = path(who + ".qcow2");
            Qemu.img("create", "-q", "-f", "qcow2", "-b", img, "-F", "qcow2", top);
            Qemu.io(Path.of(top), "write -P 0 0 64k", "write -P 0x33 64k 64k");
        }
        Qemu.img("commit", "--image-opts", opts(path("theirs.qcow2")) + unmapping);
        Cli.Run commit = ours("commit", "--image-opts", opts(path("mine.qcow2")) + unmapping);
        assertEquals(0, commit.code(), commit.err());
        Qemu.io(Path.of(img), "read -P 0 0 64k", "read -P 0x33 64k 64k");
    }

    @Test
    void convertTakesOptionsForItsSourcesAndWithNItsTarget() {
        String img = image();
        String theirs = path("theirs.qcow2");
        String mine = path("mine.qcow2");
        for (String t : List.of(theirs, mine)) {
            Qemu.img("create", "-q", "-f", "qcow2", t, "4M");
        }
        Qemu.img("convert", "-n", "--image-opts", "--target-image-opts", opts(img), opts(theirs));
        Cli.Run r = ours("convert", "-n", "--image-opts", "--target-image-opts", opts(img), opts(mine));
        assertEquals(0, r.code(), r.err());
        assertEquals(Qemu.img("map", "--output=json", theirs), Qemu.img("map", "--output=json", mine));
        same("convert", "--target-image-opts", "-O", "raw", img, path("x.raw"));
        same("convert", "-n", "--target-image-opts", "-O", "qcow2", img, opts(mine));
        Cli.Run byOpts = ours("convert", "--image-opts", "-O", "raw", opts(img), path("new.raw"));
        assertEquals(0, byOpts.code(), byOpts.err());
        assertTrue(Qemu.img("compare", "-f", "raw", "-F", "qcow2", path("new.raw"), img).contains("identical"));
    }

    @Test
    void theLockOptionsChangeWhatTheOpenTakes() throws Exception {
        String img = image();
        try (LockHolder writer = LockHolder.start(Path.of(img), LockHolder.WRITER, "qemu-io", "-f", "qcow2", img)) {
            assertNotEquals(0, ours("map", "--image-opts", opts(img)).code(), "a writer refuses a reader");
            assertEquals(0, ours("map", "--image-opts", opts(img) + ",file.locking=off").code());
            assertEquals(0, ours("map", "--image-opts", opts(img) + ",force-share=on").code());
            same("map", "--image-opts", opts(img) + ",force-share=on,read-only=off");
        }
        try (LockHolder reader = LockHolder.start(Path.of(img), LockHolder.READER, "qemu-io", "-r", "-f", "qcow2",
                img)) {
            assertNotEquals(0, ours("check", "-r", "leaks", "--image-opts", opts(img)).code(), "a reader refuses");
            Cli.Run unlocked = ours("check", "-r", "leaks", "--image-opts", opts(img) + ",file.locking=off");
            assertEquals(0, unlocked.code(), unlocked.err());
        }
    }
}
