package io.github.qcowloom.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.OffsetDateTime;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.ToIntFunction;

/**
 * {@code bench --report DIR}: DIR/results.json holds every figure of every call that named DIR (each call is added
 * to what is there, so calls of different workloads build one report), and DIR/index.html is drawn anew from all
 * of it, self-contained (charts as PNG data URIs, no network).
 *
 * <p>results.json: {@code {"format": FORMAT, "calls": [call...]}}; a call holds its command line, date, JDK,
 * kernel, cores, the workload, and one result per (executor, depth) pair: our runs and the qemu-img runs of each
 * aio mode, each with the per-field medians of its runs.
 */
final class BenchReport {
    static final String FORMAT = "qcow2-loom bench report 1";

    private BenchReport() {
    }

    /** One pair's figures: our runs, and qemu-img's by aio mode (key null: qemu-img's default, aio=threads). */
    static Map<String, Object> result(String exec, int depth, int count, List<BenchRunner.Result> ours,
            Map<String, List<BenchRunner.QemuResult>> qemu) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("exec", exec);
        r.put("depth", depth);
        List<Object> runs = new ArrayList<>();
        for (BenchRunner.Result o : ours) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("seconds", o.seconds());
            m.put("iops", count / o.seconds());
            m.put("p50_us", o.p50Micros());
            m.put("p99_us", o.p99Micros());
            m.put("host_syncs", o.syncs());
            m.put("host_syncs_of_a_range", o.rangedSyncs());
            m.put("cpu_seconds", o.cpuSeconds());
            m.put("cpu_us_per_io", o.cpuSeconds() * 1e6 / count);
            if (!o.uring().none()) {
                m.putAll(o.uring().json());
            }
            runs.add(m);
        }
        r.put("ours", figures(runs));
        List<Object> q = new ArrayList<>();
        Map<String, Object> best = null;
        for (Map.Entry<String, List<BenchRunner.QemuResult>> e : qemu.entrySet()) {
            List<Object> qruns = new ArrayList<>();
            for (BenchRunner.QemuResult x : e.getValue()) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("seconds", x.seconds());
                m.put("iops", count / x.seconds());
                m.put("cpu_seconds", x.cpuSeconds());
                m.put("cpu_us_per_io", x.cpuSeconds() * 1e6 / count);
                qruns.add(m);
            }
            Map<String, Object> f = new LinkedHashMap<>();
            f.put("aio", e.getKey() == null ? "threads" : e.getKey());
            f.put("aio_flag", e.getKey() != null);
            f.putAll(figures(qruns));
            q.add(f);
            if (best == null || number(median(f), "iops") > number(median(best), "iops")) {
                best = f;
            }
        }
        if (best != null) {
            r.put("qemu", q);
            r.put("qemu_best_aio", best.get("aio"));
            // As the command line prints it: our speed over qemu-img's, both medians (above 1: we are faster).
            r.put("ratio", number(median(figures(runs)), "iops") / number(median(best), "iops"));
        }
        return r;
    }

    /** One call: its command line, host, workload and results. */
    static Map<String, Object> call(List<String> argv, Map<String, Object> workload, List<Object> results) {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("command", String.join(" ", argv.stream().map(BenchReport::shellWord).toList()));
        c.put("argv", new ArrayList<Object>(argv));
        c.put("date", OffsetDateTime.now().truncatedTo(ChronoUnit.SECONDS).toString());
        c.put("jdk", System.getProperty("java.vm.vendor", "") + " " + Runtime.version());
        c.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        c.put("kernel", kernel());
        c.put("cores", Runtime.getRuntime().availableProcessors());
        Map<String, Object> w = new LinkedHashMap<>(workload);
        w.put("name", workloadName(workload));
        c.put("workload", w);
        c.put("results", results);
        return c;
    }

    /**
     * Adds {@code call} to DIR/results.json (created if absent) and draws DIR/index.html from every call there.
     * Refuses a results.json that is not a bench report rather than overwrite it. Returns index.html's path.
     */
    static Path write(Path dir, Map<String, Object> call, PrintWriter err) throws IOException {
        Files.createDirectories(dir);
        Path json = dir.resolve("results.json");
        List<Object> calls = new ArrayList<>();
        if (Files.exists(json)) {
            calls.addAll(read(json));
        }
        calls.add(call);
        Map<String, Object> all = new LinkedHashMap<>();
        all.put("format", FORMAT);
        all.put("calls", calls);
        replace(json, Json.write(all) + "\n");
        Path html = dir.resolve("index.html");
        replace(html, html(calls, err));
        return html;
    }

    /** The calls of an existing results.json. */
    @SuppressWarnings("unchecked")
    static List<Object> read(Path json) throws IOException {
        Object parsed;
        try {
            parsed = Json.parse(Files.readString(json, StandardCharsets.UTF_8));
        } catch (IllegalArgumentException e) {
            throw new IOException(json + " is not a bench report (" + e.getMessage() + "): choose another --report "
                    + "directory");
        }
        if (!(parsed instanceof Map<?, ?> m) || !FORMAT.equals(m.get("format"))
                || !(m.get("calls") instanceof List<?>)) {
            throw new IOException(json + " is not a bench report (" + FORMAT + "): choose another --report "
                    + "directory");
        }
        return (List<Object>) ((Map<String, Object>) parsed).get("calls");
    }

    /** Writes beside, then renames over: an interrupted call leaves the former report whole. */
    private static void replace(Path target, String text) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        Files.writeString(tmp, text, StandardCharsets.UTF_8);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** The runs and the median of each of their fields (each field on its own, so not one run's figures). */
    private static Map<String, Object> figures(List<Object> runs) {
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("runs", runs);
        Map<String, Object> med = new LinkedHashMap<>();
        @SuppressWarnings("unchecked")
        Map<String, Object> first = (Map<String, Object>) runs.get(0);
        for (String k : first.keySet()) {
            List<Double> v = new ArrayList<>();
            for (Object run : runs) {
                v.add(number(run, k));
            }
            v.sort(null);
            med.put(k, v.get(v.size() / 2));
        }
        f.put("median", med);
        return f;
    }

    private static Object median(Object figures) {
        return ((Map<?, ?>) figures).get("median");
    }

    /** A number of a map as read back (Long, Double or null for NaN), NaN when absent. */
    static double number(Object map, String key) {
        Object v = map instanceof Map<?, ?> m ? m.get(key) : null;
        return v instanceof Number n ? n.doubleValue() : Double.NaN;
    }

    private static String kernel() {
        // os.version is the kernel release on Linux (uname -r), read by the JDK from uname(2).
        return System.getProperty("os.version", "unknown");
    }

    static String workloadName(Map<String, Object> w) {
        StringBuilder sb = new StringBuilder();
        sb.append(w.get("rw")).append(' ').append(size(w.get("size")));
        sb.append(", step ").append(size(w.get("step")));
        if (number(w, "offset") != 0) {
            sb.append(", from ").append(size(w.get("offset")));
        }
        sb.append(", -t ").append(w.get("cache"));
        if (number(w, "flush_interval") > 0) {
            sb.append(", flush every ").append(w.get("flush_interval"));
        }
        if (Boolean.TRUE.equals(w.get("batch"))) {
            sb.append(", batch");
        }
        if (w.get("profile") != null && !"default".equals(w.get("profile"))) {
            sb.append(", profile ").append(w.get("profile"));
        }
        return sb.toString();
    }

    private static String size(Object bytes) {
        long b = bytes instanceof Number n ? n.longValue() : 0;
        if (b != 0 && b % (1 << 20) == 0) {
            return (b >> 20) + "M";
        }
        if (b != 0 && b % 1024 == 0) {
            return (b >> 10) + "k";
        }
        return b + "B";
    }

    private static String shellWord(String s) {
        return s.matches("[A-Za-z0-9_./:,=+@%-]+") ? s : "'" + s.replace("'", "'\\''") + "'";
    }

    // ---- index.html ----

    /** One chart cell: the runs of the latest call that measured this series at this depth. */
    private static final class Cells {
        final Map<String, Map<Integer, List<Double>>> bySeries = new LinkedHashMap<>();

        void put(String series, int depth, List<Double> values) {
            bySeries.computeIfAbsent(series, s -> new LinkedHashMap<>()).put(depth, values);
        }

        void add(String series, int depth, List<Double> values, Map<String, Map<Integer, List<Double>>> thisCall) {
            thisCall.computeIfAbsent(series, s -> new LinkedHashMap<>()).computeIfAbsent(depth,
                    d -> new ArrayList<>()).addAll(values);
        }
    }

    /** What one workload's charts show. */
    private static final class Workload {
        final String name;
        final TreeSet<Integer> depths = new TreeSet<>();
        final Cells iops = new Cells();
        final Cells latency = new Cells();
        final Cells cpu = new Cells();
        final List<Map<?, ?>> rows = new ArrayList<>();

        Workload(String name) {
            this.name = name;
        }
    }

    static String html(List<Object> calls, PrintWriter err) {
        Map<String, Workload> workloads = new LinkedHashMap<>();
        for (Object c : calls) {
            Map<?, ?> call = (Map<?, ?>) c;
            Map<?, ?> w = (Map<?, ?>) call.get("workload");
            String name = String.valueOf(w.get("name"));
            Workload wl = workloads.computeIfAbsent(name, Workload::new);
            // A later call replaces an earlier one's figure for the same series and depth; within one call the
            // qemu-img runs made beside each executor at a depth are pooled.
            Map<String, Map<Integer, List<Double>>> iops = new LinkedHashMap<>();
            Map<String, Map<Integer, List<Double>>> lat = new LinkedHashMap<>();
            Map<String, Map<Integer, List<Double>>> cpu = new LinkedHashMap<>();
            for (Object r : (List<?>) call.get("results")) {
                Map<?, ?> res = (Map<?, ?>) r;
                int depth = (int) number(res, "depth");
                wl.depths.add(depth);
                String ours = "qcow2-loom " + res.get("exec");
                List<?> runs = (List<?>) ((Map<?, ?>) res.get("ours")).get("runs");
                wl.iops.add(ours, depth, field(runs, "iops"), iops);
                wl.latency.add(ours + " p50", depth, field(runs, "p50_us"), lat);
                wl.latency.add(ours + " p99", depth, field(runs, "p99_us"), lat);
                wl.cpu.add(ours, depth, field(runs, "cpu_us_per_io"), cpu);
                if (res.get("qemu") instanceof List<?> qs) {
                    for (Object q : qs) {
                        Map<?, ?> qm = (Map<?, ?>) q;
                        String series = "qemu-img " + qm.get("aio");
                        List<?> qruns = (List<?>) qm.get("runs");
                        wl.iops.add(series, depth, field(qruns, "iops"), iops);
                        wl.cpu.add(series, depth, field(qruns, "cpu_us_per_io"), cpu);
                    }
                }
                Map<Object, Object> row = new LinkedHashMap<>(res);
                row.put("date", call.get("date"));
                wl.rows.add(row);
            }
            merge(wl.iops, iops);
            merge(wl.latency, lat);
            merge(wl.cpu, cpu);
        }
        StringBuilder h = new StringBuilder();
        h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>qcow2-loom bench report"
                + "</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1700px}"
                + "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
                + "text-align:right}th{background:#eee}td.l,th.l{text-align:left}img{margin:4px;"
                + "border:1px solid #ddd}code{background:#f4f4f4}</style>\n</head><body>\n");
        h.append("<h1>qcow2-loom bench report</h1>\n");
        Map<?, ?> last = (Map<?, ?>) calls.get(calls.size() - 1);
        h.append("<p>").append(calls.size()).append(calls.size() == 1 ? " call" : " calls").append(", last on ")
                .append(esc(last.get("date"))).append(": kernel ").append(esc(last.get("kernel"))).append(", ")
                .append(esc(last.get("cores"))).append(" cores, JDK ").append(esc(last.get("jdk")))
                .append(". Medians of each call's runs; qemu-img bench measures no latency, so the latency charts "
                        + "are ours alone. CPU per I/O: our process's CPU over the timed part; qemu-img's whole "
                        + "process (its start and image open included), at 10 ms resolution.</p>\n");
        for (Workload wl : workloads.values()) {
            h.append("<h2>").append(esc(wl.name)).append("</h2>\n<div>");
            List<String> cats = wl.depths.stream().map(String::valueOf).toList();
            chart(h, err, wl.name + ": IOPS", "IOPS (higher is better)", cats, wl.iops, wl.depths, null);
            // A p50 and a p99 line in the colour their executor's bar has in the IOPS chart.
            List<String> order = new ArrayList<>(wl.iops.bySeries.keySet());
            chart(h, err, wl.name + ": latency p50 (solid) / p99 (dashed)", "us (lower is better)", cats,
                    wl.latency, wl.depths, name -> order.indexOf(name.substring(0, name.lastIndexOf(' '))));
            chart(h, err, wl.name + ": CPU per I/O", "us CPU (lower is better)", cats, wl.cpu, wl.depths, null);
            h.append("</div>\n");
            table(h, wl.rows);
        }
        h.append("<h2>Calls</h2>\n<ol>\n");
        for (Object c : calls) {
            Map<?, ?> call = (Map<?, ?>) c;
            h.append("<li>").append(esc(call.get("date"))).append(": <code>").append(esc(call.get("command")))
                    .append("</code> (kernel ").append(esc(call.get("kernel"))).append(", ")
                    .append(esc(call.get("cores"))).append(" cores, JDK ").append(esc(call.get("jdk")))
                    .append(")</li>\n");
        }
        h.append("</ol>\n<p>Raw figures: <a href=\"results.json\">results.json</a>.</p>\n</body></html>\n");
        return h.toString();
    }

    private static void merge(Cells into, Map<String, Map<Integer, List<Double>>> thisCall) {
        for (Map.Entry<String, Map<Integer, List<Double>>> s : thisCall.entrySet()) {
            for (Map.Entry<Integer, List<Double>> d : s.getValue().entrySet()) {
                into.put(s.getKey(), d.getKey(), d.getValue());
            }
        }
    }

    private static List<Double> field(List<?> runs, String key) {
        List<Double> v = new ArrayList<>();
        for (Object run : runs) {
            double x = number(run, key);
            if (!Double.isNaN(x)) {
                v.add(x);
            }
        }
        return v;
    }

    private static void chart(StringBuilder h, PrintWriter err, String title, String yTitle, List<String> cats,
            Cells cells, TreeSet<Integer> depths, ToIntFunction<String> lineColours) {
        Map<String, List<Double>> series = new LinkedHashMap<>();
        for (Map.Entry<String, Map<Integer, List<Double>>> s : cells.bySeries.entrySet()) {
            List<Double> ys = new ArrayList<>();
            boolean any = false;
            for (int d : depths) {
                List<Double> v = s.getValue().get(d);
                Double y = null;
                if (v != null && !v.isEmpty()) {
                    List<Double> sorted = new ArrayList<>(v);
                    sorted.sort(null);
                    y = sorted.get(sorted.size() / 2);
                    any = true;
                }
                ys.add(y);
            }
            if (any) {
                series.put(s.getKey(), ys);
            }
        }
        if (series.isEmpty()) {
            return;
        }
        try {
            byte[] png = lineColours == null ? BenchCharts.bars(title, yTitle, cats, series)
                    : BenchCharts.lines(title, yTitle, cats, series, lineColours);
            h.append("<img width=\"").append(BenchCharts.WIDTH).append("\" height=\"").append(BenchCharts.HEIGHT)
                    .append("\" alt=\"").append(esc(title)).append("\" src=\"data:image/png;base64,")
                    .append(Base64.getEncoder().encodeToString(png)).append("\">");
        } catch (IOException | RuntimeException | Error e) {
            // No usable AWT (no fonts, no headless toolkit): the figures stay in the table and results.json.
            err.println("qcow2-loom: chart '" + title + "' not drawn: " + e);
            h.append("<p>(chart '").append(esc(title)).append("' not drawn: ").append(esc(e)).append(")</p>");
        }
    }

    private static void table(StringBuilder h, List<Map<?, ?>> rows) {
        h.append("<table>\n<tr><th class=\"l\">date</th><th class=\"l\">executor</th><th>depth</th><th>IOPS</th>"
                + "<th>p50 us</th><th>p99 us</th><th>CPU us/IO</th><th class=\"l\">qemu-img</th><th>IOPS</th>"
                + "<th>CPU us/IO</th><th>ours / qemu-img</th></tr>\n");
        for (Map<?, ?> r : rows) {
            Object om = median(r.get("ours"));
            h.append("<tr><td class=\"l\">").append(esc(r.get("date"))).append("</td><td class=\"l\">")
                    .append(esc(r.get("exec"))).append("</td><td>").append(esc(r.get("depth"))).append("</td>")
                    .append(cell(number(om, "iops"), "%.0f")).append(cell(number(om, "p50_us"), "%.0f"))
                    .append(cell(number(om, "p99_us"), "%.0f")).append(cell(number(om, "cpu_us_per_io"), "%.1f"));
            Object qm = null;
            if (r.get("qemu") instanceof List<?> qs) {
                for (Object q : qs) {
                    if (((Map<?, ?>) q).get("aio").equals(r.get("qemu_best_aio"))) {
                        qm = q;
                    }
                }
            }
            if (qm == null) {
                h.append("<td class=\"l\"></td><td></td><td></td><td></td></tr>\n");
                continue;
            }
            StringBuilder aios = new StringBuilder();
            for (Object q : (List<?>) r.get("qemu")) {
                Map<?, ?> m = (Map<?, ?>) q;
                aios.append(aios.isEmpty() ? "" : ", ").append(m.get("aio")).append(' ')
                        .append(String.format("%.0f", number(median(m), "iops")));
            }
            h.append("<td class=\"l\">best of ").append(esc(aios)).append("</td>")
                    .append(cell(number(median(qm), "iops"), "%.0f"))
                    .append(cell(number(median(qm), "cpu_us_per_io"), "%.1f"))
                    .append(cell(number(r, "ratio"), "%.2fx")).append("</tr>\n");
        }
        h.append("</table>\n");
    }

    private static String cell(double v, String format) {
        return "<td>" + (Double.isNaN(v) ? "" : String.format(format, v)) + "</td>";
    }

    private static String esc(Object o) {
        return String.valueOf(o).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                .replace("\"", "&quot;");
    }
}
