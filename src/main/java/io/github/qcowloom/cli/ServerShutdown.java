package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.exec.EventLoops;
import java.io.Closeable;
import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Ends a server once, whichever asks first: SIGINT or SIGTERM (a shutdown hook, which the JVM waits for, so a
 * signal during an end begun otherwise waits for it to finish) or its last client leaving (qemu-nbd without
 * {@code --persistent}). Stops the server (the requests in flight finish), closes the device clean, then does what
 * must follow it (serve -s deletes its temporary image).
 *
 * <p>Lock discipline: none; {@code begun} lets one caller run the end, {@code done} lets the others wait for it.
 */
final class ServerShutdown {
    /** What follows the close, whether or not the close succeeded. */
    @FunctionalInterface
    interface After {
        void run() throws IOException;
    }

    private final BlockDevice device;
    private final Closeable server;
    private final After after;
    private final AtomicBoolean begun = new AtomicBoolean();
    /** Completed when the end is over, with what made it fail (a flush, a close), or null. */
    private final CompletableFuture<IOException> done = new CompletableFuture<>();

    ServerShutdown(BlockDevice device, Closeable server, After after) {
        this.device = device;
        this.server = server;
        this.after = after;
    }

    /** Ends the server on SIGINT and SIGTERM. */
    void onSignals() {
        Runtime.getRuntime().addShutdownHook(new Thread(this::run, "serve-shutdown"));
    }

    /** Ends the server when {@code gone} completes (on a thread of its own, not the last client's). */
    void when(CompletableFuture<Void> gone) {
        gone.thenRun(() -> Thread.ofPlatform().name("serve-last-client").start(this::run));
    }

    /** Ends the server, or waits (uninterruptibly: a shutdown hook must not return early) for the end begun. */
    void run() {
        if (!begun.compareAndSet(false, true)) {
            done.join();
            return;
        }
        IOException failure = null;
        try {
            try (device) {
                server.close();
            } finally {
                after.run();
            }
        } catch (IOException e) {
            failure = e;
        } finally {
            EventLoops.stopForExit(); // the image is closed: see Main.main
            done.complete(failure);
        }
    }

    /** Waits for the end; throws what made it fail (a flush, a close). */
    void await() throws IOException {
        IOException failure = done.join();
        if (failure != null) {
            throw failure;
        }
    }
}
