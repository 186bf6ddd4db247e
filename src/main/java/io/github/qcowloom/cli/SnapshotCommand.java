package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.ReferencedFileLocks;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.snapshot.Snapshots;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code snapshot [-l | -c NAME | -a NAME | -d NAME] [-q] [-U] [--profile P] FILE}, as qemu-img snapshot (which
 * takes no format option: the format is probed):
 * {@code -a} finds a snapshot by id, then by name; {@code -d} by name only; {@code -c} allows names that exist
 * already; with no action the image is opened and nothing is done. Like qemu-img, it never opens the backing
 * file.
 */
@Command(description = "List, create, apply or delete internal snapshots.")
final class SnapshotCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "-l", description = "List the snapshots.")
    boolean list;

    @Option(names = "-c", paramLabel = "NAME", description = "Create a snapshot.")
    String create;

    @Option(names = "-a", paramLabel = "NAME", description = "Apply a snapshot (id or name): the image becomes it.")
    String apply;

    @Option(names = "-d", paramLabel = "NAME", description = "Delete a snapshot (by name).")
    String delete;

    @Option(names = "-q", description = "Quiet.")
    boolean quiet;

    @Option(names = {"-U", "--force-share"}, description = "Share the image with writers (listing only, as qemu-img).")
    boolean forceShare;

    @Mixin
    ProfileOption profile = new ProfileOption();

    @Option(names = "--image-opts", description = ImageOpts.HELP)
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

    @Parameters(index = "0", paramLabel = "FILE")
    String filename;

    @Override
    public Integer call() throws IOException {
        if (Stream.of(create, apply, delete).filter(a -> a != null).count() + (list ? 1 : 0) > 1) {
            throw new ImageException("Cannot mix '-l', '-a', '-c', '-d'");
        }
        ImageOpts image = ImageOpts.of(imageOpts, filename, null, objects);
        if (!list) {
            image.requireWritable();
        }
        Path path = image.path();
        String fmt = image.formatOrProbe(list ? null : spec.commandLine().getErr());
        if (!fmt.equals("qcow2")) {
            return withoutSnapshots(fmt);
        }
        OpenOptions base = list ? OpenOptions.readOnlyDefaults() : OpenOptions.readWriteDefaults();
        if (create != null || delete != null) {
            // They change no guest data: the image's persistent bitmaps stay consistent, as under qemu-img.
            base = base.withGuestWrites(false);
        }
        if (forceShare && !list) {
            throw new ImageException("Could not open '" + filename + "': force-share=on can only be used with"
                    + " read-only images");
        }
        if (forceShare) {
            base = base.withLocking(ImageLocking.FORCE_SHARE);
        }
        OpenOptions options = image.apply(profile.apply(base)).withFollowReferences(false);
        // qemu-img opens the backing chain too: a backing file that does not open, or whose passphrase is missing,
        // fails the command.
        Qcow2Image.requireOpenable(path, image.spec(), options);
        // The chain is not read, yet held as qemu-img holds it: a writer of the backing file refuses the command.
        try (Qcow2Image img = (Qcow2Image) image.open("qcow2", options);
                ReferencedFileLocks chain = lockChain(path, img, options)) {
            if (list) {
                // QEMU lists nothing for an image with an external data file (it refuses its snapshots).
                List<Snapshot> snapshots = img.header().hasDataFile() ? List.of() : Snapshots.list(img);
                if (!snapshots.isEmpty()) {
                    spec.commandLine().getOut().print(SnapshotListing.of(snapshots));
                }
            } else if (create != null) {
                run("Could not create snapshot '" + create + "': ", () -> Snapshots.create(img, create));
            } else if (apply != null) {
                // before the name is looked up, as QEMU's bdrv_snapshot_goto refuses it
                run("Could not apply snapshot '" + apply + "': ", img::refuseApplyUnderDisabledBitmaps);
                Optional<Snapshot> s = Snapshots.findByIdOrName(Snapshots.list(img), apply);
                String failed = "Could not apply snapshot '" + apply + "': Failed to load snapshot: ";
                if (s.isEmpty()) {
                    throw new ImageException(failed + "No such file or directory");
                }
                run(failed, () -> Snapshots.apply(img, s.get()));
            } else if (delete != null) {
                Optional<Snapshot> s = Snapshots.findByName(Snapshots.list(img), delete);
                if (s.isEmpty()) {
                    throw new ImageException("Could not delete snapshot '" + delete + "': snapshot not found");
                }
                run("Could not delete snapshot '" + delete + "': ", () -> Snapshots.delete(img, s.get()));
            }
        }
        return 0;
    }

    /** A snapshot operation; its failure is reported with qemu-img's prefix for the action. */
    @FunctionalInterface
    private interface Action {
        void run() throws IOException;
    }

    private static void run(String prefix, Action action) throws IOException {
        try {
            action.run();
        } catch (ImageException e) {
            throw new ImageException(prefix + Main.message(e), e);
        }
    }

    /** qemu-img's answers for a format without internal snapshots (raw). */
    private Integer withoutSnapshots(String fmt) throws IOException {
        if (!fmt.equals("raw")) {
            throw new UnsupportedFeatureException("format " + fmt, "Unknown file format '" + fmt + "'");
        }
        if (create != null) {
            // qemu-img's words: its bdrv_snapshot_create's -ENOTSUP printed as a number, then strerror
            throw new ImageException("Could not create snapshot '" + create + "': -95 (Operation not supported)");
        }
        if (apply != null) {
            throw new ImageException("Could not apply snapshot '" + apply
                    + "': Block driver does not support snapshots");
        }
        if (delete != null) {
            throw new ImageException("Could not delete snapshot '" + delete + "': snapshot not found");
        }
        return 0;
    }

    /** The backing chain's and data file's locks, as qemu-img takes them when it opens the image for a snapshot. */
    private ReferencedFileLocks lockChain(Path path, Qcow2Image img, OpenOptions options) throws IOException {
        try {
            return ReferencedFileLocks.acquire(path, img.header(), options.locking(), options.readOnly());
        } catch (ImageLockedException e) {
            throw e.withContext("Could not open '" + filename + "': ");
        }
    }
}
