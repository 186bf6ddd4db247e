package io.github.qcowloom.alloc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Once the walk keeps no more lines, snapshot trees are walked once per distinct L1 table with the number of
 * snapshots sharing it as a weight, and a snapshot's L2 tables once each with the number of L1 entries pointing
 * to them as a weight. Counted with no line kept (grouping from the first snapshot) and with every
 * line kept (no grouping), the references of every cluster and the corruptions must be the same, including
 * references that saturate at a narrow refcount width and the overflows they report.
 */
class GroupedSnapshotWalkTest {
    @TempDir
    Path dir;

    /** Appends a cluster holding {@code n} copies of the active L1 table's first entry; returns its offset. */
    private static long appendRepeatingL1(Path img, int n) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer header = ByteBuffer.allocate(48);
            ch.read(header, 0);
            long l1 = header.getLong(40);
            ByteBuffer entry = ByteBuffer.allocate(8);
            ch.read(entry, l1);
            long at = (ch.size() + 4095) & -4096L;
            ByteBuffer table = ByteBuffer.allocate(4096);
            for (int i = 0; i < n; i++) {
                table.putLong(entry.getLong(0));
            }
            ch.write(table.clear(), at);
            return at;
        }
    }

    @Test
    void groupedTreesCountAsEachWalkedAlone() throws Exception {
        Qemu.assume();
        Path img = dir.resolve("snaps.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096,refcount_bits=4", img.toString(), "1M");
        Qemu.io(img, "write -P 1 0 64k");
        Qemu.img("snapshot", "-c", "a", img.toString());
        Qemu.io(img, "write -P 2 32k 8k");
        Qemu.img("snapshot", "-c", "b", img.toString());
        long repeatingL1 = appendRepeatingL1(img, 40);
        try (RecountImage r = RecountImage.open(img, false)) {
            // As a corrupt table would list them: the same two trees, again and again (refcounts of 4 bits
            // saturate at 15), between trees that do not fit.
            List<Snapshot> listed = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                listed.add(r.snapshots.get(i % 3 == 0 ? 1 : 0));
                if (i == 5) {
                    Snapshot s = r.snapshots.get(0);
                    listed.add(new Snapshot(s.l1TableOffset() + 512, s.l1Size(), "x", "misaligned", 0, 0, 0, 0,
                            new byte[16]));
                    // An L1 table whose 40 entries all point at the active tree's first L2 table.
                    listed.add(new Snapshot(repeatingL1, 40, "y", "one L2 table forty times", 0, 0, 0, 0,
                            new byte[16]));
                }
            }
            ReferenceCount plain = ReferenceCount.compute(r.file, r.header, listed, 4096,
                    ReferenceCount.defaultMemoryBound(), Integer.MAX_VALUE);
            ReferenceCount grouped = ReferenceCount.compute(r.file, r.header, listed, 4096,
                    ReferenceCount.defaultMemoryBound(), 0);
            assertTrue(plain.problems().stream().anyMatch(p -> p.contains("overflow")),
                    "the repeated trees overflow 4-bit refcounts: " + plain.problems());
            assertEquals(plain.corruptions(), grouped.corruptions());
            assertEquals(plain.clusters(), grouped.clusters());
            for (long c = 0; c < plain.clusters(); c++) {
                assertEquals(plain.references(c), grouped.references(c), "cluster " + c);
            }
            assertEquals(1, grouped.problems().size(), "no line kept, one counting them");
            assertTrue(grouped.problems().get(0).contains(plain.problems().size() + " more errors"),
                    grouped.problems().get(0));
        }
    }
}
