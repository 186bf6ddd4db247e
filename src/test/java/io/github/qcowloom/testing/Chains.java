package io.github.qcowloom.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;

/** Pieces the driver's jqwik action chains share: I/O inside transformers, and guest ranges to act on. */
public final class Chains {
    private Chains() {
    }

    /** A step of an action that does I/O. */
    public interface IoRunnable {
        void run() throws IOException;
    }

    /** Runs {@code r} inside a transformer, which may not throw checked exceptions. */
    public static void io(IoRunnable r) {
        try {
            r.run();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** An offset and a length inside a disk of {@code size} bytes, biased towards cluster edges. */
    public static Arbitrary<long[]> range(int size, int clusterSize) {
        Arbitrary<Integer> edges = Arbitraries.integers().between(0, size / clusterSize)
                .map(c -> Math.min(size, c * clusterSize));
        Arbitrary<Integer> anywhere = Arbitraries.integers().between(0, size);
        return Combinators.combine(Arbitraries.oneOf(edges, anywhere), Arbitraries.oneOf(edges, anywhere))
                .as((a, b) -> new long[] {Math.min(a, b), Math.abs(a - b)});
    }
}
