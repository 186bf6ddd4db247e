package io.github.qcowloom.storage;

import java.io.Closeable;
import java.io.IOException;

/**
 * Advisory one-byte locks on a file, held through a descriptor of their own whose lifetime is the open image's:
 * open-file-description locks where the kernel has them (the Java 22+ layer's {@code OfdLockBytes}), else classic
 * POSIX record locks ({@link PosixLockBytes}). Both conflict with each other in the kernel, so QEMU sees either.
 */
interface LockBytes extends Closeable {
    /** Takes a shared lock on byte {@code offset}; false if another holder has it exclusively. */
    boolean lockShared(long offset) throws IOException;

    /** Drops this holder's lock on byte {@code offset}, if any. */
    void unlock(long offset) throws IOException;

    /** True if anyone but this holder has any lock on byte {@code offset} (QEMU's qemu_lock_fd_test). */
    boolean heldElsewhere(long offset) throws IOException;

    /** "OFD" or "POSIX", for messages and logs. */
    String kind();
}
