package io.github.qcowloom.storage;

import io.github.qcowloom.api.ImageLockedException;
import java.io.Closeable;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;

/**
 * QEMU's image locking (block/file-posix.c, qcow2.md §8) on one file: for each permission bit {@code i} taken, a
 * shared lock on byte {@code 100 + i}; for each bit not shared, a shared lock on byte {@code 200 + i}. Then the
 * opposite bytes are tested: wanting bit {@code i} conflicts with anyone holding {@code 200 + i}, refusing to share
 * it with anyone holding {@code 100 + i}. Taking before testing, as QEMU does, means two opens racing each other
 * cannot both pass. The messages are qemu-img's.
 *
 * <p>The locks live on a descriptor of their own ({@link LockBytes}), closed with the image.
 * Not thread-safe: made at open and closed once, by the open's owner.
 */
public final class ImageLock implements Closeable {
    private static final int PERM_BASE = 100;
    private static final int SHARED_BASE = 200;

    private final LockBytes bytes;
    private final LockPermissions permissions;

    private ImageLock(LockBytes bytes, LockPermissions permissions) {
        this.bytes = bytes;
        this.permissions = permissions;
    }

    /**
     * Links the native calls of the locks now, without taking one: a short command (info, check) does it on
     * another thread while it parses its arguments, rather than pay a process's first FFM calls at its first lock.
     * A failure here is met again, and handled, by the first lock taken.
     */
    public static void linkNativeCalls() {
        if (NativeLink.LINK.handle() != null) {
            try {
                NativeLink.LINK.handle().invokeExact();
            } catch (Throwable t) {
                // Native access denied, or the like: the first lock meets it again and takes POSIX locks.
            }
        }
    }

    /**
     * The Java 22+ layer's linking, apart from {@link LockSupport}: a thread that links does not start the
     * logging LockSupport holds, which the main thread may be starting at the same moment.
     */
    private static final class NativeLink {
        static final Java22Method LINK = Java22Method.find(MethodHandles.lookup(),
                "io.github.qcowloom.storage.OfdLockBytes", "link", MethodType.methodType(void.class),
                "open-file-description locks");
    }

    /**
     * Takes {@code permissions} on {@code path} through open-file-description locks, or POSIX locks where those
     * are missing; null if the permissions take no byte.
     *
     * @throws ImageLockedException if another holder conflicts, with qemu-img's message naming {@code name}
     */
    public static ImageLock acquire(Path path, String name, LockPermissions permissions) throws IOException {
        if (permissions.isNone()) {
            return null;
        }
        return acquire(LockSupport.open(path), name, permissions);
    }

    /** Takes {@code permissions} through {@code bytes}, which it owns from now on (closed on failure). */
    static ImageLock acquire(LockBytes bytes, String name, LockPermissions permissions) throws IOException {
        try {
            // POSIX cannot test a byte it holds: test first, then take, then test again (only what OFD can).
            check(bytes, name, permissions);
            apply(bytes, permissions);
            check(bytes, name, permissions);
            return new ImageLock(bytes, permissions);
        } catch (IOException | RuntimeException e) {
            try {
                bytes.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    private static void apply(LockBytes bytes, LockPermissions p) throws IOException {
        for (int i = 0, bit = 1; bit <= LockPermissions.ALL; i++, bit <<= 1) {
            if ((p.perm() & bit) != 0 && !bytes.lockShared(PERM_BASE + i)) {
                throw new IOException("Failed to lock byte " + (PERM_BASE + i));
            }
        }
        for (int i = 0, bit = 1; bit <= LockPermissions.ALL; i++, bit <<= 1) {
            if ((p.shared() & bit) == 0 && !bytes.lockShared(SHARED_BASE + i)) {
                throw new IOException("Failed to lock byte " + (SHARED_BASE + i));
            }
        }
    }

    private static void check(LockBytes bytes, String name, LockPermissions p) throws IOException {
        for (int i = 0, bit = 1; bit <= LockPermissions.ALL; i++, bit <<= 1) {
            if ((p.perm() & bit) != 0 && bytes.heldElsewhere(SHARED_BASE + i)) {
                throw locked(name, "Failed to get \"" + LockPermissions.name(bit) + "\" lock");
            }
        }
        for (int i = 0, bit = 1; bit <= LockPermissions.ALL; i++, bit <<= 1) {
            if ((p.shared() & bit) == 0 && bytes.heldElsewhere(PERM_BASE + i)) {
                throw locked(name, "Failed to get shared \"" + LockPermissions.name(bit) + "\" lock");
            }
        }
    }

    private static ImageLockedException locked(String name, String what) {
        return new ImageLockedException(name, what + "\nIs another process using the image [" + name + "]?");
    }

    /** The permissions held. */
    public LockPermissions permissions() {
        return permissions;
    }

    /** "OFD" or "POSIX". */
    public String kind() {
        return bytes.kind();
    }

    /** Drops every lock byte (closing their descriptor). */
    @Override
    public void close() throws IOException {
        bytes.close();
    }
}
