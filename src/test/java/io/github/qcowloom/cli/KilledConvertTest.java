package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code convert} and {@code create} killed with SIGKILL at moments spread over their run leave the old target, no
 * target, or a complete image equal to the source; never a header whose tables were never written (what writing
 * the target in place left).
 */
class KilledConvertTest {
    private static final int KILLS = 8;

    @TempDir
    Path dir;

    private Process ourCli(String... args) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile())
                .start();
    }

    /**
     * Waits until the child's output has begun (a temporary file beside the target, or the target changed since
     * {@code before}), then kills it {@code delayMs} later; true if it was still running then (killed mid-way).
     * Waiting for the output, not the clock, keeps the kills inside the command however slowly the JVM starts.
     */
    private boolean killWhileWriting(Process child, Path target, FileTime before, long delayMs) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (child.isAlive() && !begun(target, before) && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        boolean midway = !child.waitFor(delayMs, TimeUnit.MILLISECONDS);
        child.destroyForcibly();
        assertTrue(child.waitFor(30, TimeUnit.SECONDS));
        return midway;
    }

    private boolean begun(Path target, FileTime before) throws Exception {
        String part = "." + target.getFileName() + ".part-";
        try (Stream<Path> files = Files.list(dir)) {
            return files.anyMatch(f -> f.getFileName().toString().startsWith(part))
                    || !modified(target).equals(before);
        }
    }

    private static FileTime modified(Path p) throws Exception {
        return Files.exists(p) ? Files.getLastModifiedTime(p) : FileTime.fromMillis(0);
    }

    private static boolean identical(Path a, Path b) {
        return Qemu.exec(List.of("qemu-img", "compare", "-q", a.toString(), b.toString())).exitCode() == 0;
    }

    @Test
    void aKilledConvertLeavesTheOldImageOrTheWholeNewOne() throws Exception {
        Qemu.assume();
        Path src = dir.resolve("src.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", src.toString(), "96M");
        Qemu.io(src, "write -P 0x5a 0 64M", "write -P 0x11 80M 4M");
        Path old = dir.resolve("old.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", old.toString(), "1M");
        Qemu.io(old, "write -P 0x77 0 64k");

        int midway = 0;
        int replaced = 0;
        for (int i = 0; i < KILLS; i++) {
            for (String format : List.of("qcow2", "raw")) {
                Path target = dir.resolve("target." + format);
                Qemu.img("convert", "-O", format, old.toString(), target.toString());
                removeLeftovers(target); // an earlier kill's temporary file would look like this run's start
                FileTime before = modified(target);
                Process child = ourCli("convert", "-O", format, src.toString(), target.toString());
                // The last run is left to finish: the converted image must then replace the old one.
                long delay = i == KILLS - 1 ? 60_000 : 40L * i;
                if (killWhileWriting(child, target, before, delay)) {
                    midway++;
                }
                assertTrue(Files.exists(target), "a kill must not remove the old " + format + " target");
                if (format.equals("qcow2")) {
                    Qemu.img("check", "-q", target.toString()); // fails on leaks or corruption
                }
                if (identical(target, src)) {
                    replaced++;
                } else {
                    assertTrue(identical(target, old), "after a kill " + delay + " ms into the convert, the " + format
                            + " target is neither the old image nor the converted one");
                }
            }
        }
        assertTrue(midway >= 2, "only " + midway + " kills landed while convert ran: the test proves nothing");
        assertTrue(replaced >= 1, "the convert left to finish did not replace the target");
        assertEquals(0, leftovers(dir.resolve("target.qcow2")) + leftovers(dir.resolve("target.raw")),
                "the convert left to finish left its temporary file");
    }

    private long leftovers(Path target) throws Exception {
        String part = "." + target.getFileName() + ".part-";
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().startsWith(part)).count();
        }
    }

    private void removeLeftovers(Path target) throws Exception {
        String part = "." + target.getFileName() + ".part-";
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : files.filter(f -> f.getFileName().toString().startsWith(part)).toList()) {
                Files.delete(f);
            }
        }
    }

    @Test
    void aKilledCreateLeavesNoFileOrAValidImage() throws Exception {
        Qemu.assume();
        int midway = 0;
        for (int i = 0; i < KILLS; i++) {
            Path target = dir.resolve("new" + i + ".qcow2");
            // Metadata preallocation of 4 GiB in 4 KiB clusters writes 8 MiB of L2 tables after the header: long
            // enough to be killed inside.
            Process child = ourCli("create", "-q", "-f", "qcow2", "-o", "preallocation=metadata,cluster_size=4096",
                    target.toString(), "4G");
            // The last run is left to finish: it must leave the image.
            boolean last = i == KILLS - 1;
            if (killWhileWriting(child, target, modified(target), last ? 60_000 : 20L * i)) {
                midway++;
            }
            assertTrue(!last || Files.exists(target), "the create left to finish made no image");
            if (Files.exists(target)) {
                Qemu.img("check", "-q", target.toString());
                assertEquals(4L << 30, Long.parseLong(Qemu.img("info", "--output=json", target.toString())
                        .replaceAll("(?s).*\"virtual-size\": (\\d+).*", "$1")));
            }
        }
        assertTrue(midway >= 2, "only " + midway + " kills landed while create ran: the test proves nothing");
    }
}
