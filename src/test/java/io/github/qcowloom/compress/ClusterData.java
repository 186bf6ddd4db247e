package io.github.qcowloom.compress;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;

/** Deterministic cluster contents for codec tests: incompressible noise or data shaped like real disks. */
final class ClusterData {
    private static final String[] WORDS = {
        "qcow2", "cluster", "refcount", "the", "of", "and", "virtual", "thread", "disk", "image", "\n", "    ",
        "snapshot", "0x00fffffffffffe00", "{", "}", "return", "int", "=", ";", "zlib", "zstd",
    };

    private ClusterData() {}

    /** Uniform random bytes: no codec can shrink them. */
    static byte[] random(Random random, int size) {
        byte[] data = new byte[size];
        random.nextBytes(data);
        return data;
    }

    /**
     * Segments of zeros, runs, text, small-alphabet noise, short repeats and long-distance repeats, with at
     * most a quarter of the cluster left as noise so that it always shrinks.
     */
    static byte[] compressible(Random random, int size) {
        byte[] data = new byte[size];
        int pos = 0;
        int noiseBudget = size / 4;
        while (pos < size) {
            int length = Math.min(size - pos, 1 + random.nextInt(Math.max(1, Math.min(size, 16384))));
            switch (random.nextInt(7)) {
                case 0 -> {} // zeros
                case 1 -> Arrays.fill(data, pos, pos + length, (byte) random.nextInt(256));
                case 2 -> text(random, data, pos, length);
                case 3 -> smallAlphabet(random, data, pos, length, 2 + random.nextInt(15));
                case 4 -> repeat(data, pos, length, random.nextInt(1, 64), random);
                case 5 -> repeatFrom(data, pos, length, random);
                default -> {
                    int noise = Math.min(length, noiseBudget);
                    noiseBudget -= noise;
                    for (int i = pos; i < pos + noise; i++) {
                        data[i] = (byte) random.nextInt(256);
                    }
                }
            }
            pos += length;
        }
        return data;
    }

    /**
     * Blocks of low-entropy noise repeated with the given period: a 32 KiB-window deflater would reach back
     * {@code period} bytes for long matches, which QEMU's 4 KiB window cannot follow when period > 4096.
     */
    static byte[] periodic(Random random, int size, int period) {
        byte[] block = new byte[period];
        smallAlphabet(random, block, 0, period, 16);
        byte[] data = new byte[size];
        for (int i = 0; i < size; i++) {
            data[i] = block[i % period];
        }
        return data;
    }

    private static void text(Random random, byte[] data, int pos, int length) {
        int end = pos + length;
        while (pos < end) {
            byte[] word = (WORDS[random.nextInt(WORDS.length)] + " ").getBytes(StandardCharsets.US_ASCII);
            int n = Math.min(word.length, end - pos);
            System.arraycopy(word, 0, data, pos, n);
            pos += n;
        }
    }

    private static void smallAlphabet(Random random, byte[] data, int pos, int length, int symbols) {
        for (int i = pos; i < pos + length; i++) {
            data[i] = (byte) ('a' + random.nextInt(symbols));
        }
    }

    private static void repeat(byte[] data, int pos, int length, int unit, Random random) {
        for (int i = 0; i < length; i++) {
            data[pos + i] = i < unit ? (byte) random.nextInt(256) : data[pos + i - unit];
        }
    }

    /** Copies an earlier part of the cluster, as file systems do with duplicated blocks. */
    private static void repeatFrom(byte[] data, int pos, int length, Random random) {
        if (pos == 0) {
            return;
        }
        int from = random.nextInt(pos);
        for (int i = 0; i < length; i++) {
            data[pos + i] = data[from + i % (pos - from)];
        }
    }
}
