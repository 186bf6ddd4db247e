package io.github.qcowloom.virtio;

/**
 * The driver broke the virtqueue's rules in a way that leaves no request to fail (a head index out of range, an
 * available index that ran ahead by more than the queue size, a descriptor chain that loops or cannot be
 * followed): the device stops and needs a reset (virtio's DEVICE_NEEDS_RESET), as QEMU's virtio_error does.
 */
public final class VirtqueueException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public VirtqueueException(String message) {
        super(message);
    }
}
