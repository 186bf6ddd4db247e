package io.github.qcowloom.cli;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Objects;
import java.util.Set;

/**
 * qemu-nbd's {@code --pid-file}, as QEMU's qemu_write_pidfile writes it: the file created (mode 0600) or opened,
 * write-locked for as long as the process lives (fcntl's lock, which FileChannel takes on Linux), so that a second
 * server given the same file fails, then this process's id and a newline. Left in place at exit, as qemu-nbd
 * leaves it.
 */
final class PidFile implements Closeable {
    private final FileChannel channel;

    private PidFile(FileChannel channel) {
        this.channel = channel;
    }

    /**
     * Writes the file and holds its lock until {@link #close}.
     *
     * @throws IOException in qemu-nbd's words: "Could not create 'PATH': ...", "Cannot lock pid file: ..."
     */
    static PidFile write(Path path) throws IOException {
        while (true) {
            // The file's identity before the open (QEMU fstats the descriptor, which Java cannot): one replaced
            // between this and the lock shows as another below.
            Object locked;
            try {
                locked = Files.readAttributes(path, BasicFileAttributes.class).fileKey();
            } catch (NoSuchFileException e) {
                open(path).close(); // created, then taken from the top
                continue;
            }
            FileChannel ch = open(path);
            try {
                FileLock lock = ch.tryLock();
                if (lock == null) {
                    throw new IOException("Cannot lock pid file: Resource temporarily unavailable");
                }
                // The file locked must be the one the path names now: another server may have replaced it.
                Object now;
                try {
                    now = Files.readAttributes(path, BasicFileAttributes.class).fileKey();
                } catch (NoSuchFileException e) {
                    ch.close();
                    continue;
                }
                if (!Objects.equals(locked, now)) {
                    ch.close();
                    continue;
                }
                ch.truncate(0);
                ch.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)));
                return new PidFile(ch);
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
        }
    }

    private static FileChannel open(Path path) throws IOException {
        try {
            return FileChannel.open(path, Set.of(StandardOpenOption.WRITE, StandardOpenOption.CREATE),
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        } catch (NoSuchFileException e) {
            throw new IOException("Could not create '" + path + "': No such file or directory", e);
        } catch (AccessDeniedException e) {
            throw new IOException("Could not create '" + path + "': Permission denied", e);
        }
    }

    /** Gives the lock up (the file stays). */
    @Override
    public void close() throws IOException {
        channel.close();
    }
}
