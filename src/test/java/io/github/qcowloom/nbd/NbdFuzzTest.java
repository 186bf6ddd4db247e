package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.*;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.FuzzInputs;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;

/**
 * The fuzz target for what a client we do not control sends: its bytes, whatever they are, go through the
 * handshake and then transmission, as {@link NbdServer} runs them on a connection (without TLS: the TLS layer is
 * the JDK's), against a small qcow2 image in memory. The replies go nowhere.
 *
 * <p>A run may end in a {@link ProtocolViolation} (the server drops the client) or at the end of the bytes
 * ({@link EOFException}); any other exception out of the server, or any unchecked exception a request ends in
 * (which the server answers with an error and reports as a defect: it checks ranges before the image sees them),
 * is a finding. Requests run inline, one after the other, so a run replays exactly. The seeds are sessions as
 * real clients open them (EXPORT_NAME; structured replies, base:allocation and GO, each followed by one request
 * of each type; LIST, INFO, STARTTLS, ABORT); {@code ./mvnw test -Pfuzz -Dfuzz.class=NbdFuzzTest
 * -Dfuzz.target=clientBytes} fuzzes them.
 */
class NbdFuzzTest {
    private static final long DISK_BYTES = 1 << 20;
    private static final OpenOptions READ_WRITE = OpenOptions.readWriteDefaults().withFollowReferences(false);
    /** The image file of an empty 1 MiB disk, made once; each run opens a fresh copy (MemoryStorage copies it). */
    private static byte[] emptyImage;
    /** One for all runs, as a server has one: direct buffers made per run would pile up until a GC. */
    private static final PayloadBuffers BUFFERS = new PayloadBuffers();

    @BeforeAll
    static void setUp() throws IOException {
        emptyImage = FuzzInputs.emptyQcow2(DISK_BYTES);
        for (Seed s : seeds()) {
            FuzzInputs.seed(NbdFuzzTest.class, "clientBytes", s.name(), s.bytes());
        }
    }

    @FuzzTest
    void clientBytes(byte[] data) throws IOException {
        try (Qcow2Image image = Qcow2Image.open(new MemoryStorage(emptyImage, 64L << 20, false), null,
                READ_WRITE)) {
            Export export = new Export(image, false);
            ByteStream ch = new ClientBytes(data);
            List<RuntimeException> defects = new ArrayList<>();
            try {
                Session session = new Handshake(ch, export).run();
                if (session != null) {
                    new Transmission(ch, export, session, new InlineExecutor(), new ByteBudget(64L << 20), BUFFERS,
                            defects::add, () -> false).run();
                }
            } catch (ProtocolViolation | EOFException e) {
                // The server dropped the client, or the client's bytes ended: both are how a session may end.
            }
            if (!defects.isEmpty()) {
                throw defects.get(0);
            }
        }
    }

    private record Seed(String name, byte[] bytes) {
    }

    /** Sessions as clients open them, each followed by one request of every type and a DISC. */
    private static List<Seed> seeds() {
        byte[] requests = requests();
        Bytes structured = new Bytes().clientFlags().option(OPT_STRUCTURED_REPLY, new byte[0])
                .option(OPT_SET_META_CONTEXT, metaContext()).option(OPT_GO, info());
        return List.of(
                new Seed("export-name", new Bytes().clientFlags().option(OPT_EXPORT_NAME, new byte[0])
                        .raw(requests).bytes()),
                new Seed("structured-go", structured.raw(requests).bytes()),
                new Seed("list-info-abort", new Bytes().clientFlags().option(OPT_LIST, new byte[0])
                        .option(OPT_LIST_META_CONTEXT, metaContext()).option(OPT_INFO, info())
                        .option(OPT_STARTTLS, new byte[0]).option(OPT_ABORT, new byte[0]).bytes()));
    }

    private static byte[] requests() {
        Bytes b = new Bytes();
        byte[] payload = new byte[4096];
        for (int i = 0; i < payload.length; i++) {
            payload[i] = (byte) (i * 7);
        }
        b.request(0, CMD_WRITE, 1, 65536, payload.length).raw(payload);
        b.request(0, CMD_READ, 2, 65536, 4096);
        b.request(CMD_FLAG_FUA, CMD_WRITE_ZEROES, 3, 0, 8192);
        b.request(0, CMD_TRIM, 4, 131072, 65536);
        b.request(0, CMD_BLOCK_STATUS, 5, 0, DISK_BYTES);
        b.request(0, CMD_FLUSH, 6, 0, 0);
        b.request(CMD_FLAG_DF, CMD_READ, 7, 0, 512);
        b.request(0, CMD_DISC, 8, 0, 0);
        return b.bytes();
    }

    private static byte[] metaContext() {
        byte[] name = BASE_ALLOCATION.getBytes(StandardCharsets.US_ASCII);
        return ByteBuffer.allocate(4 + 4 + 4 + name.length).putInt(0).putInt(1).putInt(name.length).put(name)
                .array();
    }

    private static byte[] info() {
        return ByteBuffer.allocate(4 + 2 + 2).putInt(0).putShort((short) 1).putShort((short) INFO_BLOCK_SIZE)
                .array();
    }

    /** A client's byte stream, built up message by message. */
    private static final class Bytes {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Bytes clientFlags() {
            return raw(ByteBuffer.allocate(4).putInt(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).array());
        }

        Bytes option(int option, byte[] data) {
            return raw(ByteBuffer.allocate(16).putLong(IHAVEOPT).putInt(option).putInt(data.length).array())
                    .raw(data);
        }

        Bytes request(int flags, int type, long cookie, long offset, long length) {
            return raw(ByteBuffer.allocate(28).putInt(REQUEST_MAGIC).putShort((short) flags).putShort((short) type)
                    .putLong(cookie).putLong(offset).putInt((int) length).array());
        }

        Bytes raw(byte[] b) {
            out.writeBytes(b);
            return this;
        }

        byte[] bytes() {
            return out.toByteArray();
        }
    }
}
