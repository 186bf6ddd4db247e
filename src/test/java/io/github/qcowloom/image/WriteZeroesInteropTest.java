package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Write-zeroes (with and without unmap) and discard against qemu-io 7.2 on v3 and v2 images, standard and extended
 * L2, with no backing file and over one that holds data in its first half only: the same requests leave the same
 * {@code qemu-img map --output=json} (host offsets included, so L2 tables and data clusters were allocated in the
 * same order), the same L2 entries and the same guest data.
 */
class WriteZeroesInteropTest {
    private static final int C = 65536;
    private static final long SIZE = 16L * C + 1536;
    /** The backing file holds data in clusters [0, 8), nothing after. */
    private static final long BACKING_DATA = 8L * C;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** One image kind: qcow2 version, extended L2, and whether it has the half-written backing file. */
    record Kind(String compat, boolean extendedL2, boolean backing) {
        @Override
        public String toString() {
            return "compat=" + compat + (extendedL2 ? ", extended L2" : "") + (backing ? ", backing" : "");
        }
    }

    static Stream<Arguments> scenarios() {
        List<List<GuestOp>> sequences = List.of(
                // Zeroes over unallocated clusters: whole, partial at either end, inside one cluster, at the end of
                // the disk; then writes, which land after whatever tables the zeroes allocated.
                List.of(GuestOp.zero(0, 2L * C, false), GuestOp.zero(3L * C, C, true),
                        GuestOp.zero(4L * C + 512, C, false), GuestOp.zero(6L * C, C / 2, false),
                        GuestOp.zero(7L * C + C / 2, C / 2, true), GuestOp.zero(9L * C + 100, 1000, false),
                        GuestOp.zero(15L * C + 4096, C - 4096 + 1536, false), GuestOp.write(10L * C, 3000, 1),
                        GuestOp.write(2L * C + 100, 200, 2)),
                // Zeroes over data: whole clusters with and without unmap, partial pieces over data, preallocated
                // zero clusters unmapped later.
                List.of(GuestOp.write(0, 4L * C, 1), GuestOp.zero(0, C, false), GuestOp.zero(C, C, true),
                        GuestOp.zero(2L * C + 4096, C, false), GuestOp.write(6L * C, C, 2),
                        GuestOp.zero(6L * C, C, false), GuestOp.zero(6L * C, C, true), GuestOp.write(9L * C, 100, 3),
                        GuestOp.zero(9L * C + 200, 100, false), GuestOp.zero(9L * C, C, false),
                        GuestOp.write(12L * C + 4096, 4096, 4), GuestOp.zero(12L * C, C / 2, true)),
                // Discards, over nothing and over data, then writes.
                List.of(GuestOp.discard(0, 4L * C), GuestOp.write(5L * C, 2L * C, 1), GuestOp.discard(5L * C, C),
                        GuestOp.discard(6L * C + 512, C), GuestOp.write(C, 100, 2), GuestOp.zero(8L * C, 2L * C, false),
                        GuestOp.discard(8L * C, 3L * C), GuestOp.discard(16L * C, 1536)));
        List<Arguments> out = new ArrayList<>();
        for (Kind kind : List.of(new Kind("1.1", false, false), new Kind("1.1", false, true),
                new Kind("0.10", false, false), new Kind("0.10", false, true), new Kind("1.1", true, false),
                new Kind("1.1", true, true))) {
            for (int i = 0; i < sequences.size(); i++) {
                out.add(Arguments.of(kind, i, SIZE, sequences.get(i)));
            }
            // Requests into the second L2 table first: QEMU allocates that table even where no entry changes.
            long table = (long) C * C / (kind.extendedL2() ? 16 : 8);
            out.add(Arguments.of(kind, sequences.size(), table + 4L * C, List.of(GuestOp.discard(table, C),
                    GuestOp.write(0, 100, 1), GuestOp.zero(table + 2L * C, C, false), GuestOp.write(C, 100, 2))));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0}, sequence {1}")
    @MethodSource("scenarios")
    void sameMapAsQemuIo(Kind kind, int sequence, long size, List<GuestOp> ops) throws IOException {
        List<String> create = new ArrayList<>(List.of("create", "-q", "-f", "qcow2", "-o",
                "compat=" + kind.compat() + (kind.extendedL2() ? ",extended_l2=on" : "")));
        if (kind.backing()) {
            Path base = dir.resolve("base.qcow2");
            Qemu.img("create", "-q", "-f", "qcow2", base.toString(), Long.toString(size));
            Qemu.io(base, "write -P 0x5a 0 " + BACKING_DATA);
            create.addAll(List.of("-b", "base.qcow2", "-F", "qcow2"));
        }
        Path theirs = dir.resolve("theirs.qcow2");
        create.addAll(List.of(theirs.toString(), Long.toString(size)));
        Qemu.img(create.toArray(String[]::new));
        Path ours = dir.resolve("ours.qcow2");
        Files.copy(theirs, ours, StandardCopyOption.REPLACE_EXISTING);

        Qemu.io(theirs, ops.stream().map(GuestOp::qemuIo).toArray(String[]::new));
        // No pool: clusters are allocated one by one in request order, as QEMU allocates them. A flush after each
        // request: QEMU may hand out a freed cluster at once (its caches order the writes), we only once the entry
        // that dropped it is durable.
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults().withPool(false))) {
            for (GuestOp op : ops) {
                op.applyTo(img);
                img.flush();
            }
        }
        assertEquals(guestMap(theirs), guestMap(ours), "qemu-img map");
        assertEquals(L2Dump.describe(theirs), L2Dump.describe(ours), "L2 entries");
        assertTrue(Qemu.img("compare", theirs.toString(), ours.toString()).contains("Images are identical"));
        String check = Qemu.img("check", "--output=json", ours.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
    }

    /**
     * A partial unit is zeroized whole only while nothing else is written into it: writers putting data beside the
     * zeroes, in the same unit, at the same time, keep their data (all requests run at once on virtual threads).
     */
    @ParameterizedTest(name = "extended L2 {0}")
    @ValueSource(booleans = {false, true})
    void zeroesBesideConcurrentWritesKeepTheirData(boolean extendedL2) throws Exception {
        Path image = dir.resolve("race.qcow2");
        int clusters = 256;
        ImageCreator.create(image, CreateOptions.defaults((long) clusters * C).withExtendedL2(extendedL2));
        byte[] data = new byte[500];
        Arrays.fill(data, (byte) 0x6b);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults());
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (long c = 0; c < clusters; c++) {
                long at = c * C;
                // Both inside the first subcluster (2 KiB with extended L2), so inside one unit either way.
                done.add(threads.submit(() -> {
                    img.writeZeroes(at + 100, 200, false);
                    return null;
                }));
                done.add(threads.submit(() -> {
                    img.write(at + 1000, ByteBuffer.wrap(data));
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
            for (long c = 0; c < clusters; c++) {
                ByteBuffer back = ByteBuffer.allocate(data.length);
                img.read(c * C + 1000, back);
                assertArrayEquals(data, back.array(), "cluster " + c);
            }
        }
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
    }

    /** One line of qemu-img map --output=json; {@code offset} -1 where it has none. */
    private record Extent(long start, long length, int depth, boolean present, boolean zero, boolean data,
            long offset) {
        boolean continuedBy(Extent e) {
            return e.depth == depth && e.present == present && e.zero == zero && e.data == data
                    && e.start == start + length
                    && (e.offset < 0 ? offset < 0 : offset >= 0 && e.offset == offset + length);
        }
    }

    private static final Pattern EXTENT = Pattern.compile("\\{ \"start\": (\\d+), \"length\": (\\d+), "
            + "\"depth\": (\\d+), \"present\": (true|false), \"zero\": (true|false), \"data\": (true|false)"
            + "(?:, \"offset\": (\\d+))?\\}");

    /**
     * qemu-img map --output=json of {@code image} without what only the host file tells: a hole inside a data
     * cluster (where our write left the never-written bytes around fresh data unwritten, and QEMU wrote them as
     * zeroes) makes qemu-img split the extent and call the hole "zero". Data extents are not "zero" here, and
     * extents that then continue one another are merged.
     */
    private static List<Extent> guestMap(Path image) {
        List<Extent> out = new ArrayList<>();
        Matcher m = EXTENT.matcher(Qemu.img("map", "--output=json", image.toString()));
        while (m.find()) {
            boolean data = Boolean.parseBoolean(m.group(6));
            Extent e = new Extent(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Integer.parseInt(m.group(3)),
                    Boolean.parseBoolean(m.group(4)), !data && Boolean.parseBoolean(m.group(5)), data,
                    m.group(7) == null ? -1 : Long.parseLong(m.group(7)));
            Extent last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (last != null && last.continuedBy(e)) {
                out.set(out.size() - 1, new Extent(last.start, last.length + e.length, last.depth, last.present,
                        last.zero, last.data, last.offset));
            } else {
                out.add(e);
            }
        }
        assertFalse(out.isEmpty(), "no extents in qemu-img map of " + image);
        return out;
    }
}
