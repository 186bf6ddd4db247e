package io.github.qcowloom.testing;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** The first line a server process prints on stdout ("serving ..."), awaited; the rest of its output drained. */
public final class ServingLine {
    private ServingLine() {
    }

    /**
     * The first line {@code server} prints, within {@code seconds}; then a virtual thread reads the rest so that the
     * server never blocks on a full pipe.
     *
     * @return the line, or null where the server closed its output first
     * @throws Exception where none came in time (the server is left running: the caller stops it)
     */
    public static String await(Process server, int seconds) throws Exception {
        BufferedReader out = server.inputReader(StandardCharsets.UTF_8);
        String first = CompletableFuture.supplyAsync(() -> {
            try {
                return out.readLine();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }).get(seconds, TimeUnit.SECONDS);
        Thread.ofVirtual().start(() -> out.lines().forEach(line -> { }));
        return first;
    }
}
