package io.github.qcowloom.testing;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;

/**
 * Deterministic guest data for compression tests, cluster by cluster of one of several kinds: text (shrinks to a
 * third or so), random bytes (does not shrink), zeroes, a repeated byte (shrinks to almost nothing) and half random,
 * half zeroes.
 */
public final class MixedData {
    private static final String[] WORDS = {"cluster ", "refcount ", "qcow2 ", "sector ", "zlib ", "zstd ", "guest ",
        "host ", "table ", "entry ", "snapshot ", "backing ", "\n"};

    /** What a generated cluster holds. */
    public enum Kind { TEXT, RANDOM, ZERO, PATTERN, HALF_RANDOM }

    private MixedData() {
    }

    /** The kind of cluster {@code index} in data made with {@code seed}. */
    public static Kind kind(long seed, long index) {
        int roll = new SplittableRandom(seed * 1_000_003L + index).nextInt(100);
        return roll < 35 ? Kind.TEXT : roll < 50 ? Kind.RANDOM : roll < 65 ? Kind.ZERO : roll < 80 ? Kind.PATTERN
                : Kind.HALF_RANDOM;
    }

    /** {@code size} bytes of clusters of {@code clusterSize} bytes (the last may be partial). */
    public static byte[] generate(long seed, int clusterSize, int size) {
        byte[] out = new byte[size];
        for (int start = 0, index = 0; start < size; start += clusterSize, index++) {
            fill(out, start, Math.min(clusterSize, size - start), kind(seed, index),
                    new SplittableRandom(seed ^ (index * 0x9E3779B97F4A7C15L)));
        }
        return out;
    }

    private static void fill(byte[] out, int start, int length, Kind kind, SplittableRandom rnd) {
        switch (kind) {
            case TEXT -> {
                int at = start;
                while (at < start + length) {
                    byte[] w = WORDS[rnd.nextInt(WORDS.length)].getBytes(StandardCharsets.US_ASCII);
                    int n = Math.min(w.length, start + length - at);
                    System.arraycopy(w, 0, out, at, n);
                    at += n;
                }
            }
            case RANDOM -> randomBytes(out, start, length, rnd);
            case ZERO -> {
                // Already zero.
            }
            case PATTERN -> java.util.Arrays.fill(out, start, start + length, (byte) (1 + rnd.nextInt(255)));
            case HALF_RANDOM -> randomBytes(out, start, length / 2, rnd);
        }
    }

    private static void randomBytes(byte[] out, int start, int length, SplittableRandom rnd) {
        for (int i = start; i < start + length; i++) {
            out[i] = (byte) rnd.nextInt(256);
        }
    }
}
