package io.github.qcowloom.testing;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Assumptions;

/**
 * Certificates made with the openssl command, laid out as qemu's tls-creds-x509 directories: a CA, a server
 * directory (ca-cert.pem, server-cert.pem, server-key.pem; SANs localhost, 127.0.0.1 and the given addresses),
 * client directories for libnbd's {@code tls-certificates=} and qemu's {@code endpoint=client} (ca-cert.pem, with
 * or without client-cert.pem and client-key.pem), and the same from a second, unrelated CA. RSA keys throughout,
 * as certtool and openssl make by default.
 */
public final class TestPki {
    /** How a server key is written: PKCS#8 (openssl's default), PKCS#1 RSA (certtool's), SEC1 EC. */
    public enum KeyFormat { PKCS8_RSA, PKCS1_RSA, SEC1_EC }

    public final Path root;
    /** ca-cert.pem, server-cert.pem, server-key.pem. */
    public final Path server;
    /** ca-cert.pem only: verifies the server, has no certificate of its own. */
    public final Path client;
    /** ca-cert.pem, client-cert.pem, client-key.pem signed by the CA. */
    public final Path clientWithCert;
    /** ca-cert.pem of another CA: the server's certificate does not verify. */
    public final Path wrongCa;
    /** ca-cert.pem of the right CA, with client-cert.pem and client-key.pem signed by another CA. */
    public final Path clientWithWrongCert;

    private TestPki(Path root) {
        this.root = root;
        this.server = root.resolve("server");
        this.client = root.resolve("client");
        this.clientWithCert = root.resolve("client-cert");
        this.wrongCa = root.resolve("wrong-ca");
        this.clientWithWrongCert = root.resolve("client-wrong-cert");
    }

    /** Skips (or fails under -Dqcowloom.requireQemu=true) without openssl. */
    public static void assumeOpenssl() {
        boolean present = Files.isExecutable(Path.of("/usr/bin/openssl"));
        if (!present && Boolean.getBoolean("qcowloom.requireQemu")) {
            fail("openssl is required but not installed (apt-get install openssl)");
        }
        Assumptions.assumeTrue(present, "openssl not installed (apt-get install openssl)");
    }

    /** Makes every directory under {@code root}; {@code sanIps} are extra server addresses. */
    public static TestPki make(Path root, String... sanIps) throws IOException {
        assumeOpenssl();
        TestPki p = new TestPki(root);
        Path ca = root.resolve("ca");
        Path other = root.resolve("other-ca");
        makeCa(ca, "qcow2-loom test CA");
        makeCa(other, "unrelated CA");
        StringBuilder san = new StringBuilder("DNS:localhost,IP:127.0.0.1");
        for (String ip : sanIps) {
            san.append(",IP:").append(ip);
        }
        p.serverDir(p.server, KeyFormat.PKCS8_RSA, san.toString());
        Files.createDirectories(p.client);
        Files.copy(ca.resolve("ca-cert.pem"), p.client.resolve("ca-cert.pem"));
        Files.createDirectories(p.wrongCa);
        Files.copy(other.resolve("ca-cert.pem"), p.wrongCa.resolve("ca-cert.pem"));
        clientDir(p.clientWithCert, ca, ca);
        clientDir(p.clientWithWrongCert, ca, other);
        return p;
    }

    /** Another server directory of the same CA, its key written in {@code format}. */
    public Path serverDir(Path dir, KeyFormat format, String san) throws IOException {
        Files.createDirectories(dir);
        Path ca = root.resolve("ca");
        Files.copy(ca.resolve("ca-cert.pem"), dir.resolve("ca-cert.pem"));
        Path key = dir.resolve("server-key.pem");
        switch (format) {
            case PKCS8_RSA -> openssl(dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", key.toString());
            case PKCS1_RSA -> openssl(dir, "genrsa", "-traditional", "-out", key.toString(), "2048");
            case SEC1_EC -> openssl(dir, "ecparam", "-name", "prime256v1", "-genkey", "-out", key.toString());
        }
        sign(dir, ca, key, dir.resolve("server-cert.pem"), "localhost",
                "subjectAltName=" + san + "\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                        + "extendedKeyUsage=serverAuth\n");
        return dir;
    }

    /** Another client directory with its own certificate from the CA. */
    public Path newClient(Path dir) throws IOException {
        clientDir(dir, root.resolve("ca"), root.resolve("ca"));
        return dir;
    }

    /**
     * A copy of the server directory whose ca-crl.pem revokes {@code clientDir}'s client-cert.pem (made with
     * openssl ca and a throwaway database).
     */
    public Path serverRevoking(Path dir, Path clientDir) throws IOException {
        Files.createDirectories(dir);
        for (String f : List.of("ca-cert.pem", "server-cert.pem", "server-key.pem")) {
            Files.copy(server.resolve(f), dir.resolve(f));
        }
        Path db = Files.createDirectories(root.resolve("crl-db-" + dir.getFileName()));
        Files.writeString(db.resolve("index.txt"), "");
        Files.writeString(db.resolve("crlnumber"), "01\n");
        Files.writeString(db.resolve("ca.cnf"), "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\n"
                + "crlnumber=crlnumber\ndefault_md=sha256\ndefault_crl_days=2\n");
        Path ca = root.resolve("ca");
        List<String> base = List.of("ca", "-config", "ca.cnf", "-keyfile", ca.resolve("ca-key.pem").toString(),
                "-cert", ca.resolve("ca-cert.pem").toString());
        List<String> revoke = new ArrayList<>(base);
        revoke.addAll(List.of("-revoke", clientDir.resolve("client-cert.pem").toString()));
        openssl(db, revoke.toArray(new String[0]));
        List<String> crl = new ArrayList<>(base);
        crl.addAll(List.of("-gencrl", "-out", dir.resolve("ca-crl.pem").toString()));
        openssl(db, crl.toArray(new String[0]));
        return dir;
    }

    private static void makeCa(Path dir, String name) throws IOException {
        Files.createDirectories(dir);
        openssl(dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca-cert.pem",
                "-days", "2", "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign");
    }

    /** A client directory trusting {@code trusted}'s CA, holding a certificate issued by {@code issuer}. */
    private static void clientDir(Path dir, Path trusted, Path issuer) throws IOException {
        Files.createDirectories(dir);
        Files.copy(trusted.resolve("ca-cert.pem"), dir.resolve("ca-cert.pem"));
        Path key = dir.resolve("client-key.pem");
        openssl(dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key.toString());
        sign(dir, issuer, key, dir.resolve("client-cert.pem"), "test client",
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n");
    }

    private static void sign(Path dir, Path ca, Path key, Path cert, String cn, String extensions) throws IOException {
        Path csr = dir.resolve("req.csr");
        Path ext = dir.resolve("req.ext");
        openssl(dir, "req", "-new", "-key", key.toString(), "-subj", "/CN=" + cn, "-out", csr.toString());
        Files.writeString(ext, extensions);
        openssl(dir, "x509", "-req", "-in", csr.toString(), "-CA", ca.resolve("ca-cert.pem").toString(),
                "-CAkey", ca.resolve("ca-key.pem").toString(), "-CAcreateserial", "-days", "2",
                "-out", cert.toString(), "-extfile", ext.toString());
        Files.delete(csr);
        Files.delete(ext);
    }

    private static void openssl(Path dir, String... args) {
        List<String> cmd = new ArrayList<>(List.of("openssl"));
        cmd.addAll(List.of(args));
        Qemu.run(cmd, dir);
    }

    /** An IPv4 address of this machine that is not loopback, if it has one. */
    public static Optional<String> nonLoopbackAddress() {
        try {
            for (NetworkInterface nic : NetworkInterface.networkInterfaces().toList()) {
                if (!nic.isUp() || nic.isLoopback()) {
                    continue;
                }
                for (InetAddress a : nic.inetAddresses().toList()) {
                    if (a instanceof Inet4Address && !a.isLoopbackAddress() && !a.isLinkLocalAddress()) {
                        return Optional.of(a.getHostAddress());
                    }
                }
            }
        } catch (SocketException e) {
            // No interfaces to ask: none.
        }
        return Optional.empty();
    }
}
