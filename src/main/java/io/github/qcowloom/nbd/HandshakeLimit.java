package io.github.qcowloom.nbd;

import java.io.IOException;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Closes a connection whose client has not finished the handshake within the limit (qemu-nbd's
 * {@code --handshake-limit}): a sleeping virtual thread per connection, ended when the handshake passes. Exactly
 * one of the two wins, decided by one compare-and-set, so a handshake that ends as the limit strikes is either
 * served or closed, never both.
 *
 * <p>Lock discipline: none; {@code state} is the only shared field.
 */
final class HandshakeLimit {
    private static final Logger LOG = LoggerFactory.getLogger(HandshakeLimit.class);
    private static final int RUNNING = 0;
    private static final int PASSED = 1;
    private static final int EXPIRED = 2;

    private final AtomicInteger state = new AtomicInteger(RUNNING);
    private final Thread watchdog;

    private HandshakeLimit(SocketChannel ch, Duration limit) {
        if (limit.isZero()) {
            state.set(PASSED);
            watchdog = null;
            return;
        }
        watchdog = Thread.ofVirtual().name("nbd-handshake-limit").start(() -> {
            try {
                Thread.sleep(limit);
            } catch (InterruptedException e) {
                return; // passed in time
            }
            if (state.compareAndSet(RUNNING, EXPIRED)) {
                LOG.info("NBD client dropped: no handshake within {} s", limit.toSeconds());
                try {
                    ch.close(); // wakes the handshake's blocked read with an exception
                } catch (IOException e) {
                    LOG.debug("closing a client past the handshake limit: {}", e.toString());
                }
            }
        });
    }

    static HandshakeLimit start(SocketChannel ch, Duration limit) {
        return new HandshakeLimit(ch, limit);
    }

    /** Marks the handshake done; false if the limit had already struck (the channel is closed). Idempotent. */
    boolean passed() {
        if (state.compareAndSet(RUNNING, PASSED) && watchdog != null) {
            watchdog.interrupt();
        }
        return state.get() == PASSED;
    }
}
