package io.github.qcowloom.soak;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The soak: {@link SoakChild} (256 writers, flushes, zeroes, discards, snapshots) on a file image, killed with
 * SIGKILL at random moments and started again, for {@code soak.seconds} (15 in the default suite; {@code -Psoak}
 * runs 10 minutes). After each kill: {@code qemu-img check} finds leaks at most, our read-write open repairs them,
 * {@code qemu-img check} is then clean, and every block holds what {@link SoakModel} allows: nothing acknowledged
 * before a completed flush is lost. The seed ({@code -Dsoak.seed}) fixes the kill times and the children's choices
 * (their interleaving is the machine's).
 */
class SoakTest {
    private static final long IMAGE_SIZE = 64L << 20;
    private static final Pattern LEAKS = Pattern.compile("\"leaks\": (\\d+)");
    /**
     * The one "corruption" a kill may leave before the repair: a COPIED flag still set on a table whose refcount a
     * snapshot being created had already raised (QEMU's qcow2_update_snapshot_refcount writes refcounts before the
     * tables, so it has the same window). The refcount is above the references, so no write can lose data
     * through it, the image is dirty, and the read-write open repairs it, as QEMU's does.
     */
    private static final Pattern COPIED_AHEAD =
            Pattern.compile("ERROR OFLAG_COPIED (L2|data) cluster: .* refcount=([2-9]|\\d{2,})");

    @TempDir
    Path dir;

    @Test
    void killedWritersNeverLoseAFlushedWrite() throws Exception {
        Qemu.assume();
        long seconds = Long.getLong("soak.seconds", 15);
        long seed = Long.getLong("soak.seed", System.nanoTime());
        SplittableRandom rnd = new SplittableRandom(seed);
        Path image = dir.resolve("soak.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), Long.toString(IMAGE_SIZE));
        long[] durable = new long[(int) (IMAGE_SIZE / SoakChild.BLOCK)];
        Arrays.fill(durable, SoakModel.ZERO);

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        int kills = 0;
        long writes = 0;
        long zeroes = 0;
        long flushes = 0;
        long snapshots = 0;
        long leaks = 0;
        long copiedAhead = 0;
        while (kills == 0 || System.nanoTime() < deadline) {
            long firstId = (kills + 1L) << 40;
            SoakModel model = runAndKill(image, durable, firstId, rnd.nextLong(), 300 + rnd.nextInt(2700), seed);
            kills++;
            assertTrue(model.errors.isEmpty(), "seed " + seed + ": the child failed: " + model.errors);

            Qemu.Result before = Qemu.exec(List.of("qemu-img", "check", "--output=json", image.toString()));
            String unsafe = before.stderr().lines().filter(l -> l.startsWith("ERROR"))
                    .filter(l -> !COPIED_AHEAD.matcher(l).matches()).findFirst().orElse(null);
            assertTrue(unsafe == null && before.exitCode() != 1, "seed " + seed + ", kill " + kills
                    + ": a killed writer must leave leaks at most: " + before.stdout() + before.stderr());
            copiedAhead += before.stderr().lines().filter(l -> COPIED_AHEAD.matcher(l).matches()).count();
            Matcher m = LEAKS.matcher(before.stdout());
            leaks += m.find() ? Long.parseLong(m.group(1)) : 0;

            List<String> lost = verifyAndRecord(image, model, durable);
            assertTrue(lost.isEmpty(), "seed " + seed + ", kill " + kills + ": " + lost);
            Qemu.img("check", "-q", image.toString()); // clean after our repair: exit 0 or the test fails
            writes += model.writes;
            zeroes += model.zeroes;
            flushes += model.flushes;
            snapshots += model.snapshots;
        }
        System.out.printf("soak: %d s, seed %d: %d kills, %d writes and %d zeroings/discards acknowledged, "
                + "%d completed flushes verified, %d snapshots, %d leaked clusters and %d COPIED flags ahead of a "
                + "snapshot's refcounts repaired%n", seconds, seed, kills, writes, zeroes, flushes, snapshots, leaks,
                copiedAhead);
        assertTrue(flushes > 0, "no flush completed before a kill: nothing was verified");
    }

    /**
     * Runs one child until {@code delayMs} after it is ready, kills it, and returns its journal as a model. The
     * journal goes to a file, not a pipe: what the child wrote is there after the kill, and nothing races the JDK
     * closing a dead process's pipe.
     */
    private SoakModel runAndKill(Path image, long[] durable, long firstId, long childSeed, long delayMs, long seed)
            throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path journal = dir.resolve("journal.txt");
        Path err = dir.resolve("child.err");
        Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx512m", "-cp",
                System.getProperty("java.class.path"), SoakChild.class.getName(), image.toString(),
                Long.toString(firstId), Long.toString(childSeed))
                .redirectOutput(journal.toFile()).redirectError(err.toFile()).start();
        try {
            long readyBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (Files.size(journal) == 0 && child.isAlive() && System.nanoTime() < readyBy) {
                Thread.sleep(5);
            }
            assertTrue(Files.size(journal) > 0 && child.isAlive(),
                    "seed " + seed + ": the soak child did not start: " + Files.readString(err));
            Thread.sleep(delayMs);
        } finally {
            child.destroyForcibly(); // SIGKILL
            assertTrue(child.waitFor(30, TimeUnit.SECONDS));
        }
        SoakModel model = new SoakModel(durable, firstId);
        String text = Files.readString(journal, StandardCharsets.US_ASCII);
        // The kill may cut the last line (a full buffer is written wherever it ends): it never happened, then.
        text.substring(0, text.lastIndexOf('\n') + 1).lines().forEach(model::accept);
        return model;
    }

    /**
     * Opens the image read-write (the repair of the killed child's leaks), checks every block against the model,
     * and records what each holds as durable for the next child (our close flushes it). Returns what was lost.
     */
    private static List<String> verifyAndRecord(Path image, SoakModel model, long[] durable) throws IOException {
        List<String> lost = new ArrayList<>();
        ByteBuffer buf = ByteBuffer.allocate(SoakChild.BLOCK);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            for (int blk = 0; blk < durable.length; blk++) {
                img.read((long) blk * SoakChild.BLOCK, buf.clear());
                buf.flip();
                long first = buf.getLong(0);
                long id = buf.getLong(8);
                boolean zero = first == 0 && id == 0;
                boolean torn = !zero && first != blk;
                for (int at = 0; at < SoakChild.BLOCK && !torn; at += 16) {
                    torn = buf.getLong(at) != first || buf.getLong(at + 8) != id;
                }
                long content = zero ? SoakModel.ZERO : id;
                String why = model.check(blk, content, torn);
                if (why != null && lost.size() < 10) {
                    lost.add(why);
                }
                durable[blk] = content;
            }
        }
        return lost;
    }
}
