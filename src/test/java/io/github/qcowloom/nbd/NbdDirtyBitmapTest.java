package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.image.RawImage;
import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The qemu:dirty-bitmap context beside base:allocation, on the wire: listed by its name and by its namespaces,
 * selected with the other, and answered as a second chunk of a block status reply, only that one DONE.
 */
class NbdDirtyBitmapTest {
    private static final long SIZE = 4 << 20;

    @TempDir
    Path dir;

    /** Dirty over [64 KiB, 192 KiB) and [1 MiB, 1 MiB + 512). */
    private static final ExportedBitmap BITMAP = new ExportedBitmap() {
        @Override
        public String name() {
            return "b0";
        }

        @Override
        public Runs runs() {
            long[] edges = {0, 65536, 196608, 1 << 20, (1 << 20) + 512, SIZE};
            return (offset, limit) -> {
                int i = 0;
                while (edges[i + 1] <= offset) {
                    i++;
                }
                return new Run(Math.min(limit, edges[i + 1]), i % 2 == 1);
            };
        }
    };

    private static ByteBuffer queries(String... names) {
        int length = 8;
        for (String n : names) {
            length += 4 + n.length();
        }
        ByteBuffer b = ByteBuffer.allocate(length).putInt(0).putInt(names.length);
        for (String n : names) {
            b.putInt(n.length()).put(n.getBytes(StandardCharsets.US_ASCII));
        }
        return b;
    }

    /** Sends a meta context option and returns its contexts as "id name", up to the ACK. */
    private static List<String> contexts(RawClient c, int option, String... names) throws IOException {
        ByteBuffer data = queries(names).flip();
        c.send(ByteBuffer.allocate(16 + data.remaining()).putLong(Protocol.IHAVEOPT).putInt(option)
                .putInt(data.remaining()).put(data));
        List<String> found = new ArrayList<>();
        while (true) {
            ByteBuffer h = c.read(20);
            h.getLong();
            h.getInt();
            int type = h.getInt();
            ByteBuffer body = c.read(h.getInt());
            if (type == Protocol.REP_ACK) {
                return found;
            }
            assertEquals(Protocol.REP_META_CONTEXT, type);
            int id = body.getInt();
            found.add(id + " " + StandardCharsets.UTF_8.decode(body));
        }
    }

    @Test
    void bothContextsListedSelectedAndAnswered() throws Exception {
        Path socket = dir.resolve("s.sock");
        try (RawImage device = new RawImage(new MemoryStorage(new byte[(int) SIZE]));
                NbdServerHolder server = new NbdServerHolder(NbdServer.start(new Export(device, true, BITMAP),
                        UnixDomainSocketAddress.of(socket), ExecutionModel.VIRTUAL, NbdServer.Options.defaults()));
                RawClient c = new RawClient(UnixDomainSocketAddress.of(socket))) {
            c.send(ByteBuffer.allocate(4).putInt(Protocol.FLAG_FIXED_NEWSTYLE | Protocol.FLAG_NO_ZEROES));
            assertEquals(Protocol.REP_ACK, c.option(Protocol.OPT_STRUCTURED_REPLY, ByteBuffer.allocate(0)));
            assertEquals(List.of("0 base:allocation", "0 qemu:dirty-bitmap:b0"),
                    contexts(c, Protocol.OPT_LIST_META_CONTEXT));
            assertEquals(List.of("0 qemu:dirty-bitmap:b0"), contexts(c, Protocol.OPT_LIST_META_CONTEXT, "qemu:"));
            assertEquals(List.of("0 qemu:dirty-bitmap:b0"),
                    contexts(c, Protocol.OPT_LIST_META_CONTEXT, "qemu:dirty-bitmap:"));
            assertEquals(List.of(), contexts(c, Protocol.OPT_LIST_META_CONTEXT, "qemu:dirty-bitmap:b1"));
            assertEquals(List.of("1 base:allocation", "2 qemu:dirty-bitmap:b0"), contexts(c,
                    Protocol.OPT_SET_META_CONTEXT, "base:allocation", "qemu:dirty-bitmap:b0"));
            c.option(Protocol.OPT_GO, ByteBuffer.allocate(6).putInt(0).putShort((short) 0));
            while (true) { // the GO's replies, up to its ACK
                ByteBuffer h = c.read(20);
                h.getLong();
                h.getInt();
                int type = h.getInt();
                c.read(h.getInt());
                if (type == Protocol.REP_ACK) {
                    break;
                }
            }
            c.request(Protocol.CMD_BLOCK_STATUS, 7, 0, 2 << 20, null);
            assertEquals("1 more: 2097152/0", chunk(c));
            assertEquals("2 done: 65536/0 131072/1 851968/0 512/1 1048064/0", chunk(c));
        }
    }

    /** One structured reply chunk of a block status: "id done|more: length/flags ...". */
    private static String chunk(RawClient c) throws IOException {
        ByteBuffer h = c.read(20);
        assertEquals(Protocol.STRUCTURED_REPLY_MAGIC, h.getInt());
        short flags = h.getShort();
        assertEquals(Protocol.REPLY_TYPE_BLOCK_STATUS, h.getShort());
        assertEquals(7, h.getLong());
        ByteBuffer body = c.read(h.getInt());
        StringBuilder s = new StringBuilder().append(body.getInt())
                .append((flags & Protocol.REPLY_FLAG_DONE) != 0 ? " done:" : " more:");
        while (body.hasRemaining()) {
            s.append(' ').append(Integer.toUnsignedLong(body.getInt())).append('/').append(body.getInt());
        }
        return s.toString();
    }

    /** Stops the server when the test ends. */
    private record NbdServerHolder(NbdServer server) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            server.stop();
        }
    }
}
