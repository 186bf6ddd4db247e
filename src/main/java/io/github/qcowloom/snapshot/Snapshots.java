package io.github.qcowloom.snapshot;

import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.TableEditor;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Optional;

/**
 * Internal snapshots of an open qcow2 image, as QEMU keeps them: list, create, apply (QEMU's goto) and delete.
 * Each change runs with the image held exclusively, so the image stays online: requests that arrive meanwhile
 * wait and then continue. Each writes in QEMU's crash-safe order, so that a crash leaves either the old state or
 * the new one, and at worst leaked clusters.
 */
public final class Snapshots {
    /** QEMU keeps names in a char[256] (QEMUSnapshotInfo), so longer names are cut to 255 bytes. */
    static final int MAX_NAME_BYTES = 255;

    private Snapshots() {
    }

    /** The image's snapshots in table order. */
    public static List<Snapshot> list(Qcow2Image image) {
        return image.snapshots();
    }

    /** QEMU's find_snapshot_by_id_or_name, as goto (qemu-img snapshot -a) looks up: an id first, then a name. */
    public static Optional<Snapshot> findByIdOrName(List<Snapshot> snapshots, String idOrName) {
        return snapshots.stream().filter(s -> s.id().equals(idOrName)).findFirst()
                .or(() -> findByName(snapshots, idOrName));
    }

    /** The first snapshot called {@code name}, as qemu-img snapshot -d looks up (bdrv_snapshot_find). */
    public static Optional<Snapshot> findByName(List<Snapshot> snapshots, String name) {
        return snapshots.stream().filter(s -> s.name().equals(name)).findFirst();
    }

    /** Creates a snapshot of the image as it is now, dated now. */
    public static Snapshot create(Qcow2Image image, String name) throws IOException {
        return create(image, name, Instant.now());
    }

    /**
     * Creates a snapshot called {@code name} (cut to 255 bytes, as QEMU does; names need not be unique, as in
     * qemu-img) with the next free numeric id, dated {@code date} to the microsecond, with no VM state. Returns the
     * entry as written.
     *
     * @throws io.github.qcowloom.api.RefcountOverflowException when the refcount width cannot count one more
     *     reference (an image with 1-bit refcounts and any data); the image is unchanged then
     * @throws io.github.qcowloom.api.ImageTooLargeException when the image has 65 536 snapshots already
     */
    public static Snapshot create(Qcow2Image image, String name, Instant date) throws IOException {
        return create(image, name, date, Breakage.NONE);
    }

    /** {@link #create(Qcow2Image, String, Instant)}, with {@code breakage} (for the test that breaks the order). */
    static Snapshot create(Qcow2Image image, String name, Instant date, Breakage breakage) throws IOException {
        String stored = cName(name);
        return image.editTables(tables -> CreateSnapshot.run(tables, stored, date, breakage));
    }

    /**
     * Writes the snapshot table anew with every entry as QEMU writes one (version 3's extra data: the VM state's
     * 64-bit size and the disk size, an entry that lacked it taking the image's size), as qemu-img amend's upgrade
     * to compat=1.1 does (qcow2_upgrade).
     */
    public static void rewriteTable(Qcow2Image image) throws IOException {
        image.editTables(tables -> {
            SnapshotTableWriter.write(tables, tables.snapshots(), Breakage.NONE);
            return null;
        });
    }

    /** Makes the snapshot's contents (and virtual size) the image's; the snapshot stays. */
    public static void apply(Qcow2Image image, Snapshot snapshot) throws IOException {
        apply(image, snapshot, Breakage.NONE);
    }

    /** {@link #apply(Qcow2Image, Snapshot)}, with {@code breakage} (for the test that breaks the apply). */
    static void apply(Qcow2Image image, Snapshot snapshot, Breakage breakage) throws IOException {
        image.editTables(tables -> {
            ApplySnapshot.run(tables, snapshot, breakage);
            return null;
        });
    }

    /** Deletes the snapshot, freeing the clusters only it held. */
    public static void delete(Qcow2Image image, Snapshot snapshot) throws IOException {
        delete(image, snapshot, Breakage.NONE);
    }

    /** {@link #delete(Qcow2Image, Snapshot)}, with {@code breakage} (for the tests that break the order). */
    static void delete(Qcow2Image image, Snapshot snapshot, Breakage breakage) throws IOException {
        image.editTables(tables -> {
            DeleteSnapshot.run(tables, snapshot, breakage);
            return null;
        });
    }

    /** The entry with {@code wanted}'s id and name in the table as it is now (QEMU's find_snapshot_by_id_and_name). */
    static Snapshot current(TableEditor tables, Snapshot wanted) throws SnapshotNotFoundException {
        return tables.snapshots().stream().filter(s -> s.id().equals(wanted.id()) && s.name().equals(wanted.name()))
                .findFirst().orElseThrow(() -> new SnapshotNotFoundException("Can't find the snapshot (id "
                        + wanted.id() + ", name '" + wanted.name() + "')"));
    }

    /** QEMU refuses internal snapshots in images with an external data file. */
    static void requireNoDataFile(Header header) throws UnsupportedFeatureException {
        if (header.hasDataFile()) {
            throw new UnsupportedFeatureException("internal snapshots with an external data file",
                    "Internal snapshots are not supported in images with an external data file");
        }
    }

    /** The name as QEMU stores it: a C string (up to a NUL), at most 255 bytes, not cut inside a character. */
    static String cName(String name) {
        int nul = name.indexOf('\0');
        String s = nul >= 0 ? name.substring(0, nul) : name;
        int bytes = 0;
        for (int i = 0; i < s.length(); i = s.offsetByCodePoints(i, 1)) {
            bytes += new String(Character.toChars(s.codePointAt(i))).getBytes(StandardCharsets.UTF_8).length;
            if (bytes > MAX_NAME_BYTES) {
                return s.substring(0, i);
            }
        }
        return s;
    }
}
