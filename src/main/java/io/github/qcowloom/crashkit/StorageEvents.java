package io.github.qcowloom.crashkit;

/**
 * The hook through which a driver announces {@link StorageEvent}s just before the I/O they name, so that a
 * {@link FaultStorage} can fail that I/O. Implementations must be cheap and safe for concurrent use.
 */
@FunctionalInterface
public interface StorageEvents {
    /** Announces nothing to anybody: what a driver uses when no fault injection is wanted. */
    StorageEvents NONE = event -> { };

    /** Called by the driver when {@code event} is about to happen. */
    void event(StorageEvent event);
}
