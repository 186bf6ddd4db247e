package io.github.qcowloom.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The process's open file descriptors, counted in /proc/self/fd: what a test checks a server closed. */
public final class OpenDescriptors {
    private OpenDescriptors() {
    }

    /** How many descriptors the process has open now. */
    public static long count() {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Waits up to 5 s for the count to fall to {@code expected} (a server closes a connection's descriptors on its
     * own thread after the peer hangs up), then asserts it did.
     */
    public static void await(long expected) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (count() > expected && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(expected, count(), "descriptors left open");
    }
}
