package io.github.qcowloom.storage;

import java.io.Closeable;
import java.nio.file.Path;

/**
 * Copies byte ranges of files into one target file inside the kernel ({@code copy_file_range}), so that the bytes
 * never pass through the process and a file system that shares extents (XFS, btrfs, NFS 4.2) may copy by reference:
 * the offload of qemu-img convert -C (file-posix's handle_aiocb_copy_range). The jar's Java 22+ layer implements it
 * ({@code os.CopyFileRange.into}); safe for concurrent copies.
 */
public interface KernelCopy extends Closeable {
    /**
     * Copies {@code length} bytes of the file {@code source} from {@code sourceOffset} to the target at {@code
     * targetOffset}. False where the kernel refused (another file system, a file system without it, an I/O error,
     * the source ending early): the range of the target may then hold part of the copy, and the caller writes it
     * itself.
     */
    boolean copy(Path source, long sourceOffset, long targetOffset, long length);

    /** Closes the target and every source file opened for the copies. */
    @Override
    void close();
}
