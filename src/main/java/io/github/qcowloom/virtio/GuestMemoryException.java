package io.github.qcowloom.virtio;

/**
 * An access to guest memory outside every region the guest (or the front end) gave: the device refuses it
 * without touching memory. A request whose buffers fault fails with an I/O error; a ring that faults breaks the
 * device.
 */
public final class GuestMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public GuestMemoryException(String message) {
        super(message);
    }
}
