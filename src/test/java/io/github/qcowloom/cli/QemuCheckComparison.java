package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Runs our check and qemu-img check --output=json on the same files and compares what they report. */
final class QemuCheckComparison {
    private static final Pattern FIELD = Pattern.compile("\"([a-z-]+)\": (\\d+|\"[^\"]*\")");

    private QemuCheckComparison() {
    }

    /** The fields of a qemu-img check JSON object, without filename (which may be spelled differently). */
    static Map<String, String> fields(String json) {
        Map<String, String> m = new LinkedHashMap<>();
        Matcher x = FIELD.matcher(json);
        while (x.find()) {
            m.put(x.group(1), x.group(2));
        }
        m.remove("filename");
        return m;
    }

    static Qemu.Result qemuCheck(Path img, String... repair) {
        List<String> cmd = new ArrayList<>(List.of("qemu-img", "check", "--output=json"));
        cmd.addAll(List.of(repair));
        cmd.add(img.toString());
        return Qemu.exec(cmd);
    }

    static Cli.Run ourCheck(Path img, String... repair) {
        List<String> cmd = new ArrayList<>(List.of("check", "--output=json"));
        cmd.addAll(List.of(repair));
        cmd.add(img.toString());
        return ours(cmd.toArray(String[]::new));
    }

    /** What both tools printed for one check of the same file. */
    record Compared(Qemu.Result qemu, Cli.Run ours) {
    }

    /** Our JSON and exit code equal qemu-img's on {@code img}; returns qemu-img's fields. */
    static Map<String, String> assertSameAsQemu(Path img) {
        return fields(compare(img).qemu().stdout());
    }

    /** Our JSON and exit code equal qemu-img's on {@code img}; returns both runs. */
    static Compared compare(Path img) {
        Qemu.Result q = qemuCheck(img);
        Cli.Run o = ourCheck(img);
        Map<String, String> expected = fields(q.stdout());
        assertEquals(expected, fields(o.out()), () -> "qemu-img: " + q.stdout() + q.stderr() + "\nours: " + o.out()
                + o.err());
        assertEquals(q.exitCode(), o.code(), () -> "exit code; ours: " + o.err());
        // Same keys in the same order as qemu-img prints them.
        assertEquals(List.copyOf(expected.keySet()), List.copyOf(fields(o.out()).keySet()));
        return new Compared(q, o);
    }

    /** The two repaired copies of an image, and what each tool printed on stderr while repairing. */
    record Repaired(Path ours, Path qemu, String ourErr, String qemuErr) {
    }

    /**
     * Repairs one copy with ours and another with qemu-img: exit codes and -r JSON agree (image-end-offset only
     * when qemu-img did not rebuild the refcount structures, which it places differently). Then both tools check
     * our copy: they agree with each other and with what qemu-img finds in its own copy (when its repair did not
     * fail, that is its -r JSON: the check after the repair, plus the -fixed counts).
     */
    static Repaired assertRepairSameAsQemu(Path dir, Path img, String mode, boolean qemuRebuilds)
            throws IOException {
        Path mine = dir.resolve("ours-" + mode + "-" + img.getFileName());
        Path theirs = dir.resolve("qemu-" + mode + "-" + img.getFileName());
        copy(img, mine);
        copy(img, theirs);
        Qemu.Result q = qemuCheck(theirs, "-r", mode);
        Cli.Run o = ourCheck(mine, "-r", mode);
        assertEquals(q.exitCode(), o.code(), () -> "-r " + mode + " exit; qemu-img: " + q.stdout() + q.stderr()
                + "\nours: " + o.out() + o.err());
        Map<String, String> expected = fields(q.stdout());
        Map<String, String> actual = fields(o.out());
        if (qemuRebuilds) {
            expected.remove("image-end-offset");
            actual.remove("image-end-offset");
        }
        assertEquals(expected, actual, () -> "-r " + mode + "; qemu-img: " + q.stdout() + "\nours: " + o.out()
                + o.err());
        Qemu.Result qemuOnMine = qemuCheck(mine);
        Cli.Run oursOnMine = ourCheck(mine);
        assertEquals(qemuOnMine.exitCode(), oursOnMine.code(), () -> "check after -r " + mode + "; ours: "
                + oursOnMine.err() + "\nqemu-img: " + qemuOnMine.stderr());
        Map<String, String> after = fields(qemuOnMine.stdout());
        assertEquals(after, fields(oursOnMine.out()));
        if (q.stdout().isEmpty()) {
            // qemu-img's repair failed: it finds its copy as it finds ours.
            Qemu.Result theirsAfter = qemuCheck(theirs);
            assertEquals(theirsAfter.exitCode(), qemuOnMine.exitCode());
            assertEquals(fields(theirsAfter.stdout()), fields(qemuOnMine.stdout()));
        } else {
            Map<String, String> theirsAfter = fields(q.stdout());
            theirsAfter.remove("corruptions-fixed");
            theirsAfter.remove("leaks-fixed");
            if (qemuRebuilds) {
                theirsAfter.remove("image-end-offset");
                after.remove("image-end-offset");
            }
            assertEquals(theirsAfter, after, "qemu-img finds our repaired copy as it found its own");
        }
        return new Repaired(mine, theirs, o.err(), q.stderr());
    }

    /** Copies {@code from} keeping holes: some test images are large and mostly sparse. */
    static void copy(Path from, Path to) throws IOException {
        Files.deleteIfExists(to);
        Qemu.run(List.of("cp", "--sparse=always", from.toString(), to.toString()));
    }
}
