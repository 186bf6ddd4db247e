package io.github.qcowloom.os;

import io.github.qcowloom.storage.KernelCopy;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.ConcurrentHashMap;

/**
 * {@link KernelCopy} through copy_file_range(2): the target opened once, each source file once on its first copy
 * (read-only, through the page cache, which an O_DIRECT user of the same file keeps coherent).
 *
 * <p>Lock discipline: no lock of its own. {@code sources} is a concurrent map whose computeIfAbsent opens each file
 * once, holding the map's lock for that key's bin while it opens (a copy from another file of the same bin waits for
 * that openat); a copy's offsets live in its own confined arena.
 */
public final class CopyFileRange implements KernelCopy {
    /** The most one call is asked to copy; the kernel may copy less and is called again for the rest. */
    private static final long MAX_CALL = 1L << 30;

    private final int target;
    private final ConcurrentHashMap<Path, Integer> sources = new ConcurrentHashMap<>();

    private CopyFileRange(int target) {
        this.target = target;
    }

    /**
     * Opens {@code target} for copies into it.
     *
     * @throws UnsupportedOperationException where the native layer cannot run
     */
    public static CopyFileRange into(Path target) throws IOException {
        LinuxCalls.requireSupported();
        return new CopyFileRange(LinuxCalls.open(target.toString(), LinuxCalls.O_RDWR));
    }

    @Override
    public boolean copy(Path source, long sourceOffset, long targetOffset, long length) {
        int in;
        try {
            in = sources.computeIfAbsent(source, p -> {
                try {
                    return LinuxCalls.open(p.toString(), LinuxCalls.O_RDONLY);
                } catch (IOException e) {
                    return -1;
                }
            });
        } catch (RuntimeException e) {
            return false;
        }
        if (in < 0) {
            return false;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            MemorySegment offsets = arena.allocate(ValueLayout.JAVA_LONG, 2); // loff_t in, loff_t out
            offsets.setAtIndex(ValueLayout.JAVA_LONG, 0, sourceOffset);
            offsets.setAtIndex(ValueLayout.JAVA_LONG, 1, targetOffset);
            long left = length;
            while (left > 0) {
                long n = LinuxCalls.syscall(capture, SyscallNumbers.COPY_FILE_RANGE, in, offsets.address(), target,
                        offsets.address() + 8, Math.min(left, MAX_CALL), 0);
                if (n == -LinuxCalls.EINTR) {
                    continue;
                }
                if (n <= 0) { // -errno, or 0: the source ended before the range did
                    return false;
                }
                left -= n; // the kernel has moved both offsets on
            }
            return true;
        }
    }

    @Override
    public void close() {
        for (int fd : sources.values()) {
            if (fd >= 0) {
                LinuxCalls.close(fd);
            }
        }
        sources.clear();
        LinuxCalls.close(target);
    }
}
