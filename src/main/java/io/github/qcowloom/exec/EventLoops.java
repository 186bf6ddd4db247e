package io.github.qcowloom.exec;

import io.github.qcowloom.storage.Java22Method;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The door to the io_uring event loops of the jar's Java 22+ layer ({@code os.UringLoops}), for {@code loop:N}.
 * They need Java 24+, Linux with io_uring, and {@code --add-opens java.base/java.lang=ALL-UNNAMED} (the JDK's
 * builder of virtual threads on a scheduler of one's own is not public; the jar's manifest and the launcher give
 * it). Where they cannot run, requests run on virtual threads of the JDK's scheduler instead, and the reason is
 * logged once per process, as the io_uring storage falls back to FileChannel.
 */
public final class EventLoops {
    private static final Logger LOG = LoggerFactory.getLogger(EventLoops.class);
    private static final AtomicBoolean FALLBACK_LOGGED = new AtomicBoolean();
    private static final Java22Method FACTORY = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.os.UringLoops", "threadFactory",
            MethodType.methodType(ThreadFactory.class, int.class, String.class), "loop:N");
    private static final Java22Method STOP = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.os.UringLoops", "stopForExit", MethodType.methodType(void.class), "io_uring");

    private EventLoops() {
    }

    /**
     * Virtual threads named {@code name}, spread over the process's first {@code loops} event loops; null (the
     * reason logged once: as a warning, or at debug level if {@code quiet}) where loops cannot run.
     */
    static ThreadFactory threadFactory(int loops, String name, boolean quiet) {
        if (FACTORY.handle() == null) {
            logFallback(FACTORY.missing(), quiet);
            return null;
        }
        try {
            return (ThreadFactory) FACTORY.handle().invokeExact(loops, name);
        } catch (IOException | LinkageError e) { // LinkageError: the layer's set-up failed (native access denied)
            logFallback(String.valueOf(e.getMessage()), quiet);
            return null;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Ends the threads that wait in io_uring (the event loops, and the completion thread of the rings the files
     * share), for a process about to exit, once every image is closed: the JVM waits at exit for every thread in a
     * native call, up to 300 ms (HotSpot's UserThreadWaitAttemptsAtExit), and idle rings wait in one. Requests made
     * afterwards fail, and threads started on the loops never run again. Nothing to do on Java 21.
     */
    public static void stopForExit() {
        if (STOP.handle() == null) {
            return;
        }
        try {
            STOP.handle().invokeExact();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static void logFallback(String reason, boolean quiet) {
        if (FALLBACK_LOGGED.compareAndSet(false, true)) {
            String message = "io_uring event loops are not available, running requests on the JDK's virtual-thread "
                    + "scheduler instead: {}";
            if (quiet) {
                LOG.debug(message, reason);
            } else {
                LOG.warn(message, reason);
            }
        }
    }
}
