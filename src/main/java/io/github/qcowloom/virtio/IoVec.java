package io.github.qcowloom.virtio;

import java.util.ArrayList;
import java.util.List;

/**
 * A run of guest buffers seen as one byte sequence (the readable or the writable part of a chain), so that a
 * request's header, data and status byte may fall anywhere across descriptors (virtio 1.x has no framing rule).
 * Lengths are unsigned 32-bit per buffer, summed in a long: no overflow.
 */
final class IoVec {
    private final long[] addresses;
    private final long[] lengths;
    private final long total;

    private IoVec(long[] addresses, long[] lengths) {
        this.addresses = addresses;
        this.lengths = lengths;
        long t = 0;
        for (long l : lengths) {
            t += l;
        }
        this.total = t;
    }

    static IoVec of(List<DescriptorChain.Buffer> buffers) {
        long[] a = new long[buffers.size()];
        long[] l = new long[buffers.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = buffers.get(i).address();
            l[i] = buffers.get(i).unsignedLength();
        }
        return new IoVec(a, l);
    }

    long total() {
        return total;
    }

    int pieces() {
        return addresses.length;
    }

    /** The bytes from {@code from} on, {@code length} of them; requires {@code from + length <= total()}. */
    IoVec range(long from, long length) {
        if (from < 0 || length < 0 || from > total - length) {
            throw new IllegalArgumentException("range " + from + "+" + length + " of " + total);
        }
        List<long[]> parts = new ArrayList<>();
        long skip = from;
        long left = length;
        for (int i = 0; i < addresses.length && left > 0; i++) {
            if (skip >= lengths[i]) {
                skip -= lengths[i];
                continue;
            }
            long n = Math.min(lengths[i] - skip, left);
            parts.add(new long[] {addresses[i] + skip, n});
            left -= n;
            skip = 0;
        }
        long[] a = new long[parts.size()];
        long[] l = new long[parts.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = parts.get(i)[0];
            l[i] = parts.get(i)[1];
        }
        return new IoVec(a, l);
    }

    /** The guest address of byte {@code at}; requires {@code at < total()}. */
    long addressOf(long at) {
        long skip = at;
        for (int i = 0; i < addresses.length; i++) {
            if (skip < lengths[i]) {
                return addresses[i] + skip;
            }
            skip -= lengths[i];
        }
        throw new IllegalArgumentException("byte " + at + " of " + total);
    }

    /** True if every byte lies in guest memory. */
    boolean inside(GuestMemory memory) {
        for (int i = 0; i < addresses.length; i++) {
            if (lengths[i] > 0 && (addresses[i] < 0 || !memory.contains(addresses[i], lengths[i]))) {
                return false;
            }
        }
        return true;
    }

    long address(int piece) {
        return addresses[piece];
    }

    long length(int piece) {
        return lengths[piece];
    }
}
