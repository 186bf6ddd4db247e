package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.Qemu;
import io.github.qcowloom.testing.TestPki;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server with TLS required (FORCEDTLS): nbdinfo, nbdcopy, qemu-img and qemu-io read and write over TLS with
 * certificates openssl makes; clients without TLS get NBD_REP_ERR_TLS_REQD and nothing about the export; a client
 * trusting another CA, or (with verify-peer) without a certificate from the CA, is refused.
 */
class NbdTlsTest {
    @TempDir
    static Path pkiDir;
    static TestPki pki;

    @TempDir
    Path dir;

    @BeforeAll
    static void certificates() throws IOException {
        Qemu.assume();
        pki = TestPki.make(pkiDir);
    }

    private Path image(String size) {
        Path img = dir.resolve("disk.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), size);
        return img;
    }

    private static Served serveTls(Path img, boolean verifyPeer) throws IOException {
        return Served.startTcp(img, false, TlsCredentials.load(pki.server, verifyPeer));
    }

    /** libnbd's URI for the server with {@code certs} as its tls-certificates directory. */
    private static String nbds(Served s, Path certs) {
        return "nbds://localhost:" + s.port() + "/?tls-certificates=" + certs;
    }

    /** qemu's client options: tls-creds-x509 from {@code certs}, then an NBD image on the server. */
    private static List<String> qemuTls(Served s, Path certs) {
        return List.of("--object", "tls-creds-x509,id=tls0,endpoint=client,dir=" + certs, "--image-opts",
                "driver=nbd,host=localhost,port=" + s.port() + ",tls-creds=tls0");
    }

    private static List<String> cmd(String tool, List<String> middle, String... rest) {
        List<String> c = new ArrayList<>(List.of(tool));
        c.addAll(middle);
        c.addAll(List.of(rest));
        return c;
    }

    @Test
    void nbdcopyWritesAndReadsBackAndNbdinfoDescribesOverTls() throws IOException {
        Qemu.assumeTool("nbdcopy", "libnbd-bin");
        Path img = image("16M");
        byte[] data = new byte[16 << 20];
        new Random(14).nextBytes(data);
        Arrays.fill(data, 4 << 20, 6 << 20, (byte) 0);
        Path in = dir.resolve("in.raw");
        Path back = dir.resolve("back.raw");
        Files.write(in, data);
        try (Served s = serveTls(img, false)) {
            Qemu.run(List.of("nbdcopy", in.toString(), nbds(s, pki.client)));
            Qemu.run(List.of("nbdcopy", nbds(s, pki.client), back.toString()));
            String info = Qemu.run(List.of("nbdinfo", nbds(s, pki.client)));
            assertTrue(info.contains("with TLS") && info.contains("16777216"), info);
            String list = Qemu.run(List.of("nbdinfo", "--list", nbds(s, pki.client)));
            assertTrue(list.contains("export=\"\":"), list);
        }
        assertArrayEquals(data, Files.readAllBytes(back));
        Qemu.img("compare", "-f", "raw", "-F", "qcow2", in.toString(), img.toString());
    }

    @Test
    void qemuIoAndQemuImgOverTls() throws IOException {
        Path img = image("16M");
        Qemu.io(img, "write -P 0x5a 1M 2M");
        Path out = dir.resolve("out.raw");
        try (Served s = serveTls(img, false)) {
            String io = Qemu.run(cmd("qemu-io", qemuTls(s, pki.client), "-c", "read -P 0x5a 1M 2M",
                    "-c", "write -P 0xc3 8M 1M", "-c", "read -P 0xc3 8M 1M", "-c", "flush"));
            assertFalse(io.contains("failed") || io.contains("Pattern verification failed"), io);
            Qemu.run(cmd("qemu-img", List.of("convert"), "--object",
                    "tls-creds-x509,id=tls0,endpoint=client,dir=" + pki.client, "--image-opts",
                    "driver=nbd,host=localhost,port=" + s.port() + ",tls-creds=tls0", "-O", "raw", out.toString()));
        }
        Qemu.io(img, "read -P 0x5a 1M 2M", "read -P 0xc3 8M 1M", "read -P 0 0 1M");
        Qemu.img("compare", "-f", "qcow2", "-F", "raw", img.toString(), out.toString());
    }

    @Test
    void clientsWithoutTlsGetTlsRequiredAndNothingElse() throws Exception {
        Path img = image("16M");
        try (Served s = serveTls(img, false)) {
            String uri = "nbd://localhost:" + s.port() + "/";
            Qemu.Result info = Qemu.exec(List.of("nbdinfo", uri));
            assertNotEquals(0, info.exitCode(), info.stdout());
            assertFalse(info.stdout().contains("16777216"), info.stdout());
            Qemu.Result list = Qemu.exec(List.of("nbdinfo", "--list", uri));
            assertNotEquals(0, list.exitCode(), list.stdout());
            assertFalse(list.stdout().contains("export="), list.stdout());
            Qemu.Result qemu = Qemu.exec(List.of("qemu-img", "info", "--image-opts",
                    "driver=nbd,host=localhost,port=" + s.port()));
            assertNotEquals(0, qemu.exitCode(), qemu.stdout());
            assertFalse(qemu.stdout().contains("16 MiB"), qemu.stdout());

            // Option by option: every one but STARTTLS and ABORT is refused before TLS, GO and LIST included.
            try (RawClient c = new RawClient(s.server.address())) {
                c.send(ByteBuffer.allocate(4).putInt(Protocol.FLAG_FIXED_NEWSTYLE | Protocol.FLAG_NO_ZEROES));
                assertEquals(Protocol.REP_ERR_TLS_REQD, c.option(Protocol.OPT_LIST, ByteBuffer.allocate(0)));
                assertEquals(Protocol.REP_ERR_TLS_REQD, c.option(Protocol.OPT_GO,
                        ByteBuffer.allocate(6).putInt(0).putShort((short) 0)));
                assertEquals(Protocol.REP_ERR_TLS_REQD, c.option(Protocol.OPT_INFO,
                        ByteBuffer.allocate(6).putInt(0).putShort((short) 0)));
                assertEquals(Protocol.REP_ERR_TLS_REQD, c.option(Protocol.OPT_STRUCTURED_REPLY,
                        ByteBuffer.allocate(0)));
                assertEquals(Protocol.REP_ERR_TLS_REQD, c.option(99, ByteBuffer.allocate(3)));
                assertEquals(Protocol.REP_ACK, c.option(Protocol.OPT_ABORT, ByteBuffer.allocate(0)));
            }
            // EXPORT_NAME cannot be refused: the server hangs up without sending the export's size.
            try (RawClient c = new RawClient(s.server.address())) {
                c.send(ByteBuffer.allocate(4).putInt(Protocol.FLAG_FIXED_NEWSTYLE | Protocol.FLAG_NO_ZEROES));
                c.send(ByteBuffer.allocate(16).putLong(Protocol.IHAVEOPT).putInt(Protocol.OPT_EXPORT_NAME).putInt(0));
                ByteBuffer any = ByteBuffer.allocate(16);
                assertEquals(-1, c.ch.read(any), "bytes after EXPORT_NAME without TLS");
            }
        }
    }

    @Test
    void aClientTrustingAnotherCaIsRefused() throws IOException {
        Path img = image("16M");
        try (Served s = serveTls(img, false)) {
            Qemu.Result info = Qemu.exec(List.of("nbdinfo", nbds(s, pki.wrongCa)));
            assertNotEquals(0, info.exitCode(), info.stdout());
            assertTrue(info.stderr().contains("certificate"), info.stderr());
            Qemu.Result qemu = Qemu.exec(cmd("qemu-img", List.of("info"), qemuTls(s, pki.wrongCa).toArray(new String[0])));
            assertNotEquals(0, qemu.exitCode(), qemu.stdout());
            assertTrue(qemu.stderr().contains("issuer"), qemu.stderr());
        }
    }

    @Test
    void verifyPeerServesOnlyClientsWithACertificateFromTheCa() throws IOException {
        Path img = image("16M");
        Qemu.io(img, "write -P 0x21 0 64k");
        try (Served s = serveTls(img, true)) {
            for (Path refused : List.of(pki.client, pki.clientWithWrongCert)) {
                Qemu.Result info = Qemu.exec(List.of("nbdinfo", nbds(s, refused)));
                assertNotEquals(0, info.exitCode(), refused + ": " + info.stdout());
                assertFalse(info.stdout().contains("16777216"), info.stdout());
                Qemu.Result qemu = Qemu.exec(cmd("qemu-io", qemuTls(s, refused), "-c", "read -P 0x21 0 64k"));
                assertNotEquals(0, qemu.exitCode(), refused + ": " + qemu.stdout());
            }
            String info = Qemu.run(List.of("nbdinfo", nbds(s, pki.clientWithCert)));
            assertTrue(info.contains("with TLS") && info.contains("16777216"), info);
            String io = Qemu.run(cmd("qemu-io", qemuTls(s, pki.clientWithCert), "-c", "read -P 0x21 0 64k"));
            assertFalse(io.contains("failed") || io.contains("Pattern verification failed"), io);
        }
    }

    @Test
    void aClientCertificateInCaCrlIsRefused() throws IOException {
        Path img = image("16M");
        Path other = pki.newClient(dir.resolve("other-client"));
        Path creds = pki.serverRevoking(dir.resolve("server-crl"), pki.clientWithCert);
        try (Served s = Served.startTcp(img, false, TlsCredentials.load(creds, true))) {
            Qemu.Result revoked = Qemu.exec(List.of("nbdinfo", nbds(s, pki.clientWithCert)));
            assertNotEquals(0, revoked.exitCode(), revoked.stdout());
            String info = Qemu.run(List.of("nbdinfo", nbds(s, other)));
            assertTrue(info.contains("with TLS") && info.contains("16777216"), info);
        }
    }

    @Test
    void startTlsTwiceIsInvalidAndRequestsRunOverTls() throws Exception {
        Path img = image("16M");
        Qemu.io(img, "write -P 0x44 1M 64k");
        try (Served s = serveTls(img, false);
                JavaTlsClient c = new JavaTlsClient((InetSocketAddress) s.server.address()).startTls(pki.client)) {
            assertEquals("TLSv1.3", c.protocol());
            assertEquals(Protocol.REP_ERR_INVALID, c.option(Protocol.OPT_STARTTLS, new byte[0]));
            c.go();
            byte[] payload = new byte[3 << 20];
            new Random(7).nextBytes(payload);
            c.request(Protocol.CMD_WRITE, 1, 4 << 20, payload.length, payload);
            assertEquals(0, c.reply(1));
            c.request(Protocol.CMD_READ, 2, 1 << 20, 65536, null);
            assertEquals(0, c.reply(2));
            byte[] expect = new byte[65536];
            Arrays.fill(expect, (byte) 0x44);
            assertArrayEquals(expect, c.read(65536));
            c.request(Protocol.CMD_READ, 3, 4 << 20, payload.length, null);
            assertEquals(0, c.reply(3));
            assertArrayEquals(payload, c.read(payload.length));
            c.request(Protocol.CMD_DISC, 4, 0, 0, null);
        }
    }

    /**
     * A stop ends a TLS connection in order, with close_notify before the socket closes. The JDK's client takes a
     * bare end of the socket for one, so the bytes are read beneath it: the alert is one more TLS record (type 23,
     * encrypted, in TLS 1.3), where a socket closed without it ends with nothing.
     */
    @Test
    void aStopSendsCloseNotify() throws Exception {
        Path img = image("16M");
        try (Served s = serveTls(img, false);
                JavaTlsClient c = new JavaTlsClient((InetSocketAddress) s.server.address()).startTls(pki.client)) {
            c.go();
            c.request(Protocol.CMD_READ, 1, 0, 4096, null);
            assertEquals(0, c.reply(1));
            assertEquals(4096, c.read(4096).length);
            s.server.stop();
            byte[] rest = c.rawInput().readAllBytes();
            assertTrue(rest.length > 0 && rest[0] == 23,
                    "the socket closed without close_notify (" + rest.length + " bytes after the stop)");
        }
    }

    /** A TLS client that pipelines reads and never reads the replies holds at most the connection's budget. */
    @Test
    void aTlsClientThatStopsReadingPinsABoundedAmount() throws Exception {
        Path img = image("64M");
        try (Served s = serveTls(img, false);
                JavaTlsClient c = new JavaTlsClient((InetSocketAddress) s.server.address()).startTls(pki.client)) {
            c.go();
            Thread sender = Thread.ofVirtual().start(() -> {
                try {
                    for (int i = 0; i < 256; i++) {
                        c.request(Protocol.CMD_READ, i, (long) (i % 60) << 20, 1 << 20, null);
                    }
                } catch (IOException e) {
                    // The connection closes at the end of the test.
                }
            });
            long budget = NbdServer.Options.DEFAULT_CONNECTION_BUDGET;
            long peak = 0;
            for (int i = 0; i < 20; i++) {
                Thread.sleep(50);
                peak = Math.max(peak, s.server.inFlightBytes());
            }
            assertTrue(peak > 0, "the reads never started");
            assertTrue(peak <= budget, "in flight " + peak + " > budget " + budget);
            c.close();
            sender.join();
        }
    }

    @Test
    void withoutCredentialsStartTlsIsRefusedByPolicy() throws Exception {
        Path img = image("16M");
        try (Served s = Served.start(img, dir.resolve("s.sock"), false, ExecutionModel.VIRTUAL);
                RawClient c = new RawClient(s.server.address())) {
            c.send(ByteBuffer.allocate(4).putInt(Protocol.FLAG_FIXED_NEWSTYLE));
            assertEquals(Protocol.REP_ERR_POLICY, c.option(Protocol.OPT_STARTTLS, ByteBuffer.allocate(0)));
            assertEquals(Protocol.REP_ACK, c.option(Protocol.OPT_ABORT, ByteBuffer.allocate(0)));
        }
    }
}
