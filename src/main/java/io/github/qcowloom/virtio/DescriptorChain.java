package io.github.qcowloom.virtio;

import java.util.List;

/**
 * One request's buffers as the driver chained them: the head index (what the used ring gives back) and the
 * buffers in chain order, device-readable ones first, then device-writable ones (2.7.4.2). Buffers are only
 * addresses and lengths: nothing here has been checked against guest memory yet.
 */
record DescriptorChain(int head, List<Buffer> buffers) {
    /** One descriptor's buffer. */
    record Buffer(long address, int length, boolean writable) {
        long unsignedLength() {
            return Integer.toUnsignedLong(length);
        }
    }
}
