package io.github.qcowloom.api;

/**
 * A write refused because it would make the first sector of an image whose format was probed as raw read as another
 * format's header, as QEMU's raw driver refuses it (EPERM): otherwise a guest could turn its disk into an image that
 * the next probe opens as qcow2, naming a host file as its backing file. Naming the format (raw) lifts it.
 */
public class ProbedRawHeaderException extends ReadOnlyImageException {
    public ProbedRawHeaderException(String message) {
        super(message);
    }
}
