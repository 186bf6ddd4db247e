package io.github.qcowloom.alloc;

import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Test fixture: an image file opened the way the recount sees it (header, snapshots, refcount table). */
final class RecountImage implements AutoCloseable {
    final FileStorage file;
    final Header header;
    final List<Snapshot> snapshots;
    final TableCache cache;
    final RefcountTable table;

    private RecountImage(FileStorage file) throws IOException {
        this.file = file;
        long length = file.size();
        byte[] first = read(file, 0, (int) Math.min(length, Limits.V3_HEADER_LENGTH));
        int clusterBits = Header.peekClusterBits(first);
        this.header = Header.parse(read(file, 0, (int) Math.min(length, 1L << clusterBits)), length);
        this.snapshots = header.nbSnapshots() == 0 ? List.of()
                : SnapshotTable.parse((off, len) -> read(file, off, len), header.snapshotsOffset(),
                        header.nbSnapshots(), length);
        this.cache = new TableCache(file, (int) Math.min(header.clusterSize(), 4096), 64);
        this.table = new RefcountTable(file, header, cache);
    }

    static RecountImage open(Path path, boolean writable) throws IOException {
        return new RecountImage(FileStorage.open(path, !writable, false));
    }

    ReferenceCount recount() throws IOException {
        return ReferenceCount.compute(file, header, snapshots);
    }

    RefcountComparison compare() throws IOException {
        return RefcountComparison.compare(recount(), table);
    }

    /** Writes the dirty refblock slices and syncs, as the image's flush does. */
    void writeBack() throws IOException {
        cache.writeBack(cache.copyDirty());
        file.flush();
    }

    /** Clears the dirty bit in the header (what a repaired open does after the recount). */
    void clearDirty() throws IOException {
        if (header.version() == 3 && header.dirty()) {
            byte[] b = new byte[8];
            Bytes.putLong(b, 0, header.incompatibleFeatures() & ~1L);
            file.write(ByteBuffer.wrap(b), 72);
            file.flush();
        }
    }

    /** The L2 table offset in active L1 entry {@code index}. */
    long l2TableOffset(int index) throws IOException {
        return peekLong(header.l1TableOffset() + 8L * index) & 0x00fffffffffffe00L;
    }

    long peekLong(long offset) throws IOException {
        return Bytes.getLong(read(file, offset, 8), 0);
    }

    void pokeLong(long offset, long value) throws IOException {
        byte[] b = new byte[8];
        Bytes.putLong(b, 0, value);
        file.write(ByteBuffer.wrap(b), offset);
        file.flush();
    }

    @Override
    public void close() throws IOException {
        file.close();
    }

    private static byte[] read(FileStorage file, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        file.readFully(ByteBuffer.wrap(b), offset);
        return b;
    }

    /** qemu-img check --output=json: its exit code and the "leaks" and "corruptions" numbers (0 when absent). */
    record QemuCheck(int exitCode, int leaks, int corruptions, String output) {
        static QemuCheck of(Path image) {
            Qemu.Result r = Qemu.exec(List.of("qemu-img", "check", "--output=json", image.toString()));
            return new QemuCheck(r.exitCode(), number(r.stdout(), "leaks"), number(r.stdout(), "corruptions"),
                    r.stdout() + r.stderr());
        }

        private static int number(String json, String key) {
            Matcher m = Pattern.compile("\"" + key + "\"\\s*:\\s*(\\d+)").matcher(json);
            return m.find() ? Integer.parseInt(m.group(1)) : 0;
        }

        boolean clean() {
            return exitCode == 0 && leaks == 0 && corruptions == 0;
        }
    }
}
