package io.github.qcowloom.image;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.EncryptionKeyException;
import io.github.qcowloom.api.ImageOptionsException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnlockedKeys;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.crypto.EncryptionInfo;
import io.github.qcowloom.crypto.LuksFormat;
import io.github.qcowloom.crypto.LuksHeaderArea;
import io.github.qcowloom.crypto.LuksKeySlotChange;
import io.github.qcowloom.crypto.LuksHeader;
import io.github.qcowloom.crypto.Pbkdf2;
import io.github.qcowloom.crypto.QcowAes;
import io.github.qcowloom.crypto.SectorCipher;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.util.Arrays;

/**
 * A qcow2 image's encryption as its open finds it (QEMU's qcow2_read_extensions and qcrypto_block_open). For LUKS
 * (crypt_method 2): the LUKS header read from the clusters the CRYPTO header extension names, and, when the open
 * needs guest data and was given the passphrase, the payload cipher of the master key it unlocks (or that the
 * options' {@link UnlockedKeys} kept from an earlier unlock of the same header). For the AES of older images
 * (crypt_method 1, {@link QcowAes}): the passphrase is the key, and its sector IVs are numbered by guest offset. An
 * inspection (an open that follows no references and writes nothing, as {@code qemu-img info}'s) may come without a
 * passphrase and then reads the header alone, as QEMU's BDRV_O_NO_IO open does. The cipher stays inside this
 * package: what leaves it is {@link #info()}.
 */
public final class ImageEncryption {
    /** QEMU's words for an open that needs the passphrase and was given none. */
    static final String KEY_REQUIRED = "Parameter 'encrypt.key-secret' is required for cipher";

    /** What info shows: the LUKS header's fields, or AES's name. */
    private final EncryptionInfo info;
    /** Null for an inspection: no guest data is read or written. */
    private final SectorCipher cipher;
    /** True for AES, whose sector IVs are numbered by guest offset; LUKS numbers them by host offset. */
    private final boolean ivsByGuestOffset;

    private ImageEncryption(EncryptionInfo info, SectorCipher cipher, boolean ivsByGuestOffset) {
        this.info = info;
        this.cipher = cipher;
        this.ivsByGuestOffset = ivsByGuestOffset;
    }

    /**
     * The encryption of {@code header}'s image, or null when it is not encrypted. Called before the open changes
     * anything in the file, so that a refused passphrase leaves the image as it was.
     */
    static ImageEncryption load(Storage file, Header header, OpenOptions options) throws IOException {
        String format = options.encryption().format().orElse(null);
        if (!header.encrypted()) {
            if (format != null) { // QEMU's qcow2_update_options_prepare, even for an inspection
                throw new ImageOptionsException("No encryption in image header, but options specified format '"
                        + format + "'");
            }
            return null;
        }
        String method = header.aesEncrypted() ? "aes" : "luks";
        if (format != null && !format.equals(method)) {
            throw new ImageOptionsException("Header reported '" + method + "' encryption format but options specify '"
                    + format + "'");
        }
        boolean inspection = !options.followReferences() && options.readOnly();
        if (!options.encryption().hasPassphrase() && !inspection) {
            throw new EncryptionKeyException(KEY_REQUIRED);
        }
        // Asked for before the header is read, as QEMU looks its secret up: a secret that cannot be found fails
        // first. An inspection given a passphrase unlocks (the CLI's info passes none, so that it never pays for it).
        byte[] key = options.encryption().passphrase();
        try {
            if (header.aesEncrypted()) {
                if (key == null) {
                    return new ImageEncryption(new EncryptionInfo.Aes(), null, true);
                }
                requireDataAtSectors(header);
                return new ImageEncryption(new EncryptionInfo.Aes(), QcowAes.cipher(key), true);
            }
            LuksHeaderArea area = luksArea(file, header);
            byte[] bytes = new byte[LuksHeader.SIZE];
            area.read(0, bytes);
            LuksHeader luks = LuksHeader.parse(bytes);
            if (key == null) {
                return new ImageEncryption(luks.info(), null, false);
            }
            requireDataAtSectors(header);
            byte[] masterKey = unlock(bytes, area, key, options.encryption().unlockedKeys());
            try {
                return new ImageEncryption(luks.info(), SectorCipher.of(luks, masterKey), false);
            } finally {
                Arrays.fill(masterKey, (byte) 0);
            }
        } finally {
            if (key != null) {
                Arrays.fill(key, (byte) 0); // a copy (ChainEncryption gives out copies)
            }
        }
    }

    /** What guest data needs before this driver encrypts it: no external data file, and whole sectors. */
    private static void requireDataAtSectors(Header header) throws UnsupportedFeatureException {
        if (header.hasDataFile()) {
            throw dataFileRefusal();
        }
        if (header.size() % EncryptedData.SECTOR != 0) {
            throw new UnsupportedFeatureException("encrypted image size not a multiple of 512",
                    "An encrypted image's size must be a multiple of 512 bytes, not " + header.size());
        }
    }

    /** Encryption beside an external data file, which this driver does not do (QEMU does). */
    static UnsupportedFeatureException dataFileRefusal() {
        return new UnsupportedFeatureException("encryption with an external data file",
                "Encryption with an external data file is not supported");
    }

    /**
     * The master key {@code passphrase} unlocks from the LUKS header {@code bytes} in {@code area}: kept in {@code
     * keys} (null: none) from an earlier unlock, or unlocked and kept there; an array the caller wipes.
     */
    private static byte[] unlock(byte[] bytes, LuksHeaderArea area, byte[] passphrase,
            UnlockedKeys keys) throws IOException {
        byte[] masterKey = keys == null ? null : keys.find(bytes, passphrase);
        if (masterKey == null) {
            masterKey = LuksFormat.unlock(LuksHeader.parse(bytes), area, passphrase);
            if (keys != null) {
                keys.remember(bytes, passphrase, masterKey);
            }
        }
        return masterKey;
    }

    /**
     * Changes the key slots of the LUKS image whose {@code header} is in {@code file}, as qemu-img amend's {@code
     * encrypt.*} options do: the master key a new slot stores is the one the open's passphrase ({@code options})
     * unlocks, found again in the options' {@link UnlockedKeys} where the open kept it.
     */
    static void changeKeySlots(Storage file, Header header, OpenOptions options, LuksKeySlotChange change,
            boolean force) throws IOException {
        if (!options.encryption().hasPassphrase()) { // an inspection's open: QEMU's amend always unlocks
            throw new EncryptionKeyException(KEY_REQUIRED);
        }
        LuksHeaderArea area = luksArea(file, header);
        byte[] bytes = new byte[LuksHeader.SIZE];
        area.read(0, bytes);
        UnlockedKeys keys = options.encryption().unlockedKeys();
        byte[] passphrase = options.encryption().passphrase();
        try {
            change.apply(bytes, area, () -> unlock(bytes, area, passphrase, keys), force, new SecureRandom(),
                    Pbkdf2::iterationsPerSecond);
            // The image's later steps open it with the same passphrase, whose slot may be gone now: as QEMU keeps
            // its unlocked cipher, they find the master key kept for the new header (whose digest accepts it).
            byte[] masterKey = keys == null ? null : keys.find(bytes, passphrase);
            if (masterKey != null) {
                byte[] changed = new byte[LuksHeader.SIZE];
                area.read(0, changed);
                keys.remember(changed, passphrase, masterKey);
                Arrays.fill(masterKey, (byte) 0);
            }
        } finally {
            Arrays.fill(passphrase, (byte) 0);
        }
    }

    /**
     * The LUKS header area of {@code header}'s image in {@code file}, bounded as QEMU's qcow2_crypto_hdr_read_func
     * and qcow2_crypto_hdr_write_func bound it (unsigned): past the end of the file it reads zeroes, as QEMU reads
     * them.
     */
    private static LuksHeaderArea luksArea(Storage file, Header header) {
        Header.CryptoHeaderArea area = header.cryptoHeader().orElseThrow(); // the header's parse requires it
        return new LuksHeaderArea() {
            @Override
            public void read(long at, byte[] dst) throws IOException {
                file.readFully(ByteBuffer.wrap(dst), position(at, dst.length, "read"));
            }

            @Override
            public void write(long at, byte[] src) throws IOException {
                file.write(ByteBuffer.wrap(src), position(at, src.length, "write"));
            }

            @Override
            public void sync(long at, long length) throws IOException {
                file.flushRange(position(at, length, "write"), length);
            }

            private long position(long at, long length, String verb) throws CorruptImageException {
                if (Long.compareUnsigned(at + length, area.length()) > 0) {
                    throw new CorruptImageException("Request for data outside of extension header");
                }
                long from = area.offset() + at;
                if (area.offset() < 0 || from < 0 || from + length < 0) {
                    throw new CorruptImageException("Could not " + verb + " encryption header: offset "
                            + Long.toUnsignedString(area.offset()) + " is past any file");
                }
                return from;
            }
        };
    }

    /** Whether guest data can be read and written (the passphrase was given and unlocked a key slot). */
    boolean unlocked() {
        return cipher != null;
    }

    SectorCipher cipher() {
        return cipher;
    }

    /** True for AES, whose sector IVs are numbered by guest offset; LUKS numbers them by host offset. */
    boolean ivsByGuestOffset() {
        return ivsByGuestOffset;
    }

    /** What {@code qemu-img info} shows of the encryption. */
    public EncryptionInfo info() {
        return info;
    }
}
