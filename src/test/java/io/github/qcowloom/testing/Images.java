package io.github.qcowloom.testing;

import io.github.qcowloom.api.BlockDevice;
import java.io.IOException;
import java.nio.ByteBuffer;

/** Small helpers for reading whole devices in tests. */
public final class Images {
    private Images() {
    }

    /** Reads the whole device in chunks of {@code chunk} bytes (to exercise cluster-crossing requests). */
    public static byte[] readAll(BlockDevice dev, int chunk) throws IOException {
        long size = dev.size();
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("device too large for a test buffer: " + size);
        }
        byte[] all = new byte[(int) size];
        for (long off = 0; off < size; off += chunk) {
            int n = (int) Math.min(chunk, size - off);
            dev.read(off, ByteBuffer.wrap(all, (int) off, n));
        }
        return all;
    }

    /** Index of the first differing byte, or -1. */
    public static long firstDifference(byte[] a, byte[] b) {
        int n = Math.min(a.length, b.length);
        for (int i = 0; i < n; i++) {
            if (a[i] != b[i]) {
                return i;
            }
        }
        return a.length == b.length ? -1 : n;
    }

    /** The bytes {@code file} occupies on the host (st_blocks × 512, as stat(1) reports them). */
    public static long hostBytes(java.nio.file.Path file) {
        return Long.parseLong(Qemu.run(java.util.List.of("stat", "-c", "%b", file.toString())).trim()) * 512;
    }
}
