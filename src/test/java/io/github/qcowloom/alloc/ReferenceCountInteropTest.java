package io.github.qcowloom.alloc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.alloc.RecountImage.QemuCheck;
import io.github.qcowloom.format.RefcountCodec;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The recount against qemu-img check on images made by qemu-img and qemu-io: clean images, hand-made leaks and
 * too-low refcounts, a lazy-refcounts image killed mid-run, and malformed tables; repairs must leave qemu-img
 * check clean.
 */
class ReferenceCountInteropTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** A qemu-img create -o string and whether internal snapshots fit its refcount width. */
    record Layout(String options, boolean snapshots) {
        @Override
        public String toString() {
            return options;
        }
    }

    static Stream<Layout> layouts() {
        List<Layout> out = new ArrayList<>();
        for (int cs : new int[] {512, 4096, 65536}) {
            out.add(new Layout("compat=0.10,cluster_size=" + cs, true));
            for (int rb : new int[] {1, 16, 64}) {
                // A snapshot needs refcount 2, which 1-bit refcounts cannot hold.
                out.add(new Layout("compat=1.1,cluster_size=" + cs + ",refcount_bits=" + rb, rb > 1));
            }
        }
        out.add(new Layout("compat=1.1,cluster_size=65536,extended_l2=on", true));
        return out.stream();
    }

    /** Writes, snapshots (shared clusters, then COW), zero writes and discards through qemu-io. */
    private Path build(Layout layout, String name) {
        Path img = dir.resolve(name);
        Qemu.img("create", "-f", "qcow2", "-o", layout.options(), img.toString(), "32M");
        Qemu.io(img, "write -P 1 0 256k", "write -P 2 1M 64k", "write -P 3 5M 8k", "write -z 6M 128k",
                "write -P 7 12M 1k");
        if (layout.snapshots()) {
            Qemu.img("snapshot", "-c", "s1", img.toString());
        }
        Qemu.io(img, "write -P 4 0 64k", "write -P 5 10M 512k", "write -P 8 5M 4k");
        if (layout.snapshots()) {
            Qemu.img("snapshot", "-c", "s2", img.toString());
        }
        Qemu.io(img, "write -P 6 64k 64k", "discard 10M 128k", "write -P 9 20M 2k");
        return img;
    }

    /** qemu-img convert -c of the built image, then a partial overwrite and a snapshot sharing compressed data. */
    private Path compressed(Layout layout, Path source) {
        Path img = dir.resolve("c-" + source.getFileName());
        Qemu.img("convert", "-c", "-O", "qcow2", "-o", layout.options(), source.toString(), img.toString());
        if (layout.snapshots()) {
            Qemu.img("snapshot", "-c", "c1", img.toString());
        }
        Qemu.io(img, "write -P 10 4k 4k", "write -P 11 1M 1k");
        return img;
    }

    private static void assertAgrees(Path img) throws IOException {
        QemuCheck q = QemuCheck.of(img);
        try (RecountImage r = RecountImage.open(img, false)) {
            RefcountComparison cmp = r.compare();
            assertEquals(q.leaks(), cmp.leakCount(), () -> "leaks; qemu-img: " + q.output() + " ours: "
                    + cmp.messages());
            assertEquals(q.corruptions(), cmp.corruptionCount(), () -> "corruptions; qemu-img: " + q.output()
                    + " ours: " + cmp.messages());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("layouts")
    void cleanImagesAgreeWithQemu(Layout layout) throws IOException {
        Path img = build(layout, "clean.qcow2");
        Path comp = compressed(layout, img);
        for (Path p : List.of(img, comp)) {
            assertTrue(QemuCheck.of(p).clean(), () -> QemuCheck.of(p).output());
            try (RecountImage r = RecountImage.open(p, false)) {
                RefcountComparison cmp = r.compare();
                assertTrue(cmp.clean(), () -> p + ": " + cmp.messages());
                assertFalse(cmp.rebuildNeeded());
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("layouts")
    void leaksAgreeWithQemuAndRepairLeaksCleansThem(Layout layout) throws IOException {
        Path img = build(layout, "leaks.qcow2");
        try (RecountImage r = RecountImage.open(img, true)) {
            long max = new RefcountCodec(r.header.refcountOrder()).max();
            ReferenceCount refs = r.recount();
            int raised = 0;
            // Raise clusters whose refcount has room: allocated ones, and freed (discarded) ones.
            for (long c = 1; c < refs.clusters() && raised < 6; c += raised % 2 == 0 ? 1 : 3) {
                if (refs.hasRefblock(c) && r.table.get(new HostCluster(c)) != max) {
                    r.table.update(new HostCluster(c), 1);
                    raised++;
                }
            }
            assertTrue(raised > 0);
            r.writeBack();
        }
        QemuCheck q = QemuCheck.of(img);
        assertTrue(q.leaks() > 0, q.output());
        assertAgrees(img);
        try (RecountImage r = RecountImage.open(img, true)) {
            RefcountRepair.Outcome o = RefcountRepair.repairLeaks(r.recount(), r.table);
            assertEquals(q.leaks(), o.leaksFixed());
            assertEquals(List.of(), o.unrepaired());
            r.writeBack();
        }
        assertTrue(QemuCheck.of(img).clean(), () -> QemuCheck.of(img).output());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("layouts")
    void tooLowRefcountsAgreeWithQemuAndRepairAllFixesThem(Layout layout) throws IOException {
        Path img = build(layout, "low.qcow2");
        try (RecountImage r = RecountImage.open(img, true)) {
            ReferenceCount refs = r.recount();
            int lowered = 0;
            // Lower a few referenced clusters: shared ones (refcount 2 -> 1) and single ones (1 -> 0).
            for (long c = refs.clusters() - 1; c > 0 && lowered < 4; c -= 3) {
                if (refs.references(c) > 0 && r.table.get(new HostCluster(c)) > 0) {
                    r.table.update(new HostCluster(c), -1);
                    lowered++;
                }
            }
            assertTrue(lowered > 0);
            r.writeBack();
        }
        QemuCheck q = QemuCheck.of(img);
        assertTrue(q.corruptions() > 0, q.output());
        assertAgrees(img);
        try (RecountImage r = RecountImage.open(img, true)) {
            RefcountRepair.Outcome o = RefcountRepair.repairAll(r.recount(), r.table);
            assertTrue(o.corruptionsFixed() > 0);
            assertEquals(List.of(), o.unrepaired());
            r.writeBack();
        }
        assertTrue(QemuCheck.of(img).clean(), () -> QemuCheck.of(img).output());
    }

    @Test
    void lazyRefcountsCrashAgreesWithQemuAndRepairAllCleansIt() throws IOException {
        Path img = dir.resolve("lazy.qcow2");
        Qemu.img("create", "-f", "qcow2", "-o", "lazy_refcounts=on", img.toString(), "8M");
        Qemu.Result killed = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", "write 0 1M", "-c", "sigraise 9",
                img.toString()));
        assertTrue(killed.exitCode() != 0, "qemu-io should have died");
        QemuCheck q = QemuCheck.of(img);
        assertTrue(q.corruptions() > 0, q.output());
        assertAgrees(img);
        try (RecountImage r = RecountImage.open(img, true)) {
            assertTrue(r.header.dirty());
            RefcountRepair.Outcome o = RefcountRepair.repairAll(r.recount(), r.table);
            assertEquals(List.of(), o.unrepaired());
            r.writeBack();
            r.clearDirty();
        }
        assertTrue(QemuCheck.of(img).clean(), () -> QemuCheck.of(img).output());
    }

    @Test
    void malformedEntriesAgreeWithQemu() throws IOException {
        Path img = dir.resolve("bad.qcow2");
        Qemu.img("create", "-f", "qcow2", "-o", "cluster_size=4096", img.toString(), "16M");
        Qemu.io(img, "write -P 1 0 64k", "write -P 2 4M 8k");
        try (RecountImage r = RecountImage.open(img, true)) {
            long l2 = r.l2TableOffset(0);
            // Entry 1: a reserved bit; entry 2: a misaligned data offset; entry 3: far past the end of the file.
            r.pokeLong(l2 + 8, r.peekLong(l2 + 8) | 0x2);
            r.pokeLong(l2 + 16, r.peekLong(l2 + 16) + 512);
            r.pokeLong(l2 + 24, (1L << 63) | (1L << 40));
        }
        QemuCheck q = QemuCheck.of(img);
        assertTrue(q.corruptions() >= 3, q.output());
        assertAgrees(img);
    }

    @Test
    void pastEndL2AndOverflowAgreeWithQemu() throws IOException {
        Path img = dir.resolve("overflow.qcow2");
        Qemu.img("create", "-f", "qcow2", "-o", "cluster_size=4096,refcount_bits=1", img.toString(), "16M");
        Qemu.io(img, "write -P 1 0 16k", "write -P 2 8M 4k");
        try (RecountImage r = RecountImage.open(img, true)) {
            long l2 = r.l2TableOffset(0);
            // Entry 5 shares entry 0's data cluster: two references do not fit in one bit.
            r.pokeLong(l2 + 40, r.peekLong(l2));
            // The L1 entry of guest offset 8M points far past the end of the file.
            long l1Entry = r.header.l1TableOffset() + 8L * (8L << 20 >> (12 + 9));
            r.pokeLong(l1Entry, (1L << 63) | (1L << 44));
        }
        QemuCheck q = QemuCheck.of(img);
        assertTrue(q.corruptions() >= 2, q.output());
        assertAgrees(img);
    }

    @Test
    void missingRefblockNeedsRebuild() throws IOException {
        Path img = dir.resolve("norefblock.qcow2");
        Qemu.img("create", "-f", "qcow2", "-o", "cluster_size=512", img.toString(), "16M");
        Qemu.io(img, "write -P 1 0 64k");
        try (RecountImage r = RecountImage.open(img, true)) {
            r.pokeLong(r.header.refcountTableOffset(), 0);
        }
        QemuCheck q = QemuCheck.of(img);
        assertTrue(q.corruptions() > 0, q.output());
        assertAgrees(img);
        try (RecountImage r = RecountImage.open(img, true)) {
            ReferenceCount refs = r.recount();
            assertTrue(RefcountComparison.compare(refs, r.table).rebuildNeeded());
            assertEquals(List.of(RefcountRepair.NEED_REBUILD), RefcountRepair.repairLeaks(refs, r.table).unrepaired());
            RefcountRepair.Outcome all = RefcountRepair.repairAll(refs, r.table);
            assertEquals(List.of(RefcountRepair.NEED_REBUILD), all.unrepaired());
            assertEquals(0, all.corruptionsFixed());
            assertFalse(r.cache.hasDirty());
        }
    }

    @Test
    void bitmapTablesAreCounted() throws IOException {
        Path img = dir.resolve("bitmaps.qcow2");
        Qemu.img("create", "-f", "qcow2", img.toString(), "16M");
        Qemu.io(img, "write -P 1 0 1M");
        Qemu.img("bitmap", "--add", img.toString(), "b0");
        Qemu.img("bitmap", "--add", "-g", "512", img.toString(), "b1");
        Qemu.img("bitmap", "--disable", img.toString(), "b1");
        assertTrue(QemuCheck.of(img).clean());
        try (RecountImage r = RecountImage.open(img, false)) {
            RefcountComparison cmp = r.compare();
            assertTrue(cmp.clean(), () -> cmp.messages().toString());
        }
    }
}
