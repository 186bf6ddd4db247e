package io.github.qcowloom.storage;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The door to open-file-description locks, which live in the jar's Java 22+ layer ({@code OfdLockBytes}): on
 * Java 21, or where the kernel refuses F_OFD_SETLK, {@link #open} gives POSIX record locks instead
 * ({@link PosixLockBytes}) and logs the reason once per process.
 */
final class LockSupport {
    private static final Logger LOG = LoggerFactory.getLogger(LockSupport.class);
    private static final AtomicBoolean FALLBACK_LOGGED = new AtomicBoolean();
    private static final Java22Method OPEN = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.storage.OfdLockBytes", "open", MethodType.methodType(LockBytes.class, Path.class),
            "open-file-description locks");

    private LockSupport() {
    }

    /** Lock bytes on the existing file {@code path}: OFD locks if possible, else POSIX locks (logged once). */
    static LockBytes open(Path path) throws IOException {
        if (OPEN.handle() != null) {
            LockBytes ofd;
            try {
                ofd = (LockBytes) OPEN.handle().invokeExact(path);
            } catch (IOException | RuntimeException | Error e) {
                throw e;
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
            if (ofd != null) {
                return ofd;
            }
            logFallback("the kernel refuses open-file-description locks (F_OFD_SETLK)");
        } else {
            logFallback(OPEN.missing());
        }
        return new PosixLockBytes(path);
    }

    private static void logFallback(String reason) {
        if (FALLBACK_LOGGED.compareAndSet(false, true)) {
            LOG.warn("image locks are POSIX record locks, not open-file-description locks: {}; a file is then opened"
                    + " once per process", reason);
        }
    }
}
