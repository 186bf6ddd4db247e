package io.github.qcowloom.os;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Before the process exits, the threads that wait in io_uring end (the JVM would wait up to 300 ms at exit for each
 * thread in a native call): the loops and the shared queue's completion thread, each idle in io_uring_enter. A
 * request made afterwards fails rather than waits for a completion nobody takes. Stopping is for good, so the
 * scenario runs in a child JVM.
 */
@Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class UringStopForExitTest {
    @Test
    void theRingThreadsEndAndLaterRequestsFail() throws Exception {
        assertEquals("read 4096 and 4096 bytes; stopped; alive: []; a later request: io_uring failed: the process is"
                + " exiting", ChildJvm.verdict(Scenario.class));
    }

    /** In a fresh JVM: a read through a loop and one through the shared queue, then the stop. */
    static final class Scenario {
        public static void main(String[] args) throws Exception {
            Path file = Files.createTempFile("stop-for-exit", ".bin");
            Files.write(file, new byte[8192]);
            try (NativeFile nf = NativeFile.open(file, false, false)) {
                ThreadFactory loops = UringLoops.threadFactory(1, "stop-test");
                UringQueue queue = UringQueue.shared();
                int fd = nf.fd();
                MemorySegment buf = Arena.global().allocate(4096, 4096);
                int[] onLoop = new int[1];
                Thread t = loops.newThread(() -> {
                    try {
                        onLoop[0] = queue.read(fd, buf.address(), 4096, 0);
                    } catch (IOException e) {
                        onLoop[0] = -1;
                    }
                });
                t.start();
                t.join();
                int shared = queue.read(fd, buf.address(), 4096, 4096);
                Thread.sleep(50); // both rings idle: their threads wait in io_uring_enter
                UringLoops.stopForExit();
                List<String> alive = new ArrayList<>();
                for (Thread th : Thread.getAllStackTraces().keySet()) {
                    if (th.getName().startsWith("qcow2-loom-loop") || th.getName().equals("qcow2-loom-io_uring")) {
                        alive.add(th.getName());
                    }
                }
                String later;
                try {
                    queue.read(fd, buf.address(), 4096, 0);
                    later = "succeeded";
                } catch (IOException e) {
                    later = e.getMessage();
                }
                System.out.println("read " + onLoop[0] + " and " + shared + " bytes; stopped; alive: " + alive
                        + "; a later request: " + later);
            } finally {
                Files.delete(file);
            }
        }
    }
}
