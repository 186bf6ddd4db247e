package io.github.qcowloom.exec;

import io.github.qcowloom.storage.Java22Method;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.concurrent.ThreadFactory;

/**
 * The door to the io_uring event loops of the jar's Java 22+ layer ({@code os.UringLoops}), for {@code loop:N}.
 * They need Java 22+, Linux with io_uring, and {@code --add-opens java.base/java.lang=ALL-UNNAMED} (the JDK's
 * builder of virtual threads on a scheduler of one's own is not public; {@code java -jar} and the launcher give
 * it). Where they cannot run, asking for them fails with the reason: {@code loop:N} is chosen by name, so it is
 * refused rather than quietly run as something else.
 */
final class EventLoops {
    private static final Java22Method FACTORY = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.os.UringLoops", "threadFactory",
            MethodType.methodType(ThreadFactory.class, int.class, String.class), "loop:N");

    private EventLoops() {
    }

    /** Virtual threads named {@code name}, spread over the process's first {@code loops} event loops. */
    static ThreadFactory threadFactory(int loops, String name) {
        if (FACTORY.handle() == null) {
            throw new UnsupportedOperationException(FACTORY.missing());
        }
        try {
            return (ThreadFactory) FACTORY.handle().invokeExact(loops, name);
        } catch (IOException e) {
            throw new UnsupportedOperationException(e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
