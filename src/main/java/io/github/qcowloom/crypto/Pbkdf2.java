package io.github.qcowloom.crypto;

import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * PBKDF2 (RFC 8018) with HMAC over a password's raw bytes, as LUKS turns passwords into slot keys and checks master
 * keys. Not the JDK's SecretKeyFactory, which takes the password as chars and re-encodes them (not what QEMU
 * hashes), and not its Mac, which hashes twice as much per round ({@link PrecomputedHmac}). Stateless: safe from
 * any thread.
 */
public final class Pbkdf2 {
    /** QEMU's qcrypto_pbkdf2_count_iters measures until one run takes this long. */
    static final Duration QEMU_BUDGET = Duration.ofMillis(500);
    private static final byte[] PROBE_PASSWORD = "qcow2-loom".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] PROBE_SALT = new byte[LuksHeader.SALT_LENGTH];

    private Pbkdf2() {}

    /**
     * Measures PBKDF2 iterations per second, for LUKS to pick counts that take a chosen time:
     * {@link #iterationsPerSecond(LuksHash, int)} in production, something quicker in tests.
     */
    @FunctionalInterface
    public interface Rate {
        /** Iterations per second of {@code hash} deriving {@code outputLength} bytes. */
        long iterationsPerSecond(LuksHash hash, int outputLength);
    }

    /** {@code length} bytes derived from {@code password} and {@code salt} with {@code iterations} rounds. */
    public static byte[] derive(LuksHash hash, byte[] password, byte[] salt, long iterations, int length) {
        if (iterations < 1 || iterations > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("PBKDF2 iterations " + iterations + " outside 1..2^32-1");
        }
        if (length < 1) {
            throw new IllegalArgumentException("PBKDF2 output of " + length + " bytes");
        }
        PrecomputedHmac mac = new PrecomputedHmac(hash, password);
        int digest = hash.digestLength();
        byte[] out = new byte[length];
        byte[] u = new byte[digest];
        byte[] t = new byte[digest];
        byte[] blockIndex = new byte[4];
        for (int block = 1, at = 0; at < length; block++, at += digest) {
            blockIndex[0] = (byte) (block >>> 24);
            blockIndex[1] = (byte) (block >>> 16);
            blockIndex[2] = (byte) (block >>> 8);
            blockIndex[3] = (byte) block;
            mac.mac(salt, blockIndex, u);
            System.arraycopy(u, 0, t, 0, digest);
            for (long i = 1; i < iterations; i++) {
                mac.mac(u, null, u);
                for (int k = 0; k < digest; k++) {
                    t[k] ^= u[k];
                }
            }
            System.arraycopy(t, 0, out, at, Math.min(digest, length - at));
        }
        return out;
    }

    /**
     * Iterations per second as QEMU's qcrypto_pbkdf2_count_iters measures them: from 2^15 iterations, ten times more
     * while a run takes under 100 ms, scaled to aim at one second while under 500 ms, then the last run's rate.
     * QEMU times its thread's CPU; this times the wall clock, as a virtual thread has no CPU clock of its own.
     */
    public static long iterationsPerSecond(LuksHash hash, int outputLength) {
        return iterationsPerSecond(hash, outputLength, QEMU_BUDGET);
    }

    /**
     * {@link #iterationsPerSecond(LuksHash, int)} done until one run takes {@code budget} rather than 500 ms: the
     * same steps scaled (a fifth of the budget to grow tenfold, twice it to aim at). A short budget measures less
     * exactly, and soon.
     */
    public static long iterationsPerSecond(LuksHash hash, int outputLength, Duration budget) {
        long budgetNanos = budget.toNanos();
        if (budgetNanos <= 0) {
            throw new IllegalArgumentException("a budget of " + budget);
        }
        long iterations = 1 << 15;
        while (true) {
            long start = System.nanoTime();
            derive(hash, PROBE_PASSWORD, PROBE_SALT, iterations, outputLength);
            long elapsed = Math.max(1, System.nanoTime() - start);
            if (elapsed > budgetNanos) {
                return (long) (iterations * 1e9 / elapsed);
            }
            iterations = elapsed < budgetNanos / 5 ? iterations * 10
                    : (long) (iterations * (2.0 * budgetNanos / elapsed));
            iterations = Math.min(iterations, 0xFFFF_FFFFL);
        }
    }
}
