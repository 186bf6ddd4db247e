package io.github.qcowloom.storage;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;

/**
 * The alignment of offsets, lengths and buffers that O_DIRECT requests to a host file need. FileChannel demands the
 * file system's block (4096 on most); io_uring takes what the kernel takes, which statx reports for the file
 * (STATX_DIOALIGN, Linux 6.1 on, in the jar's Java 22+ layer): the device's logical block, often 512. QEMU probes
 * the same (raw_probe_alignment) and so writes a guest's 512-byte sectors as they are, where the larger alignment
 * makes each a read-modify-write of the block around it.
 */
final class DirectIoAlignment {
    private static final Java22Method STATX = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.os.FileBlocks", "directIoAlignment", MethodType.methodType(int.class, Path.class),
            "statx");
    private static final int MAX = 1 << 20;

    private DirectIoAlignment() {
    }

    /**
     * The alignment for {@code path}, whose file system's block is {@code fileSystemBlock}: the kernel's own where
     * io_uring moves the bytes ({@code throughRing}) and statx tells it, else the file system's block.
     */
    static int of(Path path, int fileSystemBlock, boolean throughRing) {
        if (throughRing && STATX.handle() != null) {
            try {
                int kernel = (int) STATX.handle().invokeExact(path);
                if (kernel > 0 && kernel <= MAX && Integer.bitCount(kernel) == 1) {
                    return kernel;
                }
            } catch (Throwable e) {
                // statx refused (an old kernel, a seccomp filter): the file system's block always works
            }
        }
        return fileSystemBlock;
    }
}
