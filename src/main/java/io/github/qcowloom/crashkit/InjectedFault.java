package io.github.qcowloom.crashkit;

import java.io.IOException;

/** An I/O error injected by a {@link FaultStorage}; its message is the errno name ("EIO", "ENOSPC"). */
public final class InjectedFault extends IOException {
    private static final long serialVersionUID = 1L;

    private final transient Errno errno;
    private final String trigger;

    InjectedFault(Errno errno, String trigger) {
        super(errno.name());
        this.errno = errno;
        this.trigger = trigger;
    }

    /** The injected error. */
    public Errno errno() {
        return errno;
    }

    /** What armed the fault, e.g. "after event l2_update" or "3rd write". */
    public String trigger() {
        return trigger;
    }
}
