package io.github.qcowloom.cli;

import io.github.qcowloom.api.ChainEncryption;
import io.github.qcowloom.api.EncryptionKeyException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnlockedKeys;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import picocli.CommandLine.Option;

/**
 * qemu-img's and qemu-nbd's {@code --object}: {@code secret,id=ID,data=TEXT|file=PATH[,format=raw|base64]}, the
 * secrets an image's options name by id ({@code encrypt.key-secret=ID}), and {@code
 * tls-creds-x509,id=ID,dir=DIR[,endpoint=server|client][,verify-peer=on|off]}, the x509 credentials serve's {@code
 * --tls-creds ID} names; refused in QEMU's words where it refuses them. Other object types are refused as qemu-img
 * refuses a type it does not know; QEMU's other TLS credentials and authorization objects, secrets encrypted with
 * another secret ({@code keyid}, {@code iv}) and keys under a password ({@code passwordid}) as not done. It also
 * keeps the master keys its secrets unlocked, for the command's other opens of the same images (see {@link
 * UnlockedKeys}); {@link #close}, after the command, wipes them.
 */
final class QemuObjects implements AutoCloseable {
    /** A command whose secrets are a field of its own rather than a picocli mixin (the commands built in code). */
    interface Holder {
        QemuObjects secretObjects();
    }

    static final String HELP = "A secret for the images' options: secret,id=ID,data=TEXT or secret,id=ID,file=PATH"
            + " (format=raw or base64); for serve, x509 credentials: tls-creds-x509,id=ID,dir=DIR,endpoint=server"
            + " (verify-peer=on by default, as QEMU's).";

    /**
     * A {@code tls-creds-x509} object: QEMU's x509 files in {@code dir}, for a {@code server} or {@code client}
     * {@code endpoint} (QEMU's default: client), asking the peer for a certificate where {@code verifyPeer} (QEMU's
     * default: on).
     */
    record TlsObject(String id, Path dir, String endpoint, boolean verifyPeer) {
    }

    /** QEMU's object types for TLS and authorization that this driver does not take. */
    private static final List<String> NOT_DONE_TYPES = List.of("tls-creds-psk", "tls-creds-anon", "authz-simple",
            "authz-list", "authz-listfile", "authz-pam", "tls-cipher-suites");

    @Option(names = "--object", paramLabel = "OBJECTDEF", description = HELP)
    List<String> definitions = new ArrayList<>();

    private Map<String, byte[]> byId;
    private Map<String, TlsObject> tlsById;
    private final UnlockedKeys unlocked = new UnlockedKeys();

    /** Every secret defined, by id; the definitions are checked on the first call. */
    Map<String, byte[]> secrets() throws ImageException {
        if (byId == null) {
            Map<String, byte[]> secrets = new HashMap<>();
            Map<String, TlsObject> tls = new HashMap<>();
            for (String definition : definitions) {
                define(definition, secrets, tls);
            }
            byId = secrets;
            tlsById = tls;
        }
        return byId;
    }

    /**
     * The x509 credentials object {@code id}, as qemu-nbd's nbd_get_tls_creds looks it up for a server.
     *
     * @return empty where no object has that id
     * @throws ImageException in qemu-nbd's words for an object of another type or a client's credentials
     */
    Optional<TlsObject> serverTlsCredentials(String id) throws ImageException {
        if (secrets().containsKey(id)) {
            throw new ImageException("Failed to get TLS creds: Object with id '" + id + "' is not TLS credentials");
        }
        TlsObject tls = tlsById.get(id);
        if (tls != null && !tls.endpoint().equals("server")) {
            throw new ImageException("Failed to get TLS creds: Expected TLS credentials for a server endpoint");
        }
        return Optional.ofNullable(tls);
    }

    /** The master keys this command's images have unlocked so far. */
    UnlockedKeys unlockedKeys() {
        return unlocked;
    }

    /** Wipes the keys unlocked and the secrets' bytes. */
    @Override
    public void close() {
        unlocked.close();
        if (byId != null) {
            byId.values().forEach(secret -> Arrays.fill(secret, (byte) 0));
        }
    }

    /**
     * The passphrase secret {@code id} holds, as QEMU's qcrypto_secret_lookup_as_utf8 takes it: valid UTF-8 without
     * a NUL byte (g_utf8_validate, given the length, refuses one).
     *
     * @throws ImageException "No secret with id 'ID'" where none is defined
     */
    byte[] passphrase(String id) throws ImageException {
        byte[] secret = secrets().get(id);
        if (secret == null) {
            throw new ImageException("No secret with id '" + id + "'");
        }
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(secret));
            for (byte b : secret) {
                if (b == 0) {
                    throw new CharacterCodingException();
                }
            }
        } catch (CharacterCodingException e) {
            throw new ImageException("Data from secret " + id + " is not valid UTF-8");
        }
        return secret.clone();
    }

    /** Where the passphrase of secret {@code id} comes from: {@link #passphrase}, looked up when asked. */
    ChainEncryption.Passphrase passphraseOf(String id) {
        return () -> {
            try {
                return passphrase(id);
            } catch (ImageException e) {
                EncryptionKeyException notFound = new EncryptionKeyException(e.getMessage());
                notFound.initCause(e);
                throw notFound;
            }
        };
    }

    private static void define(String definition, Map<String, byte[]> secrets, Map<String, TlsObject> tls)
            throws ImageException {
        Map<String, String> opts = CreateOptionsParser.keyValues(definition);
        String type = definition.contains(",") ? definition.substring(0, definition.indexOf(',')) : definition;
        if (type.contains("=")) { // qom-type=TYPE, or no type at all: nothing else of the first option is echoed
            type = opts.remove("qom-type");
            if (type == null) {
                throw new ImageException("Parameter 'qom-type' is missing");
            }
        } else {
            opts.remove(type.startsWith("no") ? type.substring(2) : type);
        }
        if (NOT_DONE_TYPES.contains(type)) {
            throw new UnsupportedFeatureException("--object " + type, "Objects of type '" + type + "' are not"
                    + " supported (secret and tls-creds-x509 are)");
        }
        if (type.equals("tls-creds-x509")) {
            TlsObject creds = tlsObject(opts);
            if (secrets.containsKey(creds.id()) || tls.putIfAbsent(creds.id(), creds) != null) {
                throw duplicate(creds.id());
            }
            return;
        }
        if (!type.equals("secret")) {
            throw new ImageException("Parameter 'qom-type' does not accept value '" + type + "'");
        }
        for (String key : opts.keySet()) {
            switch (key) {
                case "id", "data", "file", "format" -> { }
                case "keyid", "iv" -> throw new UnsupportedFeatureException("encrypted secrets",
                        "Secrets encrypted with another secret (" + key + ") are not supported");
                default -> throw new ImageException("Parameter '" + key + "' is unexpected");
            }
        }
        String id = opts.get("id");
        if (id == null) {
            throw new ImageException("Parameter 'id' is missing");
        }
        String format = opts.getOrDefault("format", "raw");
        if (!format.equals("raw") && !format.equals("base64")) {
            throw new ImageException("Parameter 'format' does not accept value '" + format + "'");
        }
        String data = opts.get("data");
        String file = opts.get("file");
        if (data != null && file != null) {
            throw new ImageException("'file' and 'data' are mutually exclusive");
        }
        if (data == null && file == null) {
            throw new ImageException("Either 'file' or 'data' must be provided");
        }
        byte[] raw;
        if (data != null) {
            raw = data.getBytes(StandardCharsets.UTF_8);
        } else {
            try {
                raw = Files.readAllBytes(Path.of(file));
            } catch (NoSuchFileException e) {
                throw new ImageException("Unable to read " + file + ": Failed to open file “" + file
                        + "”: No such file or directory", e);
            } catch (IOException e) {
                throw new ImageException("Unable to read " + file + ": " + e.getMessage(), e);
            }
        }
        if (format.equals("base64")) {
            try {
                raw = Base64.getDecoder().decode(raw);
            } catch (IllegalArgumentException e) {
                throw new ImageException("Base64 data contains invalid characters");
            }
        }
        if (tls.containsKey(id) || secrets.putIfAbsent(id, raw) != null) {
            throw duplicate(id);
        }
    }

    /** QEMU's refusal of a second object of one id. */
    private static ImageException duplicate(String id) {
        return new ImageException("attempt to add duplicate property '" + id + "' to object (type 'container')");
    }

    /** A tls-creds-x509 object's options, checked as QEMU's QOM properties check them. */
    private static TlsObject tlsObject(Map<String, String> opts) throws ImageException {
        for (String key : opts.keySet()) {
            switch (key) {
                case "id", "dir", "endpoint", "verify-peer", "sanity-check" -> { }
                case "passwordid", "priority" -> throw new UnsupportedFeatureException("tls-creds-x509 " + key,
                        "TLS credentials with '" + key + "' are not supported");
                default -> throw new ImageException("Parameter '" + key + "' is unexpected");
            }
        }
        String id = opts.get("id");
        if (id == null) {
            throw new ImageException("Parameter 'id' is missing");
        }
        String endpoint = opts.getOrDefault("endpoint", "client");
        if (!endpoint.equals("server") && !endpoint.equals("client")) {
            throw new ImageException("Parameter 'endpoint' does not accept value '" + endpoint + "'");
        }
        String dir = opts.get("dir");
        if (dir == null) {
            throw new ImageException("Missing 'dir' property value");
        }
        Boolean verify = CreateOptionsParser.bool(opts.getOrDefault("verify-peer", "on"));
        if (verify == null) {
            throw new ImageException("Parameter 'verify-peer' expects 'on' or 'off'");
        }
        // QEMU loads the files as it makes the object: the ones an endpoint needs must be there.
        List<String> needed = endpoint.equals("server") ? List.of("ca-cert.pem", "server-cert.pem", "server-key.pem")
                : List.of("ca-cert.pem");
        for (String file : needed) {
            String name = dir + "/" + file;
            if (!Files.isReadable(Path.of(name))) {
                throw new ImageException("Unable to access credentials " + name + ": " + (Files.exists(Path.of(name))
                        ? "Permission denied" : "No such file or directory"));
            }
        }
        return new TlsObject(id, Path.of(dir), endpoint, verify);
    }
}
