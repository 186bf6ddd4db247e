package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.ChainEncryption;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnlockedKeys;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.crypto.LuksOptions;
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
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Encrypted qcow2 images (LUKS, and for the paths the AES before it) against QEMU's: each side reads what the other
 * wrote, and partial sectors race. AES's own rules: {@link AesEncryptedImageTest}.
 */
class EncryptedImageTest {
    private static final OpenOptions WITH_KEY = OpenOptions.readWriteDefaults().withEncryptionKey(EncryptedImages.KEY);

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** The layouts both formats are tried in, as qemu-img create's options. */
    private static final List<String> LAYOUTS = List.of("", "cluster_size=512", "cluster_size=16384,extended_l2=on",
            "compat=0.10");

    /** LUKS in {@link #LAYOUTS} and {@code luksOnly}, AES in {@link #LAYOUTS}. */
    private static Stream<Arguments> formats(String... luksOnly) {
        return Stream.concat(Stream.concat(LAYOUTS.stream(), Stream.of(luksOnly)).map(o -> Arguments.of("luks", o)),
                LAYOUTS.stream().map(o -> Arguments.of("aes", o)));
    }

    static Stream<Arguments> readLayouts() {
        return formats("cluster_size=2M",
                "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.hash-alg=sha1");
    }

    static Stream<Arguments> writeLayouts() {
        return formats();
    }

    @ParameterizedTest(name = "[{index}] {0} {1}")
    @MethodSource("readLayouts")
    void readsWhatQemuWrote(String format, String options) throws Exception {
        Path image = dir.resolve("q.qcow2");
        EncryptedImages.create(format, image, 8 << 20, options);
        EncryptedImages.io(image, "write -P 0xab 1000 5000", "write -z 65536 65536", "write -P 0x11 1M 128k",
                "write -P 0x22 3M 512", "write -P 0x33 4095 2");
        byte[] expected = EncryptedImages.toRaw(image, dir);
        try (Qcow2Image img = Qcow2Image.open(image, WITH_KEY.withReadOnly(true))) {
            assertArrayEquals(expected, Images.readAll(img, 12345));
            BlockStatus status = img.blockStatus(1 << 20, 4096);
            assertEquals(BlockStatus.Allocation.DATA, status.allocation());
            assertEquals(null, status.host(), "no host offset for encrypted data, as QEMU's block status");
        }
    }

    /**
     * Writes at random offsets, so that clusters lie in the file in another order than in the guest: a sector IV
     * numbered by the wrong offset (host for AES, guest for LUKS) reads as noise in qemu-img.
     */
    @ParameterizedTest(name = "[{index}] {0} {1}")
    @MethodSource("writeLayouts")
    void qemuReadsWhatWeWrote(String format, String options) throws Exception {
        Path image = dir.resolve("w.qcow2");
        int size = 8 << 20; // as readsWhatQemuWrote's: the same qemu-img images serve both
        EncryptedImages.create(format, image, size, options);
        byte[] model = new byte[size];
        boolean[] discarded = new boolean[size]; // what a discard left to the image: old bytes or zeroes
        SplittableRandom random = new SplittableRandom(options.hashCode());
        try (Qcow2Image img = Qcow2Image.open(image, WITH_KEY)) {
            for (int i = 0; i < 300; i++) {
                int offset = random.nextInt(size - 1);
                int length = 1 + random.nextInt(Math.min(size - offset, random.nextBoolean() ? 700 : 200_000));
                switch (random.nextInt(7)) {
                    case 0 -> {
                        img.writeZeroes(offset, length, random.nextBoolean());
                        Arrays.fill(model, offset, offset + length, (byte) 0);
                        Arrays.fill(discarded, offset, offset + length, false);
                    }
                    case 2 -> { // refused, it leaves each byte as it was or zero
                        if (img.writeZeroesFast(offset, length, random.nextBoolean())) {
                            Arrays.fill(model, offset, offset + length, (byte) 0);
                            Arrays.fill(discarded, offset, offset + length, false);
                        } else {
                            Arrays.fill(discarded, offset, offset + length, true);
                        }
                    }
                    case 1 -> {
                        img.discard(offset, length);
                        Arrays.fill(discarded, offset, offset + length, true);
                    }
                    default -> {
                        byte[] data = new byte[length];
                        random.nextBytes(data);
                        img.write(offset, ByteBuffer.wrap(data));
                        System.arraycopy(data, 0, model, offset, length);
                        Arrays.fill(discarded, offset, offset + length, false);
                    }
                }
                if (i % 50 == 49) {
                    img.flush();
                    settle(model, discarded, Images.readAll(img, 1 << 20));
                }
            }
        }
        assertArrayEquals(model, EncryptedImages.toRaw(image, dir));
        assertEquals(0, EncryptedImages.check(image).exitCode());
    }

    /**
     * Every byte the model knows must read back; a discarded one reads its old value or zero (never noise), and is
     * taken from the image from then on.
     */
    private static void settle(byte[] model, boolean[] discarded, byte[] image) {
        for (int i = 0; i < model.length; i++) {
            if (discarded[i]) {
                assertTrue(image[i] == model[i] || image[i] == 0, "discarded byte " + i + " reads " + image[i]);
                model[i] = image[i];
                discarded[i] = false;
            } else {
                assertEquals(model[i], image[i], "byte " + i);
            }
        }
    }

    /** The caller's buffers are used from their positions and left at their limits, as without encryption. */
    @Test
    void buffersAreTakenFromTheirPositions() throws Exception {
        Path image = dir.resolve("p.qcow2");
        EncryptedImages.create(image, 8 << 20, "");
        byte[] bytes = new byte[3000];
        new SplittableRandom(7).nextBytes(bytes);
        try (Qcow2Image img = Qcow2Image.open(image, WITH_KEY)) {
            ByteBuffer src = ByteBuffer.wrap(bytes, 5, 2000); // bytes 5..2004, written at 70001
            img.write(70_001, src);
            assertEquals(2005, src.position());
            ByteBuffer dst = ByteBuffer.allocate(2100).position(7).limit(2007);
            img.read(70_001, dst);
            assertEquals(2007, dst.position());
            assertArrayEquals(Arrays.copyOfRange(bytes, 5, 2005), Arrays.copyOfRange(dst.array(), 7, 2007));
            img.writeZeroes(70_100, 1, false);
            ByteBuffer one = ByteBuffer.allocate(3);
            img.read(70_099, one);
            assertArrayEquals(new byte[] {bytes[5 + 98], 0, bytes[5 + 100]}, one.array());
        }
        EncryptedImages.io(image, "read -P 0 70100 1");
    }

    @Test
    void anImageWeCreateIsQemus() throws Exception {
        Path image = dir.resolve("ours.qcow2");
        LuksOptions luks = LuksOptions.parse(java.util.Map.of("iter-time", "50"), "");
        ImageCreator.create(image, CreateOptions.defaults(16 << 20), luks, EncryptedImages.KEY);
        assertEquals(0, EncryptedImages.check(image).exitCode());
        assertTrue(Qemu.img("info", image.toString()).contains("encrypted: yes"));
        EncryptedImages.io(image, "write -P 0x5a 100000 70000");
        try (Qcow2Image img = Qcow2Image.open(image, WITH_KEY)) {
            byte[] data = new byte[300];
            img.read(99_900, ByteBuffer.wrap(data));
            for (int i = 0; i < 300; i++) {
                assertEquals(i < 100 ? 0 : 0x5a, data[i] & 0xff, "byte " + i);
            }
            img.write(170_000 - 7, ByteBuffer.wrap("loom".getBytes(StandardCharsets.US_ASCII)));
        }
        EncryptedImages.io(image, "read -P 0x5a 100000 69993", "read -P 0x6c 169993 1", "read -P 0x6d 169996 1",
                "read -P 0x5a 169997 3");
        assertEquals(0, EncryptedImages.check(image).exitCode());
    }

    @Test
    void thePassphraseDecides() throws Exception {
        Path image = dir.resolve("k.qcow2");
        EncryptedImages.create(image, 8 << 20, "");
        ImageException wrong = assertThrows(ImageException.class, () -> Qcow2Image.open(image,
                OpenOptions.readOnlyDefaults().withEncryptionKey("wrong".getBytes(StandardCharsets.UTF_8))));
        assertEquals("Could not open '" + image + "': Invalid password, cannot unlock any keyslot",
                wrong.getMessage());
        ImageException none = assertThrows(ImageException.class,
                () -> Qcow2Image.open(image, OpenOptions.readOnlyDefaults()));
        assertEquals("Could not open '" + image + "': Parameter 'encrypt.key-secret' is required for cipher",
                none.getMessage());
        try (Qcow2Image inspected = Qcow2Image.open(image, OpenOptions.readOnlyDefaults()
                .withFollowReferences(false))) {
            assertTrue(inspected.encryption().isPresent());
            ImageException read = assertThrows(ImageException.class,
                    () -> inspected.read(0, ByteBuffer.allocate(512)));
            assertEquals("Parameter 'encrypt.key-secret' is required for cipher", read.getMessage());
        }
        try (Qcow2Image img = Qcow2Image.open(image, WITH_KEY)) {
            assertThrows(UnsupportedFeatureException.class,
                    () -> img.writeCompressed(0, ByteBuffer.allocate(65536)));
        }
    }

    /**
     * Each encrypted image of a chain opens with its own passphrase, by depth; a passphrase is asked for only by an
     * image that is encrypted, and options for an image below the chain's last are refused, all in QEMU's words.
     */
    @Test
    void eachImageOfAChainOpensWithItsOwnPassphrase() throws Exception {
        Path base = dir.resolve("base.qcow2");
        EncryptedImages.create(base, 8 << 20, "");
        EncryptedImages.io(base, "write -P 0x42 0 64k");
        Path middle = dir.resolve("middle.qcow2");
        byte[] middleKey = "battery staple".getBytes(StandardCharsets.UTF_8);
        LuksOptions luks = LuksOptions.parse(java.util.Map.of("iter-time", "10"), "");
        ImageCreator.create(middle, CreateOptions.defaults(8 << 20).withBacking(base.toString(), "qcow2"), luks,
                middleKey);
        Path top = dir.resolve("top.qcow2");
        ImageCreator.create(top, CreateOptions.defaults(8 << 20).withBacking(middle.toString(), "qcow2"));
        ChainEncryption.Passphrase never = () -> {
            throw new AssertionError("the top image is not encrypted: no passphrase is asked for it");
        };
        ChainEncryption keys = ChainEncryption.NONE.withPassphrase(0, never).withPassphrase(1, middleKey)
                .withPassphrase(2, EncryptedImages.KEY);
        try (Qcow2Image img = Qcow2Image.open(top, OpenOptions.readWriteDefaults().withEncryption(keys))) {
            img.write(65536, ByteBuffer.wrap(new byte[] {7}));
            byte[] head = new byte[4];
            img.read(65535, ByteBuffer.wrap(head));
            assertArrayEquals(new byte[] {0x42, 7, 0, 0}, head);
        }
        ImageException sameKey = assertThrows(ImageException.class, () -> Qcow2Image.open(top,
                OpenOptions.readOnlyDefaults().withEncryption(keys.withPassphrase(2, middleKey))));
        assertEquals("Could not open '" + top + "': Could not open backing file: Could not open backing file: "
                + "Invalid password, cannot unlock any keyslot", sameKey.getMessage());
        ImageException none = assertThrows(ImageException.class, () -> Qcow2Image.open(middle,
                OpenOptions.readOnlyDefaults().withEncryptionKey(middleKey)));
        assertEquals("Could not open '" + middle + "': Could not open backing file: Parameter 'encrypt.key-secret' "
                + "is required for cipher", none.getMessage());
        ImageException tooDeep = assertThrows(ImageException.class, () -> Qcow2Image.open(middle,
                OpenOptions.readOnlyDefaults().withEncryption(keys.below(1).withPassphrase(2, middleKey))));
        assertEquals("Could not open '" + middle + "': Could not open backing file: Could not open backing file: "
                + "Must specify either driver or file", tooDeep.getMessage());
        ImageException format = assertThrows(ImageException.class, () -> Qcow2Image.open(top,
                OpenOptions.readOnlyDefaults().withEncryption(keys.withFormat(0, "luks"))));
        assertEquals("Could not open '" + top + "': No encryption in image header, but options specified format "
                + "'luks'", format.getMessage());
        assertEquals("[0:passphrase, 1:passphrase,format=aes, 2:passphrase]", keys.withFormat(1, "aes").toString());
    }

    /**
     * With {@link UnlockedKeys}, an image opened again (alone, or as the backing file of another) takes the key its
     * first open unlocked; another passphrase is still refused, and once closed nothing is kept.
     */
    @Test
    void keysOnceUnlockedAreTakenAgainForTheSamePassphraseOnly() throws Exception {
        Path base = dir.resolve("kb.qcow2");
        EncryptedImages.create(base, 8 << 20, "");
        EncryptedImages.io(base, "write -P 0x42 0 64k");
        Path top = dir.resolve("kt.qcow2");
        ImageCreator.create(top, CreateOptions.defaults(8 << 20).withBacking(base.toString(), "qcow2"));
        try (UnlockedKeys keys = new UnlockedKeys()) {
            ChainEncryption chain = ChainEncryption.NONE.withPassphrase(1, EncryptedImages.KEY).rememberingKeys(keys);
            byte[] head = new byte[2];
            try (Qcow2Image img = Qcow2Image.open(top, OpenOptions.readOnlyDefaults().withEncryption(chain))) {
                img.read(65535, ByteBuffer.wrap(head));
            }
            assertArrayEquals(new byte[] {0x42, 0}, head);
            assertEquals(0, keys.reused());
            OpenOptions baseAlone = OpenOptions.readWriteDefaults().withEncryption(chain.below(1));
            try (Qcow2Image img = Qcow2Image.open(base, baseAlone)) {
                img.write(0, ByteBuffer.wrap(new byte[] {9}));
            }
            assertEquals(1, keys.reused());
            EncryptedImages.io(base, "read -P 9 0 1", "read -P 0x42 1 65535");
            ImageException wrong = assertThrows(ImageException.class, () -> Qcow2Image.open(base, baseAlone
                    .withEncryption(chain.below(1).withPassphrase(0, "wrong".getBytes(StandardCharsets.UTF_8)))));
            assertEquals("Could not open '" + base + "': Invalid password, cannot unlock any keyslot",
                    wrong.getMessage());
            keys.close();
            Qcow2Image.open(base, baseAlone).close();
            assertEquals(1, keys.reused());
        }
    }

    /** A damaged pointer to the LUKS header, or a damaged header, is refused in QEMU's words; no unlock runs. */
    @Test
    void hostileLuksHeadersAreRefused() throws Exception {
        Path image = dir.resolve("h.qcow2");
        EncryptedImages.create(image, 8 << 20, "");
        byte[] original = Files.readAllBytes(image);
        int ext = indexOf(original, new byte[] {0x05, 0x37, (byte) 0xbe, 0x77}) + 8; // its data: offset, length
        long area = ByteBuffer.wrap(original, ext, 8).getLong();

        ByteBuffer.wrap(original).putLong(ext, Long.MIN_VALUE); // a multiple of every cluster size, past any file
        assertRefused(image, original, CorruptImageException.class, "Could not read encryption header");
        ByteBuffer.wrap(original).putLong(ext, area + 512);
        assertRefused(image, original, CorruptImageException.class,
                "Encryption header offset '" + (area + 512) + "' is not a multiple of cluster size '65536'");
        ByteBuffer.wrap(original).putLong(ext, area).putLong(ext + 8, 100);
        assertRefused(image, original, CorruptImageException.class, "Request for data outside of extension header");
        ByteBuffer.wrap(original).putLong(ext + 8, 2068480).put((int) area, (byte) 'X');
        assertRefused(image, original, CorruptImageException.class, "Volume is not in LUKS format");
        ByteBuffer.wrap(original).put((int) area, (byte) 'L').putInt((int) area + 212, -1); // slot 0's iterations
        assertRefused(image, original, UnsupportedFeatureException.class, "PBKDF2 rounds");
    }

    private static void assertRefused(Path image, byte[] bytes, Class<? extends ImageException> type, String message)
            throws Exception {
        Files.write(image, bytes);
        ImageException e = assertThrows(type, () -> Qcow2Image.open(image, WITH_KEY.withReadOnly(true)).close());
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            if (Arrays.equals(haystack, i, i + needle.length, needle, 0, needle.length)) {
                return i;
            }
        }
        throw new AssertionError("not found");
    }

    /**
     * Writers that share sectors but never bytes: each sector is cut into stripes of 16 bytes, thread t owns stripe
     * t of every sector, and writes it again and again. A merge of a partial sector that ran beside another's would
     * put back the other stripe's old bytes; with the sectors serialised, every stripe ends with its owner's last
     * value. Seeded, with a one-slice L2 cache, so that table loads yield the threads in between.
     */
    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3})
    void partialSectorWritersLoseNothing(long seed) throws Exception {
        Path image = dir.resolve("r.qcow2");
        int sectors = 64;
        int threads = 32;
        int stripe = 512 / threads;
        EncryptedImages.create(image, sectors * 512L, "cluster_size=4096");
        byte[][] last = new byte[threads][sectors];
        try (Qcow2Image img = Qcow2Image.open(image, WITH_KEY.withL2CacheBytes(1));
                ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                done.add(pool.submit(() -> {
                    SplittableRandom random = new SplittableRandom(seed * 1000 + id);
                    for (int i = 0; i < 60; i++) {
                        int sector = random.nextInt(sectors);
                        byte value = (byte) (1 + random.nextInt(255));
                        byte[] data = new byte[stripe];
                        Arrays.fill(data, value);
                        img.write(sector * 512L + id * stripe, ByteBuffer.wrap(data));
                        last[id][sector] = value;
                        if (random.nextInt(8) == 0) {
                            Thread.yield();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
            byte[] all = Images.readAll(img, 4096);
            for (int t = 0; t < threads; t++) {
                for (int s = 0; s < sectors; s++) {
                    for (int b = 0; b < stripe; b++) {
                        assertEquals(last[t][s], all[s * 512 + t * stripe + b], "thread " + t + ", sector " + s);
                    }
                }
            }
        }
        assertEquals(0, EncryptedImages.check(image).exitCode());
    }
}
