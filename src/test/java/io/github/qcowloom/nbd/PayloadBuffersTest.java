package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class PayloadBuffersTest {
    @Test
    void buffersAreDirectAlignedAndSizedToTheNextPowerOfTwo() {
        PayloadBuffers pool = new PayloadBuffers();
        for (int length : new int[] {0, 1, 4096, 4097, 65536, 300_000, 32 << 20}) {
            ByteBuffer b = pool.take(length);
            assertTrue(b.isDirect());
            assertEquals(0, b.alignmentOffset(0, PayloadBuffers.ALIGNMENT), "O_DIRECT needs an aligned address");
            assertEquals(0, b.position());
            assertEquals(length, b.limit());
            assertEquals(PayloadBuffers.capacityFor(length), b.capacity());
            assertTrue(b.capacity() >= Math.max(length, 4096) && b.capacity() < 2 * Math.max(length, 4096));
        }
    }

    @Test
    void aGivenBufferIsReusedUpToTheIdleLimit() {
        PayloadBuffers pool = new PayloadBuffers();
        ByteBuffer a = pool.take(1 << 20);
        ByteBuffer b = pool.take(1 << 20);
        ByteBuffer c = pool.take(1 << 20);
        pool.give(a.position(7));
        pool.give(b);
        pool.give(c); // a third 1 MiB buffer is over the 2 MiB kept idle per size: dropped
        ByteBuffer again = pool.take(700_000);
        assertSame(a, again);
        assertEquals(0, again.position());
        assertEquals(700_000, again.limit());
        assertSame(b, pool.take(1 << 20));
        assertNotSame(c, pool.take(1 << 20));
    }

    @Test
    void oneBufferOfEachSizeAbove2MiBIsKept() {
        PayloadBuffers pool = new PayloadBuffers();
        ByteBuffer a = pool.take(32 << 20);
        ByteBuffer b = pool.take(20 << 20);
        pool.give(a);
        pool.give(b);
        assertSame(a, pool.take(30 << 20), "a client reading 32 MiB at a time reuses one buffer");
        assertNotSame(b, pool.take(32 << 20), "one of each size is kept");
    }
}
