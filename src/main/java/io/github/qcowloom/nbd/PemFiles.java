package io.github.qcowloom.nbd;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * Certificates, CRLs and private keys from PEM files as certtool and openssl write them. The JDK reads private
 * keys as PKCS#8 only; "RSA PRIVATE KEY" (PKCS#1, certtool's and {@code openssl genrsa -traditional}'s output) and
 * "EC PRIVATE KEY" (SEC1, {@code openssl ecparam -genkey}'s) are rewrapped into PKCS#8 here. Encrypted keys are
 * refused (qemu-nbd cannot read them either).
 */
final class PemFiles {
    private static final Pattern BLOCK = Pattern.compile(
            "-----BEGIN ([A-Z0-9 ]+)-----\\R(.*?)-----END \\1-----", Pattern.DOTALL);
    /** rsaEncryption, 1.2.840.113549.1.1.1, with its NULL parameters. */
    private static final byte[] RSA_ALGORITHM = hex("300d06092a864886f70d0101010500");
    /** id-ecPublicKey, 1.2.840.10045.2.1. */
    private static final byte[] EC_PUBLIC_KEY_OID = hex("06072a8648ce3d0201");
    private static final String[] KEY_ALGORITHMS = {"RSA", "EC", "Ed25519", "Ed448", "RSASSA-PSS", "DSA"};

    private PemFiles() {
    }

    /** One PEM block: its label ("CERTIFICATE", "PRIVATE KEY"...), headers if any, and its DER bytes. */
    record Block(String label, boolean encrypted, byte[] der) {
    }

    static List<Block> blocks(Path file) throws IOException {
        String text = Files.readString(file, StandardCharsets.US_ASCII);
        List<Block> out = new ArrayList<>();
        Matcher m = BLOCK.matcher(text);
        while (m.find()) {
            String body = m.group(2);
            // RFC 1421 headers ("Proc-Type: 4,ENCRYPTED", "DEK-Info: ...") are the lines with a colon, which
            // base64 never has.
            boolean encrypted = body.contains("ENCRYPTED");
            String base64 = body.lines().filter(l -> l.indexOf(':') < 0).collect(Collectors.joining());
            try {
                out.add(new Block(m.group(1), encrypted, Base64.getMimeDecoder().decode(base64)));
            } catch (IllegalArgumentException e) {
                throw new BadTlsCredentialsException(file + ": bad base64 in its " + m.group(1) + " block");
            }
        }
        return out;
    }

    /** Every certificate in the file, in order (a certificate and its chain, or several CAs). */
    static List<X509Certificate> certificates(Path file) throws IOException {
        List<X509Certificate> out = new ArrayList<>();
        try {
            CertificateFactory f = CertificateFactory.getInstance("X.509");
            for (Block b : blocks(file)) {
                if (b.label().equals("CERTIFICATE") || b.label().equals("X509 CERTIFICATE")) {
                    out.add((X509Certificate) f.generateCertificate(new ByteArrayInputStream(b.der())));
                }
            }
        } catch (GeneralSecurityException e) {
            throw new BadTlsCredentialsException(file + ": not a valid certificate: " + e.getMessage());
        }
        if (out.isEmpty()) {
            throw new BadTlsCredentialsException(file + ": no PEM certificate in it");
        }
        return out;
    }

    /** Every CRL in the file. */
    static List<X509CRL> crls(Path file) throws IOException {
        List<X509CRL> out = new ArrayList<>();
        try {
            CertificateFactory f = CertificateFactory.getInstance("X.509");
            for (Block b : blocks(file)) {
                if (b.label().equals("X509 CRL")) {
                    out.add((X509CRL) f.generateCRL(new ByteArrayInputStream(b.der())));
                }
            }
        } catch (GeneralSecurityException e) {
            throw new BadTlsCredentialsException(file + ": not a valid CRL: " + e.getMessage());
        }
        if (out.isEmpty()) {
            throw new BadTlsCredentialsException(file + ": no PEM CRL (X509 CRL) in it");
        }
        return out;
    }

    /** The file's one private key: PKCS#8, PKCS#1 RSA or SEC1 EC. */
    static PrivateKey privateKey(Path file) throws IOException {
        for (Block b : blocks(file)) {
            byte[] pkcs8 = switch (b.label()) {
                case "PRIVATE KEY" -> b.der();
                case "RSA PRIVATE KEY" -> b.encrypted() ? null : sequence(integerZero(), RSA_ALGORITHM,
                        tlv(0x04, b.der()));
                case "EC PRIVATE KEY" -> b.encrypted() ? null : ecToPkcs8(file, b.der());
                case "ENCRYPTED PRIVATE KEY" -> null;
                default -> new byte[0];
            };
            if (pkcs8 == null) {
                throw new BadTlsCredentialsException(file + ": the private key is encrypted; decrypt it first "
                        + "(openssl pkey -in KEY -out KEY.plain)");
            }
            if (pkcs8.length > 0) {
                return decode(file, pkcs8);
            }
        }
        throw new BadTlsCredentialsException(file + ": no PEM private key in it");
    }

    private static PrivateKey decode(Path file, byte[] pkcs8) throws IOException {
        for (String alg : KEY_ALGORITHMS) {
            try {
                return KeyFactory.getInstance(alg).generatePrivate(new PKCS8EncodedKeySpec(pkcs8));
            } catch (GeneralSecurityException e) {
                // Not this algorithm: try the next.
            }
        }
        throw new BadTlsCredentialsException(file + ": unreadable private key (not RSA, EC, EdDSA or DSA)");
    }

    /**
     * SEC1 ECPrivateKey (SEQUENCE { version, privateKey OCTET STRING, [0] curve OID, [1] public key }) into
     * PKCS#8, whose algorithm identifier must name the curve.
     */
    private static byte[] ecToPkcs8(Path file, byte[] sec1) throws IOException {
        Der outer = new Der(sec1, 0, sec1.length);
        Der body = outer.next(0x30, file);
        while (body.hasMore()) {
            int tag = body.peekTag();
            Der field = body.next(tag, file);
            if (tag == 0xa0) {
                byte[] curve = field.rest();
                return sequence(integerZero(), sequence(EC_PUBLIC_KEY_OID, curve), tlv(0x04, sec1));
            }
        }
        throw new BadTlsCredentialsException(file + ": EC key names no curve");
    }

    /** A minimal DER reader over {@code [pos, end)}: tag-length-value walking with bounds checked. */
    private static final class Der {
        private final byte[] b;
        private int pos;
        private final int end;

        Der(byte[] b, int pos, int end) {
            this.b = b;
            this.pos = pos;
            this.end = end;
        }

        boolean hasMore() {
            return pos < end;
        }

        int peekTag() {
            return b[pos] & 0xff;
        }

        /** The contents of the next element, which must have {@code tag}. */
        Der next(int tag, Path file) throws IOException {
            if (pos + 2 > end || (b[pos] & 0xff) != tag) {
                throw new BadTlsCredentialsException(file + ": malformed key (DER)");
            }
            pos++;
            int len = b[pos++] & 0xff;
            if (len >= 0x80) {
                int n = len & 0x7f;
                if (n == 0 || n > 3 || pos + n > end) {
                    throw new BadTlsCredentialsException(file + ": malformed key (DER length)");
                }
                len = 0;
                for (int i = 0; i < n; i++) {
                    len = (len << 8) | (b[pos++] & 0xff);
                }
            }
            if (len > end - pos) {
                throw new BadTlsCredentialsException(file + ": malformed key (DER length past the end)");
            }
            Der d = new Der(b, pos, pos + len);
            pos += len;
            return d;
        }

        byte[] rest() {
            byte[] r = new byte[end - pos];
            System.arraycopy(b, pos, r, 0, r.length);
            return r;
        }
    }

    private static byte[] integerZero() {
        return new byte[] {0x02, 0x01, 0x00};
    }

    private static byte[] sequence(byte[]... parts) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            o.writeBytes(p);
        }
        return tlv(0x30, o.toByteArray());
    }

    private static byte[] tlv(int tag, byte[] value) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.write(tag);
        int n = value.length;
        if (n < 0x80) {
            o.write(n);
        } else if (n < 0x100) {
            o.write(0x81);
            o.write(n);
        } else if (n < 0x10000) {
            o.write(0x82);
            o.write(n >> 8);
            o.write(n);
        } else {
            o.write(0x83);
            o.write(n >> 16);
            o.write(n >> 8);
            o.write(n);
        }
        o.writeBytes(value);
        return o.toByteArray();
    }

    private static byte[] hex(String s) {
        return java.util.HexFormat.of().parseHex(s);
    }
}
