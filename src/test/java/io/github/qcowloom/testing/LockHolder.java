package io.github.qcowloom.testing;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A long-running process that holds an image open (qemu-nbd, qemu-io on an open stdin, qemu-storage-daemon, or our
 * own serve), started and waited for until all its lock bytes show in /proc/locks; {@link #close()} ends it.
 * Holders take their bytes one at a time, so waiting for the first one to show would let a test race the rest.
 */
public final class LockHolder implements AutoCloseable {
    /** What a writer holds on its image, QEMU's tools and ours alike: not sharing writes or resizes. */
    public static final List<String> WRITER = List.of("OFDLCK READ 100-101", "OFDLCK READ 103-103",
            "OFDLCK READ 201-201", "OFDLCK READ 203-203");
    /** What a reader that refuses writers holds (qemu-io -r, qemu-nbd -r). */
    public static final List<String> READER = List.of("OFDLCK READ 100-100", "OFDLCK READ 201-201",
            "OFDLCK READ 203-203");

    private final Process process;
    private final List<String> command;

    private LockHolder(Process process, List<String> command) {
        this.process = process;
        this.command = command;
    }

    /** Starts {@code command} and waits until the locks on {@code image} are {@code holds}. */
    public static LockHolder start(Path image, List<String> holds, String... command)
            throws IOException, InterruptedException {
        List<String> cmd = List.of(command);
        Path log = Files.createTempFile("lock-holder", ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        LockHolder holder = new LockHolder(p, cmd);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        List<String> held;
        while (!(held = allLockBytes(image)).equals(holds)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                holder.close();
                fail(cmd + " did not come to hold " + holds + " on " + image + " (it holds " + held + "): "
                        + Files.readString(log));
            }
            Thread.sleep(20);
        }
        Files.deleteIfExists(log);
        return holder;
    }

    /** Every lock held on {@code image}, by anyone, as "KIND TYPE start-end". */
    public static List<String> allLockBytes(Path image) throws IOException {
        long inode = (Long) Files.getAttribute(image, "unix:ino");
        List<String> ranges = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of("/proc/locks"))) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 8 && f[5].endsWith(":" + inode)) {
                ranges.add(f[1] + " " + f[3] + " " + f[6] + "-" + f[7]);
            }
        }
        ranges.sort(null);
        return ranges;
    }

    public long pid() {
        return process.pid();
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
        if (process.isAlive()) {
            fail("could not stop " + command);
        }
    }
}
