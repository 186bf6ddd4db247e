package io.github.qcowloom.storage;

import java.io.IOException;

/**
 * A system call of the Java 22+ layer's file I/O failed: its message is the C library's words for the error (in the
 * process's locale), {@link #errno()} the number, which is what callers test.
 */
public final class FailedCallException extends IOException {
    /** EOPNOTSUPP: the file system does not do what was asked (fallocate, a punch). */
    public static final int EOPNOTSUPP = 95;
    /** EINVAL: an argument the call does not take there (fallocate: a mode the file system refuses for a range). */
    public static final int EINVAL = 22;
    private static final int ENODEV = 19;
    private static final int ENOTTY = 25;
    private static final int ENOSYS = 38;

    private final int errno;

    public FailedCallException(int errno, String message) {
        super(message);
        this.errno = errno;
    }

    public int errno() {
        return errno;
    }

    /** True if the kernel or the file system has no such call at all (QEMU's translate_err makes these ENOTSUP). */
    public boolean unsupported() {
        return errno == EOPNOTSUPP || errno == ENOSYS || errno == ENOTTY || errno == ENODEV;
    }
}
