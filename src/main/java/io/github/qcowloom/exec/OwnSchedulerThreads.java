package io.github.qcowloom.exec;

import java.lang.reflect.Constructor;
import java.lang.reflect.InaccessibleObjectException;
import java.lang.reflect.InvocationTargetException;
import java.util.concurrent.Executor;

/**
 * Virtual threads on a scheduler of one's own: an Executor that runs their continuations, where the JDK would use
 * its ForkJoinPool. The JDK's builder for that ({@code java.lang.ThreadBuilders$VirtualThreadBuilder(Executor)}) is
 * not public: it is reached reflectively and needs {@code --add-opens java.base/java.lang=ALL-UNNAMED}. The
 * interleaving explorer's seeded scheduler and the io_uring event loops build their threads here.
 */
public final class OwnSchedulerThreads {
    private static final String ADD_OPENS = "the JVM needs --add-opens java.base/java.lang=ALL-UNNAMED";
    private static final Constructor<?> BUILDER;
    private static final String MISSING;

    static {
        Constructor<?> builder = null;
        String missing = null;
        try {
            builder = Class.forName("java.lang.ThreadBuilders$VirtualThreadBuilder")
                    .getDeclaredConstructor(Executor.class);
            builder.setAccessible(true);
        } catch (InaccessibleObjectException e) {
            builder = null;
            missing = ADD_OPENS;
        } catch (ReflectiveOperationException | RuntimeException e) {
            builder = null;
            missing = "this JDK has no builder of virtual threads on a scheduler of one's own (" + e + ")";
        }
        BUILDER = builder;
        MISSING = missing;
    }

    private OwnSchedulerThreads() {
    }

    /** Null where this JVM builds such threads, else why not (the flag to add, or the JDK lacking the builder). */
    public static String unavailableReason() {
        return MISSING;
    }

    /** The message for code that needs java.lang opened to it for something else of the same kind. */
    public static String addOpensReason() {
        return ADD_OPENS;
    }

    /**
     * A builder of virtual threads whose continuations run on {@code scheduler}; throws
     * UnsupportedOperationException with {@link #unavailableReason} where this JVM builds none.
     */
    public static Thread.Builder.OfVirtual builder(Executor scheduler) {
        if (BUILDER == null) {
            throw new UnsupportedOperationException(MISSING);
        }
        try {
            return (Thread.Builder.OfVirtual) BUILDER.newInstance(scheduler);
        } catch (InstantiationException | IllegalAccessException | InvocationTargetException e) {
            throw new IllegalStateException("cannot build virtual threads on a scheduler of our own", e);
        }
    }
}
