package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * A hand-driven NBD client that upgrades with NBD_OPT_STARTTLS through the JDK's own TLS client (trusting only the
 * given directory's ca-cert.pem), for what libnbd and qemu never send: STARTTLS twice, pipelined requests whose
 * replies are left unread.
 */
final class JavaTlsClient implements AutoCloseable {
    private final Socket plain;
    private Socket socket;
    private DataInputStream in;
    private DataOutputStream out;

    JavaTlsClient(InetSocketAddress address) throws IOException {
        plain = new Socket(address.getAddress(), address.getPort());
        socket = plain;
        streams();
        assertEquals(Protocol.NBDMAGIC, in.readLong());
        assertEquals(Protocol.IHAVEOPT, in.readLong());
        in.readShort();
        out.writeInt(Protocol.FLAG_FIXED_NEWSTYLE | Protocol.FLAG_NO_ZEROES);
        out.flush();
    }

    private void streams() throws IOException {
        in = new DataInputStream(socket.getInputStream());
        out = new DataOutputStream(socket.getOutputStream());
    }

    /** Sends an option and returns its first reply's type (that reply's data skipped). */
    int option(int option, byte[] data) throws IOException {
        out.writeLong(Protocol.IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
        return optionReply(option);
    }

    int optionReply(int option) throws IOException {
        assertEquals(Protocol.OPTION_REPLY_MAGIC, in.readLong());
        assertEquals(option, in.readInt());
        int type = in.readInt();
        in.readNBytes(in.readInt());
        return type;
    }

    /** STARTTLS, which must be acknowledged, then the TLS handshake trusting {@code caDir}/ca-cert.pem. */
    JavaTlsClient startTls(Path caDir) throws Exception {
        assertEquals(Protocol.REP_ACK, option(Protocol.OPT_STARTTLS, new byte[0]));
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        int i = 0;
        for (X509Certificate c : PemFiles.certificates(caDir.resolve("ca-cert.pem"))) {
            trust.setCertificateEntry("ca" + i++, c);
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(trust);
        SSLContext ctx = SSLContext.getInstance("TLSv1.3");
        ctx.init(null, tmf.getTrustManagers(), null);
        SSLSocket tls = (SSLSocket) ctx.getSocketFactory().createSocket(plain, "localhost", plain.getPort(), true);
        tls.startHandshake();
        socket = tls;
        streams();
        return this;
    }

    String protocol() {
        return ((SSLSocket) socket).getSession().getProtocol();
    }

    /** GO for the empty name, then transmission with simple replies. */
    JavaTlsClient go() throws IOException {
        assertEquals(Protocol.REP_INFO, option(Protocol.OPT_GO, new byte[] {0, 0, 0, 0, 0, 0}));
        while (optionReply(Protocol.OPT_GO) != Protocol.REP_ACK) {
            // The other NBD_REP_INFO replies.
        }
        return this;
    }

    void request(int type, long cookie, long offset, int length, byte[] payload) throws IOException {
        out.writeInt(Protocol.REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt(length);
        if (payload != null) {
            out.write(payload);
        }
        out.flush();
    }

    /** One simple reply: its error, after checking the cookie. */
    int reply(long cookie) throws IOException {
        assertEquals(Protocol.SIMPLE_REPLY_MAGIC, in.readInt());
        int err = in.readInt();
        assertEquals(cookie, in.readLong());
        return err;
    }

    byte[] read(int n) throws IOException {
        return in.readNBytes(n);
    }

    InputStream input() {
        return in;
    }

    /** The socket's bytes beneath TLS: what the server sends once the TLS client has read all it was owed. */
    InputStream rawInput() throws IOException {
        return plain.getInputStream();
    }

    @Override
    public void close() throws IOException {
        socket.close();
        plain.close();
    }
}
