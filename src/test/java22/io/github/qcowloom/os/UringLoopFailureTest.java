package io.github.qcowloom.os;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.testing.OnThread;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A loop whose ring has failed takes no new threads: they go to the loops that still work, and where none does, to
 * the JDK's scheduler, whose requests go through the process's shared ring. Loops live as long as the process, and a
 * failed one stays failed, so the scenario runs in a child JVM.
 */
@Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class UringLoopFailureTest {
    @Test
    void newThreadsAvoidAFailedLoop() throws Exception {
        assertEquals("on loop 1: 8 of 8; on the JDK's scheduler: 8 of 8, each read 4096 bytes",
                ChildJvm.verdict(Scenario.class));
    }

    /** In a fresh JVM: two loops; the first fails, then the second. */
    static final class Scenario {
        public static void main(String[] args) throws Exception {
            ThreadFactory loops = UringLoops.threadFactory(2, "failure-test");
            UringLoop first = loopOf(loops);
            UringLoop second = loopOf(loops);
            first.failForTests();
            while (!first.failed()) {
                Thread.onSpinWait();
            }
            int onSecond = 0;
            for (int i = 0; i < 8; i++) {
                onSecond += loopOf(loops) == second ? 1 : 0;
            }
            second.failForTests();
            while (!second.failed()) {
                Thread.onSpinWait();
            }
            Path file = Files.createTempFile("failure-test", ".bin");
            try (NativeFile f = NativeFile.open(file, true, false)) {
                Files.write(file, new byte[4096]);
                int elsewhere = 0;
                int reads = 0;
                for (int i = 0; i < 8; i++) {
                    CompletableFuture<int[]> seen = OnThread.start(loops, () -> {
                        ByteBuffer b = ByteBuffer.allocateDirect(4096);
                        int n = UringQueue.shared().read(f.fd(), MemorySegment.ofBuffer(b).address(), 4096, 0);
                        return new int[] {UringLoop.current() == null ? 1 : 0, n};
                    });
                    int[] r = seen.get(10, TimeUnit.SECONDS);
                    elsewhere += r[0];
                    reads += r[1] == 4096 ? 1 : 0;
                }
                System.out.println("on loop 1: " + onSecond + " of 8; on the JDK's scheduler: " + elsewhere
                        + " of 8, each read " + (reads == 8 ? "4096 bytes" : "short: " + reads + " whole"));
            } finally {
                Files.delete(file);
            }
        }

        /** The loop a new thread of {@code loops} runs on (null: none). */
        private static UringLoop loopOf(ThreadFactory loops) throws Exception {
            CompletableFuture<UringLoop> where = new CompletableFuture<>();
            loops.newThread(() -> where.complete(UringLoop.current())).start();
            return where.get(10, TimeUnit.SECONDS);
        }
    }
}
