package io.github.qcowloom.fuzz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.check.RepairMode;
import io.github.qcowloom.crypto.LuksFormat;
import io.github.qcowloom.crypto.LuksHeader;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Fuzz targets for what a user runs on an image from anywhere: open and read it all with its block status (info,
 * map, convert's source) and its snapshot list; check; check -r all on a copy; a write and a flush; the same with
 * the passphrase of an encrypted image. Each takes the fuzzer's bytes as the whole image file; see {@link FuzzImage}
 * for what may end a run.
 *
 * <p>A plain test run replays each target's inputs (qemu-img seeds, see {@link SeedImages}, and the inputs that
 * once failed, kept under src/test/resources/.../ImageFuzzTestInputs/TARGET); the fuzz profile runs one target
 * coverage-guided: {@code ./mvnw test -Pfuzz -Dfuzz.target=openRead -Dfuzz.runs=1000000}.
 */
class ImageFuzzTest {
    /** How much of the virtual disk a run reads and maps: a hostile size must not make one run take minutes. */
    private static final long READ_CAP = 4L << 20;
    private static final int CHUNK = 64 << 10;
    /** Block status calls per run at most (each may cover only a cluster or a subcluster). */
    private static final int STATUS_CALLS = 2048;

    private static final OpenOptions READ_ONLY = OpenOptions.readOnlyDefaults().withFollowReferences(false);
    private static final OpenOptions READ_WRITE = OpenOptions.readWriteDefaults().withFollowReferences(false);
    /** With the encrypted seeds' passphrase, which an image without encryption does not ask for. */
    private static final OpenOptions UNLOCKING = READ_WRITE.withEncryptionKey(
            SeedImages.PASSPHRASE.getBytes(StandardCharsets.UTF_8));
    /**
     * PBKDF2 rounds an unlock may run in a fuzz run, about half a second. The driver allows 2^28 (minutes), as an
     * image qemu-img made on a fast machine may need; the inputs that ask for more than this are not run, since
     * their time is by design (their refusal above 2^28 is LuksHeaderTest's).
     */
    private static final long UNLOCK_ROUNDS = 1L << 20;

    @BeforeAll
    static void seeds() {
        SeedImages.layOut(ImageFuzzTest.class, "openRead", "check", "repairAll", "writeFlush", "unlockReadWrite");
        String xmx = System.getProperty("fuzz.xmx");
        if (xmx != null) {
            // The fuzz profile's heap bound, as the JVM took it: an OutOfMemoryError under it is a finding.
            System.err.println("fuzz: heap bound " + (Runtime.getRuntime().maxMemory() >> 20) + " MiB (-Xmx" + xmx
                    + ")");
        }
    }

    /** qemu-img info / map / snapshot -l / convert's source: open read-only, list, map and read the disk. */
    @FuzzTest
    void openRead(byte[] data) throws IOException {
        try (Qcow2Image img = Qcow2Image.open(FuzzImage.readOnly(data), null, READ_ONLY)) {
            listSnapshots(img);
            readAndMap(img);
        } catch (IOException e) {
            FuzzImage.expected(e);
        }
    }

    /** qemu-img check, read-only. */
    @FuzzTest
    void check(byte[] data) throws IOException {
        try {
            CheckResult r = ImageChecker.check(FuzzImage.readOnly(data), "fuzz.qcow2");
            r.fields();
            r.exitCode();
        } catch (IOException e) {
            FuzzImage.expected(e);
        }
    }

    /** qemu-img check -r all on a copy; the repaired image must then open and read like any other. */
    @FuzzTest
    void repairAll(byte[] data) throws IOException {
        try {
            var storage = FuzzImage.writable(data);
            ImageChecker.repair(storage, "fuzz.qcow2", RepairMode.ALL);
        } catch (IOException e) {
            FuzzImage.expected(e);
        }
    }

    /** A guest's first writes: at the start, the middle and the end of the disk, then a flush and a close. */
    @FuzzTest
    void writeFlush(byte[] data) throws IOException {
        try (Qcow2Image img = Qcow2Image.open(FuzzImage.writable(data), null, READ_WRITE)) {
            writeAndFlush(img);
        } catch (IOException e) {
            FuzzImage.expected(e);
        }
    }

    /**
     * An encrypted image opened with its passphrase (the LUKS header, its key slots and their stripes, the master
     * key's digest), read and mapped as {@link #openRead}, then written as {@link #writeFlush}: a guest's start.
     */
    @FuzzTest
    void unlockReadWrite(byte[] data) throws IOException {
        Storage file = FuzzImage.writable(data);
        if (unlockRounds(file) > UNLOCK_ROUNDS) {
            return;
        }
        try (Qcow2Image img = Qcow2Image.open(file, null, UNLOCKING)) {
            readAndMap(img);
            writeAndFlush(img);
        } catch (IOException e) {
            FuzzImage.expected(e);
        }
    }

    /**
     * The encrypted seeds open with the passphrase, the LUKS ones within the fuzz bound, so that
     * {@link #unlockReadWrite} goes past their key slots.
     */
    @Test
    void theEncryptedSeedsUnlockWithinTheFuzzBound() throws IOException {
        assumeTrue(Qemu.available(), "qemu-img makes the seeds");
        List<Path> seeds = SeedImages.encryptedSeeds();
        assertEquals(4, seeds.size(), seeds.toString());
        for (Path seed : seeds) {
            Storage file = FuzzImage.writable(Files.readAllBytes(seed));
            long rounds = unlockRounds(file);
            boolean luks = seed.getFileName().toString().startsWith("luks-");
            assertTrue(luks ? rounds > 0 && rounds <= UNLOCK_ROUNDS : rounds == 0, seed + ": " + rounds + " rounds");
            try (Qcow2Image img = Qcow2Image.open(file, null, UNLOCKING)) {
                assertTrue(img.encryption().isPresent(), seed.toString());
            }
        }
    }

    /** The PBKDF2 rounds an unlock of {@code file} would run; 0 where it has no LUKS header the unlock would try. */
    private static long unlockRounds(Storage file) {
        try {
            Header header = ImageMetadata.readHeader(file);
            Header.CryptoHeaderArea area = header.cryptoHeader().orElse(null);
            if (area == null || area.offset() < 0 || area.offset() > file.size() - LuksHeader.SIZE) {
                return 0;
            }
            ByteBuffer bytes = ByteBuffer.allocate(LuksHeader.SIZE);
            file.read(bytes, area.offset());
            return LuksFormat.unlockRounds(LuksHeader.parse(bytes.flip()));
        } catch (IOException e) { // refused before any round: the open refuses it too
            return 0;
        }
    }

    private static void writeAndFlush(Qcow2Image img) throws IOException {
        long size = img.size();
        ByteBuffer buf = ByteBuffer.allocate(4096);
        for (int i = 0; i < buf.capacity(); i++) {
            buf.put(i, (byte) (i * 31 + 7));
        }
        for (long at : new long[] {0, size / 2 & -512L, size - 4096}) {
            if (at >= 0 && at + 4096 <= size) {
                img.write(at, buf.duplicate());
            }
        }
        img.flush();
        if (size >= 4096) {
            img.read(0, ByteBuffer.allocate(4096));
        }
    }

    private static void listSnapshots(Qcow2Image img) {
        for (Snapshot s : img.snapshots()) {
            s.id();
            s.name();
            s.vmStateSize();
            s.diskSize();
            s.icount();
        }
    }

    private static void readAndMap(Qcow2Image img) throws IOException {
        long size = img.size();
        long end = Math.min(size, READ_CAP);
        ByteBuffer buf = ByteBuffer.allocate(CHUNK);
        for (long at = 0; at < end; at += CHUNK) {
            buf.clear().limit((int) Math.min(CHUNK, end - at));
            img.read(at, buf);
        }
        if (size > READ_CAP) {
            // The disk's last bytes too: the far end of the L1 table.
            buf.clear().limit(512);
            img.read(size - 512, buf);
        }
        long at = 0;
        for (int i = 0; i < STATUS_CALLS && at < end; i++) {
            BlockStatus s = img.blockStatus(at, end - at);
            if (s.length() <= 0) {
                throw new IllegalStateException("block status of length " + s.length() + " at " + at);
            }
            at += s.length();
        }
    }
}
