package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.CMD_DISC;
import static io.github.qcowloom.nbd.Protocol.CMD_FLAG_FUA;
import static io.github.qcowloom.nbd.Protocol.CMD_READ;
import static io.github.qcowloom.nbd.Protocol.CMD_TRIM;
import static io.github.qcowloom.nbd.Protocol.CMD_WRITE;
import static io.github.qcowloom.nbd.Protocol.CMD_WRITE_ZEROES;
import static io.github.qcowloom.nbd.Protocol.REQUEST_MAGIC;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.storage.CountingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A connection's transmission phase against a stopping server, on bytes a client sent at once. */
@Timeout(value = 30, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class TransmissionTest {
    private static final int REPLY = 16 + 4096; // a simple reply and the data of a 4 KiB READ

    /** {@code count} READs of 4 KiB at offset 0, as one burst of bytes. */
    private static byte[] reads(int count) {
        ByteBuffer wire = ByteBuffer.allocate(count * 28);
        for (int i = 0; i < count; i++) {
            wire.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_READ).putLong(i).putLong(0)
                    .putInt(4096);
        }
        return wire.array();
    }

    private static Transmission transmission(ClientBytes client, RawImage disk, TestExecutor executor,
            long budget, PayloadBuffers buffers, BooleanSupplier stopping) {
        return new Transmission(client, new Export(disk, false), new Session(false), executor,
                new ByteBudget(budget), buffers, e -> {
                    throw e;
                }, stopping);
    }

    /**
     * 100 READs, all read ahead by the first read; once the server is stopping (here, after three replies) none of
     * those still waiting starts: stop must not serve what was read ahead for the length of its grace. The
     * read-ahead buffer goes back to the pool.
     */
    @Test
    void aStoppingServerStartsNoRequestItHasReadAhead() throws Exception {
        ClientBytes client = new ClientBytes(reads(100));
        PayloadBuffers buffers = new PayloadBuffers();
        ByteBuffer readAhead = buffers.take(RequestStream.SIZE);
        buffers.give(readAhead);
        try (RawImage disk = new RawImage(new MemoryStorage(new byte[1 << 20]))) {
            transmission(client, disk, new InlineExecutor(), 64L << 20, buffers,
                    () -> client.written() >= 3 * REPLY).run();
        }
        assertEquals(3 * REPLY, client.written(), "three replies, and no more");
        assertSame(readAhead, buffers.take(RequestStream.SIZE), "the read-ahead buffer was given back");
    }

    /**
     * A request read before the stop whose reading thread then waits for the budget: the wait ends after the stop
     * has begun, and the request is dropped rather than started.
     */
    @Test
    void aRequestThatWaitedForTheBudgetThroughTheStopIsNotStarted() throws Exception {
        ClientBytes client = new ClientBytes(reads(3));
        HeldTasks executor = new HeldTasks();
        AtomicBoolean stopping = new AtomicBoolean();
        try (RawImage disk = new RawImage(new MemoryStorage(new byte[1 << 20]))) {
            // Two 4 KiB READs fill the budget; the third waits in it.
            Transmission t = transmission(client, disk, executor, 8192, new PayloadBuffers(), stopping::get);
            Thread reader = Thread.ofPlatform().start(() -> {
                try {
                    t.run();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });
            while (executor.tasks.size() < 2 || reader.getState() != Thread.State.WAITING) {
                Thread.sleep(1); // the reader never blocks on the client's bytes: WAITING is the budget's wait
            }
            stopping.set(true);
            executor.tasks.get(0).run(); // frees its budget: the reader takes it, then finds the stop
            executor.tasks.get(1).run();
            while (reader.isAlive() && executor.tasks.size() < 3) {
                Thread.sleep(1);
            }
            assertEquals(2, executor.tasks.size(), "the third request was not started");
            reader.join();
        }
        assertEquals(2 * REPLY, client.written());
    }

    /**
     * A writethrough export (qemu-nbd's cache writethrough and directsync) makes each write and zero write durable
     * before its reply, as if the client had asked for FUA (a trim only where asked, as QEMU's); otherwise only FUA
     * syncs.
     */
    @Test
    void aWritethroughExportSyncsEveryWriteBeforeItsReply() throws Exception {
        for (boolean writethrough : new boolean[] {false, true}) {
            ByteBuffer wire = ByteBuffer.allocate(5 * 28 + 4096);
            wire.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_WRITE).putLong(1).putLong(0)
                    .putInt(4096).put(new byte[4096]);
            wire.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_TRIM).putLong(2).putLong(8192)
                    .putInt(4096);
            wire.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_WRITE_ZEROES).putLong(3)
                    .putLong(16384).putInt(4096);
            wire.putInt(REQUEST_MAGIC).putShort((short) CMD_FLAG_FUA).putShort((short) CMD_WRITE_ZEROES).putLong(4)
                    .putLong(16384).putInt(4096);
            wire.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_DISC).putLong(5).putLong(0).putInt(0);
            ClientBytes client = new ClientBytes(wire.array());
            CountingStorage storage = new CountingStorage(new MemoryStorage(new byte[1 << 20]));
            try (RawImage disk = new RawImage(storage)) {
                new Transmission(client, new Export("", null, disk, false, null, false, writethrough),
                        new Session(false), new InlineExecutor(), new ByteBudget(1 << 20), new PayloadBuffers(),
                        e -> {
                            throw e;
                        }, () -> false).run();
            }
            assertEquals(4 * 16, client.written(), "four simple replies");
            assertEquals(writethrough ? 3 : 1, storage.counts().flushes(), "writethrough " + writethrough);
        }
    }

    /** Keeps every task for the test to run, on its own thread, when it chooses. */
    private static final class HeldTasks extends TestExecutor {
        final List<Runnable> tasks = new CopyOnWriteArrayList<>();

        @Override
        public void execute(Runnable task) {
            tasks.add(task);
        }
    }
}
