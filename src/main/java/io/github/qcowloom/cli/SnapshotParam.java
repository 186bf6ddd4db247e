package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.snapshot.SnapshotNotFoundException;
import io.github.qcowloom.snapshot.Snapshots;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The internal snapshot that convert and measure read in place of the active image, and serve exports ({@code -l}),
 * as qemu-img and qemu-nbd take it: either {@code snapshot.id=ID,snapshot.name=NAME} (either key or both, which must then name the same
 * snapshot), or anything else, an id or, failing that, a name (bdrv_snapshot_load_tmp_by_id_or_name).
 *
 * @param id the id asked for, or null
 * @param name the name asked for, or null
 * @param idOrName the plain argument, or null when the keys were given
 */
record SnapshotParam(String id, String name, String idOrName) {
    private static final String PREFIX = "snapshot.";

    /**
     * Parses {@code -l}'s value as qemu-img and qemu-nbd do (QemuOpts for the keys, with ",," for a comma in a
     * value); refused as they refuse it, on two lines each with the program's name: QemuOpts' complaint, then the
     * command's own, its value quoted from {@code openingQuote} (qemu-img's {@code '}, qemu-nbd's {@code `}).
     */
    static SnapshotParam parse(String value, char openingQuote) {
        if (!value.startsWith(PREFIX)) {
            return new SnapshotParam(null, null, value);
        }
        String id = null;
        String name = null;
        for (Map.Entry<String, String> option : CreateOptionsParser.keyValues(value).entrySet()) {
            String key = option.getKey();
            switch (key) {
                case "snapshot.id" -> id = option.getValue();
                case "snapshot.name" -> name = option.getValue();
                default -> throw new IllegalArgumentException("Invalid parameter '" + key + "'\nqcow2-loom: Failed"
                        + " in parsing snapshot param " + openingQuote + value + "'");
            }
        }
        return new SnapshotParam(id, name, null);
    }

    /**
     * Makes {@code image} (open read-only) read as the snapshot, as qemu-img's bdrv_snapshot_load_tmp; its words
     * when it cannot.
     */
    void load(BlockDevice image) throws IOException {
        if (!(image instanceof Qcow2Image qcow2)) {
            throw new ImageException("Failed to load snapshot: Block format 'raw' used by device '' does not support"
                    + " temporarily loading internal snapshots");
        }
        Snapshot snapshot = find(qcow2.snapshots()).orElseThrow(
                () -> new SnapshotNotFoundException("Failed to load snapshot: Can't find snapshot"));
        try {
            qcow2.viewSnapshot(snapshot);
        } catch (ImageException e) {
            throw new ImageException("Failed to load snapshot: " + e.getMessage(), e);
        }
    }

    /** QEMU's find_snapshot_by_id_and_name, or, for a plain argument, an id first and then a name. */
    private Optional<Snapshot> find(List<Snapshot> snapshots) {
        if (idOrName != null) {
            return Snapshots.findByIdOrName(snapshots, idOrName);
        }
        return snapshots.stream()
                .filter(s -> (id == null || s.id().equals(id)) && (name == null || s.name().equals(name)))
                .findFirst();
    }
}
