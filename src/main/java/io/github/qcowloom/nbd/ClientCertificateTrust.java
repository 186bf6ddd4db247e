package io.github.qcowloom.nbd;

import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * The PKIX trust manager that checks client certificates against ca-cert.pem, naming no CA in the server's
 * CertificateRequest. GnuTLS clients (libnbd, qemu) given a CA list pick a certificate only when its key type
 * appears among the request's signature schemes; the JDK's TLS 1.3 list has RSA-PSS but not PKCS#1, so an RSA
 * client certificate (certtool's and openssl's default) was never sent ("Empty client certificate chain").
 * Without a CA list GnuTLS sends its one certificate, which is then checked as before. Stateless: thread-safe.
 */
final class ClientCertificateTrust extends X509ExtendedTrustManager {
    private final X509ExtendedTrustManager pkix;

    ClientCertificateTrust(X509ExtendedTrustManager pkix) {
        this.pkix = pkix;
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return new X509Certificate[0];
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        pkix.checkClientTrusted(chain, authType, engine);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        pkix.checkClientTrusted(chain, authType, socket);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        pkix.checkClientTrusted(chain, authType);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        throw new CertificateException("a server does not check servers");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        throw new CertificateException("a server does not check servers");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw new CertificateException("a server does not check servers");
    }
}
