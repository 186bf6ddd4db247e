package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.net.ssl.SSLException;

/**
 * The server side of fixed-newstyle negotiation (proto.md "Fixed newstyle negotiation", "Option types").
 *
 * <p>With TLS credentials the server is in proto.md's FORCEDTLS mode ("TLS support"): before NBD_OPT_STARTTLS,
 * ABORT is acknowledged, EXPORT_NAME ends the session (it cannot be refused) and every other option, INFO, GO and
 * LIST included, gets NBD_REP_ERR_TLS_REQD; nothing about the export, and no data, crosses the wire in clear.
 * After STARTTLS everything, transmission included, goes over {@link TlsChannel}, and options negotiated before
 * it are forgotten. Without credentials (NOTLS) STARTTLS gets NBD_REP_ERR_POLICY.
 */
final class Handshake {
    /** Longest option payload accepted; longer ones are malformed and drop the connection. */
    private static final int MAX_OPTION_LENGTH = 64 << 10;
    /** NBD_MAX_STRING_SIZE: the longest export name QEMU reads. */
    private static final int MAX_STRING = 4096;

    /** Null when the stream is not a socket: then TLS is not configured either. */
    private final SocketChannel socket;
    private final Export export;
    /** The export's name as clients send it. */
    private final byte[] exportName;
    /** Null: NOTLS mode. */
    private final TlsCredentials tls;
    /** Whether the server serves more than one client at once (CAN_MULTI_CONN). */
    private final boolean multiConn;
    private ByteStream ch;
    private boolean tlsUp;
    private boolean noZeroes;
    private boolean structured;
    private boolean baseAllocation;
    private boolean dirtyBitmap;
    private boolean allocationDepth;

    Handshake(SocketChannel socket, Export export, TlsCredentials tls, boolean multiConn) {
        this.socket = socket;
        this.export = export;
        this.exportName = export.name().getBytes(StandardCharsets.UTF_8);
        this.tls = tls;
        this.multiConn = multiConn;
        this.ch = ByteStream.plain(socket);
    }

    /** Without TLS, over any stream (the fuzz target feeds it a client's bytes from memory). */
    Handshake(ByteStream ch, Export export) {
        this.socket = null;
        this.export = export;
        this.exportName = export.name().getBytes(StandardCharsets.UTF_8);
        this.tls = null;
        this.multiConn = true;
        this.ch = ch;
    }

    /** The stream the connection goes on with: the socket, or TLS over it after STARTTLS. */
    ByteStream stream() {
        return ch;
    }

    /** True once STARTTLS has made {@link #stream} TLS. */
    boolean encrypted() {
        return tlsUp;
    }

    /**
     * Negotiates until the client enters transmission (GO or EXPORT_NAME): returns the session, or null when the
     * client aborted. A malformed exchange throws {@link ProtocolViolation}.
     */
    Session run() throws IOException {
        ByteBuffer greeting = ByteBuffer.allocate(18).putLong(NBDMAGIC).putLong(IHAVEOPT)
                .putShort((short) (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)).flip();
        Wire.writeFully(ch, greeting);
        int clientFlags = Wire.read(ch, 4).getInt();
        // "The server MUST drop the connection on unknown client flags."
        if ((clientFlags & ~KNOWN_CLIENT_FLAGS) != 0) {
            throw new ProtocolViolation("unknown client flags 0x" + Integer.toHexString(clientFlags));
        }
        noZeroes = (clientFlags & FLAG_NO_ZEROES) != 0;
        while (true) {
            ByteBuffer head = Wire.read(ch, 16);
            if (head.getLong() != IHAVEOPT) {
                throw new ProtocolViolation("option without IHAVEOPT");
            }
            int option = head.getInt();
            long length = Integer.toUnsignedLong(head.getInt());
            if (length > MAX_OPTION_LENGTH) {
                throw new ProtocolViolation("option " + option + " of " + length + " bytes");
            }
            ByteBuffer data = Wire.read(ch, (int) length);
            if (tls != null && !tlsUp && option != OPT_STARTTLS && option != OPT_ABORT) {
                if (option == OPT_EXPORT_NAME) {
                    // "as this request cannot error, it MUST terminate the session".
                    throw new ProtocolViolation("NBD_OPT_EXPORT_NAME before TLS (the server requires TLS)");
                }
                error(option, REP_ERR_TLS_REQD, "TLS is required: send NBD_OPT_STARTTLS first");
                continue;
            }
            switch (option) {
                case OPT_EXPORT_NAME -> {
                    // "as this request cannot error, it MUST terminate the session": qemu-nbd drops it so.
                    byte[] asked = new byte[data.remaining()];
                    data.get(asked);
                    if (!Arrays.equals(asked, exportName)) {
                        throw new ProtocolViolation("NBD_OPT_EXPORT_NAME of " + notPresent(asked));
                    }
                    // No option reply: size, flags and (unless NO_ZEROES) 124 zero bytes, then transmission.
                    ByteBuffer b = ByteBuffer.allocate(noZeroes ? 10 : 134).putLong(export.device().size())
                            .putShort((short) export.transmissionFlags(structured, multiConn));
                    Wire.writeFully(ch, b.position(b.capacity()).flip());
                    return session();
                }
                case OPT_ABORT -> {
                    reply(option, REP_ACK, ByteBuffer.allocate(0));
                    return null;
                }
                case OPT_LIST -> list(option, data);
                case OPT_STARTTLS -> startTls(option, data);
                case OPT_INFO, OPT_GO -> {
                    if (info(option, data) && option == OPT_GO) {
                        return session();
                    }
                }
                case OPT_STRUCTURED_REPLY -> {
                    if (data.hasRemaining()) {
                        error(option, REP_ERR_INVALID, "STRUCTURED_REPLY takes no data");
                    } else {
                        structured = true;
                        reply(option, REP_ACK, ByteBuffer.allocate(0));
                    }
                }
                case OPT_SET_META_CONTEXT, OPT_LIST_META_CONTEXT -> metaContext(option, data);
                // "Anything else": unsupported, and negotiation goes on.
                default -> error(option, REP_ERR_UNSUP, "option " + option + " not supported");
            }
        }
    }

    /** STARTTLS: ACK, then the TLS handshake; a failed handshake ends the session (too late to go on in clear). */
    private void startTls(int option, ByteBuffer data) throws IOException {
        if (tls == null) {
            error(option, REP_ERR_POLICY, "TLS is not configured on this server (serve --tls-creds)");
            return;
        }
        if (tlsUp) {
            error(option, REP_ERR_INVALID, "TLS is already running");
            return;
        }
        if (data.hasRemaining()) {
            error(option, REP_ERR_INVALID, "STARTTLS takes no data");
            return;
        }
        reply(option, REP_ACK, ByteBuffer.allocate(0));
        try {
            ch = TlsChannel.handshake(socket, tls.newEngine());
        } catch (SSLException e) {
            throw new ProtocolViolation("TLS handshake failed: " + e.getMessage());
        }
        tlsUp = true;
        // "the server MUST NOT preserve any negotiation state ... issued before this command".
        structured = false;
        baseAllocation = false;
        dirtyBitmap = false;
        allocationDepth = false;
    }

    private Session session() {
        return new Session(structured, structured && baseAllocation, structured && dirtyBitmap,
                structured && allocationDepth);
    }

    private void list(int option, ByteBuffer data) throws IOException {
        if (data.hasRemaining()) {
            error(option, REP_ERR_INVALID, "LIST takes no data");
            return;
        }
        // The name, then its description, as qemu-nbd lists them.
        byte[] description = export.description() == null ? new byte[0]
                : export.description().getBytes(StandardCharsets.UTF_8);
        reply(option, REP_SERVER, ByteBuffer.allocate(4 + exportName.length + description.length)
                .putInt(exportName.length).put(exportName).put(description).flip());
        reply(option, REP_ACK, ByteBuffer.allocate(0));
    }

    /** INFO and GO: u32 name length, name, u16 n, n × u16 info requests. True when the export was described. */
    private boolean info(int option, ByteBuffer data) throws IOException {
        if (data.remaining() < 6) {
            error(option, REP_ERR_INVALID, "short INFO/GO request");
            return false;
        }
        long nameLength = Integer.toUnsignedLong(data.getInt());
        if (nameLength > data.remaining() - 2) {
            error(option, REP_ERR_INVALID, "export name longer than the option");
            return false;
        }
        byte[] asked = new byte[(int) nameLength];
        data.get(asked);
        int n = Short.toUnsignedInt(data.getShort());
        if (data.remaining() != 2 * n) {
            error(option, REP_ERR_INVALID, "bad information request count");
            return false;
        }
        List<Integer> requests = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            requests.add(Short.toUnsignedInt(data.getShort()));
        }
        if (!knownExport(option, asked)) { // after the whole request is read, as in QEMU
            return false;
        }
        // NBD_INFO_EXPORT is always sent; BLOCK_SIZE too (min 1 needs no client consent).
        reply(option, REP_INFO, ByteBuffer.allocate(12).putShort((short) INFO_EXPORT)
                .putLong(export.device().size())
                .putShort((short) export.transmissionFlags(structured, multiConn)).flip());
        reply(option, REP_INFO, ByteBuffer.allocate(14).putShort((short) INFO_BLOCK_SIZE).putInt(MIN_BLOCK)
                .putInt(PREFERRED_BLOCK).putInt(MAX_PAYLOAD).flip());
        if (requests.contains(INFO_NAME)) {
            reply(option, REP_INFO, ByteBuffer.allocate(2 + exportName.length).putShort((short) INFO_NAME)
                    .put(exportName).flip());
        }
        if (export.description() != null) { // QEMU sends it "regardless of client request"
            byte[] bytes = export.description().getBytes(StandardCharsets.UTF_8);
            reply(option, REP_INFO, ByteBuffer.allocate(2 + bytes.length).putShort((short) INFO_DESCRIPTION)
                    .put(bytes).flip());
        }
        reply(option, REP_ACK, ByteBuffer.allocate(0));
        return true;
    }

    /**
     * SET_META_CONTEXT and LIST_META_CONTEXT: u32 name length, name, u32 query count, queries. The contexts are
     * base:allocation and, where the export offers them, qemu:allocation-depth and qemu:dirty-bitmap:NAME, in
     * qemu-nbd's order. SET selects those named exactly (replacing any earlier selection); LIST shows those a query
     * names or leads to ("base:", "qemu:", "qemu:dirty-bitmap:"), all of them for no query.
     */
    private void metaContext(int option, ByteBuffer data) throws IOException {
        boolean set = option == OPT_SET_META_CONTEXT;
        if (set && !structured) {
            error(option, REP_ERR_INVALID, "SET_META_CONTEXT needs structured replies first");
            return;
        }
        List<String> queries = new ArrayList<>();
        byte[] asked;
        try {
            long nameLength = Integer.toUnsignedLong(data.getInt());
            if (nameLength > data.remaining()) {
                throw new IllegalArgumentException();
            }
            asked = new byte[(int) nameLength];
            data.get(asked);
            long count = Integer.toUnsignedLong(data.getInt());
            for (long i = 0; i < count; i++) {
                long len = Integer.toUnsignedLong(data.getInt());
                if (len > data.remaining()) {
                    throw new IllegalArgumentException();
                }
                byte[] q = new byte[(int) len];
                data.get(q);
                queries.add(new String(q, StandardCharsets.UTF_8));
            }
            if (data.hasRemaining()) {
                throw new IllegalArgumentException();
            }
        } catch (RuntimeException e) {
            error(option, REP_ERR_INVALID, "malformed meta context request");
            return;
        }
        if (!knownExport(option, asked)) { // nothing selected or listed for another name, as in QEMU
            return;
        }
        boolean base = matches(queries, set, BASE_ALLOCATION, "base:");
        String bitmapContext = export.bitmapContext();
        boolean bitmap = bitmapContext != null && matches(queries, set, bitmapContext, "qemu:", DIRTY_BITMAP_PREFIX);
        boolean depth = export.allocationDepth() && matches(queries, set, ALLOCATION_DEPTH, "qemu:");
        if (set) {
            baseAllocation = base;
            dirtyBitmap = bitmap;
            allocationDepth = depth;
        }
        if (base) {
            context(option, set ? BASE_ALLOCATION_ID : 0, BASE_ALLOCATION);
        }
        if (depth) {
            context(option, set ? ALLOCATION_DEPTH_ID : 0, ALLOCATION_DEPTH);
        }
        if (bitmap) {
            context(option, set ? DIRTY_BITMAP_ID : 0, bitmapContext);
        }
        reply(option, REP_ACK, ByteBuffer.allocate(0));
    }

    /** Whether {@code queries} select {@code context} (SET: by name) or list it (by name, a namespace, or none). */
    private static boolean matches(List<String> queries, boolean set, String context, String... leaders) {
        if (set) {
            return queries.contains(context);
        }
        return queries.isEmpty() || queries.contains(context) || queries.stream().anyMatch(List.of(leaders)::contains);
    }

    private void context(int option, int id, String name) throws IOException {
        byte[] bytes = name.getBytes(StandardCharsets.UTF_8);
        reply(option, REP_META_CONTEXT, ByteBuffer.allocate(4 + bytes.length).putInt(id).put(bytes).flip());
    }

    /**
     * Whether {@code asked} names the export, byte for byte; if not, QEMU's refusal is sent (NBD_REP_ERR_UNKNOWN, a
     * name over NBD_MAX_STRING_SIZE bytes NBD_REP_ERR_INVALID).
     */
    private boolean knownExport(int option, byte[] asked) throws IOException {
        if (Arrays.equals(asked, exportName)) {
            return true;
        }
        if (asked.length > MAX_STRING) {
            error(option, REP_ERR_INVALID, "Invalid name length: " + asked.length);
        } else {
            error(option, REP_ERR_UNKNOWN, notPresent(asked));
        }
        return false;
    }

    /** QEMU's words for a name no export has, the name cut at 80 bytes (nbd_sanitize_name). */
    private static String notPresent(byte[] asked) {
        String name = asked.length < 80 ? new String(asked, StandardCharsets.UTF_8)
                : new String(asked, 0, 80, StandardCharsets.UTF_8) + "...";
        return "export '" + name + "' not present";
    }

    private void error(int option, int type, String message) throws IOException {
        reply(option, type, ByteBuffer.wrap(message.getBytes(StandardCharsets.UTF_8)));
    }

    /** An option reply: magic, option, reply type, length, data. */
    private void reply(int option, int type, ByteBuffer data) throws IOException {
        ByteBuffer head = ByteBuffer.allocate(20).putLong(OPTION_REPLY_MAGIC).putInt(option).putInt(type)
                .putInt(data.remaining()).flip();
        Wire.writeFully(ch, head);
        Wire.writeFully(ch, data);
    }
}
