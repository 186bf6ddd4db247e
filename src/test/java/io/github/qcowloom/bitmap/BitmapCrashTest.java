package io.github.qcowloom.bitmap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.crashkit.CrashCheck;
import io.github.qcowloom.crashkit.CrashInvariants;
import io.github.qcowloom.crashkit.CrashOptions;
import io.github.qcowloom.crashkit.CrashSimStorage;
import io.github.qcowloom.crashkit.CrashState;
import io.github.qcowloom.crashkit.GuestHistory;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.image.BitmapBits;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.testing.BitmapFiles;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every crash state of a run of bitmap edits: the image passes the crash kit's invariants (it opens, no refcount
 * below its references, nothing misplaced, clean after the repair of leaks), and its bitmaps are exactly those after
 * one of the edits (never a mix of two), no older than the last edit whose flushes were all durable. 512-byte
 * clusters, so that a bitmap's table and the directory span clusters; the bits come from a bitmap QEMU filled.
 */
class BitmapCrashTest {
    /** Not a multiple of the larger granularities: their last bit covers a part. */
    private static final long SIZE = (4 << 20) + 3072;

    @TempDir
    Path dir;

    /** A bitmap as read back: flags, granularity, and the guest byte runs its set bits cover. */
    private record Seen(int flags, int granularityBits, List<Long> runs) {
    }

    private static Map<String, Seen> bitmaps(Storage file) throws IOException {
        Map<String, Seen> all = new LinkedHashMap<>();
        try (Qcow2Image img = Qcow2Image.open(file, null, OpenOptions.readOnlyDefaults())) {
            for (BitmapDirectory.Entry e : img.persistentBitmaps()) {
                BitmapBits b = img.bitmapBits(e);
                List<Long> runs = new ArrayList<>();
                for (long i = b.nextSet(0, b.count()); i < b.count(); i = b.nextSet(i, b.count())) {
                    long end = b.nextClear(i, b.count());
                    runs.add(i << b.granularityBits());
                    runs.add(end << b.granularityBits());
                    i = end;
                }
                all.put(e.name(), new Seen(e.flags(), e.granularityBits(), runs));
            }
        }
        return all;
    }

    @Test
    void everyCrashStateHoldsTheBitmapsOfOneEdit() throws Exception {
        Qemu.assume();
        Path source = dir.resolve("source.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", source.toString(), String.valueOf(SIZE));
        Qemu.img("bitmap", "--add", "-g", "512", source.toString(), "src");
        Qemu.io(source, "write 0 3k", "write 1M 64k", "write 3000k 1k", "write 4095k 4k");
        Path target = dir.resolve("target.qcow2");
        ImageCreator.create(target, CreateOptions.defaults(SIZE).withClusterSize(512));
        CrashSimStorage sim = new CrashSimStorage(Files.readAllBytes(target));
        List<List<BitmapAction>> edits = List.of(
                List.of(new BitmapAction.Add("a", 512), new BitmapAction.Add("b", 0)),
                List.of(new BitmapAction.Merge("src", "a")),
                List.of(new BitmapAction.Merge("a", "b"), new BitmapAction.Disable("b"),
                        new BitmapAction.Add("c", 65536), new BitmapAction.Merge("b", "c")),
                List.of(new BitmapAction.Clear("a"), new BitmapAction.Remove("b")),
                List.of(new BitmapAction.Remove("a"), new BitmapAction.Remove("c")));
        List<Map<String, Seen>> states = new ArrayList<>(List.of(Map.of()));
        List<Long> durableAfter = new ArrayList<>(List.of(0L));
        try (Qcow2Image src = Qcow2Image.open(source, OpenOptions.readOnlyDefaults());
                Qcow2Image img = Qcow2Image.open(sim, null,
                        OpenOptions.readWriteDefaults().withGuestWrites(false).withPool(false))) {
            for (int i = 0; i < edits.size(); i++) {
                Bitmaps.apply(img, "target", edits.get(i), i == 1 ? src : null);
                states.add(bitmaps(MemoryStorage.readOnlyCopy(sim.currentImage())));
                durableAfter.add(sim.flushCount());
            }
        }
        assertEquals(List.of(0L, 3072L, 1048576L, 1114112L, 3072000L, 3073024L, 4193280L, SIZE),
                states.get(2).get("a").runs());
        assertEquals(Map.of(), states.getLast());
        List<String> failures = new ArrayList<>();
        long[] count = {0};
        sim.crashStates(CrashOptions.defaults()).forEach(s -> {
            count[0]++;
            CrashCheck c = CrashInvariants.check(s, new GuestHistory(SIZE));
            if (!c.ok()) {
                failures.add(c.message());
                return;
            }
            String wrong = wrongBitmaps(s, states, durableAfter);
            if (wrong != null) {
                failures.add(s.description() + ": " + wrong);
            }
        });
        assertTrue(failures.isEmpty(), failures.size() + " of " + count[0] + " crash states fail, e.g. "
                + failures.stream().limit(3).toList());
        System.out.println("bitmap edits: " + count[0] + " crash states pass");
    }

    /**
     * A read-write open that keeps the bitmaps: the guest writes and flushes, then the close stores them. In every
     * crash state the image passes the crash kit's invariants (the guest's data included), and the bitmaps are all
     * still in use (inconsistent, as QEMU leaves them after a crash) or all stored with every write; the disabled one
     * holds what it held. A crash before the open's marking is durable comes before any write: there the bitmaps are
     * as they were, some of them perhaps marked.
     */
    @Test
    void aCrashLeavesKeptBitmapsInUseOrWhole() throws Exception {
        CrashSimStorage sim = new CrashSimStorage(BitmapFiles.freshWithBitmaps(dir.resolve("kept.qcow2"), SIZE, 512,
                512, 4096));
        GuestHistory history = new GuestHistory(SIZE);
        long[][] writes = {{0, 4096}, {1 << 20, 1536}, {SIZE - 4096, 4096}, {2 << 20, 65536}};
        long marked;
        try (Qcow2Image img = Qcow2Image.open(sim, null, OpenOptions.readWriteDefaults().withPool(false))) {
            marked = sim.flushCount();
            for (int i = 0; i < writes.length; i++) {
                img.write(writes[i][0], ByteBuffer.wrap(history.write(writes[i][0], (int) writes[i][1])));
                if (i == 1) {
                    img.flush();
                    history.flushed(sim.flushCount());
                }
            }
        }
        List<Long> runs = new ArrayList<>();
        for (long[] w : writes) {
            runs.add(w[0] & -512L);
            runs.add((w[0] + w[1] + 511) & -512L);
        }
        runs.sort(null);
        Seen whole = new Seen(BitmapDirectory.Entry.AUTO, 9, runs);
        Seen untouched = new Seen(0, 12, List.of());
        assertEquals(Map.of("on", whole, "off", untouched), bitmaps(MemoryStorage.readOnlyCopy(sim.currentImage())));
        List<String> failures = new ArrayList<>();
        long[] count = {0};
        long[] inUse = {0};
        sim.crashStates(CrashOptions.defaults()).forEach(s -> {
            count[0]++;
            CrashCheck c = CrashInvariants.check(s, history);
            if (!c.ok()) {
                failures.add(c.message());
                return;
            }
            try {
                Map<String, Seen> seen = bitmaps(MemoryStorage.readOnlyCopy(s.image()));
                boolean stale = seen.values().stream().anyMatch(b -> (b.flags() & BitmapDirectory.Entry.IN_USE) != 0);
                if (s.durableFlushes() < marked) {
                    if (!seen.get("on").runs().isEmpty() || !seen.get("off").runs().isEmpty()) {
                        failures.add(s.description() + ": bits before any write: " + seen);
                    }
                } else if (stale) {
                    inUse[0]++;
                    if (!seen.values().stream().allMatch(b -> (b.flags() & BitmapDirectory.Entry.IN_USE) != 0)) {
                        failures.add(s.description() + ": some bitmaps stored, others not: " + seen);
                    }
                } else if (!seen.equals(Map.of("on", whole, "off", untouched))) {
                    failures.add(s.description() + ": consistent bitmaps without every write: " + seen);
                }
            } catch (IOException e) {
                failures.add(s.description() + ": the bitmaps do not read: " + e);
            }
        });
        assertTrue(failures.isEmpty(), failures.size() + " of " + count[0] + " crash states fail, e.g. "
                + failures.stream().limit(3).toList());
        assertTrue(inUse[0] > 0 && inUse[0] < count[0], inUse[0] + " of " + count[0] + " states in use");
    }

    /** Null if the state's bitmaps are those after an edit no older than the last one durable in it. */
    private static String wrongBitmaps(CrashState s, List<Map<String, Seen>> states, List<Long> durableAfter) {
        int oldest = 0;
        for (int k = 0; k < durableAfter.size(); k++) {
            if (durableAfter.get(k) <= s.durableFlushes()) {
                oldest = k;
            }
        }
        Map<String, Seen> seen;
        try {
            seen = bitmaps(MemoryStorage.readOnlyCopy(s.image()));
        } catch (IOException e) {
            return "the bitmaps do not read: " + e;
        }
        for (int k = oldest; k < states.size(); k++) {
            if (states.get(k).equals(seen)) {
                return null;
            }
        }
        return "bitmaps " + seen + " are none of the edits' from " + oldest;
    }
}
