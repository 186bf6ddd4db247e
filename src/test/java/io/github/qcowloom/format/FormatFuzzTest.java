package io.github.qcowloom.format;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.testing.FuzzInputs;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;

/**
 * Fuzz targets for the two variable-length tables of the format, parsed alone from bytes as they are in a file:
 * the snapshot table (as open and {@code check -r all} read it) and the persistent-bitmap directory (as check
 * walks it). A typed {@link ImageException} may end a run; anything else escaping is a finding. Each fuzzer
 * input is a 4-byte prefix (the entry count, and for the snapshot table the repair switch in its top bit) and
 * then the table's bytes. Seeds are tables our encoder and qemu-img's layout give; {@code ./mvnw test -Pfuzz
 * -Dfuzz.class=FormatFuzzTest -Dfuzz.target=snapshotTable} fuzzes one.
 */
class FormatFuzzTest {
    @BeforeAll
    static void seeds() throws IOException {
        FuzzInputs.seed(FormatFuzzTest.class, "snapshotTable", "two-snapshots", withCount(2, SnapshotTable.encode(
                List.of(snapshot("1", "first", new byte[16]), snapshot("2", "second with a longer name",
                        new byte[24])))));
        FuzzInputs.seed(FormatFuzzTest.class, "snapshotTable", "v2-no-extra-repair", withCount(0x80000001,
                SnapshotTable.encode(List.of(snapshot("7", "v2", new byte[0])))));
        FuzzInputs.seed(FormatFuzzTest.class, "bitmapDirectory", "two-bitmaps", withCount(2, concat(
                bitmapEntry(0x50000, 4, 2, 16, "dirty", new byte[0]),
                bitmapEntry(0x60000, 1, 0, 20, "with extra data", new byte[12]))));
    }

    @FuzzTest
    void snapshotTable(byte[] data) throws IOException {
        if (data.length < 4) {
            return;
        }
        int head = ByteBuffer.wrap(data).getInt();
        boolean repair = head < 0;
        int count = (head & 0x7fffffff) % 65537; // QEMU's limit is 65536 snapshots
        byte[] table = Arrays.copyOfRange(data, 4, data.length);
        try {
            SnapshotTable.Contents c = SnapshotTable.read((offset, length) -> {
                if (offset < 0 || length < 0 || offset > table.length - length) {
                    throw new AssertionError("read of " + length + " bytes at " + offset + " outside the "
                            + table.length + "-byte table, which the parser was told");
                }
                return Arrays.copyOfRange(table, (int) offset, (int) offset + length);
            }, 0, count, table.length, repair);
            for (Snapshot s : c.snapshots()) {
                s.vmStateSize();
                s.diskSize();
            }
        } catch (ImageException e) {
            // Refused as corrupt or too large: the typed outcome.
        }
    }

    @FuzzTest
    void bitmapDirectory(byte[] data) {
        if (data.length < 4) {
            return;
        }
        long count = Integer.toUnsignedLong(ByteBuffer.wrap(data).getInt());
        byte[] dir = Arrays.copyOfRange(data, 4, data.length);
        BitmapDirectory d = BitmapDirectory.parse(dir, count);
        if (d.entries().size() > dir.length / BitmapDirectory.ENTRY_FIXED_BYTES) {
            throw new AssertionError(d.entries().size() + " entries from a " + dir.length + "-byte directory");
        }
        if (d.error() == null && d.entries().size() != count) {
            throw new AssertionError(d.entries().size() + " entries of " + count + " without an error");
        }
    }

    private static Snapshot snapshot(String id, String name, byte[] extra) {
        return new Snapshot(0x30000, 2, id, name, 1_700_000_000, 5, 123, 0, extra);
    }

    static byte[] bitmapEntry(long table, int entries, int flags, int granularityBits, String name,
            byte[] extra) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        int length = (int) Bytes.alignUp(BitmapDirectory.ENTRY_FIXED_BYTES + extra.length + n.length, 8);
        return ByteBuffer.allocate(length).putLong(table).putInt(entries).putInt(flags).put((byte) 1)
                .put((byte) granularityBits).putShort((short) n.length).putInt(extra.length).put(extra).put(n)
                .array();
    }

    private static byte[] withCount(int count, byte[] table) {
        return ByteBuffer.allocate(4 + table.length).putInt(count).put(table).array();
    }

    private static byte[] concat(byte[] a, byte[] b) {
        return ByteBuffer.allocate(a.length + b.length).put(a).put(b).array();
    }
}
