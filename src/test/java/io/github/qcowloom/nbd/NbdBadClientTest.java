package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Misbehaving clients lose their own connection (or get EINVAL); a well-behaved client beside them is served on. */
class NbdBadClientTest {
    @TempDir
    Path dir;
    Path img;

    @BeforeEach
    void image() {
        Qemu.assume();
        img = dir.resolve("bad.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "8M");
    }

    private Served serve() throws Exception {
        return Served.start(img, dir.resolve("s.sock"), false, ExecutionModel.VIRTUAL);
    }

    private static byte[] filled(int n, int value) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) value);
        return b;
    }

    /** A good client writes and reads back 4 KiB at {@code offset}. */
    private static void goodClientWorks(Served s, long offset) throws Exception {
        try (RawClient c = new RawClient(s.server.address()).go()) {
            c.request(Protocol.CMD_WRITE, 1, offset, 4096, filled(4096, 0x42));
            assertEquals(0, c.reply(1));
            c.request(Protocol.CMD_READ, 2, offset, 4096, null);
            assertEquals(0, c.reply(2));
            assertArrayEquals(filled(4096, 0x42), c.read(4096).array());
            c.request(Protocol.CMD_DISC, 3, 0, 0, null);
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void unknownClientFlagsDropTheConnection() throws Exception {
        try (Served s = serve(); RawClient bad = new RawClient(s.server.address())) {
            bad.send(ByteBuffer.allocate(4).putInt(0xffffffff));
            assertTrue(bad.closedByServer());
            goodClientWorks(s, 0);
        }
    }

    @Test
    void garbageOptionsDropTheConnectionAndUnknownOptionsAreUnsupported() throws Exception {
        try (Served s = serve(); RawClient bad = new RawClient(s.server.address());
                RawClient odd = new RawClient(s.server.address())) {
            bad.send(ByteBuffer.allocate(4 + 16).putInt(1).putLong(0xdeadbeefL).putLong(0));
            assertTrue(bad.closedByServer());
            odd.send(ByteBuffer.allocate(4).putInt(1));
            assertEquals(Protocol.REP_ERR_UNSUP, odd.option(99, ByteBuffer.allocate(3)));
            assertEquals(Protocol.REP_ACK, odd.option(Protocol.OPT_ABORT, ByteBuffer.allocate(0)));
            goodClientWorks(s, 4096);
        }
    }

    /**
     * A name the export does not have (this one's is the empty name) is refused as qemu-nbd refuses it: INFO, GO and
     * the meta context options get NBD_REP_ERR_UNKNOWN (a name over 4096 bytes NBD_REP_ERR_INVALID) and negotiation
     * goes on; EXPORT_NAME, which cannot fail, loses the connection.
     */
    @Test
    void otherExportNamesAreRefused() throws Exception {
        byte[] other = "other".getBytes(StandardCharsets.UTF_8);
        try (Served s = serve(); RawClient c = new RawClient(s.server.address());
                RawClient named = new RawClient(s.server.address())) {
            c.send(ByteBuffer.allocate(4).putInt(Protocol.FLAG_FIXED_NEWSTYLE | Protocol.FLAG_NO_ZEROES));
            for (int option : new int[] {Protocol.OPT_INFO, Protocol.OPT_GO}) {
                assertEquals(Protocol.REP_ERR_UNKNOWN, c.option(option,
                        ByteBuffer.allocate(6 + other.length).putInt(other.length).put(other).putShort((short) 0)));
            }
            assertEquals(Protocol.REP_ERR_INVALID, c.option(Protocol.OPT_INFO,
                    ByteBuffer.allocate(6 + 4097).putInt(4097).put(new byte[4097]).putShort((short) 0)));
            assertEquals(Protocol.REP_ACK, c.option(Protocol.OPT_STRUCTURED_REPLY, ByteBuffer.allocate(0)));
            assertEquals(Protocol.REP_ERR_UNKNOWN, c.option(Protocol.OPT_LIST_META_CONTEXT,
                    ByteBuffer.allocate(8 + other.length).putInt(other.length).put(other).putInt(0)));
            assertEquals(Protocol.REP_ERR_UNKNOWN, c.option(Protocol.OPT_SET_META_CONTEXT,
                    ByteBuffer.allocate(8 + other.length).putInt(other.length).put(other).putInt(0)));
            assertEquals(Protocol.REP_ACK, c.option(Protocol.OPT_ABORT, ByteBuffer.allocate(0)));
            named.send(ByteBuffer.allocate(4).putInt(Protocol.FLAG_FIXED_NEWSTYLE | Protocol.FLAG_NO_ZEROES));
            named.send(ByteBuffer.allocate(16 + other.length).putLong(Protocol.IHAVEOPT)
                    .putInt(Protocol.OPT_EXPORT_NAME).putInt(other.length).put(other));
            assertTrue(named.closedByServer());
            goodClientWorks(s, 8192);
        }
    }

    @Test
    void oversizedOutOfRangeAndUnknownRequestsGetEinval() throws Exception {
        try (Served s = serve(); RawClient c = new RawClient(s.server.address()).go()) {
            c.request(Protocol.CMD_READ, 10, 0, 64L << 20, null);
            assertEquals(Protocol.EINVAL, c.reply(10));
            c.request(Protocol.CMD_READ, 11, 8L << 20, 4096, null);
            assertEquals(Protocol.EINVAL, c.reply(11));
            c.request(Protocol.CMD_WRITE_ZEROES, 12, (8L << 20) - 4096, 8192, null);
            assertEquals(Protocol.EINVAL, c.reply(12));
            c.request(99, 13, 0, 0, null);
            assertEquals(Protocol.EINVAL, c.reply(13));
            c.request(Protocol.CMD_BLOCK_STATUS, 14, 0, 4096, null);
            assertEquals(Protocol.EINVAL, c.reply(14));
            goodClientWorks(s, 8192);
            // A WRITE header announcing more than 32 MiB cannot be skipped: the connection goes.
            c.request(Protocol.CMD_WRITE, 15, 0, 33L << 20, null);
            assertTrue(c.closedByServer());
            goodClientWorks(s, 12288);
        }
    }

    @Test
    void clientVanishingMidWriteLosesNothingAcknowledged() throws Exception {
        try (Served s = serve()) {
            try (RawClient a = new RawClient(s.server.address()).go()) {
                a.request(Protocol.CMD_WRITE, 1, 1 << 20, 65536, filled(65536, 0x5a));
                assertEquals(0, a.reply(1));
                // Header and half the payload, then gone.
                a.send(ByteBuffer.allocate(28 + 32768).putInt(Protocol.REQUEST_MAGIC).putShort((short) 0)
                        .putShort((short) Protocol.CMD_WRITE).putLong(2).putLong(2 << 20).putInt(65536)
                        .put(filled(32768, 0x66)));
            }
            goodClientWorks(s, 0);
            try (RawClient b = new RawClient(s.server.address()).go()) {
                b.request(Protocol.CMD_READ, 3, 1 << 20, 65536, null);
                assertEquals(0, b.reply(3));
                assertArrayEquals(filled(65536, 0x5a), b.read(65536).array());
                b.request(Protocol.CMD_READ, 4, 2 << 20, 65536, null);
                assertEquals(0, b.reply(4));
                assertArrayEquals(new byte[65536], b.read(65536).array());
            }
        }
        Qemu.io(img, "read -P 0x5a 1M 64k", "read -P 0 2M 64k", "read -P 0x42 0 4k");
    }
}
