package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.image.ImageAmendment;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code amend} side by side with qemu-img amend 7.2: the same image (made by qemu-img, with data) amended by each
 * tool with the same -o; then the exit code, the messages, the whole first cluster (header, extensions in QEMU's
 * layout, feature table), the map (host offsets included) and the guest contents must be the same, and qemu-img
 * check must find ours clean: upgrades, downgrades (zero clusters expanded; refused over extended L2, and over zstd
 * once the data is compressed), refcount width changes either way.
 */
class CliAmendTest {
    private static final List<String> IMAGES = List.of("compat=0.10", "compat=1.1", "compat=0.10,cluster_size=512",
            "compat=0.10,cluster_size=4k", "compat=1.1,lazy_refcounts=on,cluster_size=2M",
            "compat=1.1,cluster_size=512,refcount_bits=1", "compat=1.1,compression_type=zstd",
            "compat=1.1,extended_l2=on");
    private static final List<String> AMENDS = List.of("compat=1.1", "compat=v3,size=4M",
            "compat=1.1,lazy_refcounts=on", "lazy_refcounts=off", "lazy_refcounts=on", "size=3M", "size=0",
            "refcount_bits=16", "compat=2", "backing_file=x", "backing_fmt=qcow2", "data_file=d", "data_file_raw=on",
            "data_file_raw=off", "cluster_size=4k", "nocow=on", "lazy_refcounts=maybe", "size=abc", "refcount_bits=x",
            "refcount_bits=3", "refcount_bits=99999999999999999999", "encrypt.state=active", "help", ",size=1M",
            "compat=0.10", "compat=0.10,size=2M", "compat=0.10,refcount_bits=16", "refcount_bits=1",
            "refcount_bits=2", "refcount_bits=8", "refcount_bits=64", "compat=1.1,refcount_bits=4");

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    static Stream<Arguments> cases() {
        // qemu-img 7.2 itself hangs changing the refcount width of the image with 2 MiB clusters.
        return IMAGES.stream().flatMap(image -> AMENDS.stream()
                .filter(amend -> !(image.contains("2M") && amend.matches(".*refcount_bits=(1|2|4|8|32|64)(,.*)?")))
                .map(amend -> Arguments.of(image, amend)));
    }

    @ParameterizedTest(name = "[{0}] amend -o {1}")
    @MethodSource("cases")
    void sameAsQemuImg(String image, String amend) throws IOException {
        Path theirs = Files.createDirectories(dir.resolve("qemu")).resolve("a.qcow2");
        Path ours = Files.createDirectories(dir.resolve("ours")).resolve("a.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", image, theirs.toString(), "1M");
        // Data, a zero cluster without a host cluster and one with (in version 2, zeroes written), compressed data
        // (where a cluster fits in the disk).
        Qemu.io(theirs, "write -P 1 0 64k", "write -z 512k 64k", "write -P 3 256k 64k", "write -z 256k 64k");
        if (!image.contains("2M")) {
            Qemu.io(theirs, "write -c -P 2 128k 64k");
        }
        Files.copy(theirs, ours);
        sameStep(theirs, ours, amend, true, "");
    }

    /**
     * Amends {@code theirs} with qemu-img and {@code ours} with this tool, and compares: exit code, messages, the
     * first cluster byte for byte, the map with host offsets (if {@code compareMap}), the contents, and qemu-img
     * check of ours. Returns false where qemu-img refused a downgrade over zstd-compressed clusters after expanding
     * the zero clusters, which this refuses before: the maps differ from then on.
     */
    static boolean sameStep(Path theirs, Path ours, String amend, boolean compareMap, String context)
            throws IOException {
        Qemu.Result r = Qemu.exec(List.of("qemu-img", "amend", "-o", amend, theirs.toString()));
        Cli.Run o = Cli.ours("amend", "-o", amend, ours.toString());
        String where = context + "amend -o " + amend + ": " + r.stdout() + r.stderr() + " / " + o.out() + o.err();
        assertEquals(r.exitCode(), o.code(), where);
        assertEquals(r.stdout(), o.out(), where);
        assertEquals(r.stderr().replace("qemu-img: ", "qcow2-loom: "), o.err(), where);
        int cluster = Integer.parseInt(Qemu.img("info", "--output=json", theirs.toString())
                .replaceAll("(?s).*\"cluster-size\": (\\d+).*", "$1"));
        assertArrayEquals(Arrays.copyOf(Files.readAllBytes(theirs), cluster),
                Arrays.copyOf(Files.readAllBytes(ours), cluster), "the first cluster: " + where);
        boolean mapsAlike = compareMap && !r.stderr().contains("zstd compression type and existing compressed");
        if (mapsAlike) {
            assertEquals(Qemu.img("map", "--output=json", theirs.toString()),
                    Qemu.img("map", "--output=json", ours.toString()), where);
        }
        assertEquals("Images are identical.\n", Qemu.exec(List.of("qemu-img", "compare", theirs.toString(),
                ours.toString())).stdout(), where);
        assertEquals(0, Qemu.exec(List.of("qemu-img", "check", ours.toString())).exitCode(), where);
        return mapsAlike;
    }

    /** An image made by {@code setup} on a copy for each tool ("qemu" and "ours" in {@link #dir}). */
    private Path[] twoCopies(ImageSetup setup) throws IOException {
        Path theirs = Files.createDirectories(dir.resolve("qemu")).resolve("a.qcow2");
        setup.make(theirs);
        Path ours = Files.createDirectories(dir.resolve("ours")).resolve("a.qcow2");
        Files.copy(theirs, ours);
        return new Path[] {theirs, ours};
    }

    @FunctionalInterface
    private interface ImageSetup {
        void make(Path image) throws IOException;
    }

    private static byte[] firstCluster(Path image) throws IOException {
        return Arrays.copyOf(Files.readAllBytes(image), 65536);
    }

    private static byte[] snapshotData(Path image, String snapshot) throws IOException {
        Path raw = image.resolveSibling(image.getFileName() + "." + snapshot + ".raw");
        Qemu.img("convert", "-l", snapshot, "-O", "raw", image.toString(), raw.toString());
        return Files.readAllBytes(raw);
    }

    /**
     * Over a backing file, zero clusters get host clusters of zeroes, with the same first cluster and contents as
     * qemu-img's. A zero cluster that kept a host cluster a snapshot shares gets a new one too: qemu-img 7.2 writes its zeroes into
     * the shared cluster, so that the snapshot then reads zeroes there and qemu-img check finds COPIED flags wrong.
     */
    @Test
    void downgradeLeavesWhatSnapshotsShare() throws IOException {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "1M");
        Qemu.io(base, "write -P 7 0 1M");
        Path[] images = twoCopies(image -> {
            Qemu.img("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", image.toString(), "1M");
            Qemu.io(image, "write -P 1 0 64k", "write -z 128k 64k", "write -P 2 256k 64k");
            Qemu.img("snapshot", "-c", "s1", image.toString());
            Qemu.io(image, "write -z 256k 64k", "write -z 0 64k", "write -P 3 512k 64k", "write -z 512k 64k");
        });
        byte[] snapshot = snapshotData(images[1], "s1");
        Qemu.img("amend", "-o", "compat=0.10", images[0].toString());
        assertEquals("", Cli.succeeding("amend", "-o", "compat=0.10", images[1].toString()));
        assertArrayEquals(firstCluster(images[0]), firstCluster(images[1]));
        assertEquals("Images are identical.\n", Qemu.img("compare", images[0].toString(), images[1].toString()));
        assertArrayEquals(snapshot, snapshotData(images[1], "s1"), "the snapshot's data");
        assertEquals(0, Qemu.exec(List.of("qemu-img", "check", images[1].toString())).exitCode());
        // The zero cluster over the backing file is the image's own now (a hole in the host file, which QEMU's map
        // shows as zero).
        String ours = Qemu.img("map", "--output=json", images[1].toString());
        assertTrue(ours.matches("(?s).*\"start\": 131072, \"length\": 65536, \"depth\": 0, \"present\": true, "
                + "\"zero\": (true|false), \"data\": true.*"), ours);
    }

    /**
     * A zeroed cluster a snapshot keeps, whose data the active image has again (it applied an older snapshot): the
     * snapshot's table gives it up, and the active entry left alone with it gets its COPIED flag. qemu-img 7.2 writes
     * the zeroes into it, and the active image reads zeroes there.
     */
    @Test
    void downgradeGivesBackWhatASnapshotSharedWithTheActiveImage() throws IOException {
        Path image = dir.resolve("c.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "1M");
        Qemu.io(image, "write -P 1 0 128k");
        Qemu.img("snapshot", "-c", "s1", image.toString());
        Qemu.io(image, "write -z 0 64k");
        Qemu.img("snapshot", "-c", "s2", image.toString());
        Qemu.img("snapshot", "-a", "s1", image.toString());
        Qemu.img("snapshot", "-d", "s1", image.toString());
        byte[] active = Qemu.toRaw(image, dir);
        byte[] s2 = snapshotData(image, "s2");
        Cli.succeeding("amend", "-o", "compat=0.10", image.toString());
        assertArrayEquals(active, Qemu.toRaw(image, dir), "the active image's data");
        assertArrayEquals(s2, snapshotData(image, "s2"), "the snapshot's data");
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, check.exitCode(), check.stdout() + check.stderr());
    }

    /**
     * zstd-compressed clusters a snapshot keeps, where the active image has none: version 2 could not decompress
     * them, so the downgrade is refused before anything changes (qemu-img looks at the active image alone).
     */
    @Test
    void downgradeRefusesZstdClustersOfASnapshot() throws IOException {
        Path image = dir.resolve("z.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", image.toString(), "1M");
        Qemu.io(image, "write -c -P 1 0 64k", "write -z 128k 64k");
        Qemu.img("snapshot", "-c", "s1", image.toString());
        Qemu.io(image, "write -P 2 0 64k");
        byte[] before = Files.readAllBytes(image);
        assertEquals("qcow2-loom: Cannot downgrade an image with zstd compression type and existing compressed"
                + " clusters\n", Cli.ours("amend", "-o", "compat=0.10", image.toString()).err());
        assertArrayEquals(before, Files.readAllBytes(image));
    }

    /** QEMU's other refusals, before anything is changed: a snapshot of another size, an external data file. */
    @Test
    void downgradeRefusals() throws IOException {
        Path[] resized = twoCopies(image -> {
            Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "1M");
            Qemu.img("snapshot", "-c", "s1", image.toString());
            Qemu.img("resize", "-q", image.toString(), "2M");
        });
        byte[] before = Files.readAllBytes(resized[1]);
        Qemu.Result r = Qemu.exec(List.of("qemu-img", "amend", "-o", "compat=0.10", resized[0].toString()));
        Cli.Run o = Cli.ours("amend", "-o", "compat=0.10", resized[1].toString());
        assertEquals(1, r.exitCode());
        assertEquals(r.exitCode(), o.code());
        assertEquals("qemu-img: Internal snapshots prevent downgrade of image\n", r.stderr());
        assertEquals(r.stderr().replace("qemu-img: ", "qcow2-loom: "), o.err());
        assertArrayEquals(before, Files.readAllBytes(resized[1]));
        Path data = dir.resolve("d.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "data_file=" + dir.resolve("d.raw"), data.toString(), "1M");
        Path dataCopy = dir.resolve("d2.qcow2");
        Files.copy(data, dataCopy);
        r = Qemu.exec(List.of("qemu-img", "amend", "-o", "compat=0.10", data.toString()));
        assertEquals("qemu-img: Cannot downgrade an image with a data file\n", r.stderr());
        o = Cli.ours("amend", "-o", "compat=0.10", dataCopy.toString());
        assertEquals(r.exitCode(), o.code());
        assertEquals(r.stderr().replace("qemu-img: ", "qcow2-loom: "), o.err());
        assertArrayEquals(Files.readAllBytes(data), Files.readAllBytes(dataCopy));
    }

    /**
     * A zstd image without compressed clusters goes to version 2 (and zlib) as with qemu-img; bitmaps, which version
     * 2 cannot hold, are removed. qemu-img keeps their extension in the version 2 header, then warns at every open
     * that they are inconsistent and counts their clusters as leaked.
     */
    @Test
    void downgradeOfZstdAndOfBitmaps() throws IOException {
        Path[] zstd = twoCopies(image -> {
            Qemu.img("create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", image.toString(), "1M");
            Qemu.io(image, "write -P 1 0 64k", "write -z 128k 64k");
        });
        Qemu.img("amend", "-o", "compat=0.10", zstd[0].toString());
        Cli.succeeding("amend", "-o", "compat=0.10", zstd[1].toString());
        assertArrayEquals(firstCluster(zstd[0]), firstCluster(zstd[1]));
        assertEquals(Qemu.img("map", "--output=json", zstd[0].toString()),
                Qemu.img("map", "--output=json", zstd[1].toString()));

        Path bitmaps = dir.resolve("b.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", bitmaps.toString(), "1M");
        Qemu.io(bitmaps, "write -P 1 0 64k");
        Qemu.img("bitmap", "--add", bitmaps.toString(), "b0");
        byte[] data = Qemu.toRaw(bitmaps, dir);
        Cli.succeeding("amend", "-o", "compat=0.10", bitmaps.toString());
        Qemu.Result info = Qemu.exec(List.of("qemu-img", "info", bitmaps.toString()));
        assertEquals("", info.stderr());
        assertTrue(info.stdout().contains("compat: 0.10") && !info.stdout().contains("bitmaps"), info.stdout());
        assertEquals(0, Qemu.exec(List.of("qemu-img", "check", bitmaps.toString())).exitCode());
        assertArrayEquals(data, Qemu.toRaw(bitmaps, dir));
    }

    /**
     * Snapshots of a version 2 image may lack version 3's extra data (QEMU writes it, other programs need not): the
     * upgrade writes the table anew with it, as qemu-img does, the disk size taken from the image.
     */
    @Test
    void upgradeCompletesVersion2Snapshots() throws IOException {
        Path[] images = twoCopies(image -> {
            Qemu.img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", image.toString(), "1M");
            Qemu.io(image, "write -P 1 0 64k");
            Qemu.img("snapshot", "-c", "s1", image.toString());
            Qemu.img("snapshot", "-c", "s2", image.toString());
            withoutExtraData(image);
        });
        assertTrue(snapshots(images[1]).stream().allMatch(s -> s.extraData().length == 0), "no extra data");
        Qemu.img("amend", "-o", "compat=1.1", images[0].toString());
        Cli.succeeding("amend", "-o", "compat=1.1", images[1].toString());
        assertArrayEquals(firstCluster(images[0]), firstCluster(images[1]));
        assertArrayEquals(snapshotTable(images[0]), snapshotTable(images[1]));
        assertTrue(snapshots(images[1]).stream().allMatch(s -> s.extraData().length >= 16), "version 3's extra data");
        assertEquals(0, Qemu.exec(List.of("qemu-img", "check", images[1].toString())).exitCode());
    }

    /** Rewrites the snapshot table of a version 2 image in place, its entries without extra data. */
    private static void withoutExtraData(Path image) throws IOException {
        Header header;
        List<Snapshot> snapshots;
        try (FileStorage file = FileStorage.open(image, true, false)) {
            header = ImageMetadata.readHeader(file);
            snapshots = ImageMetadata.readSnapshots(file, header);
        }
        List<Snapshot> bare = new ArrayList<>();
        for (Snapshot s : snapshots) {
            bare.add(new Snapshot(s.l1TableOffset(), s.l1Size(), s.idBytes(), s.nameBytes(), s.dateSec(),
                    s.dateNsec(), s.vmClockNsec(), s.vmStateSize32(), new byte[0]));
        }
        byte[] table = Arrays.copyOf(SnapshotTable.encode(bare), (int) SnapshotTable.encodedLength(snapshots));
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(table), header.snapshotsOffset());
        }
    }

    private static byte[] snapshotTable(Path image) throws IOException {
        byte[] file = Files.readAllBytes(image);
        long offset = ByteBuffer.wrap(file, 64, 8).getLong();
        return Arrays.copyOfRange(file, (int) offset, (int) (offset + SnapshotTable.encodedLength(snapshots(image))));
    }

    private static List<Snapshot> snapshots(Path image) throws IOException {
        try (FileStorage file = FileStorage.open(image, true, false)) {
            return ImageMetadata.readSnapshots(file, ImageMetadata.readHeader(file));
        }
    }

    /**
     * qemu-img holds the image's lock for its whole amend; so does this one: a writer that tries to open the image
     * while an amend runs is refused, part way through the width change and once every step is done (where each
     * step's own open has closed), and succeeds after.
     */
    @Test
    void anAmendHoldsTheImageLockFromFirstStepToLast() throws IOException {
        Path image = dir.resolve("l.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "1M");
        Qemu.io(image, "write -P 1 0 64k");
        List<Qemu.Result> during = new ArrayList<>();
        new ImageAmendment(null, null, null, null, null, null, true, 8L, null, false).apply(image,
                OpenOptions.readWriteDefaults().withPool(false), done -> {
                    if (during.isEmpty() && done > 0) {
                        during.add(Qemu.exec(List.of("qemu-io", "-c", "write 0 4k", image.toString())));
                    }
                });
        assertEquals(1, during.size(), "the amend should report progress part way");
        assertEquals(1, during.get(0).exitCode(), during.get(0).stdout() + during.get(0).stderr());
        assertTrue(during.get(0).stderr().contains("Failed to get \"write\" lock"), during.get(0).stderr());
        assertEquals(0, Qemu.exec(List.of("qemu-io", "-c", "write 0 4k", image.toString())).exitCode());
        assertTrue(Qemu.img("info", image.toString()).contains("refcount bits: 8"));
    }

    @Test
    void usageAndOtherFormats() throws IOException {
        Path raw = dir.resolve("r.raw");
        Files.write(raw, new byte[65536]);
        assertEquals("qcow2-loom: Format driver 'raw' does not support option amendment\n",
                Cli.ours("amend", "-f", "raw", "-o", "size=1M", raw.toString()).err());
        assertTrue(Cli.ours("amend", raw.toString()).err().contains("Must specify options (-o)"));
        assertTrue(Cli.ours("amend", "-o", "size=1M").err().contains("Expecting one image file name"));
        assertEquals(Qemu.img("amend", "-f", "qcow2", "-o", "help"), Cli.succeeding("amend", "-f", "qcow2", "-o",
                "help"));
    }
}
