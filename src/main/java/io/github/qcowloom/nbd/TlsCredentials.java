package io.github.qcowloom.nbd;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.CertPathValidator;
import java.security.cert.CertStore;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CRL;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import javax.net.ssl.CertPathTrustManagerParameters;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * A server's TLS identity from a directory in qemu's x509 layout (qemu's docs/system/tls.rst, "Certificate file
 * naming"): {@code ca-cert.pem} (the CA, or CAs, client certificates must chain to), {@code server-cert.pem}
 * (this server's certificate, then any intermediates), {@code server-key.pem} (its private key: PKCS#8, PKCS#1 or
 * SEC1, unencrypted) and optionally {@code ca-crl.pem} (revoked client certificates). {@code dh-params.pem} is
 * not needed: TLS 1.3 and the JDK's TLS 1.2 suites use ephemeral (EC)DH groups.
 *
 * <p>Loading checks what would otherwise fail later, at a client's handshake, with an obscure alert: the key
 * matches the certificate, and the certificate chains to ca-cert.pem and is within its validity dates.
 *
 * <p>With {@code verifyPeer} (qemu's {@code tls-creds-x509,verify-peer=on}) a client must present a certificate
 * that chains to ca-cert.pem (and is not in ca-crl.pem); without it no client certificate is asked for.
 *
 * <p>Immutable and thread-safe: each connection gets its own {@link SSLEngine} from the shared context.
 */
public final class TlsCredentials {
    public static final String CA_CERT = "ca-cert.pem";
    public static final String CA_CRL = "ca-crl.pem";
    public static final String SERVER_CERT = "server-cert.pem";
    public static final String SERVER_KEY = "server-key.pem";
    /** TLS 1.3 first; 1.2 because the NBD protocol says implementations MUST support it. */
    private static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};

    private final SSLContext context;
    private final boolean verifyPeer;
    private final Path dir;

    private TlsCredentials(SSLContext context, boolean verifyPeer, Path dir) {
        this.context = context;
        this.verifyPeer = verifyPeer;
        this.dir = dir;
    }

    /** Loads and checks {@code dir}'s files; every problem is a {@link BadTlsCredentialsException} naming the file. */
    public static TlsCredentials load(Path dir, boolean verifyPeer) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new BadTlsCredentialsException("TLS credentials directory " + dir + " does not exist");
        }
        List<X509Certificate> cas = PemFiles.certificates(existing(dir, CA_CERT));
        List<X509Certificate> chain = PemFiles.certificates(existing(dir, SERVER_CERT));
        PrivateKey key = PemFiles.privateKey(existing(dir, SERVER_KEY));
        Path crlFile = dir.resolve(CA_CRL);
        List<X509CRL> crls = Files.exists(crlFile) ? PemFiles.crls(crlFile) : List.of();
        Set<TrustAnchor> anchors = new HashSet<>();
        for (X509Certificate ca : cas) {
            anchors.add(new TrustAnchor(ca, null));
        }
        checkKeyMatches(dir, key, chain.get(0));
        checkChain(dir, chain, cas, anchors);
        try {
            char[] password = new char[0];
            KeyStore keys = KeyStore.getInstance("PKCS12");
            keys.load(null, null);
            keys.setKeyEntry("server", key, password, chain.toArray(new X509Certificate[0]));
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(keys, password);
            TrustManager[] trust = null;
            if (verifyPeer) {
                PKIXBuilderParameters p = new PKIXBuilderParameters(anchors, new X509CertSelector());
                p.setRevocationEnabled(!crls.isEmpty());
                if (!crls.isEmpty()) {
                    p.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(crls)));
                }
                TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
                tmf.init(new CertPathTrustManagerParameters(p));
                X509ExtendedTrustManager pkix = (X509ExtendedTrustManager) tmf.getTrustManagers()[0];
                trust = new TrustManager[] {new ClientCertificateTrust(pkix)};
            }
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(kmf.getKeyManagers(), trust, null);
            return new TlsCredentials(context, verifyPeer, dir);
        } catch (GeneralSecurityException e) {
            throw new BadTlsCredentialsException("TLS credentials in " + dir + ": " + e.getMessage());
        }
    }

    private static Path existing(Path dir, String name) throws BadTlsCredentialsException {
        Path p = dir.resolve(name);
        if (!Files.isReadable(p)) {
            throw new BadTlsCredentialsException("TLS credentials directory " + dir + " has no readable " + name);
        }
        return p;
    }

    /** Signs with the key and verifies with the certificate: a key from another pair is caught here. */
    private static void checkKeyMatches(Path dir, PrivateKey key, X509Certificate cert) throws IOException {
        String alg = switch (key.getAlgorithm()) {
            case "RSA" -> "SHA256withRSA";
            case "EC" -> "SHA256withECDSA";
            case "Ed25519", "Ed448", "EdDSA" -> key.getAlgorithm();
            case "DSA" -> "SHA256withDSA";
            default -> null; // RSASSA-PSS needs parameters; the handshake will tell.
        };
        if (alg == null) {
            return;
        }
        byte[] probe = "qcow2-loom key check".getBytes(StandardCharsets.US_ASCII);
        boolean ok;
        try {
            Signature s = Signature.getInstance(alg);
            s.initSign(key);
            s.update(probe);
            byte[] sig = s.sign();
            Signature v = Signature.getInstance(alg);
            v.initVerify(cert.getPublicKey());
            v.update(probe);
            ok = v.verify(sig);
        } catch (GeneralSecurityException e) {
            ok = false;
        }
        if (!ok) {
            throw new BadTlsCredentialsException(dir.resolve(SERVER_KEY) + " is not the key of "
                    + dir.resolve(SERVER_CERT));
        }
    }

    /** server-cert.pem (with any intermediates it carries) chains to ca-cert.pem and is valid now. */
    private static void checkChain(Path dir, List<X509Certificate> chain, List<X509Certificate> cas,
            Set<TrustAnchor> anchors) throws IOException {
        List<X509Certificate> path = new ArrayList<>(chain);
        path.removeAll(cas); // a chain file that ends with the CA itself
        try {
            chain.get(0).checkValidity();
            PKIXParameters p = new PKIXParameters(anchors);
            p.setRevocationEnabled(false);
            CertPathValidator.getInstance("PKIX")
                    .validate(CertificateFactory.getInstance("X.509").generateCertPath(path), p);
        } catch (GeneralSecurityException e) {
            throw new BadTlsCredentialsException(dir.resolve(SERVER_CERT) + " is not valid against "
                    + dir.resolve(CA_CERT) + ": " + e.getMessage());
        }
    }

    /** The directory these credentials came from. */
    public Path directory() {
        return dir;
    }

    /** Whether clients must present a certificate signed by ca-cert.pem. */
    public boolean verifyPeer() {
        return verifyPeer;
    }

    /** A server-side engine for one connection. */
    SSLEngine newEngine() {
        SSLEngine e = context.createSSLEngine();
        e.setUseClientMode(false);
        e.setEnabledProtocols(PROTOCOLS);
        e.setNeedClientAuth(verifyPeer);
        return e;
    }
}
