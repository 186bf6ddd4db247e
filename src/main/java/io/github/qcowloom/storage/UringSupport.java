package io.github.qcowloom.storage;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The door to the io_uring backend, which lives in the jar's Java 22+ layer ({@code UringFileIo}): on Java 21, or
 * where the kernel refuses io_uring (too old, seccomp, {@code io_uring_disabled}), {@link #open} answers null and
 * the caller uses FileChannel. The reason is logged once per process.
 */
final class UringSupport {
    private static final Logger LOG = LoggerFactory.getLogger(UringSupport.class);
    private static final AtomicBoolean FALLBACK_LOGGED = new AtomicBoolean();
    private static final Java22Method OPEN = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.storage.UringFileIo", "open",
            MethodType.methodType(FileIo.class, Path.class, boolean.class, boolean.class), "io_uring");

    private UringSupport() {
    }

    /**
     * An io_uring {@link FileIo} on the existing file {@code path}, or null (logged once) if io_uring cannot
     * run here. Errors about the file itself (missing, denied) are thrown, as FileChannel would.
     */
    static FileIo open(Path path, boolean writable, boolean direct) throws IOException {
        return open(path, writable, direct, UringSupport::logFallback);
    }

    /**
     * The same, without the log line where io_uring cannot run: for a descriptor of FileChannel's file opened only to
     * punch holes, whose absence changes no byte (the holes are written as zeroes instead).
     */
    static FileIo openQuietly(Path path, boolean writable, boolean direct) throws IOException {
        return open(path, writable, direct, reason -> { });
    }

    private static FileIo open(Path path, boolean writable, boolean direct, Consumer<String> unavailable)
            throws IOException {
        if (OPEN.handle() == null) {
            unavailable.accept(OPEN.missing());
            return null;
        }
        try {
            return (FileIo) OPEN.handle().invokeExact(path, writable, direct);
        } catch (UringUnavailableException e) {
            unavailable.accept(e.getMessage());
            return null;
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static void logFallback(String reason) {
        if (FALLBACK_LOGGED.compareAndSet(false, true)) {
            LOG.warn("io_uring is not available, using FileChannel instead: {}", reason);
        }
    }
}
