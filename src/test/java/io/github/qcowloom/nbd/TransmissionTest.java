package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.CMD_READ;
import static io.github.qcowloom.nbd.Protocol.REQUEST_MAGIC;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.storage.MemoryStorage;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class TransmissionTest {
    /**
     * A client that sends 100 READs at once has them all read ahead by the first read; once the server is stopping
     * (here, from the fourth request on), none of those still waiting starts: stop must not serve what was read
     * ahead for the length of its grace.
     */
    @Test
    @Timeout(30)
    void aStoppingServerStartsNoRequestItHasReadAhead() throws Exception {
        ByteBuffer wire = ByteBuffer.allocate(100 * 28);
        for (int i = 0; i < 100; i++) {
            wire.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_READ).putLong(i).putLong(0)
                    .putInt(4096);
        }
        ClientBytes client = new ClientBytes(wire.array());
        AtomicInteger asked = new AtomicInteger();
        try (RawImage disk = new RawImage(new MemoryStorage(new byte[1 << 20]))) {
            new Transmission(client, new Export("t", disk, false), new Session(false, false), new InlineExecutor(),
                    new ByteBudget(64L << 20), new PayloadBuffers(), e -> {
                        throw e;
                    }, () -> asked.incrementAndGet() > 3).run();
        }
        assertEquals(3 * (16 + 4096), client.written(), "three simple replies with their data, and no more");
    }
}
