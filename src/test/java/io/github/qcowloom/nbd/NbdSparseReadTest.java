package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Structured READs as qemu-nbd answers them (nbd_co_send_sparse_read): what reads as zeroes goes as hole chunks, the
 * rest as data chunks, DONE on the last; with DF one data chunk; a read of nothing one NONE chunk. Sent by hand to
 * qemu-nbd and to our server over copies of one overlay: the same bytes, and the same of them sent as holes.
 */
class NbdSparseReadTest {
    private static final int K = 1024;
    private static final int M = 1024 * K;

    @TempDir
    Path dir;

    /** One chunk of a structured reply: its type, DONE flag, and the range it covers (a data chunk's bytes). */
    private record Chunk(int type, boolean done, long offset, long length) {
    }

    /** A read's chunks in the order they came, and the bytes they make over the range asked for. */
    private record Read(List<Chunk> chunks, byte[] bytes) {
        /** The ranges sent as holes, neighbours merged ({@code [offset, end)} pairs). */
        List<List<Long>> holes() {
            List<List<Long>> holes = new ArrayList<>();
            for (Chunk c : chunks) {
                if (c.type() != Protocol.REPLY_TYPE_OFFSET_HOLE) {
                    continue;
                }
                if (!holes.isEmpty() && holes.getLast().get(1) == c.offset()) {
                    holes.set(holes.size() - 1, List.of(holes.getLast().get(0), c.offset() + c.length()));
                } else {
                    holes.add(List.of(c.offset(), c.offset() + c.length()));
                }
            }
            return holes;
        }
    }

    @BeforeEach
    void needQemuNbd() {
        Qemu.assumeTool("qemu-nbd", "qemu-utils");
    }

    @ParameterizedTest
    @ValueSource(strings = {"virtual", "loop:1"})
    void holesAndDataAsQemuNbdSendsThem(String model) throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "8M");
        Qemu.io(base, "write -P 1 0 64k", "write -P 2 1M 128k", "write -P 3 5M 64k");
        Path image = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", image.toString());
        Qemu.io(image, "write -P 4 32k 64k", "write -z 1M 64k", "write -P 5 3M 4k", "write -z 5M 64k",
                "write -P 0 6M 64k");
        long[][] ranges = {{0, 8 * M}, {0, 32 * K}, {16 * K, 128 * K}, {2 * M, M}, {3 * M + 512, 8 * K},
            {8 * M - 512, 512}};
        List<Read> theirs = readFromQemuNbd(image, ranges);
        Path ours = dir.resolve("ours.qcow2");
        Files.copy(image, ours, StandardCopyOption.REPLACE_EXISTING);
        List<Read> mine;
        try (Served s = Served.start(ours, dir.resolve("ours.sock"), true, ExecutionModel.parse(model))) {
            mine = read(dir.resolve("ours.sock"), ranges, 0);
            List<Read> whole = read(dir.resolve("ours.sock"), new long[][] {{0, 8 * M}}, Protocol.CMD_FLAG_DF);
            assertEquals(List.of(new Chunk(Protocol.REPLY_TYPE_OFFSET_DATA, true, 0, 8 * M)), whole.get(0).chunks(),
                    "DF: one data chunk");
            assertArrayEquals(mine.get(0).bytes(), whole.get(0).bytes());
            List<Read> nothing = read(dir.resolve("ours.sock"), new long[][] {{4 * M, 0}}, 0);
            assertEquals(List.of(new Chunk(Protocol.REPLY_TYPE_NONE, true, -1, 0)), nothing.get(0).chunks());
        }
        for (int i = 0; i < ranges.length; i++) {
            String what = "read of " + ranges[i][1] + " bytes at " + ranges[i][0];
            assertArrayEquals(theirs.get(i).bytes(), mine.get(i).bytes(), what);
            assertEquals(theirs.get(i).holes(), mine.get(i).holes(), what + ": the bytes sent as holes");
            assertCoversInOrder(mine.get(i).chunks(), ranges[i]);
        }
        assertTrue(mine.get(0).holes().size() > 2 && mine.get(0).chunks().size() > mine.get(0).holes().size(),
                "the image has holes and data: " + mine.get(0).chunks());
    }

    /** The chunks cover the range in order, without gaps, and only the last is DONE. */
    private static void assertCoversInOrder(List<Chunk> chunks, long[] range) {
        long at = range[0];
        for (int i = 0; i < chunks.size(); i++) {
            Chunk c = chunks.get(i);
            assertEquals(at, c.offset(), "chunk " + i + " of " + chunks);
            assertEquals(i == chunks.size() - 1, c.done(), "chunk " + i + " of " + chunks);
            at += c.length();
        }
        assertEquals(range[0] + range[1], at);
    }

    private List<Read> readFromQemuNbd(Path image, long[][] ranges) throws Exception {
        Path copy = dir.resolve("theirs.qcow2");
        Files.copy(image, copy, StandardCopyOption.REPLACE_EXISTING);
        Path socket = dir.resolve("theirs.sock");
        Process qemuNbd = new ProcessBuilder("qemu-nbd", "-r", "-f", "qcow2", "-k", socket.toString(), copy.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("qemu-nbd.log").toFile()).start();
        try {
            for (int i = 0; i < 200 && !Files.exists(socket); i++) {
                assertTrue(qemuNbd.isAlive(), "qemu-nbd exited");
                Thread.sleep(50);
            }
            return read(socket, ranges, 0);
        } finally {
            if (!qemuNbd.waitFor(20, TimeUnit.SECONDS)) { // it ends once its one client has gone
                qemuNbd.destroyForcibly();
            }
        }
    }

    /** Each range read with {@code flags} on one connection with structured replies, one request at a time. */
    private static List<Read> read(Path socket, long[][] ranges, int flags) throws IOException {
        List<Read> reads = new ArrayList<>();
        try (RawClient c = new RawClient(UnixDomainSocketAddress.of(socket)).goStructured()) {
            long cookie = 1;
            for (long[] range : ranges) {
                c.request(Protocol.CMD_READ, flags, cookie, range[0], range[1], null);
                reads.add(readReply(c, cookie++, range));
            }
            c.request(Protocol.CMD_DISC, 0, 0, 0, 0, null);
        }
        return reads;
    }

    private static Read readReply(RawClient c, long cookie, long[] range) throws IOException {
        List<Chunk> chunks = new ArrayList<>();
        byte[] bytes = new byte[(int) range[1]];
        while (chunks.isEmpty() || !chunks.getLast().done()) {
            ByteBuffer h = c.read(20);
            assertEquals(Protocol.STRUCTURED_REPLY_MAGIC, h.getInt());
            boolean done = (h.getShort() & Protocol.REPLY_FLAG_DONE) != 0;
            int type = h.getShort() & 0xffff;
            assertEquals(cookie, h.getLong());
            int length = h.getInt();
            ByteBuffer payload = length == 0 ? ByteBuffer.allocate(0) : c.read(length);
            switch (type) {
                case Protocol.REPLY_TYPE_OFFSET_DATA -> {
                    long offset = payload.getLong();
                    payload.get(bytes, (int) (offset - range[0]), length - 8);
                    chunks.add(new Chunk(type, done, offset, length - 8));
                }
                case Protocol.REPLY_TYPE_OFFSET_HOLE -> chunks.add(new Chunk(type, done, payload.getLong(),
                        payload.getInt() & 0xffffffffL)); // its bytes stay zero
                case Protocol.REPLY_TYPE_NONE -> chunks.add(new Chunk(type, done, -1, 0));
                default -> throw new AssertionError("chunk type " + type + " for a read");
            }
        }
        return new Read(chunks, bytes);
    }
}
