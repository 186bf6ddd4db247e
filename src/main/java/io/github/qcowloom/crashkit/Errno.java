package io.github.qcowloom.crashkit;

/** The host errors a {@link FaultStorage} can inject. */
public enum Errno {
    /** Input/output error: the device failed. */
    EIO,
    /** No space left on the device. */
    ENOSPC
}
