package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.EncryptedImages;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * qemu-img amend's key slot options on a LUKS image (encrypt.state, keyslot, new-secret, old-secret, iter-time),
 * each run by qemu-img on one copy of a two-slot image and by ours on another: the same exit code and message, the
 * same slots enabled after it (qemu-img info, iteration counts aside), the same passphrases opening each copy in
 * qemu-img, and a refused change leaving our copy as it was.
 */
class CliAmendKeySlotsTest extends QemuFolderTest {
    /** The image's own passphrase (slot 0), and the one slot 1 holds; "new" and "xyz" are in no slot. */
    private static final List<String> SECRETS = List.of("secret,id=s,data=" + EncryptedImages.PASSPHRASE,
            "secret,id=n,data=new", "secret,id=old,data=battery staple", "secret,id=x,data=xyz");
    private static Path twoSlots;

    /** A LUKS image qemu-img made, with a second slot qemu-img added: the passphrases of s and old. */
    private static synchronized Path twoSlots() throws IOException {
        if (twoSlots == null) {
            Path dir = Files.createTempDirectory("key-slots");
            dir.toFile().deleteOnExit();
            Path image = dir.resolve("two.qcow2");
            image.toFile().deleteOnExit();
            EncryptedImages.create(image, 4 << 20, "");
            EncryptedImages.io(image, "write -P 0x5a 0 64k");
            Qemu.Result r = qemuImgAmend(image, "-o", "encrypt.state=active,encrypt.new-secret=old,"
                    + "encrypt.iter-time=10");
            assertEquals(0, r.exitCode(), r.stderr());
            twoSlots = image;
        }
        return twoSlots;
    }

    private static List<String> amendArguments(Path image, String... options) {
        return amendOpenedBy("s", image, options);
    }

    /** Amend's arguments with {@code options}, the image opened by secret {@code openedBy}. */
    private static List<String> amendOpenedBy(String openedBy, Path image, String... options) {
        List<String> args = new ArrayList<>(List.of("amend"));
        for (String secret : SECRETS) {
            args.add("--object");
            args.add(secret);
        }
        args.addAll(List.of(options));
        args.add("--image-opts");
        args.add(imageOpts(image, openedBy));
        return args;
    }

    private static String imageOpts(Path image, String secret) {
        return "driver=qcow2,file.filename=" + image + ",encrypt.key-secret=" + secret;
    }

    private static Qemu.Result qemuImgAmend(Path image, String... options) {
        List<String> command = new ArrayList<>(List.of("qemu-img"));
        command.addAll(amendArguments(image, options));
        return Qemu.execTimingPbkdf2(command, null);
    }

    /** qemu-img info with the slots' iteration counts left out (a new slot's count is timed where it is made). */
    private static String slotsOf(Path image) {
        return Qemu.img("info", image.toString()).replace(image.toString(), "IMAGE")
                .replaceAll("iters: \\d+", "iters: N").replaceAll("disk size: .*", "");
    }

    /** Which of the secrets open {@code image} in qemu-img check. */
    private static List<String> opensWith(Path image) {
        List<String> opened = new ArrayList<>();
        for (String id : List.of("s", "n", "old", "x")) {
            List<String> command = new ArrayList<>(List.of("qemu-img", "check"));
            for (String secret : SECRETS) {
                command.add("--object");
                command.add(secret);
            }
            command.addAll(List.of("--image-opts", imageOpts(image, id)));
            if (Qemu.exec(command).exitCode() == 0) {
                opened.add(id);
            }
        }
        return opened;
    }

    private void sameAsQemuImg(String... options) throws IOException {
        Path theirs = dir.resolve("theirs.qcow2");
        Path mine = dir.resolve("mine.qcow2");
        Files.copy(twoSlots(), theirs, StandardCopyOption.REPLACE_EXISTING);
        Files.copy(twoSlots(), mine, StandardCopyOption.REPLACE_EXISTING);
        Qemu.Result q = qemuImgAmend(theirs, options);
        Cli.Run run = Cli.ours(amendArguments(mine, options).toArray(String[]::new));
        String context = List.of(options) + ": qemu-img said " + q.stderr() + ", ours " + run.err();
        assertEquals(q.exitCode(), run.code(), context);
        // qemu-img prints a hint without a newline after it; an iteration count is timed where it is made.
        assertEquals(q.stderr().replace("qemu-img: ", "qcow2-loom: ").strip().replaceAll("iterations \\d+", "N"),
                run.err().strip().replaceAll("iterations \\d+", "N"), context);
        assertEquals(slotsOf(theirs), slotsOf(mine), context);
        if (run.code() != 0) {
            assertArrayEquals(Files.readAllBytes(twoSlots()), Files.readAllBytes(mine), context);
        } else {
            List<String> opened = opensWith(mine);
            assertEquals(opensWith(theirs), opened, context);
            if (!opened.isEmpty()) { // the guest's data, through the key QEMU unlocks from a slot ours wrote
                List<String> io = new ArrayList<>(List.of("qemu-io"));
                for (String secret : SECRETS) {
                    io.add("--object");
                    io.add(secret);
                }
                io.addAll(List.of("-c", "read -P 0x5a 0 64k", "--image-opts", imageOpts(mine, opened.getLast())));
                String out = Qemu.run(io);
                assertTrue(out.contains("read 65536/65536") && !out.contains("failed"), context + ": " + out);
            }
        }
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"encrypt.keyslot=1", "encrypt.state=foo", "encrypt.state=Active,encrypt.new-secret=n",
        "encrypt.state=active", "encrypt.state=active,encrypt.new-secret=n,encrypt.old-secret=s",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.keyslot=8",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.keyslot=-1",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.keyslot=1",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.keyslot=18446744073709551615",
        "encrypt.state=active,encrypt.new-secret=missing,encrypt.iter-time=10",
        "encrypt.state=active,encrypt.new-secret=,encrypt.iter-time=10",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.iter-time=-1",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.iter-time=10,encrypt.keyslot=1,lazy_refcounts=on",
        "encrypt.state=inactive,encrypt.new-secret=n", "encrypt.state=inactive,encrypt.new-secret=",
        "encrypt.state=inactive,encrypt.iter-time=10", "encrypt.state=inactive",
        "encrypt.state=inactive,encrypt.keyslot=3", "encrypt.state=inactive,encrypt.keyslot=9",
        "encrypt.state=inactive,encrypt.keyslot=-1", "encrypt.state=inactive,encrypt.keyslot=1,encrypt.old-secret=s",
        "encrypt.state=inactive,encrypt.old-secret=x", "encrypt.state=inactive,encrypt.old-secret=missing",
        "encrypt.keyslot=x", "encrypt.keyslot=18446744073709551615", "encrypt.state=foo,encrypt.keyslot=x",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.iter-time=0x10x"})
    void refusedAsQemuImgRefusesIt(String options) throws IOException {
        sameAsQemuImg("-o", options);
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @ValueSource(strings = {"encrypt.state=active,encrypt.new-secret=n,encrypt.iter-time=10",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.iter-time=0,size=8M",
        "encrypt.state=active,encrypt.new-secret=n,encrypt.keyslot=4294967298,encrypt.iter-time=10",
        "encrypt.state=inactive,encrypt.keyslot=1", "encrypt.state=inactive,encrypt.keyslot=0,encrypt.old-secret=s",
        "encrypt.state=inactive,encrypt.old-secret=old", "encrypt.state=active,encrypt.state=inactive,"
            + "encrypt.keyslot=0", "encrypt.state=inactive,encrypt.keyslot=0,size=8M"})
    void changedAsQemuImgChangesIt(String options) throws IOException {
        sameAsQemuImg("-o", options);
    }

    /** The qcow2 driver's refusals come before the key slot options are read: state, numbers, secrets. */
    @Test
    void anImageWithoutLuksRefusesThemFirst() {
        String plain = path("plain.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", plain, "1M");
        for (String o : List.of("encrypt.keyslot=18446744073709551615", "encrypt.state=foo",
                "encrypt.state=active,encrypt.new-secret=missing")) {
            Cli.sameAsQemuImg("amend", "-o", o, plain);
        }
    }

    @Test
    void forceOverwritesAnActiveSlotAndErasesTheLast() throws IOException {
        sameAsQemuImg("--force", "-o", "encrypt.state=active,encrypt.new-secret=n,encrypt.keyslot=1,"
                + "encrypt.iter-time=10");
        sameAsQemuImg("--force", "-o", "encrypt.state=inactive,encrypt.keyslot=4");
        sameAsQemuImg("-o", "encrypt.state=inactive,encrypt.keyslot=0");
        Path mine = dir.resolve("mine.qcow2");
        Cli.Run erased = Cli.ours(amendOpenedBy("old", mine, "-o", "encrypt.state=inactive,encrypt.keyslot=1")
                .toArray(String[]::new));
        assertEquals(1, erased.code());
        assertEquals("qcow2-loom: Attempt to erase the only active keyslot 1 which will erase all the data in the"
                + " image irreversibly - refusing operation", erased.err().strip());
        Cli.Run forced = Cli.ours(amendOpenedBy("old", mine, "--force", "-o",
                "encrypt.state=inactive,encrypt.keyslot=1").toArray(String[]::new));
        assertEquals(0, forced.code(), forced.err());
        assertEquals(List.of(), opensWith(mine));
    }
}
