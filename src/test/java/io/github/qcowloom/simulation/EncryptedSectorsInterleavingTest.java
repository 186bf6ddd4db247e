package io.github.qcowloom.simulation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.crypto.LuksOptions;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Writes into shared sectors of an encrypted image (LUKS, and AES, whose IVs follow guest offsets) under the
 * interleaving explorer: three guests own their own bytes of the same sectors (partial sectors, which the image
 * reads, merges and writes whole), a fourth writes whole sectors elsewhere, then zeroes one fast (and is refused a
 * fast zero write not on whole sectors), with a flush, 512-byte clusters and a one-slice L2 cache. In every schedule
 * each guest's bytes hold the last value it wrote, and our check finds no corruption and no leak.
 */
class EncryptedSectorsInterleavingTest {
    private static final int CLUSTER = 512;
    private static final long SIZE = 16 * CLUSTER;
    private static final byte[] KEY = "interleaved".getBytes(StandardCharsets.UTF_8);
    /** The bytes of each sector guest g owns: [g * 100, g * 100 + 60). */
    private static final int STRIPE = 60;

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"luks", "aes"})
    void partialSectorWritersKeepEachOthersBytes(String format) throws Exception {
        Path file = dir.resolve("e.qcow2");
        CreateOptions options = CreateOptions.defaults(SIZE).withClusterSize(CLUSTER);
        if (format.equals("luks")) {
            ImageCreator.create(file, options, LuksOptions.parse(Map.of("iter-time", "1"), ""), KEY);
        } else {
            ImageCreator.createAes(file, options);
        }
        byte[] fresh = Files.readAllBytes(file);
        Simulation.Exploration e = Simulation.explore(0, 150, 2_000_000, sim -> {
            MemoryStorage memory = new MemoryStorage(fresh);
            OpenOptions opts = OpenOptions.readWriteDefaults().withTicker(sim).withL2CacheBytes(CLUSTER)
                    .withPool(false).withEncryptionKey(KEY);
            byte[][] last = new byte[3][(int) (SIZE / 512)];
            try (Qcow2Image img = Qcow2Image.open(new SimStorage(memory, sim), null, opts)) {
                List<Thread> guests = new ArrayList<>();
                for (int g = 0; g < 3; g++) {
                    int guest = g;
                    guests.add(sim.start("partial " + g, () -> {
                        for (int i = 0; i < 4; i++) {
                            int sector = (guest + i * 3) % 4 * 3; // sectors 0, 3, 6, 9, shared by all three
                            byte value = (byte) (1 + guest * 16 + i);
                            byte[] data = new byte[STRIPE];
                            Arrays.fill(data, value);
                            img.write(sector * 512L + guest * 100, ByteBuffer.wrap(data));
                            last[guest][sector] = value;
                            if (i == 1) {
                                img.flush();
                            }
                        }
                    }));
                }
                guests.add(sim.start("whole", () -> {
                    for (int sector : new int[] {1, 4, 10}) { // beside the shared ones, in their clusters
                        byte[] data = new byte[512];
                        Arrays.fill(data, (byte) 0x7f);
                        img.write(sector * 512L, ByteBuffer.wrap(data));
                    }
                    // Fast zeroes: a whole cluster freed by its flags; one not on whole sectors refused untouched.
                    if (!img.writeZeroesFast(4 * 512L, 512, true) || img.writeZeroesFast(10 * 512L + 100, 300, true)) {
                        throw new AssertionError("a fast zero write of a whole cluster refused, or of part taken");
                    }
                }));
                for (Thread t : guests) {
                    t.join();
                }
            }
            byte[] image = memory.snapshot();
            CheckResult r = ImageChecker.check(new MemoryStorage(image), "e.qcow2");
            if (r.corruptions() > 0 || r.leaks() > 0 || r.checkErrors() > 0) {
                throw new AssertionError(r.corruptions() + " corruptions, " + r.leaks() + " leaks: "
                        + r.messages().stream().limit(4).toList());
            }
            try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(image), null,
                    OpenOptions.readOnlyDefaults().withEncryptionKey(KEY))) {
                ByteBuffer all = ByteBuffer.allocate((int) SIZE);
                img.read(0, all);
                for (int sector : new int[] {0, 3, 6, 9}) {
                    for (int g = 0; g < 3; g++) {
                        for (int b = 0; b < STRIPE; b++) {
                            byte got = all.get(sector * 512 + g * 100 + b);
                            if (got != last[g][sector]) {
                                throw new AssertionError("sector " + sector + ", guest " + g + ": " + got
                                        + " where it last wrote " + last[g][sector]);
                            }
                        }
                    }
                }
                for (int sector : new int[] {1, 10}) {
                    if (all.get(sector * 512 + 77) != 0x7f || all.get(sector * 512 + 200) != 0x7f) {
                        throw new AssertionError("whole sector " + sector + " lost");
                    }
                }
                for (int b = 0; b < 512; b++) {
                    if (all.get(4 * 512 + b) != 0) {
                        throw new AssertionError("zeroed sector 4 reads " + all.get(4 * 512 + b) + " at " + b);
                    }
                }
            }
        });
        System.out.println("encrypted sectors (" + format + "): " + e.distinct() + " interleavings");
        assertNull(e.failed(), () -> "seed " + e.failed().seed() + ": " + e.failed().failure());
        assertEquals(150, e.runs());
    }
}
