package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** bench's sweeps (-d and --exec lists) and --report: results.json's figures and index.html's charts. */
class BenchReportTest {
    @TempDir
    Path dir;

    private static String run(String... args) {
        return Cli.succeeding(args);
    }

    @Test
    void sweepRunsEveryPairOnFreshCopiesAndReportsThemAll() throws Exception {
        Path img = dir.resolve("s.qcow2");
        Path report = dir.resolve("report");
        run("create", "-q", img.toString(), "16M");
        byte[] before = Files.readAllBytes(img);
        String out = run("bench", "-w", "--pattern", "171", "-c", "300", "-S", "64k", "-d", "1,8", "--exec",
                "virtual,pool:2", "--report", report.toString(), img.toString());
        assertEquals(4, count(out, "Sending 300 write requests"), out);
        assertEquals(4, count(out, "qcow2-loom: Run completed in"), out);
        assertEquals(4, count(out, "us CPU per I/O"), out);
        assertTrue(out.contains("8 in parallel") && out.contains("pool:2"), out);
        // Every pair wrote a copy: the image itself is as created.
        assertTrue(java.util.Arrays.equals(before, Files.readAllBytes(img)), "the sweep wrote to the image itself");
        assertFalse(Files.exists(dir.resolve("s.qcow2.bench-copy")));

        List<Object> calls = BenchReport.read(report.resolve("results.json"));
        assertEquals(1, calls.size());
        Map<?, ?> call = (Map<?, ?>) calls.get(0);
        assertTrue(call.get("command").toString().contains("-d 1,8 --exec virtual,pool:2"), call.toString());
        for (String key : List.of("date", "jdk", "kernel", "cores")) {
            assertNotNull(call.get(key), key);
        }
        assertEquals("write", ((Map<?, ?>) call.get("workload")).get("rw"));
        Set<String> pairs = new HashSet<>();
        for (Object r : (List<?>) call.get("results")) {
            Map<?, ?> res = (Map<?, ?>) r;
            pairs.add(res.get("exec") + "/" + res.get("depth"));
            Map<?, ?> ours = (Map<?, ?>) res.get("ours");
            assertEquals(1, ((List<?>) ours.get("runs")).size());
            Map<?, ?> median = (Map<?, ?>) ours.get("median");
            for (String k : List.of("seconds", "iops", "p50_us", "p99_us", "cpu_us_per_io")) {
                assertTrue(median.get(k) instanceof Number n && n.doubleValue() >= 0, k + " in " + median);
            }
        }
        assertEquals(Set.of("virtual/1", "virtual/8", "pool:2/1", "pool:2/8"), pairs);

        String html = Files.readString(report.resolve("index.html"));
        assertFalse(html.contains("not drawn"), "a chart failed to render");
        assertFalse(html.contains("http://") || html.contains("https://"), "the report must need no network");
        // IOPS, latency and CPU per I/O for the one workload.
        assertEquals(3, checkCharts(html));

        // A second call, another workload, adds to the same report.
        run("bench", "-c", "200", "-d", "4", "--report", report.toString(), img.toString());
        calls = BenchReport.read(report.resolve("results.json"));
        assertEquals(2, calls.size());
        html = Files.readString(report.resolve("index.html"));
        assertTrue(html.contains("write 4k, step 64k, -t writeback") && html.contains("read 4k, step 4k, -t writeback"),
                html);
        assertEquals(6, checkCharts(html));
    }

    @Test
    void refusesToOverwriteAForeignResultsJson() throws Exception {
        Path img = dir.resolve("f.qcow2");
        run("create", "-q", img.toString(), "16M");
        Path report = Files.createDirectories(dir.resolve("other"));
        Files.writeString(report.resolve("results.json"), "{\"mine\": [1, 2]}");
        StringWriter err = new StringWriter();
        int code = Main.run(new PrintWriter(new StringWriter()), new PrintWriter(err), "bench", "-c", "50", "--report",
                report.toString(), img.toString());
        assertEquals(1, code);
        assertTrue(err.toString().contains("is not a bench report"), err.toString());
        assertEquals("{\"mine\": [1, 2]}", Files.readString(report.resolve("results.json")));
    }

    @Test
    void qemuAioChoice() {
        StringWriter text = new StringWriter();
        PrintWriter out = new PrintWriter(text, true);
        List<String> probed = new ArrayList<>();
        // The page cache: qemu-img's default aio, nothing probed.
        assertEquals(java.util.Collections.singletonList(null), BenchCommand.qemuAios(false, aio -> {
            probed.add(aio);
            return null;
        }, out));
        assertEquals(List.of(), probed);
        // O_DIRECT: both, when both are accepted.
        assertEquals(List.of("native", "io_uring"), BenchCommand.qemuAios(true, aio -> null, out));
        assertEquals("", text.toString());
        // io_uring refused: native alone, and said why.
        assertEquals(List.of("native"), BenchCommand.qemuAios(true,
                aio -> aio.equals("io_uring") ? "qemu-img: failed to init linux io_uring ring\n" : null, out));
        assertTrue(text.toString().contains("qemu-img bench -i io_uring refused here (qemu-img: failed to init "
                + "linux io_uring ring): comparing without it"), text.toString());
        // Both refused: qemu-img's default.
        assertEquals(java.util.Collections.singletonList(null), BenchCommand.qemuAios(true, aio -> "no", out));
    }

    @Test
    void childrenCpuFromProcStat() {
        // A command name with a space and a parenthesis; cutime 250 and cstime 50 ticks of 1/100 s.
        String stat = "4242 (my (odd) java) S 1 4242 4242 0 -1 4194560 100 0 0 0 700 300 250 50 20 0 30 0 1234 "
                + "5678 90 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assertEquals(3.0, BenchRunner.childrenCpuSeconds(stat), 1e-9);
        double now = BenchRunner.childrenCpuSeconds();
        assertTrue(Double.isNaN(now) || now >= 0, String.valueOf(now));
    }

    /** Decodes every PNG data URI of the page and checks each is a drawn chart; returns how many there are. */
    private static int checkCharts(String html) throws Exception {
        Matcher m = Pattern.compile("src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"").matcher(html);
        int n = 0;
        while (m.find()) {
            BufferedImage img = ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(m.group(1))));
            assertNotNull(img, "not a PNG");
            assertTrue(img.getWidth() > 0 && img.getHeight() > 0);
            Set<Integer> colours = new HashSet<>();
            for (int y = 0; y < img.getHeight(); y += 3) {
                for (int x = 0; x < img.getWidth(); x += 3) {
                    colours.add(img.getRGB(x, y));
                }
            }
            // Background, axes, text and at least one series' colour: a blank image has one colour.
            assertTrue(colours.size() > 4, "a blank chart: " + colours.size() + " colours");
            n++;
        }
        return n;
    }

    private static int count(String text, String what) {
        int n = 0;
        for (int i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + 1)) {
            n++;
        }
        return n;
    }
}
