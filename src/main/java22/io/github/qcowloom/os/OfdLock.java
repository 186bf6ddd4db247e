package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * Open-file-description byte locks (fcntl F_OFD_SETLK / F_OFD_GETLK, Linux 3.15+) on a read-only descriptor of
 * our own, as QEMU's file-posix.c takes them. They belong to this descriptor: closing any other descriptor of
 * the file, in this process or not, leaves them in place; closing this one drops them all. They conflict with
 * POSIX record locks and with other descriptions' OFD locks, in this process or another.
 *
 * <p>Each call allocates its own {@code struct flock}, so calls from different threads do not share memory.
 */
public final class OfdLock implements Closeable {
    private static final int F_OFD_GETLK = 36;
    private static final int F_OFD_SETLK = 37;
    private static final short F_RDLCK = 0;
    private static final short F_WRLCK = 1;
    private static final short F_UNLCK = 2;
    private static final int EACCES = 13;

    // struct flock on amd64 and aarch64: short l_type, short l_whence, off_t l_start (at 8), off_t l_len (at 16),
    // pid_t l_pid (at 24), 32 bytes in all.
    private static final long FLOCK_SIZE = 32;
    private static final long L_TYPE = 0;
    private static final long L_WHENCE = 2;
    private static final long L_START = 8;
    private static final long L_LEN = 16;

    private final Path path;
    private final int fd;

    private OfdLock(Path path, int fd) {
        this.path = path;
        this.fd = fd;
    }

    /**
     * Links the native calls a lock makes ({@link LinuxCalls#link}) without taking a lock: tens of milliseconds,
     * which a short command (info, check) spends on another thread while it parses its arguments rather than at
     * its first lock.
     */
    public static void link() {
        if (LinuxCalls.unsupportedReason() != null) {
            return;
        }
        LinuxCalls.link();
    }

    /**
     * Opens {@code path} read-only for its locks; null if the kernel refuses OFD locks (EINVAL, as QEMU's
     * qemu_probe_lock_ops finds).
     *
     * @throws UnsupportedOperationException if native calls cannot run on this platform
     */
    public static OfdLock open(Path path) throws IOException {
        LinuxCalls.requireSupported();
        OfdLock lock = new OfdLock(path, LinuxCalls.open(path.toString(), LinuxCalls.O_RDONLY));
        try {
            int r = lock.fcntl(F_OFD_GETLK, F_WRLCK, 0);
            if (r == -LinuxCalls.EINVAL) {
                lock.close();
                return null;
            }
            lock.check(r, "test", 0);
            return lock;
        } catch (IOException | RuntimeException e) {
            lock.close();
            throw e;
        }
    }

    /** Takes a shared lock on byte {@code offset}; false if another description holds it exclusively. */
    public boolean lockShared(long offset) throws IOException {
        int r = fcntl(F_OFD_SETLK, F_RDLCK, offset);
        if (r == -LinuxCalls.EAGAIN || r == -EACCES) {
            return false;
        }
        check(r, "lock", offset);
        return true;
    }

    /** Drops this description's lock on byte {@code offset}. */
    public void unlock(long offset) throws IOException {
        check(fcntl(F_OFD_SETLK, F_UNLCK, offset), "unlock", offset);
    }

    /** True if another description (or a POSIX lock of any process) holds any lock on byte {@code offset}. */
    public boolean heldElsewhere(long offset) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment flock = flock(arena, F_WRLCK, offset);
            int r = call(arena, F_OFD_GETLK, flock);
            check(r, "test", offset);
            return flock.get(JAVA_SHORT, L_TYPE) != F_UNLCK;
        }
    }

    private int fcntl(int command, short type, long offset) {
        try (Arena arena = Arena.ofConfined()) {
            return call(arena, command, flock(arena, type, offset));
        }
    }

    private static MemorySegment flock(Arena arena, short type, long offset) {
        MemorySegment flock = arena.allocate(FLOCK_SIZE, 8); // zeroed: l_pid must be 0 for OFD locks
        flock.set(JAVA_SHORT, L_TYPE, type);
        flock.set(JAVA_SHORT, L_WHENCE, (short) 0); // SEEK_SET
        flock.set(JAVA_LONG, L_START, offset);
        flock.set(JAVA_LONG, L_LEN, 1L);
        return flock;
    }

    /** One fcntl call; its result, or -errno. */
    private int call(Arena arena, int command, MemorySegment flock) {
        return (int) LinuxCalls.syscall(LinuxCalls.errnoSegment(arena), SyscallNumbers.FCNTL, fd, command,
                flock.address(), 0, 0, 0);
    }

    private void check(int result, String what, long offset) throws IOException {
        if (result < 0) {
            throw new IOException("cannot " + what + " byte " + offset + " of " + path + ": "
                    + LinuxCalls.strerror(-result));
        }
    }

    /** Closes the descriptor, dropping its locks. */
    @Override
    public void close() {
        LinuxCalls.close(fd);
    }
}
