package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.ZeroRangeHere;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * serve's block device flags against qemu-nbd's. {@code --discard} and {@code --detect-zeroes}: the same client
 * requests (writes of zeroes, a trim, zero writes with and without a hole allowed) sent through each server to a
 * copy of one image leave the copies with the same map and contents, for each mode and its default (trims ignored),
 * for qcow2 and raw, and by --image-opts' {@code discard} and {@code detect-zeroes} (the latter overruled by the
 * flag, as qemu-nbd sets the node's after its open). {@code --cache} and {@code -n} open the image's file with
 * O_DIRECT where qemu-nbd's do; {@code --aio} picks the storage backend. A bad flag is refused in qemu-nbd's words.
 */
class CliServeBlockFlagsTest extends QemuFolderTest {
    /** What a client sends, through qemu-io's NBD client: zeroes written, trimmed and zeroed, with holes or not. */
    private static final List<String> REQUESTS = List.of("write -P 0 0 64k", "write -P 0 68k 4k", "discard 1M 1M",
            "write -z 2M 1M", "write -z -u 3M 1M", "write -P 0 5M 1M", "write -P 0x22 6M 64k");
    /**
     * And where the host zeroes a raw file as QEMU's does (a qcow2 image's clusters are the driver's own): fast zero
     * writes on 512-byte sectors that are not whole 4 KiB blocks (with O_DIRECT, QEMU's request alignment is the
     * sector where the kernel takes it).
     */
    private static final List<String> FAST_ZEROES = List.of("write -z -n 7340544 1024", "write -z -n -u 7602688 7680");

    /** Two copies of an image whose 8 MiB are all written; our copy first. */
    private List<Path> copies(String format) throws Exception {
        Path ours = dir.resolve("ours." + format);
        Qemu.img("create", "-q", "-f", format, ours.toString(), "8M");
        Qemu.ioFormat(format, ours, "write -P 0x5a 0 8M");
        Path theirs = dir.resolve("theirs." + format);
        Files.copy(ours, theirs);
        return List.of(ours, theirs);
    }

    /**
     * Sends {@link #REQUESTS} (and {@link #FAST_ZEROES}) to each server, stops both, and compares their answers and
     * what they left.
     */
    private void sameAsQemuNbd(String format, List<String> oursArgs, List<String> theirsArgs) throws Exception {
        List<Path> images = copies(format);
        String what = oursArgs + " on " + format;
        // A raw zero write is fallocate's; where io_uring or the file system lacks it, zeroes are written (and
        // trims too): the same data, compared below; but not the same map, and fast zero writes are refused.
        boolean direct = oursArgs.contains("--cache=none");
        boolean hostAsQemus = format.equals("qcow2")
                || ZeroRangeHere.works(dir) && (!direct || ZeroRangeHere.directAlignmentAsQemu(dir));
        List<String> requests = new ArrayList<>(REQUESTS);
        if (hostAsQemus) {
            requests.addAll(FAST_ZEROES);
        }
        List<List<String>> answers = new ArrayList<>();
        try (NbdProcess ours = NbdProcess.ours(dir, args(oursArgs, images.get(0)));
                NbdProcess theirs = NbdProcess.qemu(dir, args(theirsArgs, images.get(1)))) {
            for (NbdProcess server : List.of(ours, theirs)) {
                List<String> io = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
                for (String r : requests) {
                    io.addAll(List.of("-c", r));
                }
                io.add(server.uri());
                Qemu.Result r = Qemu.exec(io); // a refused fast zero write fails qemu-io's run
                List<String> answer = new ArrayList<>(List.of("exit " + r.exitCode(), r.stderr()));
                r.stdout().lines().filter(l -> !l.contains(" ops; ")).forEach(answer::add); // timings aside
                answers.add(answer);
            }
        }
        assertEquals(answers.get(1), answers.get(0), what);
        if (hostAsQemus) {
            QemuMap theirMap = QemuMap.of(images.get(1).toString()).merged();
            assertEquals(theirMap, QemuMap.of(images.get(0).toString()).merged(), what);
        }
        Qemu.Result compare = Qemu.exec(List.of("qemu-img", "compare", "-f", format, "-F", format,
                images.get(0).toString(), images.get(1).toString()));
        assertEquals(0, compare.exitCode(), what + ": " + compare.stdout() + compare.stderr());
        if (format.equals("qcow2")) {
            assertTrue(Qemu.img("check", images.get(0).toString()).contains("No errors were found"), what);
        }
    }

    /** {@code flags} with the image's placeholder {@code IMG} (in an --image-opts string) or the image last. */
    private static String[] args(List<String> flags, Path image) {
        List<String> args = new ArrayList<>();
        boolean named = false;
        for (String f : flags) {
            named |= f.contains("IMG");
            args.add(f.replace("IMG", image.toString()));
        }
        if (!named) {
            args.add(image.toString());
        }
        return args.toArray(String[]::new);
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"qcow2,''", "qcow2,--discard=unmap", "qcow2,--detect-zeroes=on",
        "qcow2,--discard=on --detect-zeroes=unmap", "raw,''", "raw,--discard=unmap --detect-zeroes=unmap",
        "raw,--cache=none", "raw,--cache=none --discard=unmap", "qcow2,--cache=none --discard=unmap"})
    void theImageEndsAsQemuNbdLeavesIt(String format, String flags) throws Exception {
        List<String> args = new ArrayList<>(List.of("-f", format));
        if (!flags.isEmpty()) {
            args.addAll(List.of(flags.split(" ")));
        }
        sameAsQemuNbd(format, args, args);
    }

    /**
     * --image-opts' discard is taken; its detect-zeroes is set over by the flag (off unless given), and needs the
     * discards passed on, by its discard or by the flag.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"discard=unmap,detect-zeroes=on", "--discard=unmap --detect-zeroes=on detect-zeroes=unmap",
        "--discard=unmap discard=ignore", "--discard=unmap --detect-zeroes=unmap discard=ignore"})
    void imageOptionsAsQemuNbdTakesThem(String given) throws Exception {
        List<String> args = new ArrayList<>(List.of(given.split(" ")));
        String options = args.removeLast();
        args.addAll(List.of("--image-opts", "driver=qcow2,file.filename=IMG," + options));
        sameAsQemuNbd("qcow2", args, args);
    }

    /** Whether a file descriptor of process {@code pid} on {@code image} is open with O_DIRECT. */
    private static boolean openDirect(long pid, Path image) throws Exception {
        Path fds = Path.of("/proc", Long.toString(pid), "fd");
        boolean found = false;
        try (var links = Files.list(fds)) {
            for (Path fd : links.toList()) {
                Path target;
                try {
                    target = Files.readSymbolicLink(fd);
                } catch (java.io.IOException e) {
                    continue; // closed meanwhile
                }
                if (target.equals(image.toRealPath())) {
                    found = true;
                    String info = Files.readString(Path.of("/proc", Long.toString(pid), "fdinfo",
                            fd.getFileName().toString()));
                    String flags = info.lines().filter(l -> l.startsWith("flags:")).findFirst().orElseThrow();
                    if ((Long.parseLong(flags.substring(6).trim(), 8) & 040000) != 0) {
                        return true;
                    }
                }
            }
        }
        assertTrue(found, "the server holds no descriptor of " + image);
        return false;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"-n", "--cache=directsync", "--cache=writeback", "--cache=unsafe"})
    void cacheModesOpenTheFileAsQemuNbdOpensIt(String flag) throws Exception {
        List<Path> images = copies("qcow2");
        try (NbdProcess ours = NbdProcess.ours(dir, flag, "-f", "qcow2", images.get(0).toString());
                NbdProcess theirs = NbdProcess.qemu(dir, flag, "-f", "qcow2", images.get(1).toString())) {
            assertEquals(openDirect(theirs.pid(), images.get(1)), openDirect(ours.pid(), images.get(0)), flag);
            for (NbdProcess server : List.of(ours, theirs)) {
                Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "write -P 0x31 0 64k", server.uri()));
            }
        }
        assertEquals(0, Qemu.exec(List.of("qemu-img", "compare", images.get(0).toString(),
                images.get(1).toString())).exitCode(), flag);
    }

    /**
     * {@code -s}: the writes go to a temporary image over FILE, in $TMPDIR, and FILE stays as it was; the temporary
     * image is gone once the server ends.
     */
    @Test
    void aTemporaryImageTakesTheWritesAsQemuNbdsDoes() throws Exception {
        List<Path> images = copies("qcow2");
        Path pristine = dir.resolve("pristine.qcow2");
        Files.copy(images.get(0), pristine);
        Path tmp = dir.resolve("tmp");
        try (NbdProcess ours = NbdProcess.ours(dir, "-s", "-f", "qcow2", images.get(0).toString());
                NbdProcess theirs = NbdProcess.qemu(dir, "-s", "-f", "qcow2", images.get(1).toString())) {
            try (var files = Files.list(tmp)) {
                assertEquals(1, files.filter(f -> f.getFileName().toString().startsWith("vl.")).count(),
                        "our temporary image (qemu-nbd deletes its name at once)");
            }
            for (NbdProcess server : List.of(ours, theirs)) {
                Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "write -P 0x31 0 64k", "-c", "discard 1M 64k", "-c",
                        "read -P 0x31 0 64k", "-c", "read -P 0x5a 64k 960k", server.uri()));
            }
        }
        for (Path image : images) {
            assertEquals(0, Qemu.exec(List.of("qemu-img", "compare", pristine.toString(), image.toString()))
                    .exitCode(), image + " changed");
        }
        try (var files = Files.list(tmp)) {
            assertEquals(List.of(), files.filter(f -> f.getFileName().toString().startsWith("vl.")).toList());
        }
        Cli.Run opts = Cli.ours("serve", "-s", "--socket", path("o.sock"), "--image-opts",
                "driver=qcow2,file.filename=" + images.get(0));
        assertEquals(1, opts.code());
        assertTrue(opts.err().contains("-s with --image-opts is not done"), opts.err());
    }

    /**
     * {@code -o}: the export is the image from that byte on, its size rounded up to whole sectors as QEMU's raw
     * node's; read whole and written at its start through each server, the same bytes and the same images.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"0x100000", "8388096"})
    void anOffsetExportsTheImageFromItAsQemuNbdDoes(String offset) throws Exception {
        List<Path> images = copies("qcow2");
        Qemu.io(images.get(0), "write -P 0x21 1M 1M", "write -P 0x22 8388000 192");
        Files.copy(images.get(0), images.get(1), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        try (NbdProcess ours = NbdProcess.ours(dir, "-o", offset, "-f", "qcow2", images.get(0).toString());
                NbdProcess theirs = NbdProcess.qemu(dir, "-o", offset, "-f", "qcow2", images.get(1).toString())) {
            for (NbdProcess server : List.of(ours, theirs)) {
                Path copy = dir.resolve((server == ours ? "ours" : "theirs") + ".raw");
                Qemu.run(List.of("qemu-img", "convert", "-f", "raw", "-O", "raw", server.uri(), copy.toString()));
                Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "write -P 0x44 0 512", server.uri()));
            }
        }
        assertEquals(Files.size(dir.resolve("theirs.raw")), Files.size(dir.resolve("ours.raw")), offset);
        assertEquals(-1, Files.mismatch(dir.resolve("theirs.raw"), dir.resolve("ours.raw")), offset);
        assertEquals(0, Qemu.exec(List.of("qemu-img", "compare", images.get(0).toString(),
                images.get(1).toString())).exitCode(), offset);
    }

    /**
     * An offset that is no multiple of 512 leaves a tail past the image's end in the rounded size: it reads as
     * zeroes and takes no writes (qemu-nbd 7.2 fails the read, then aborts on an assertion in its sparse reply).
     */
    @Test
    void theTailPastTheImagesEndReadsAsZeroes() throws Exception {
        List<Path> images = copies("qcow2");
        try (NbdProcess ours = NbdProcess.ours(dir, "-o", "100", "-f", "qcow2", images.get(0).toString())) {
            Qemu.Result io = Qemu.exec(List.of("qemu-io", "-f", "raw", "-c", "read -P 0x5a 0 8388508", "-c",
                    "read -P 0 8388508 100", "-c", "write -P 0x44 0 512", "-c", "write 8388096 512", ours.uri()));
            assertTrue(!io.stdout().contains("Pattern verification failed") && !io.stdout().contains("read failed")
                    && io.stdout().contains("wrote 512/512 bytes at offset 0")
                    && io.stdout().contains("write failed: Invalid argument"), io.stdout());
            assertTrue(Qemu.img("info", ours.uri()).contains("virtual size: 8 MiB (8388608 bytes)"));
        }
        Qemu.io(images.get(0), "read -P 0x5a 0 100", "read -P 0x44 100 512", "read -P 0x5a 612 8387996");
    }

    /** --aio picks the storage backend: threads is FileChannel (so no event loop), io_uring ours too. */
    @Test
    void aioPicksTheStorageBackend() throws Exception {
        List<Path> images = copies("qcow2");
        try (NbdProcess threads = NbdProcess.ours(dir, "--aio=threads", "-f", "qcow2", images.get(0).toString())) {
            assertTrue(threads.banner().contains("(virtual)"), threads.banner());
        }
        try (NbdProcess uring = NbdProcess.ours(dir, "--aio=io_uring", "--cache=none", "-f", "qcow2",
                images.get(0).toString())) {
            assertTrue(uring.banner().contains("(loop:1)"), uring.banner());
        }
    }

    @Test
    void badFlagsAreRefusedInQemuNbdsWords() throws Exception {
        copies("qcow2");
        String img = path("ours.qcow2");
        for (String flags : List.of("--discard=bogus", "--detect-zeroes=bogus", "--detect-zeroes=unmap",
                "--discard=unmap --discard=unmap", "--detect-zeroes=unmap --discard=unmap",
                "--discard=x --detect-zeroes=y", "--discard=on --detect-zeroes=unmap --detect-zeroes=zz",
                "--cache=bogus", "-n --cache=none", "-n -n", "--aio=bogus", "--aio=threads --aio=io_uring",
                "--aio=native", "--cache=writeback --aio=native", "--aio=x --cache=y", "-o abc", "-o 5M", "-o -1",
                "-o 0x", "-o 99999999")) {
            List<String> qemu = new ArrayList<>(List.of("-k", path("q.sock")));
            List<String> ours = new ArrayList<>(List.of("--socket", path("o.sock")));
            for (List<String> args : List.of(qemu, ours)) {
                args.addAll(List.of(flags.split(" ")));
                args.add(img);
            }
            NbdProcess.refusedAlike(qemu, ours);
        }
        // Linux AIO is not done here: refused by name where qemu-nbd would serve.
        Cli.Run nativeAio = Cli.ours("serve", "--socket", path("o.sock"), "--aio=native", "-n", img);
        assertEquals(1, nativeAio.code());
        assertTrue(nativeAio.err().contains("Linux AIO (aio=native) is not implemented"), nativeAio.err());
    }
}
