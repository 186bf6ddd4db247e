package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static io.github.qcowloom.cli.Cli.sameAsQemuImg;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.EncryptedImages;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Encrypted images (LUKS, and the AES before it) through the command line against qemu-img's: --object secrets,
 * --image-opts with encrypt.key-secret, info's encrypt block, create's and convert's encrypt.* options, and the
 * refusals of each.
 */
class CliEncryptionTest extends QemuFolderTest {
    private static final String SECRET = "secret,id=sec0,data=" + EncryptedImages.PASSPHRASE;

    private String qemuImage(String options) {
        Path img = dir.resolve("q.qcow2");
        EncryptedImages.create(img, 8 << 20, options); // the size EncryptedImageTest's images have: shared
        EncryptedImages.io(img, "write -P 0x11 0 1M", "write -z 2M 64k", "write -P 0x22 3000 5000");
        return img.toString();
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"", "cluster_size=512",
        "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.hash-alg=sha1"})
    void infoIsQemuImgs(String options) {
        String img = qemuImage(options);
        String human = sameAsQemuImg("info", img);
        assertTrue(human.contains("encrypted: yes"), human);
        sameAsQemuImg("info", "--output=json", img);
        // An inspection needs no passphrase, even where the options name a secret that is not defined (qemu-img
        // names the image by its options in JSON there, ours by its file).
        Cli.Run named = ours("info", "--image-opts", EncryptedImages.imageOpts(Path.of(img)).replace("sec0", "sec9"));
        assertEquals(0, named.code(), named.err());
        assertEquals(human.replace("image: " + img, ""), named.out().replace("image: " + img, ""));
    }

    @Test
    void bitmapsGoIntoAnEncryptedTarget() {
        Path source = dir.resolve("b.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", source.toString(), "4M");
        Qemu.img("bitmap", "--add", source.toString(), "b0");
        String target = path("enc.qcow2");
        Cli.Run run = ours("convert", "--bitmaps", "--object", SECRET, "-O", "qcow2", "-o",
                "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=50", source.toString(), target);
        assertEquals(0, run.code(), run.err());
        String info = Qemu.img("info", target);
        assertTrue(info.contains("encrypted: yes") && info.contains("name: b0"), info);
        assertEquals(0, EncryptedImages.check(Path.of(target)).exitCode());
    }

    @Test
    void compressionAndEncryptionAreRefusedTogether() {
        String source = qemuImage("");
        for (String o : List.of("encrypt.format=luks,encrypt.key-secret=sec0", "encryption=on", "encryption=no",
                "preallocation=full")) {
            Cli.Both both = Cli.intoTargets(List.of("convert", "--object", SECRET, "-c", "-O", "qcow2", "-o", o,
                    "--image-opts", EncryptedImages.imageOpts(Path.of(source))), path("theirs.qcow2"),
                    path("mine.qcow2"));
            assertEquals(both.theirs().exitCode(), both.mine().code(), both.mine().err());
            // encryption=no is not refused as encryption (convert reads the alias as a boolean), but by create,
            // which takes its value for a format.
            assertEquals(both.theirs().stderr().replace("qemu-img: ", "qcow2-loom: ").replace("theirs", "mine"),
                    both.mine().err());
        }
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"data=hunter2,id=s0", "qom-type=secret,id=s0", "secret,id=s0", "secret,data=x",
        "secret,id=s0,data=x,file=/tmp/x", "foo,id=x",
        "secret,id=s0,data=x,bogus=1", "secret,id=s0,file=/nonexistent/s", "secret,id=s0,data=!!,format=base64",
        "secret,id=s0,data=x,format=hex", "tls-creds-x509,id=t,dir=/nonexistent,endpoint=server",
        "tls-creds-x509,id=t,endpoint=server", "tls-creds-x509,id=t,dir=/tmp,endpoint=bogus",
        "tls-creds-x509,id=t,dir=/tmp,verify-peer=maybe", "tls-creds-x509,id=t,dir=/tmp,verify-peer=y",
        "tls-creds-x509,id=t,dir=/tmp,bogus=1",
        "tls-creds-x509,dir=/tmp"})
    void badSecretsAreRefusedAsQemuImgRefusesThem(String object) {
        String img = qemuImage("");
        sameAsQemuImg("info", "--object", object, img);
    }

    @Test
    void opensThatReadNeedThePassphrase() {
        String img = qemuImage("");
        sameAsQemuImg("check", img);
        sameAsQemuImg("map", img);
        String opts = EncryptedImages.imageOpts(Path.of(img));
        sameAsQemuImg("check", "--object", "secret,id=sec0,data=wrong", "--image-opts", opts);
        sameAsQemuImg("check", "--image-opts", opts.replace("sec0", "sec1"), "--object", SECRET.replace("sec0",
                "sec2"));
        sameAsQemuImg("check", "--object", SECRET, "--image-opts", opts);
        sameAsQemuImg("check", "--object", "secret,id=sec0,format=base64,data=Y29ycmVjdCBob3JzZQ==", "--image-opts",
                opts);
        sameAsQemuImg("map", "--object", SECRET, "--image-opts", opts);
        sameAsQemuImg("compare", "--object", SECRET, "--image-opts", opts, opts);
    }

    /**
     * Each encrypted image of a chain takes its own passphrase (backing.encrypt.key-secret, and so on down), and
     * what is missing, wrong or cannot be found is refused in qemu-img's words, from the layer it belongs to.
     */
    @Test
    void eachImageOfAChainTakesItsOwnPassphrase() throws Exception {
        String base = qemuImage("");
        String top = path("top.qcow2");
        String topSecret = "secret,id=top,data=battery staple";
        Cli.Run made = ours("create", "-q", "-f", "qcow2", "--object", topSecret, "-o",
                "encrypt.format=luks,encrypt.key-secret=top,encrypt.iter-time=10", "-b", base, "-F", "qcow2", top);
        assertEquals(0, made.code(), made.err());
        String topOpts = "driver=qcow2,file.filename=" + top + ",encrypt.key-secret=top";
        Qemu.run(List.of("qemu-io", "--object", SECRET, "--object", topSecret, "--image-opts",
                topOpts + ",backing.encrypt.key-secret=sec0", "-c", "write -P 0x33 1M 64k"));
        String plain = path("plain.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", top, "-F", "qcow2", plain);
        String plainOpts = "driver=qcow2,file.filename=" + plain;
        for (String opts : List.of(topOpts, topOpts + ",backing.encrypt.key-secret=top",
                topOpts + ",backing.encrypt.key-secret=sec9", topOpts + ",backing.encrypt.format=aes",
                topOpts + ",backing.encrypt.format=luks,backing.encrypt.key-secret=sec0",
                topOpts + ",backing.backing.encrypt.key-secret=sec0", plainOpts + ",backing.encrypt.key-secret=top",
                plainOpts + ",backing.encrypt.key-secret=top,backing.backing.encrypt.key-secret=sec0",
                plainOpts + ",backing.encrypt.key-secret=top,backing.backing.encrypt.key-secret=sec0"
                        + ",backing.backing.backing.encrypt.key-secret=sec0",
                plainOpts + ",encrypt.format=luks", plainOpts + ",backing.encrypt.key-secret=top,encrypt.format=aes",
                // a secret that is not defined, for the image that is not encrypted: never looked up
                plainOpts + ",encrypt.key-secret=sec9,backing.encrypt.key-secret=top,backing.backing.encrypt"
                        + ".key-secret=sec0")) {
            sameAsQemuImg("map", "--object", SECRET, "--object", topSecret, "--image-opts", opts);
            sameAsQemuImg("check", "--object", SECRET, "--object", topSecret, "--image-opts", opts);
            sameAsQemuImg("snapshot", "-l", "--object", SECRET, "--object", topSecret, "--image-opts", opts);
            if (opts.contains("backing.")) { // these open no backing file, and refuse options for one
                sameAsQemuImg("info", "--object", SECRET, "--object", topSecret, "--image-opts", opts);
                sameAsQemuImg("bitmap", "--add", "--object", SECRET, "--object", topSecret, "--image-opts", opts,
                        "b0");
                sameAsQemuImg("rebase", "-u", "-b", base, "-F", "qcow2", "--object", SECRET, "--object",
                        topSecret, "--image-opts", opts);
            }
        }
        List<String> args = List.of("convert", "--object", SECRET, "--object", topSecret, "--image-opts",
                plainOpts + ",backing.encrypt.key-secret=top,backing.backing.encrypt.key-secret=sec0", "-O", "raw");
        Cli.Both both = Cli.intoTargets(args, path("theirs.raw"), path("mine.raw"));
        assertEquals(0, both.theirs().exitCode(), both.theirs().stderr());
        assertEquals(0, both.mine().code(), both.mine().err());
        byte[] guest = Files.readAllBytes(dir.resolve("mine.raw"));
        assertArrayEquals(Files.readAllBytes(dir.resolve("theirs.raw")), guest);
        assertEquals(0x33, guest[(1 << 20) + 5]);
        assertEquals(0x11, guest[5]);

        // commit writes the top's data into the base under the base's own passphrase
        Cli.Run commit = ours("commit", "--object", SECRET, "--object", topSecret, "--image-opts",
                topOpts + ",backing.encrypt.key-secret=sec0");
        assertEquals(0, commit.code(), commit.err());
        EncryptedImages.io(Path.of(base), "read -P 0x33 1M 64k", "read -P 0x11 0 3000", "read -P 0x22 3000 5000");
        assertEquals(0, EncryptedImages.check(Path.of(base)).exitCode());
    }

    /** A raw image takes no encryption options, named by its driver or found by its bytes. */
    @Test
    void encryptionOptionsOfARawImageAreRefusedAsQemuImgRefusesThem() {
        String raw = path("r.raw");
        Qemu.img("create", "-q", "-f", "raw", raw, "1M");
        for (String opts : List.of("file.filename=" + raw + ",encrypt.key-secret=sec0",
                "driver=raw,file.filename=" + raw + ",encrypt.key-secret=sec0",
                "file.filename=" + raw + ",encrypt.key-secret=sec0,encrypt.format=luks")) {
            for (String command : List.of("info", "check", "map")) {
                sameAsQemuImg(command, "--object", SECRET, "--image-opts", opts);
            }
        }
    }

    @Test
    void convertDecryptsAsQemuImg() throws Exception {
        String img = qemuImage("cluster_size=16384,extended_l2=on");
        List<String> args = List.of("convert", "--object", SECRET, "--image-opts",
                EncryptedImages.imageOpts(Path.of(img)), "-O", "raw");
        Cli.Both both = Cli.intoTargets(args, path("theirs.raw"), path("mine.raw"));
        assertEquals(0, both.theirs().exitCode(), both.theirs().stderr());
        assertEquals(0, both.mine().code(), both.mine().err());
        assertArrayEquals(Files.readAllBytes(dir.resolve("theirs.raw")), Files.readAllBytes(dir.resolve("mine.raw")));
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"", "cluster_size=512", "cluster_size=2M", "compat=0.10", "preallocation=metadata",
        "preallocation=falloc -C",
        "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256",
        "encrypt.cipher-mode=ecb,encrypt.ivgen-alg=plain,encrypt.hash-alg=sha512"})
    void convertIntoAnEncryptedImageQemuReads(String options) throws Exception {
        Path source = dir.resolve("src.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", source.toString(), "5M");
        Qemu.io(source, "write -P 0x5a 0 700k", "write -P 0x6b 3M 4097", "write -z 4M 64k");
        String target = path("enc.qcow2");
        boolean offload = options.endsWith(" -C");
        String o = "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=50"
                + (options.isEmpty() ? "" : "," + options.replace(" -C", ""));
        Cli.Run run = offload ? ours("convert", "-C", "--object", SECRET, "-O", "qcow2", "-o", o, source.toString(),
                target) : ours("convert", "--object", SECRET, "-O", "qcow2", "-o", o, source.toString(), target);
        assertEquals(0, run.code(), run.err());
        assertEquals(0, EncryptedImages.check(Path.of(target)).exitCode());
        assertArrayEquals(Qemu.toRaw(source, dir), EncryptedImages.toRaw(Path.of(target), dir));
        String info = Qemu.img("info", target);
        assertTrue(info.contains("encrypted: yes"), info);
        // And back through ours, decrypted.
        Cli.Run back = ours("convert", "--object", SECRET, "--image-opts", EncryptedImages.imageOpts(Path.of(target)),
                "-O", "raw", path("back.raw"));
        assertEquals(0, back.code(), back.err());
        assertArrayEquals(Qemu.toRaw(source, dir), Files.readAllBytes(dir.resolve("back.raw")));
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"encrypt.format=luks", "encrypt.key-secret=sec0", "encrypt.format=foo",
        "encrypt.format=luks,encrypt.key-secret=sec9", "encrypt.format=luks,encrypt.key-secret=sec0,"
            + "encrypt.cipher-mode=foo", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=abc",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.hash-alg=sha3"})
    void createRefusesAsQemuImg(String options) {
        Cli.Both both = Cli.intoTargets(List.of("create", "-f", "qcow2", "--object", SECRET, "-o", options, "1M"),
                path("theirs.qcow2"), path("mine.qcow2"));
        assertEquals(both.theirs().exitCode(), both.mine().code(), both.mine().err());
        assertEquals(both.theirs().stdout().replace("theirs", "mine"), both.mine().out());
        assertEquals(both.theirs().stderr().replace("qemu-img: ", "qcow2-loom: ").replace("theirs", "mine"),
                both.mine().err());
    }

    /**
     * AES ({@code encrypt.format=aes}, or its alias {@code encryption}): what create refuses and what it makes, byte
     * for byte, as qemu-img's.
     */
    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"encrypt.format=aes,encrypt.key-secret=sec0", "encryption=on,encrypt.key-secret=sec0",
        "encryption=on,encrypt.key-secret=sec0,compat=0.10",
        "encryption=off,encrypt.format=aes,encrypt.key-secret=sec0", "encrypt.format=qcow,encrypt.key-secret=sec0",
        "encrypt.format=aes", "encryption=on", "encrypt.format=aes,encrypt.key-secret=sec9",
        "encrypt.format=aes,encrypt.key-secret=sec0,encrypt.cipher-alg=aes-256", "encryption=on,encrypt.format=luks",
        "encryption=yes,encrypt.key-secret=sec0", "encryption=xyz", "encryption=no",
        "encrypt.format=aes,cluster_size=3", "encrypt.format=luks,cluster_size=3"})
    void aesCreateIsQemuImgs(String options) throws Exception {
        List<String> args = List.of("create", "-f", "qcow2", "--object", SECRET, "-o", options);
        List<String> q = new java.util.ArrayList<>(List.of("qemu-img"));
        q.addAll(args);
        q.addAll(List.of(path("theirs.qcow2"), "1M"));
        Qemu.Result theirs = Qemu.exec(q);
        List<String> o = new java.util.ArrayList<>(args);
        o.addAll(List.of(path("mine.qcow2"), "1M"));
        Cli.Run mine = ours(o.toArray(String[]::new));
        assertEquals(theirs.exitCode(), mine.code(), mine.err());
        assertEquals(theirs.stdout().replace("theirs", "mine"), mine.out());
        assertEquals(theirs.stderr().replace("qemu-img: ", "qcow2-loom: ").replace("theirs", "mine"), mine.err());
        if (mine.code() == 0) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("theirs.qcow2")), Files.readAllBytes(dir.resolve(
                    "mine.qcow2")));
        }
    }

    /** A passphrase is text without NUL bytes, for either format, as QEMU's qcrypto_secret_lookup_as_utf8 says. */
    @Test
    void aPassphraseWithANulByteIsRefused() {
        Path aes = dir.resolve("n.qcow2");
        EncryptedImages.create("aes", aes, 8 << 20, "");
        String nul = java.util.Base64.getEncoder().encodeToString("correct\0horse".getBytes(
                java.nio.charset.StandardCharsets.UTF_8));
        for (Path img : List.of(aes, Path.of(qemuImage("")))) {
            Cli.Run refused = ours("check", "--object", "secret,id=sec0,format=base64,data=" + nul, "--image-opts",
                    EncryptedImages.imageOpts(img));
            assertTrue(refused.err().endsWith("Data from secret sec0 is not valid UTF-8\n"), refused.err());
            sameAsQemuImg("check", "--object", "secret,id=sec0,format=base64,data=" + nul, "--image-opts",
                    EncryptedImages.imageOpts(img));
        }
    }

    /** An AES image qemu-io wrote: info, check, map, convert and amend's refusal as qemu-img's. */
    @Test
    void aesImagesAreReadAsQemuImgReadsThem() throws Exception {
        Path img = dir.resolve("aes.qcow2");
        EncryptedImages.create("aes", img, 8 << 20, "");
        EncryptedImages.io(img, "write -P 0x11 0 1M", "write -z 2M 64k", "write -P 0x22 3000 5000");
        String opts = EncryptedImages.imageOpts(img);
        assertTrue(sameAsQemuImg("info", img).contains("encrypt:\n        format: aes\n"));
        sameAsQemuImg("info", "--output=json", img);
        sameAsQemuImg("check", img);
        sameAsQemuImg("check", "--object", SECRET, "--image-opts", opts);
        sameAsQemuImg("map", "--object", SECRET, "--image-opts", opts); // no offsets: stops, as qemu-img's
        sameAsQemuImg("amend", "--object", SECRET, "--image-opts", opts, "-o", "encrypt.new-secret=sec0");
        Cli.Both both = Cli.intoTargets(List.of("convert", "--object", SECRET, "--image-opts", opts, "-O", "raw"),
                path("theirs.raw"), path("mine.raw"));
        assertEquals(0, both.mine().code(), both.mine().err());
        assertArrayEquals(Files.readAllBytes(dir.resolve("theirs.raw")), Files.readAllBytes(dir.resolve("mine.raw")));
    }

    /** qemu-img measure makes a LUKS volume to learn its size, timing PBKDF2 and failing as its create does. */
    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"", ",encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,"
        + "cluster_size=4k", ",encrypt.key-secret=sec9", ",encryption=on"})
    void measureIsQemuImgs(String extra) {
        List<String> args = List.of("measure", "--object", SECRET, "-O", "qcow2", "--size", "1G", "-o",
                "encrypt.format=luks,encrypt.key-secret=sec0" + extra);
        List<String> q = new java.util.ArrayList<>(List.of("qemu-img"));
        q.addAll(args);
        Qemu.Result theirs = Qemu.execTimingPbkdf2(q, null);
        Cli.Run mine = ours(args.toArray(String[]::new));
        assertEquals(theirs.exitCode(), mine.code(), mine.err());
        assertEquals(theirs.stdout(), mine.out());
        assertEquals(theirs.stderr().replace("qemu-img: ", "qcow2-loom: "), mine.err());
    }

    @Test
    void createMakesWhatQemuOpens() throws Exception {
        String o = "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=50,cluster_size=8192";
        EncryptedImages.create(dir.resolve("theirs.qcow2"), 3 << 20, "cluster_size=8192");
        Cli.Run run = ours("create", "-f", "qcow2", "--object", SECRET, "-o", o, path("mine.qcow2"), "3M");
        assertEquals(0, run.code(), run.err());
        assertEquals("Formatting '" + path("mine.qcow2") + "', fmt=qcow2 encrypt.format=luks encrypt.key-secret=sec0"
                + " encrypt.iter-time=50 cluster_size=8192 extended_l2=off compression_type=zlib size=3145728"
                + " lazy_refcounts=off refcount_bits=16\n", run.out());
        Path mine = dir.resolve("mine.qcow2");
        assertEquals(0, EncryptedImages.check(mine).exitCode());
        // The same layout as qemu-img's: the LUKS header right after the L1 table, the file as long.
        assertEquals(Files.size(dir.resolve("theirs.qcow2")), Files.size(mine));
        EncryptedImages.io(mine, "write -P 0x77 5000 100000");
        Cli.Run read = ours("convert", "--object", SECRET, "--image-opts", EncryptedImages.imageOpts(mine), "-O",
                "raw", path("mine.raw"));
        assertEquals(0, read.code(), read.err());
        byte[] raw = Files.readAllBytes(dir.resolve("mine.raw"));
        for (int i = 4990; i < 105_010; i++) {
            assertEquals(i >= 5000 && i < 105_000 ? 0x77 : 0, raw[i] & 0xff, "byte " + i);
        }
    }
}
