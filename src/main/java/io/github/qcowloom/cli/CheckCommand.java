package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.check.CheckFailedException;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.HumanReport;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.check.RepairMode;
import io.github.qcowloom.check.RepairOutcome;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code check [-f qcow2] [-r leaks|all] [--output=human|json] FILE}, as qemu-img check: findings on stderr, the
 * summary on stdout; exit 0 clean or repaired, 1 check failed, 2 corruptions, 3 leaks only, 63 unsupported.
 */
final class CheckCommand implements Callable<Integer>, QemuObjects.Holder {
    /** qemu-img's exit code for an image it cannot check. */
    static final int UNSUPPORTED = 63;

    String format;
    String repair;
    String output = "human";
    String cache = "writeback";
    boolean quiet;
    boolean forceShare;
    boolean imageOpts;
    String filename;

    final QemuObjects objects = new QemuObjects();
    final CommandSpec spec = CodeModel.of(this,
                    "Check an image's metadata for consistency, optionally repairing it.")
            .option("-f", "format", "Image format (probed when absent).", v -> format = v)
            .option("-r", "repair", "Repair: leaks, or all.", v -> repair = v)
            .option("--output", "output", "human (default) or json.", v -> output = v)
            .option("-T", "cache", "Cache mode of the image: writeback (page cache, the default) or none (O_DIRECT).",
                    v -> cache = v)
            .flag(new String[] {"-q"}, "Quiet: print nothing on stdout.", v -> quiet = v)
            .flag(new String[] {"-U", "--force-share"},
                    "Share the image with writers (plain check only, as qemu-img).", v -> forceShare = v)
            .repeatableOption("--object", "objectdef", QemuObjects.HELP, objects.definitions)
            .flag(new String[] {"--image-opts"}, ImageOpts.HELP,
                    v -> imageOpts = v)
            .parameter(0, "FILE", v -> filename = v)
            .spec();

    @Override
    public QemuObjects secretObjects() {
        return objects;
    }

    @Override
    public Integer call() throws IOException {
        boolean json = Json.requested(output);
        RepairMode mode = repair == null ? null : RepairMode.parse(repair);
        boolean direct;
        try {
            direct = CacheMode.direct(cache);
        } catch (IllegalArgumentException e) {
            throw new ImageException("Invalid source cache option: " + cache); // qemu-img's words for -T
        }
        ImageOpts image = ImageOpts.of(imageOpts, filename, format, objects);
        if (mode != null) {
            image.requireWritable();
        }
        Path path = image.path();
        String fmt = image.formatOrProbe(mode != null ? spec.commandLine().getErr() : null);
        // --image-opts: what it says of the cache, the lock and read-only over -T and -U
        OpenOptions opened = image.apply(OpenOptions.readOnlyDefaults().withReadOnly(mode == null).withDirect(direct)
                .withLocking(forceShare ? ImageLocking.FORCE_SHARE : ImageLocking.DEFAULT));
        direct = opened.direct();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (!fmt.equals("qcow2")) {
            err.println("qcow2-loom: This image format does not support checks");
            return UNSUPPORTED;
        }
        // A repair opens an image marked corrupt read-write (QEMU's BDRV_O_CHECK), to repair it and clear the mark.
        Qcow2Image.requireOpenable(path, image.spec(), opened.withReadOnly(true));
        CheckResult result;
        List<String> lines;
        try {
            if (mode == null) {
                result = ImageChecker.check(path, image.fileName(), opened.locking(), direct);
                lines = result.messages();
            } else {
                if (opened.locking() == ImageLocking.FORCE_SHARE) {
                    throw new ImageException("Could not open '" + filename + "': force-share=on can only be used"
                            + " with read-only images");
                }
                RepairOutcome o = ImageChecker.repair(path, image.fileName(), mode, direct, opened.locking());
                result = o.result();
                lines = o.messages();
            }
        } catch (UnsupportedFeatureException e) {
            err.println("qcow2-loom: " + e.getMessage());
            return UNSUPPORTED;
        } catch (CheckFailedException e) {
            // As qemu-img: the lines found so far, the error, exit 1, and no summary on stdout.
            e.messages().forEach(err::println);
            err.println("qcow2-loom: " + e.getMessage());
            return 1;
        }
        lines.forEach(err::println);
        err.flush();
        if (quiet) {
            // nothing on stdout, as qemu-img's -q (the findings above stay: its driver prints them to stderr)
        } else if (json) {
            out.println(Json.write(result.fields()));
        } else {
            if (result.corruptionsFixed() != 0 || result.leaksFixed() != 0) {
                out.print(HumanReport.repaired(result));
            }
            out.print(HumanReport.of(result));
        }
        if (result.checkErrors() != 0) {
            err.println("qcow2-loom: Check failed");
        }
        return result.exitCode();
    }
}
