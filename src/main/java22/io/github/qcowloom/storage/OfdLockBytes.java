package io.github.qcowloom.storage;

import io.github.qcowloom.os.OfdLock;
import java.io.IOException;
import java.nio.file.Path;

/**
 * {@link LockBytes} as open-file-description locks ({@link OfdLock}) on a descriptor held for the image's
 * lifetime. Loaded by {@link LockSupport} by name: it exists only in the jar's Java 22+ layer.
 */
final class OfdLockBytes implements LockBytes {
    private final OfdLock lock;

    private OfdLockBytes(OfdLock lock) {
        this.lock = lock;
    }

    /** OFD lock bytes on {@code path}, or null where OFD locks cannot be had (LockSupport then uses POSIX). */
    static LockBytes open(Path path) throws IOException {
        OfdLock lock;
        try {
            lock = OfdLock.open(path);
        } catch (UnsupportedOperationException | IllegalCallerException | LinkageError e) {
            // LinkageError: the bindings' set-up failed, e.g. native access denied (--illegal-native-access=deny)
            return null;
        }
        return lock == null ? null : new OfdLockBytes(lock);
    }

    /** Links the native calls of {@link OfdLock} ahead of the first lock ({@link OfdLock#link}). */
    static void link() {
        OfdLock.link();
    }

    @Override
    public boolean lockShared(long offset) throws IOException {
        return lock.lockShared(offset);
    }

    @Override
    public void unlock(long offset) throws IOException {
        lock.unlock(offset);
    }

    @Override
    public boolean heldElsewhere(long offset) throws IOException {
        return lock.heldElsewhere(offset);
    }

    @Override
    public String kind() {
        return "OFD";
    }

    @Override
    public void close() {
        lock.close();
    }
}
