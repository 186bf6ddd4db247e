package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static io.github.qcowloom.cli.QemuCheckComparison.assertSameAsQemu;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** check --output=json and its exit codes against qemu-img check on the same files, plain and with -r. */
class CliCheckTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private QemuCheckComparison.Repaired assertRepairSameAsQemu(Path img, String mode, boolean qemuRebuilds)
            throws IOException {
        return QemuCheckComparison.assertRepairSameAsQemu(dir, img, mode, qemuRebuilds);
    }

    private Path image(String name, String options, String size, String... io) {
        Path img = dir.resolve(name);
        Qemu.img("create", "-q", "-f", "qcow2", "-o", options, img.toString(), size);
        if (io.length > 0) {
            Qemu.io(img, io);
        }
        return img;
    }

    /** Writes, a snapshot, overwrites (COW), zero writes and discards: a fragmented image. */
    private Path layered(String name, String options, boolean snapshots) {
        Path img = image(name, options, "32M", "write -P 1 0 256k", "write -P 2 1M 64k", "write -P 3 5M 8k",
                "write -z 6M 128k", "write -P 7 12M 1k");
        if (snapshots) {
            Qemu.img("snapshot", "-c", "s1", img.toString());
        }
        Qemu.io(img, "write -P 4 0 64k", "write -P 5 10M 512k", "write -P 8 5M 4k", "write -P 6 64k 64k",
                "discard 10M 128k", "write -P 9 20M 2k", "write -P 10 3M 64k");
        return img;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"compat=0.10,cluster_size=512", "cluster_size=4096,refcount_bits=1",
            "cluster_size=65536,refcount_bits=64", "cluster_size=65536,extended_l2=on", "cluster_size=2097152"})
    void cleanImagesMatchQemu(String options) throws IOException {
        Path empty = image("empty.qcow2", options, "100M");
        assertSameAsQemu(empty);
        Path img = layered("clean.qcow2", options, !options.contains("refcount_bits=1"));
        assertEquals("0", assertSameAsQemu(img).get("check-errors"));
        Path comp = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", "-o", options, img.toString(), comp.toString());
        Qemu.io(comp, "write -P 10 4k 4k", "write -P 11 1M 1k");
        assertSameAsQemu(comp);
    }

    @Test
    void humanOutputMatchesQemu() {
        Path img = layered("h.qcow2", "cluster_size=4096", true);
        Cli.Run o = ours("check", img.toString());
        assertEquals(Qemu.exec(List.of("qemu-img", "check", img.toString())).stdout(), o.out());
        assertEquals(0, o.code());
    }

    @Test
    void percentagesRoundAsQemuImgsPrintf() {
        // 32 clusters allocated, one of them fragmented: 3.125% exactly, which C's %0.2f prints as "3.12" (the
        // binary value's tie, to even) and Java's %.2f as "3.13".
        Path img = dir.resolve("frag.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "4M");
        Qemu.io(img, "write 64k 1984k", "write 0 64k");
        String theirs = Qemu.exec(List.of("qemu-img", "check", img.toString())).stdout();
        assertTrue(theirs.contains("32/64 = 50.00% allocated, 3.12% fragmented"), theirs);
        assertEquals(theirs, ours("check", img.toString()).out());
    }

    /** Where the 16-bit refcount of {@code cluster} lies, in the first refblock. */
    private static long refcountPos(RandomAccessFile f, long cluster) throws IOException {
        f.seek(48);
        long reftable = f.readLong();
        f.seek(reftable);
        return f.readLong() + 2 * cluster;
    }

    private static void addRefcount(Path img, long cluster, int delta) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            long pos = refcountPos(f, cluster);
            f.seek(pos);
            int v = f.readUnsignedShort();
            f.seek(pos);
            f.writeShort(v + delta);
        }
    }

    private static int refcount(Path img, long cluster) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            f.seek(refcountPos(f, cluster));
            return f.readUnsignedShort();
        }
    }

    @Test
    void raisedRefcountsAreLeaks() throws IOException {
        Path img = layered("leaks.qcow2", "cluster_size=65536", true);
        long clusters = Files.size(img) / 65536;
        // Allocated clusters (refcount 1 and 2), free ones inside the file, and one past its end.
        for (long c : new long[] {1, 4, 5, clusters - 1, clusters + 3}) {
            addRefcount(img, c, 1);
        }
        Map<String, String> q = assertSameAsQemu(img);
        assertTrue(q.containsKey("leaks"), q.toString());
        // -q: nothing on stdout in either output format, the findings still on stderr, the same exit status
        Cli.sameAsQemuImg("check", "-q", "--output=json", img);
        Cli.sameAsQemuImg("check", "-q", img);
        assertRepairSameAsQemu(img, "leaks", false);
        assertRepairSameAsQemu(img, "all", false);
    }

    /**
     * An image marked corrupt (incompatible feature bit 1) is repaired and its mark cleared, as qemu-img check -r
     * opens it read-write to repair it (BDRV_O_CHECK); before, the repair was refused as the mark's read-write open.
     */
    @ParameterizedTest
    @ValueSource(strings = {"leaks", "all"})
    void anImageMarkedCorruptIsRepairedAndTheMarkCleared(String mode) throws IOException {
        Path img = layered("marked.qcow2", "cluster_size=65536", true);
        addRefcount(img, 4, 1); // a leak
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(72); // incompatible features
            long features = f.readLong();
            f.seek(72);
            f.writeLong(features | 2);
        }
        QemuCheckComparison.Repaired r = QemuCheckComparison.assertRepairSameAsQemu(dir, img, mode, false);
        assertEquals(Qemu.img("info", r.qemu().toString()).contains("corrupt: false"),
                Qemu.img("info", r.ours().toString()).contains("corrupt: false"), "the mark cleared as qemu-img's");
        assertTrue(Qemu.img("info", r.ours().toString()).contains("corrupt: false"));
    }

    /**
     * -T none (O_DIRECT): the same findings and repairs as qemu-img check -T none, on 64 KiB clusters and on 512-byte
     * ones (metadata reads and writes shorter than a host block); an unknown mode refused in its words.
     */
    @ParameterizedTest
    @ValueSource(strings = {"cluster_size=65536", "cluster_size=512"})
    void cacheNoneChecksAndRepairsAsQemuImgDoes(String options) throws IOException {
        Path img = layered("direct.qcow2", options, true);
        addRefcount(img, 2, 1); // a leak (cluster 2 lies in the first refblock at either size)
        Path mine = dir.resolve("mine.qcow2");
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(img, mine);
        Files.copy(img, theirs);
        for (List<String> args : List.of(List.of("-T", "none", "--output=json"),
                List.of("-T", "none", "-r", "all", "--output=json"), List.of("-T", "none", "--output=json"))) {
            List<String> q = new java.util.ArrayList<>(List.of("qemu-img", "check"));
            q.addAll(args);
            q.add(theirs.toString());
            Qemu.Result qr = Qemu.exec(q);
            List<String> o = new java.util.ArrayList<>(List.of("check"));
            o.addAll(args);
            o.add(mine.toString());
            Cli.Run r = ours(o.toArray(String[]::new));
            assertEquals(qr.exitCode(), r.code(), args + r.err());
            assertEquals(qr.stdout().replace(theirs.toString(), "F"), r.out().replace(mine.toString(), "F"),
                    args.toString());
        }
        Cli.Run bad = ours("check", "-T", "bogus", mine.toString());
        assertEquals(1, bad.code());
        assertEquals(Qemu.exec(List.of("qemu-img", "check", "-T", "bogus", mine.toString())).stderr()
                .replace("qemu-img: ", "qcow2-loom: "), bad.err());
    }

    @Test
    void loweredRefcountsAreCorruptions() throws IOException {
        Path img = layered("low.qcow2", "cluster_size=65536", true);
        long clusters = Files.size(img) / 65536;
        int lowered = 0;
        // Shared clusters (refcount 2 -> 1): repaired in place by qemu-img -r all.
        for (long c = 1; c < clusters && lowered < 3; c++) {
            if (refcount(img, c) == 2) {
                addRefcount(img, c, -1);
                lowered++;
            }
        }
        assertTrue(lowered > 0);
        Map<String, String> q = assertSameAsQemu(img);
        assertTrue(q.containsKey("corruptions"), q.toString());
        assertRepairSameAsQemu(img, "leaks", false);
        assertRepairSameAsQemu(img, "all", false);
        // A referenced cluster at refcount 0: -r leaks fails with "need to rebuild" in both.
        addRefcount(img, clusters - 1, -refcount(img, clusters - 1));
        assertSameAsQemu(img);
        assertRepairSameAsQemu(img, "leaks", false);
    }

    @Test
    void lazyRefcountsLeftDirty() throws IOException {
        Path img = image("lazy.qcow2", "lazy_refcounts=on", "8M");
        Qemu.Result killed = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", "write 0 1M", "-c", "sigraise 9",
                img.toString()));
        assertTrue(killed.exitCode() != 0);
        Map<String, String> q = assertSameAsQemu(img);
        assertTrue(q.containsKey("corruptions"), q.toString());
        assertRepairSameAsQemu(img, "leaks", false);
        // qemu-img rebuilds the refcount structures at the end of the file; we raise the refcounts in place.
        assertRepairSameAsQemu(img, "all", true);
    }

    @Test
    void l2EntryIntoL1TableOrRefblock() throws IOException {
        for (String target : List.of("l1", "refblock")) {
            Path img = image(target + ".qcow2", "cluster_size=65536", "64M", "write -P 1 0 128k",
                    "write -P 2 32M 64k");
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
                f.seek(40);
                long l1 = f.readLong();
                f.seek(l1);
                long l2 = f.readLong() & 0x00fffffffffffe00L;
                long into = target.equals("l1") ? l1 : refcountPos(f, 0);
                // iotest 060: the first data cluster now overlaps metadata.
                f.seek(l2);
                f.writeLong((1L << 63) | into);
            }
            Map<String, String> q = assertSameAsQemu(img);
            assertTrue(q.containsKey("corruptions"), q.toString());
            assertRepairSameAsQemu(img, "leaks", false);
            // A refblock referenced twice needs rebuild_refcount_structure: both tools write new structures at the
            // end of the file (so the end offsets differ) and agree on everything else.
            assertRepairSameAsQemu(img, "all", target.equals("refblock"));
        }
    }

    /**
     * An L1 entry whose offset is 0 (COPIED alone: the header read as an L2 table) or that points at a table partly
     * past the end: QEMU walks both, counting what the bytes there say (its fragmentation figures too), and checks
     * no COPIED flag under the first. Before, ours checked COPIED there (2 errors more) and skipped both tables'
     * figures. Compared with qemu-img's JSON and its human report, errors and exit status.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"header", "past-end"})
    void l1EntryOverTheHeaderOrPastTheEnd(String target) throws IOException {
        Path img = image(target + ".qcow2", "cluster_size=65536", "64M", "write -P 1 0 1M");
        long end = Files.size(img);
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(40);
            f.seek(f.readLong());
            f.writeLong((1L << 63) | (target.equals("header") ? 0 : end - 32768));
        }
        assertSameAsQemu(img);
        Cli.sameAsQemuImg("check", img);
    }

    /**
     * A refcount table (header offset 48) or an L1 table (40) past the end of the file: QEMU's check opens the image
     * and reads zeroes there, so ours does too (it refused the image before), and reports, fails (-r leaks with a
     * refcount table to rebuild) or repairs it as qemu-img does, with the same lines on stderr: a repair prints the
     * mismatches as a check does, then "Repairing cluster ..." (before, only the second). The rebuilt refcount
     * structures go elsewhere than qemu-img's, so the image's end differs there.
     */
    @ParameterizedTest(name = "header offset {0}")
    @ValueSource(ints = {40, 48})
    void aTablePastTheEndIsCheckedAndRepairedAsByQemuImg(int pointer) throws IOException {
        Path img = image("past-" + pointer + ".qcow2", "cluster_size=65536", "64M", "write -P 1 0 1M");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(pointer);
            f.writeLong(16L << 20);
        }
        assertSameAsQemu(img);
        Cli.sameAsQemuImg("check", img);
        for (String mode : List.of("leaks", "all")) {
            QemuCheckComparison.Repaired r = assertRepairSameAsQemu(img, mode, pointer == 48);
            assertEquals(r.qemuErr().replace(r.qemu().toString(), "IMG").replace("qemu-img: ", "qcow2-loom: "),
                    r.ourErr().replace(r.ours().toString(), "IMG"));
        }
    }

    @Test
    void zeroedReftableEntryIsRebuiltByRepairAll() throws IOException {
        // iotest 108: the only refblock is no longer reachable, so every cluster reads as refcount 0.
        Path img = image("noreftable.qcow2", "cluster_size=65536", "64M", "write -P 1 0 256k");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(48);
            long reftable = f.readLong();
            f.seek(reftable);
            f.writeLong(0);
        }
        assertSameAsQemu(img);
        assertRepairSameAsQemu(img, "leaks", false);
        assertRepairSameAsQemu(img, "all", true);
    }

    @Test
    void rawIsUnsupported() throws IOException {
        Path raw = dir.resolve("r.img");
        Files.write(raw, new byte[65536]);
        Qemu.Result q = Qemu.exec(List.of("qemu-img", "check", "-f", "raw", raw.toString()));
        Cli.Run o = ours("check", "-f", "raw", raw.toString());
        assertEquals(q.exitCode(), o.code());
        assertEquals(63, o.code());
    }
}
