package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.EncryptedImages;
import io.github.qcowloom.testing.PageCacheDrops;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Short bench runs: every executor, reads and writes, and the side-by-side run against qemu-img bench. */
class BenchSmokeTest {
    @TempDir
    Path dir;

    private static String run(String... args) {
        return Cli.succeeding(args);
    }

    // qemu-img bench's answers: any request size runs (the buffer is aligned for it), and failed requests fail it.
    @Test
    void oddSizesRunAndFailedRequestsFailTheRun() {
        String img = dir.resolve("o.qcow2").toString();
        run("create", "-q", img, "64M");
        for (String size : new String[] {"512", "1000", "2048", "6000"}) {
            for (int i = 0; i < 5; i++) { // the buffer's address varies: an unaligned end came back empty at times
                assertTrue(run("bench", "-c", "20", "-s", size, img).contains("Run completed in"), size);
            }
        }
        // Past the 64M disk, two in flight (each in flight holds a buffer of the request's size).
        Cli.Run r = Cli.ours("bench", "-c", "20", "-d", "2", "-s", "65M", img);
        assertEquals(1, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("20 of 20 requests failed"), r.err());
        assertEquals(1, r.err().lines().filter(l -> l.contains("Failed request:")).count(), r.err());
    }

    @ParameterizedTest
    @ValueSource(strings = {"virtual", "pool:4", "loop:1"})
    void writesThenReadsOnEveryExecutor(String exec) {
        String img = dir.resolve("b.qcow2").toString();
        run("create", "-q", img, "64M");
        String w = run("bench", "-w", "-c", "500", "-d", "16", "-S", "64k", "--flush-interval", "100", "--exec", exec,
                img);
        assertTrue(w.contains("Run completed in"), w);
        // The new L2 table's syncs are ranged, the five flushes' whole.
        Matcher syncs = Pattern.compile("(\\d+) host syncs \\((\\d+) of a range\\)").matcher(w);
        assertTrue(syncs.find(), w);
        long ranged = Long.parseLong(syncs.group(2));
        assertTrue(ranged > 0 && Long.parseLong(syncs.group(1)) >= ranged + 5, w);
        String b = run("bench", "-w", "-c", "500", "-d", "16", "-o", "40M", "-S", "64k", "--batch", "--exec", exec, img);
        assertTrue(b.contains("Run completed in"), b);
        String r = run("bench", "-c", "500", "-d", "16", "--exec", exec, img);
        assertTrue(r.contains("IOPS") && r.contains("p99"), r);
        Qemu.assume();
        Qemu.io(Path.of(img), "read -P 0 0 4k");
        Qemu.img("check", img);
    }

    /**
     * Flushes where qemu-img bench's bench_cb makes them (a raw image, so that every host sync is one): 10 writes, 2
     * in flight, every 4: a completion with 8 and with 4 requests not yet issued flushes, and so does the end,
     * drained (3); without draining, each of the last two completions flushes (4: qemu-img's block layer skips
     * one of them as nothing was written since the other, strace shows 3; a qcow2 image makes 4 there too).
     */
    @Test
    void flushesComeWhereQemuImgBenchMakesThem() {
        String img = dir.resolve("f.raw").toString();
        run("create", "-q", "-f", "raw", img, "64M");
        String drained = run("bench", "-f", "raw", "-w", "-c", "10", "-d", "2", "--flush-interval", "4", img);
        assertTrue(drained.contains("Sending flush every 4 requests") && drained.contains(" 3 host syncs"), drained);
        String undrained = run("bench", "-f", "raw", "-w", "-c", "10", "-d", "2", "--flush-interval", "4",
                "--no-drain", img);
        assertTrue(undrained.contains(" 4 host syncs"), undrained);
    }

    @Test
    void sideBySideWithQemuImgBench() {
        Qemu.assume();
        String img = dir.resolve("q.qcow2").toString();
        run("create", "-q", img, "16M");
        String out = run("bench", "-w", "-c", "200", "-d", "8", "--against-qemu", img);
        assertTrue(out.contains("qemu-img   run 3") && out.contains("median: qcow2-loom"), out);
        // Each pair's own ratio, the tools' order alternating: qemu-img first in the second pair.
        String two = run("bench", "-w", "-c", "200", "-d", "8", "--against-qemu", "--pairs", "2", img);
        assertTrue(two.matches("(?s).*\nper pair, qcow2-loom against qemu-img's faster run of the same pair: "
                + "[0-9.]+x [0-9.]+x \\(min [0-9.]+x, median [0-9.]+x, max [0-9.]+x\\)\n.*"), two);
        assertTrue(two.indexOf("qemu-img   run 2") < two.indexOf("qcow2-loom run 2") && !two.contains("run 3"), two);
        Cli.Run none = Cli.ours("bench", "-c", "20", "--against-qemu", "--pairs", "0", img);
        assertEquals(1, none.code(), none.err());
        assertTrue(none.err().contains("--pairs must be at least 1"), none.err());
    }

    @Test
    void withoutThePageCacheQemuImgRunsWithNativeAndIoUring() {
        Qemu.assume();
        String img = dir.resolve("n.qcow2").toString();
        run("create", "-q", img, "16M");
        String out = run("bench", "-w", "-t", "none", "-c", "200", "-d", "8", "-S", "64k", "--against-qemu", img);
        assertTrue(out.contains("qemu-img native   run 3: ") && out.contains("median: qcow2-loom"), out);
        if (out.contains("-i io_uring refused here")) {
            // This host's qemu-img or kernel lacks io_uring: the comparison is with native alone.
            assertTrue(!out.contains("qemu-img io_uring run") && out.contains("qemu-img -i native"), out);
        } else {
            assertTrue(out.contains("qemu-img io_uring run 3: ") && out.contains("faster: -i "), out);
        }
        assertTrue(out.matches("(?s).*qemu-img native   run 1: [0-9.]+ s, [0-9]+ IOPS, ([0-9.]+ us|n/a) CPU per I/O.*"),
                out);
        assertTrue(out.matches("(?s).*CPU per I/O: qcow2-loom [0-9.]+ us, qemu-img ([0-9.]+ us|n/a).*"), out);
    }

    /**
     * As qemu-img bench, an image given by {@code --image-opts}: its options over -t's, qemu-img given the copy by
     * the same options, and the open refused in qemu-img's words, naming the option string (an encrypted image's
     * secret cannot be given: neither bench takes {@code --object}).
     */
    @Test
    void anImageGivenByOptionsIsBenchedAsQemuImgBenchesIt() {
        Qemu.assume();
        Path img = dir.resolve("a,b.qcow2");
        run("create", "-q", img.toString(), "16M");
        String spec = "driver=qcow2,file.filename=" + img.toString().replace(",", ",,") + ",cache.direct=on";
        String out = run("bench", "-w", "--pattern", "0x5a", "-c", "200", "-d", "8", "-S", "64k", "--image-opts",
                spec);
        assertTrue(out.contains(", O_DIRECT, ") && out.contains("Run completed in"), out);
        Qemu.io(img, "read -P 0x5a 64k 4k");
        String both = run("bench", "-c", "200", "-d", "8", "--against-qemu", "--pairs", "1", "--image-opts", spec);
        assertTrue(both.contains("qemu-img native   run 1: ") && both.contains("median: qcow2-loom"), both);

        Cli.sameAsQemuImg("bench", "-c", "10", "-f", "qcow2", "--image-opts", spec);
        Cli.sameAsQemuImg("bench", "-w", "-c", "10", "--image-opts", spec + ",read-only=on");
        Cli.sameAsQemuImg("bench", "-c", "10", "--image-opts", spec + ",no-such-option=1");
        Path encrypted = dir.resolve("e.qcow2");
        EncryptedImages.create(encrypted, 16 << 20, "");
        String named = "driver=qcow2,file.filename=" + encrypted;
        Cli.sameAsQemuImg("bench", "-c", "10", encrypted);
        Cli.sameAsQemuImg("bench", "-c", "10", "--image-opts", named);
        Cli.sameAsQemuImg("bench", "-c", "10", "--image-opts", EncryptedImages.imageOpts(encrypted));
    }

    /** An io_uring run says how its requests went (through the ring or alone) and where their time went. */
    @Test
    void anIoUringRunSaysHowItsRequestsWent() {
        String img = dir.resolve("u.qcow2").toString();
        run("create", "-q", img, "64M");
        Cli.Run r = Cli.ours("bench", "-w", "-c", "3000", "-d", "16", "-S", "64k", "--storage", "io_uring", img);
        assertEquals(0, r.code(), r.err());
        assertFalse(r.err().contains("these figures are"), r.err()); // io_uring runs here, as StorageBackendTest says
        String out = r.out();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\n  io_uring: ([0-9]+) of ([0-9]+) requests "
                + "through the ring(, [0-9.]+ per submitting call; prepared to completed [0-9]+ us, completed to "
                + "resumed [0-9]+ us \\(means\\)"
                + "| \\(each made directly: alone in the queue, or from the page cache on a loop\\))\n").matcher(out);
        assertTrue(m.find(), out);
        // The 3000 writes, and the image's own metadata reads and writes, which a 64 MiB image keeps few of.
        long requests = Long.parseLong(m.group(2));
        assertTrue(requests >= 3000 && requests < 3300, out);
        if (Runtime.getRuntime().availableProcessors() > 1) {
            // Two carriers run two of the 16 writers at once: some requests meet another in the queue.
            assertTrue(Long.parseLong(m.group(1)) > 0, out);
        }
    }

    /**
     * On event loops at depth 64 most O_DIRECT writes go through a loop's ring (one alone on its loop is made
     * directly), and the image stays sound. (Through the page cache most are made on the loop's thread.)
     */
    @Test
    void aRunOnEventLoopsSendsItsWritesThroughTheirRings() {
        String img = dir.resolve("l.qcow2").toString();
        run("create", "-q", img, "64M");
        Cli.Run r = Cli.ours("bench", "-w", "-t", "none", "-c", "3000", "-d", "64", "-S", "64k", "--storage",
                "io_uring", "--exec", "loop:2", img);
        assertEquals(0, r.code(), r.err());
        assertFalse(r.err().contains("these figures are"), r.err()); // the loops ran, not their fallback
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\n  io_uring: ([0-9]+) of ([0-9]+) requests "
                + "through the ring, [0-9.]+ per submitting call").matcher(r.out());
        assertTrue(m.find(), r.out());
        // The 3000 writes and the image's metadata.
        long requests = Long.parseLong(m.group(2));
        assertTrue(Long.parseLong(m.group(1)) > requests / 2 && requests >= 3000 && requests < 3300, r.out());
        Qemu.assume();
        Qemu.img("check", img);
    }

    /**
     * Without java.lang opened to it (a plain {@code java -cp}, not the jar's manifest or the launcher) the JVM
     * cannot build virtual threads on a loop: {@code loop:N} runs on the JDK's scheduler, the log says why and
     * which flag to add, and bench says whose figures it prints.
     */
    @Test
    void eventLoopsWithoutTheOpenedPackageFallBackAndSaySo() throws Exception {
        Assumptions.assumeTrue(Runtime.version().feature() >= 22, "event loops need the Java 22+ layer");
        String img = dir.resolve("r.qcow2").toString();
        run("create", "-q", img, "16M");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Main.class.getName(), "bench", "-c", "10", "--exec", "loop:1",
                img).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), out);
        assertTrue(out.contains("--add-opens java.base/java.lang=ALL-UNNAMED"), out);
        assertTrue(out.contains("these figures are virtual's, not loop:1's"), out);
        assertTrue(out.contains("Run completed in"), out);
        assertFalse(out.contains("\tat "), out);
    }

    /** What an O_DIRECT run does first: the image's cached pages are dropped (fincore counts them). */
    @Test
    void theCachedPagesOfAnImageAreDropped() throws Exception {
        Assumptions.assumeTrue(Runtime.version().feature() >= 22, "dropping pages needs the Java 22+ layer");
        PageCacheDrops.assumeDroppable(dir);
        Path file = dir.resolve("cached.img");
        byte[] data = new byte[4 << 20];
        new Random(7).nextBytes(data);
        Files.write(file, data);
        Assumptions.assumeTrue(cachedPages(file) > 0, "fincore sees the written pages");
        BenchRunner.dropCachedPages(file);
        assertEquals(0, cachedPages(file));
        assertArrayEquals(data, Files.readAllBytes(file));
    }

    private static long cachedPages(Path file) throws Exception {
        Process p = new ProcessBuilder("fincore", "--noheadings", "--bytes", "--output", "PAGES", file.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes()).trim();
        Assumptions.assumeTrue(p.waitFor() == 0, "fincore (util-linux) runs: " + out);
        return Long.parseLong(out);
    }
}
