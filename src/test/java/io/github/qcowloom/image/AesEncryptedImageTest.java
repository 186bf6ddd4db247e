package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.ChainEncryption;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.EncryptionKeyException;
import io.github.qcowloom.api.ImageOptionsException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.testing.EncryptedImages;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The AES encryption of qcow2 images before LUKS (crypt_method 1), against QEMU's: the key is the passphrase (its
 * first 16 bytes), each sector's IV its guest offset, no key check. The paths it shares with LUKS are tried in
 * {@link EncryptedImageTest}.
 */
class AesEncryptedImageTest {
    private static final byte[] KEY = EncryptedImages.KEY;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** qemu-io on {@code image} under {@code passphrase}; fails on a failed command or pattern. */
    private static String io(Path image, String passphrase, String... commands) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "--object", "secret,id=k,data=" + passphrase,
                "--image-opts"));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add("driver=qcow2,encrypt.key-secret=k,file.filename=" + image);
        String out = Qemu.run(cmd);
        assertFalse(out.contains("failed") || out.contains("Pattern verification failed"), out);
        return out;
    }

    private static OpenOptions key(String passphrase) {
        return OpenOptions.readWriteDefaults().withEncryptionKey(passphrase.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Clusters written from the guest's end backwards lie in the file in the other order, so host and guest
     * offsets differ everywhere; then every way a write reaches the file: a partial sector in place, a run of new
     * clusters in one write, a write in place across that run, a cluster's copy-on-write, and with extended L2 a
     * subcluster filled in an owned cluster. qemu-img reads it all back only if each sector was keyed by its guest
     * offset.
     */
    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"cluster_size=4096", "cluster_size=16384,extended_l2=on"})
    void sectorsAreKeyedByTheirGuestOffset(String options) throws Exception {
        Path image = dir.resolve("a.qcow2");
        int cs = options.contains("16384") ? 16384 : 4096;
        int size = 64 * cs;
        EncryptedImages.create("aes", image, size, options);
        byte[] model = new byte[size];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withEncryptionKey(KEY))) {
            for (int cluster = 15; cluster >= 0; cluster--) {
                write(img, model, cluster * cs, cs, cluster + 1);
            }
            write(img, model, 8 * cs + 1000, 1, 0x7f);
            write(img, model, 16 * cs, 8 * cs, 0x31);
            write(img, model, 16 * cs + 700, 7 * cs - 690, 0x32);
            write(img, model, 30 * cs + 2 * (cs / 32) + 5, 10, 0x33);
            write(img, model, 30 * cs + 5 * (cs / 32) + 100, 600, 0x34);
        }
        assertArrayEquals(model, EncryptedImages.toRaw(image, dir));
        assertEquals(0, EncryptedImages.check(image).exitCode());
    }

    private static void write(Qcow2Image img, byte[] model, int offset, int length, int value) throws Exception {
        byte[] data = new byte[length];
        Arrays.fill(data, (byte) value);
        img.write(offset, ByteBuffer.wrap(data));
        System.arraycopy(data, 0, model, offset, length);
    }

    /**
     * A resize that preallocates places clusters whose bytes the cipher did not write (QEMU's too): both drivers
     * read them alike, noise or zeroes, and qemu-img check passes.
     */
    @ParameterizedTest(name = "[{index}] {0}")
    @EnumSource(value = Preallocation.class, names = {"METADATA", "FALLOC", "FULL"})
    void aPreallocatedGrowthReadsAlikeInBoth(Preallocation mode) throws Exception {
        Path image = dir.resolve("r.qcow2");
        EncryptedImages.create("aes", image, 1 << 20, "cluster_size=4096");
        EncryptedImages.io(image, "write -P 7 0 1M");
        byte[] ours;
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withEncryptionKey(KEY))) {
            img.resize(3 << 20, mode);
            ours = Images.readAll(img, 1 << 16);
        }
        assertArrayEquals(EncryptedImages.toRaw(image, dir), ours);
        assertEquals(0, EncryptedImages.check(image).exitCode());
    }

    /**
     * No key check: a wrong passphrase opens and reads noise, the same noise in both drivers. Only the first 16 bytes
     * of a passphrase key it, and a passphrase at most 16 bytes long is padded with zeroes.
     */
    @Test
    void thePassphraseIsTheKey() throws Exception {
        Path image = dir.resolve("k.qcow2");
        EncryptedImages.create("aes", image, 1 << 20, "");
        try (Qcow2Image img = Qcow2Image.open(image, key("0123456789abcdef and more"))) {
            img.write(70_000, ByteBuffer.wrap("sixteen bytes in".getBytes(StandardCharsets.US_ASCII)));
        }
        io(image, "0123456789abcdef but other", "read -P 0x73 70000 1", "read -P 0x69 70001 1");
        Path raw = dir.resolve("wrong.raw");
        Qemu.img("convert", "--object", "secret,id=k,data=0123456789abcde", "--image-opts",
                "driver=qcow2,encrypt.key-secret=k,file.filename=" + image, "-O", "raw", raw.toString());
        byte[] theirs = Files.readAllBytes(raw);
        try (Qcow2Image img = Qcow2Image.open(image, key("0123456789abcde").withReadOnly(true))) {
            byte[] ours = Images.readAll(img, 1 << 16);
            assertArrayEquals(theirs, ours);
            assertFalse(Arrays.equals(new byte[16], Arrays.copyOfRange(ours, 70_000, 70_016)), "noise expected");
        }
    }

    /**
     * A chain of AES images, each with its own passphrase: a partial write into the top copies the rest of the
     * cluster from the base, decrypted by its key and encrypted by the top's, as qemu-img reads them.
     */
    @Test
    void copyOnWriteCrossesTheKeysOfAChain() throws Exception {
        Path base = dir.resolve("base.qcow2");
        EncryptedImages.create("aes", base, 1 << 20, "");
        EncryptedImages.io(base, "write -P 0x42 0 128k");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "--object", "secret,id=t,data=other", "-o",
                "encrypt.format=aes,encrypt.key-secret=t", "-b", base.toString(), "-F", "qcow2", top.toString());
        ChainEncryption keys = ChainEncryption.NONE.withPassphrase(0, "other".getBytes(StandardCharsets.UTF_8))
                .withPassphrase(1, KEY);
        try (Qcow2Image img = Qcow2Image.open(top, OpenOptions.readWriteDefaults().withEncryption(keys))) {
            img.write(65_536 + 1000, ByteBuffer.wrap(new byte[] {1, 2, 3}));
        }
        Path raw = dir.resolve("top.raw");
        Qemu.img("convert", "--object", "secret,id=t,data=other", "--object", "secret,id=b,data="
                + EncryptedImages.PASSPHRASE, "--image-opts", "driver=qcow2,encrypt.key-secret=t,file.filename=" + top
                + ",backing.encrypt.key-secret=b", "-O", "raw", raw.toString());
        byte[] expected = new byte[1 << 20];
        Arrays.fill(expected, 0, 128 << 10, (byte) 0x42);
        expected[66_536] = 1;
        expected[66_537] = 2;
        expected[66_538] = 3;
        assertArrayEquals(expected, Files.readAllBytes(raw));
    }

    /**
     * A preallocating resize that places clusters the image freed before writes zeroes into them, through the
     * cipher, each sector keyed by its guest offset: qemu-img reads zeroes there, not the old data or noise. (The
     * clusters it takes past the old end are left sparse and read as noise, in QEMU as here.)
     */
    @Test
    void reusedClustersPreallocatedReadAsZeroes() throws Exception {
        Path image = dir.resolve("z.qcow2");
        EncryptedImages.create("aes", image, 1 << 20, "cluster_size=4096");
        OpenOptions options = OpenOptions.readWriteDefaults().withEncryptionKey(KEY).withPool(false);
        try (Qcow2Image img = Qcow2Image.open(image, options)) {
            byte[] data = new byte[1 << 20];
            Arrays.fill(data, (byte) 0x44);
            img.write(0, ByteBuffer.wrap(data));
            img.discard(256 << 10, 512 << 10);
        }
        long before = Files.size(image);
        try (Qcow2Image img = Qcow2Image.open(image, options)) {
            img.resize(2 << 20, Preallocation.METADATA);
        }
        assertTrue(Files.size(image) < before + (1 << 20), before + " then " + Files.size(image)
                + ": the freed clusters were placed again");
        byte[] expected = new byte[3 << 19]; // the 128 freed clusters go to the first new ones, first fit
        Arrays.fill(expected, 0, 256 << 10, (byte) 0x44);
        Arrays.fill(expected, 768 << 10, 1 << 20, (byte) 0x44);
        byte[] theirs = EncryptedImages.toRaw(image, dir);
        assertArrayEquals(expected, Arrays.copyOf(theirs, expected.length));
        try (Qcow2Image img = Qcow2Image.open(image, options.withReadOnly(true))) {
            assertArrayEquals(theirs, Images.readAll(img, 1 << 16));
        }
        assertEquals(0, EncryptedImages.check(image).exitCode());
    }

    /** qemu-img create's header byte for byte: crypt_method 1 and nothing else. */
    @Test
    void anImageWeCreateIsQemus() throws Exception {
        for (String compat : List.of("1.1", "0.10")) {
            Path theirs = dir.resolve("theirs-" + compat + ".qcow2");
            Qemu.img("create", "-q", "-f", "qcow2", "--object", "secret,id=k,data=x", "-o",
                    "encrypt.format=aes,encrypt.key-secret=k,compat=" + compat, theirs.toString(), "3M");
            Path ours = dir.resolve("ours-" + compat + ".qcow2");
            ImageCreator.createAes(ours, CreateOptions.defaults(3 << 20).withVersion(compat.equals("1.1") ? 3 : 2));
            assertArrayEquals(Files.readAllBytes(theirs), Files.readAllBytes(ours), compat);
        }
    }

    /**
     * As QEMU's open: an inspection needs no passphrase, guest I/O does; options naming another format are refused.
     */
    @Test
    void opensRefuseAsQemusDo() throws Exception {
        Path image = dir.resolve("o.qcow2");
        EncryptedImages.create("aes", image, 1 << 20, "");
        try (Qcow2Image inspected = Qcow2Image.open(image, OpenOptions.readOnlyDefaults()
                .withFollowReferences(false))) {
            assertEquals("aes", inspected.encryption().orElseThrow().format());
        }
        EncryptionKeyException none = assertThrows(EncryptionKeyException.class,
                () -> Qcow2Image.open(image, OpenOptions.readOnlyDefaults()));
        assertEquals("Could not open '" + image + "': Parameter 'encrypt.key-secret' is required for cipher",
                none.getMessage());
        ImageOptionsException luks = assertThrows(ImageOptionsException.class, () -> Qcow2Image.open(image,
                OpenOptions.readOnlyDefaults().withEncryption(ChainEncryption.NONE.withPassphrase(0, KEY)
                        .withFormat(0, "luks"))));
        assertEquals("Could not open '" + image + "': Header reported 'aes' encryption format but options specify "
                + "'luks'", luks.getMessage());
    }
}
