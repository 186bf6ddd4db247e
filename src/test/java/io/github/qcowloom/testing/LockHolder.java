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
 * own serve), started and waited for until its lock bytes show in /proc/locks; {@link #close()} ends it.
 */
public final class LockHolder implements AutoCloseable {
    private final Process process;
    private final List<String> command;

    private LockHolder(Process process, List<String> command) {
        this.process = process;
        this.command = command;
    }

    /** Starts {@code command} and waits until it holds a lock on {@code image}. */
    public static LockHolder start(Path image, String... command) throws IOException, InterruptedException {
        List<String> cmd = List.of(command);
        Path log = Files.createTempFile("lock-holder", ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        LockHolder holder = new LockHolder(p, cmd);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (allLockBytes(image).isEmpty()) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                holder.close();
                fail(cmd + " did not come to hold " + image + ": " + Files.readString(log));
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
