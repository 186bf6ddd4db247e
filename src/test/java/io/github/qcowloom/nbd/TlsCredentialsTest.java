package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import io.github.qcowloom.testing.TestPki;
import io.github.qcowloom.testing.TestPki.KeyFormat;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Credentials directories as certtool and openssl leave them: keys in PKCS#8, PKCS#1 and SEC1 serve; a missing
 * file, an encrypted key, a key of another certificate or a certificate of another CA is refused at load with a
 * message naming the file.
 */
class TlsCredentialsTest {
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

    @Test
    void pkcs8Pkcs1AndSec1KeysServe() throws Exception {
        Path img = dir.resolve("k.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "4M");
        Qemu.io(img, "write -P 0x66 0 4k");
        for (KeyFormat f : KeyFormat.values()) {
            Path creds = pki.serverDir(dir.resolve(f.name()), f, "DNS:localhost");
            String head = Files.readAllLines(creds.resolve("server-key.pem")).get(0);
            assertTrue(switch (f) {
                case PKCS8_RSA -> head.contains("BEGIN PRIVATE KEY");
                case PKCS1_RSA -> head.contains("BEGIN RSA PRIVATE KEY");
                case SEC1_EC -> head.contains("EC PARAMETERS") || head.contains("BEGIN EC PRIVATE KEY");
            }, f + ": " + head);
            try (Served s = Served.startTcp(img, true, TlsCredentials.load(creds, false));
                    JavaTlsClient c = new JavaTlsClient((InetSocketAddress) s.server.address()).startTls(pki.client)) {
                c.go();
                c.request(Protocol.CMD_READ, 1, 0, 4096, null);
                assertEquals(0, c.reply(1), f.name());
                byte[] expect = new byte[4096];
                Arrays.fill(expect, (byte) 0x66);
                assertArrayEquals(expect, c.read(4096), f.name());
            }
        }
    }

    private Path copyOfServer(String name) throws IOException {
        Path d = Files.createDirectories(dir.resolve(name));
        for (String f : List.of("ca-cert.pem", "server-cert.pem", "server-key.pem")) {
            Files.copy(pki.server.resolve(f), d.resolve(f));
        }
        return d;
    }

    private static String refusal(Path creds) {
        return assertThrows(BadTlsCredentialsException.class, () -> TlsCredentials.load(creds, true)).getMessage();
    }

    @Test
    void aMissingFileIsNamed() throws IOException {
        Path d = copyOfServer("missing");
        Files.delete(d.resolve("server-key.pem"));
        assertTrue(refusal(d).contains("no readable server-key.pem"), refusal(d));
        assertTrue(refusal(dir.resolve("nowhere")).contains("does not exist"));
    }

    @Test
    void anEncryptedKeyIsRefused() throws IOException {
        Path d = copyOfServer("encrypted");
        Path key = d.resolve("server-key.pem");
        Qemu.run(List.of("openssl", "pkey", "-in", key.toString(), "-aes256", "-passout", "pass:secret",
                "-out", key + ".enc"));
        Files.move(Path.of(key + ".enc"), key, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertTrue(refusal(d).contains("encrypted"), refusal(d));
    }

    @Test
    void aKeyOfAnotherCertificateIsRefused() throws IOException {
        Path d = copyOfServer("mismatch");
        Files.copy(pki.clientWithCert.resolve("client-key.pem"), d.resolve("server-key.pem"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertTrue(refusal(d).contains("is not the key of"), refusal(d));
    }

    @Test
    void aCertificateOfAnotherCaIsRefused() throws IOException {
        Path d = copyOfServer("otherca");
        Files.copy(pki.wrongCa.resolve("ca-cert.pem"), d.resolve("ca-cert.pem"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertTrue(refusal(d).contains("is not valid against"), refusal(d));
    }
}
