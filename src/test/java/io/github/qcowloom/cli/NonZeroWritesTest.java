package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * convert's sparse detection ({@link ChunkCopy#writeNonZero}) against a byte-by-byte reference: granules aligned to
 * the guest offset, each written only if it holds a non-zero byte, runs of such granules in one write. The pieces
 * mix zero granules, data granules and granules whose first bytes are zero and a later one is not, at unaligned
 * offsets, in direct and heap buffers.
 */
class NonZeroWritesTest {
    private static final int GRANULE = 4096;

    private record Write(long offset, int length) {
    }

    @Test
    void writesExactlyTheRunsOfGranulesThatHoldData() throws IOException {
        Random random = new Random(42);
        for (int round = 0; round < 300; round++) {
            int length = 1 + random.nextInt(16 * GRANULE);
            long offset = random.nextInt(4) == 0 ? (long) random.nextInt(64) * GRANULE : random.nextInt(1 << 20);
            byte[] bytes = new byte[length];
            for (int at = 0; at < length; at += 512) {
                switch (random.nextInt(4)) {
                    case 0 -> { } // zeroes
                    case 1 -> bytes[Math.min(length - 1, at + 8 + random.nextInt(504))] = 1; // late non-zero
                    default -> {
                        for (int i = at; i < Math.min(length, at + 512); i++) {
                            bytes[i] = (byte) random.nextInt();
                        }
                    }
                }
            }
            ByteBuffer buf = random.nextBoolean() ? ByteBuffer.allocateDirect(length) : ByteBuffer.allocate(length);
            buf.put(0, bytes);
            List<Write> got = new ArrayList<>();
            ChunkCopy.writeNonZero(offset, buf, GRANULE, (o, part) -> got.add(new Write(o, part.remaining())));
            assertEquals(reference(offset, bytes), got, "round " + round);
        }
    }

    private static List<Write> reference(long offset, byte[] bytes) {
        List<Write> writes = new ArrayList<>();
        int runStart = -1;
        for (int at = 0; at < bytes.length; ) {
            int next = (int) Math.min(bytes.length, at + GRANULE - (offset + at) % GRANULE);
            boolean zero = true;
            for (int i = at; i < next; i++) {
                zero &= bytes[i] == 0;
            }
            if (!zero && runStart < 0) {
                runStart = at;
            } else if (zero && runStart >= 0) {
                writes.add(new Write(offset + runStart, at - runStart));
                runStart = -1;
            }
            at = next;
        }
        if (runStart >= 0) {
            writes.add(new Write(offset + runStart, bytes.length - runStart));
        }
        return writes;
    }
}
