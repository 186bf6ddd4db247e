package io.github.qcowloom.crashkit;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshots;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Test fixture: a qcow2 image on a {@link CrashSimStorage} with the {@link GuestHistory} of its workload. */
final class CrashDisk {
    final CrashSimStorage sim;
    final GuestHistory history;
    final Qcow2Image img;
    final int clusterSize;
    final long size;
    /** Names of the snapshots that exist, in creation order. */
    final List<String> snapshots = new ArrayList<>();
    private int snapshotsCreated;
    private final String layout;

    CrashDisk(CreateOptions create, boolean pool) throws IOException {
        Path dir = Files.createTempDirectory("crashkit");
        Path file = dir.resolve("c.qcow2");
        try {
            ImageCreator.create(file, create);
            sim = new CrashSimStorage(Files.readAllBytes(file));
        } finally {
            Files.deleteIfExists(file);
            Files.delete(dir);
        }
        history = new GuestHistory(create.size());
        img = Qcow2Image.open(sim, null, OpenOptions.readWriteDefaults().withPool(pool));
        clusterSize = create.clusterSize();
        size = create.size();
        layout = "cluster " + clusterSize + ", size " + size + ", lazy " + create.lazyRefcounts() + ", pool " + pool;
    }

    void write(long offset, int length) throws IOException {
        img.write(offset, ByteBuffer.wrap(history.write(offset, length)));
    }

    /** A compressed write of whole clusters (the history's patterns compress well). */
    void writeCompressed(long offset, int length) throws IOException {
        img.writeCompressed(offset, ByteBuffer.wrap(history.write(offset, length)));
    }

    /** Discards; the model zeroes only whole clusters (and the partial last one), as QEMU does. */
    void discard(long offset, long length) throws IOException {
        img.discard(offset, length);
        long end = offset + length;
        long from = Bytes.alignUp(offset, clusterSize);
        long to = end == size ? end : end / clusterSize * clusterSize;
        if (to > from) {
            history.zero(from, to - from);
        }
    }

    void writeZeroes(long offset, long length, boolean unmap) throws IOException {
        img.writeZeroes(offset, length, unmap);
        history.zero(offset, length);
    }

    /** Grows the disk by {@code bytes}; the history models only the original sectors, the rest must read zero. */
    void grow(long bytes) throws IOException {
        long newSize = img.size() + bytes;
        img.resize(newSize);
        history.resized(newSize);
    }

    void flush() throws IOException {
        img.flush();
        history.flushed(sim.flushCount());
    }

    /** Creates a snapshot with a name not used before in this workload; returns the name. */
    String createSnapshot() throws IOException {
        String name = "s" + ++snapshotsCreated;
        long before = sim.flushCount();
        Snapshots.create(img, name);
        history.snapshotCreated(name, before, sim.flushCount());
        snapshots.add(name);
        return name;
    }

    void deleteSnapshot(String name) throws IOException {
        long before = sim.flushCount();
        Snapshots.delete(img, Snapshots.findByName(Snapshots.list(img), name).orElseThrow());
        history.snapshotDeleted(name, before, sim.flushCount());
        snapshots.remove(name);
    }

    void applySnapshot(String name) throws IOException {
        long before = sim.flushCount();
        Snapshots.apply(img, Snapshots.findByName(Snapshots.list(img), name).orElseThrow());
        history.snapshotApplied(name, before, sim.flushCount());
    }

    @Override
    public String toString() {
        return "CrashDisk[" + layout + "]";
    }
}
