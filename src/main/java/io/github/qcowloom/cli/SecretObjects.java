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
import picocli.CommandLine.Option;

/**
 * qemu-img's {@code --object secret,id=ID,data=TEXT|file=PATH[,format=raw|base64]}: the secrets an image's options
 * name by id ({@code encrypt.key-secret=ID}), refused in qemu-img's words where it refuses them. Other object types
 * are refused as qemu-img refuses a type it does not know; secrets encrypted with another secret ({@code keyid},
 * {@code iv}) as not done. It also keeps the master keys its secrets unlocked, for the command's other opens of the
 * same images (see {@link UnlockedKeys}); {@link #close}, after the command, wipes them.
 */
final class SecretObjects implements AutoCloseable {
    /** A command whose secrets are a field of its own rather than a picocli mixin (the commands built in code). */
    interface Holder {
        SecretObjects secretObjects();
    }

    static final String HELP = "A secret for the images' options: secret,id=ID,data=TEXT or secret,id=ID,file=PATH"
            + " (format=raw or base64).";

    @Option(names = "--object", paramLabel = "OBJECTDEF", description = HELP)
    List<String> definitions = new ArrayList<>();

    private Map<String, byte[]> byId;
    private final UnlockedKeys unlocked = new UnlockedKeys();

    /** Every secret defined, by id; the definitions are checked on the first call. */
    Map<String, byte[]> secrets() throws ImageException {
        if (byId == null) {
            Map<String, byte[]> secrets = new HashMap<>();
            for (String definition : definitions) {
                define(definition, secrets);
            }
            byId = secrets;
        }
        return byId;
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

    private static void define(String definition, Map<String, byte[]> secrets) throws ImageException {
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
        if (secrets.putIfAbsent(id, raw) != null) {
            throw new ImageException("attempt to add duplicate property '" + id + "' to object (type 'container')");
        }
    }
}
