package io.github.qcowloom.testing;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.bitmap.BitmapAction;
import io.github.qcowloom.bitmap.Bitmaps;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.image.BitmapBits;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Persistent bitmaps of image files in tests: QEMU's reading of their bits, and bitmaps left in use. */
public final class BitmapFiles {
    private BitmapFiles() {
    }

    /**
     * A new qcow2 image made by this driver (at {@code scratch}), as its bytes: {@code size} bytes of
     * {@code clusterSize} clusters, with an enabled bitmap "on" and a disabled one "off" of the granularities given.
     */
    public static byte[] freshWithBitmaps(Path scratch, long size, int clusterSize, long onGranularity,
            long offGranularity) throws IOException {
        Files.deleteIfExists(scratch);
        ImageCreator.create(scratch, CreateOptions.defaults(size).withClusterSize(clusterSize));
        MemoryStorage memory = new MemoryStorage(Files.readAllBytes(scratch));
        try (Qcow2Image img = Qcow2Image.open(memory, null,
                OpenOptions.readWriteDefaults().withGuestWrites(false).withPool(false))) {
            Bitmaps.apply(img, "fresh", List.of(new BitmapAction.Add("on", onGranularity),
                    new BitmapAction.Add("off", offGranularity), new BitmapAction.Disable("off")), null);
        }
        return memory.snapshot();
    }

    /**
     * Makes {@code image}, a qcow2 image of {@code size} with three bitmaps QEMU filled by writing: b0 (64 KiB), fine
     * (4 KiB) and coarse (1 MiB), the last write reaching the disk's end.
     */
    public static Path qemuImageWithBitmaps(Path image, String size, String clusterSize) {
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=" + clusterSize, image.toString(), size);
        Qemu.img("bitmap", "--add", image.toString(), "b0");
        Qemu.img("bitmap", "--add", "-g", "4096", image.toString(), "fine");
        Qemu.img("bitmap", "--add", "-g", "1M", image.toString(), "coarse");
        long end = Long.parseLong(Qemu.img("info", "--output=json", image.toString())
                .replaceAll("(?s).*\"virtual-size\": ([0-9]+).*", "$1"));
        Qemu.io(image, "write 0 64k", "write 1M 4k", "write 3000k 7k", "write " + (end - (1 << 20)) + " 1M");
        return image;
    }

    /**
     * The ranges QEMU reads as dirty in {@code bitmap} of {@code image} (qemu-nbd's dirty-bitmap context, mapped by
     * qemu-img map), as the map's lines: QEMU's own reading of the bits.
     */
    public static String qemuDirtyMap(Path image, String bitmap) throws Exception {
        Path scratch = Files.createTempDirectory("dirty-map");
        Path socket = scratch.resolve("nbd.sock");
        Path pid = scratch.resolve("nbd.pid");
        // --fork returns once the server listens; it exits when its one client has gone.
        Qemu.run(List.of("qemu-nbd", "--fork", "--pid-file", pid.toString(), "-r", "-f", "qcow2", "-B", bitmap, "-k",
                socket.toString(), image.toString()));
        try {
            return dirtyMapAt(socket, bitmap);
        } finally {
            ProcessHandle.of(Long.parseLong(Files.readString(pid).trim())).ifPresent(ProcessHandle::destroy);
            Files.deleteIfExists(socket);
            Files.deleteIfExists(pid);
            Files.delete(scratch);
        }
    }

    /**
     * The ranges dirty in {@code bitmap} of the NBD export at {@code socket}, as qemu-img map shows them (a block
     * status of one extent at a time, from wherever the last ended), as the map's lines.
     */
    public static String dirtyMapAt(Path socket, String bitmap) {
        String map = Qemu.img("map", "--output=json", "--image-opts", "driver=nbd,server.type=unix,server.path="
                + socket + ",x-dirty-bitmap=qemu:dirty-bitmap:" + bitmap);
        // Dirty ranges are the ones reported without data.
        return map.lines().filter(l -> l.contains("\"data\": false")).toList().toString();
    }

    /**
     * Each bitmap of {@code image} not in use, as the runs of guest bytes its set bits cover (start, end, start, ...),
     * read by this driver, the image opened with {@code options} (read-only; a key for an encrypted one).
     */
    public static Map<String, List<Long>> dirtyRuns(Path image, OpenOptions options) throws IOException {
        Map<String, List<Long>> all = new LinkedHashMap<>();
        try (Qcow2Image img = Qcow2Image.open(image, options)) {
            for (BitmapDirectory.Entry e : img.persistentBitmaps()) {
                if (e.inUse()) {
                    continue;
                }
                BitmapBits b = img.bitmapBits(e);
                List<Long> runs = new ArrayList<>();
                for (long i = b.nextSet(0, b.count()); i < b.count(); i = b.nextSet(i, b.count())) {
                    long end = b.nextClear(i, b.count());
                    runs.add(i << b.granularityBits());
                    runs.add(Math.min(end << b.granularityBits(), b.diskSize()));
                    i = end;
                }
                all.put(e.name(), runs);
            }
        }
        return all;
    }

    /** The bitmaps part of qemu-img info's answer for {@code image}: names, flags, granularities. */
    public static String qemuInfoBitmaps(Path image) {
        String info = Qemu.img("info", image.toString());
        int at = info.indexOf("    bitmaps:\n");
        return at < 0 ? "" : info.substring(at, info.indexOf("    refcount bits:"));
    }

    /** Sets the in-use flag of every bitmap of {@code image}, as a writer that did not store them leaves them. */
    public static void markAllInUse(Path image) throws IOException {
        long directory;
        List<BitmapDirectory.Entry> entries;
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            directory = img.bitmapDirectory().orElseThrow().offset();
            entries = img.persistentBitmaps();
        }
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
            for (BitmapDirectory.Entry e : entries) {
                ch.write(ByteBuffer.allocate(4).putInt(0, e.inUseFlags()), directory + e.flagsPosition());
            }
        }
    }
}
