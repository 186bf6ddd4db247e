package io.github.qcowloom.storage;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Path;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Lock bytes as classic POSIX record locks ({@link FileChannel#tryLock}), where open-file-description locks are
 * missing (Java 21, or a kernel that refuses them). They belong to the process, not to a descriptor: closing
 * any descriptor of the file in the process drops them all. So a file may be open once per process: a second
 * lock on it from this JVM is refused (the JVM's own lock table sees it), and FileStorage's other descriptors of
 * the file stay open for exactly the image's lifetime.
 *
 * <p>POSIX has no way from Java to ask who holds a byte (F_GETLK): a byte is tested by taking it exclusively
 * for a moment, which needs a descriptor open for writing (else only exclusive holders are seen), and cannot
 * test a byte this process holds itself ({@link ImageLock} tests before it takes anything).
 *
 * <p>Lock discipline: {@code lock} guards {@code held}; lock calls are made at open and close only.
 */
final class PosixLockBytes implements LockBytes {
    private final Path path;
    private final FileChannel channel;
    private final boolean writable;
    private final ReentrantLock lock = new ReentrantLock();
    private final Map<Long, FileLock> held = new HashMap<>();
    // Files (device and inode) this process holds POSIX lock bytes on: a second open is refused before it opens
    // a descriptor, since closing that descriptor would drop the first open's locks.
    private static final Set<Object> OPEN_FILES = ConcurrentHashMap.newKeySet();
    private final Object fileKey;

    PosixLockBytes(Path path) throws IOException {
        this.path = path;
        Object key = Files.readAttributes(path, BasicFileAttributes.class).fileKey();
        if (key != null && !OPEN_FILES.add(key)) {
            throw openTwice();
        }
        this.fileKey = key;
        this.writable = Files.isWritable(path);
        try {
            this.channel = writable ? FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)
                    : FileChannel.open(path, StandardOpenOption.READ);
        } catch (IOException | RuntimeException e) {
            if (key != null) {
                OPEN_FILES.remove(key);
            }
            throw e;
        }
    }

    @Override
    public boolean lockShared(long offset) throws IOException {
        lock.lock();
        try {
            if (held.containsKey(offset)) {
                return true;
            }
            FileLock l = channel.tryLock(offset, 1, true);
            if (l == null) {
                return false;
            }
            held.put(offset, l);
            return true;
        } catch (OverlappingFileLockException e) {
            throw openTwice();
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void unlock(long offset) throws IOException {
        lock.lock();
        try {
            FileLock l = held.remove(offset);
            if (l != null) {
                l.release();
            }
        } finally {
            lock.unlock();
        }
    }

    @Override
    public boolean heldElsewhere(long offset) throws IOException {
        lock.lock();
        try {
            if (held.containsKey(offset)) {
                return false; // our own: POSIX cannot say whether another process shares it (tested before taking)
            }
            FileLock probe = channel.tryLock(offset, 1, !writable);
            if (probe == null) {
                return true;
            }
            probe.release();
            return false;
        } catch (OverlappingFileLockException e) {
            throw openTwice();
        } finally {
            lock.unlock();
        }
    }

    private IOException openTwice() {
        return new IOException(path + " is already open in this process; without open-file-description locks"
                + " (Java 21, or refused by the kernel) a file can be opened once per process, since closing"
                + " either open would drop the other's locks");
    }

    @Override
    public String kind() {
        return "POSIX";
    }

    @Override
    public void close() throws IOException {
        lock.lock();
        try {
            held.clear(); // closing the channel drops its locks
            channel.close();
            if (fileKey != null) {
                OPEN_FILES.remove(fileKey);
            }
        } finally {
            lock.unlock();
        }
    }
}
