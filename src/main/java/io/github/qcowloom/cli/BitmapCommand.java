package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.bitmap.BitmapAction;
import io.github.qcowloom.bitmap.BitmapActionException;
import io.github.qcowloom.bitmap.Bitmaps;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b SOURCE_FILE [-F
 * SOURCE_FMT]] [-g GRANULARITY] [-f FMT] FILE BITMAP}, as qemu-img bitmap: the steps are applied to BITMAP in the
 * order given, and what the steps before a refused one made is kept, as qemu-img keeps it. {@code --add} makes an
 * empty, enabled bitmap of GRANULARITY bytes a bit (by default the cluster size, between 4 KiB and 64 KiB);
 * {@code --merge} sets the bits SOURCE has set, SOURCE being a bitmap of FILE or, with {@code -b}, of SOURCE_FILE.
 * The image is opened for its metadata only: no guest data changes, so its other bitmaps stay as they were.
 */
@Command(description = "Add, remove, clear, enable, disable or merge an image's persistent dirty bitmaps.")
final class BitmapCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--add", description = "Add BITMAP: empty and enabled.")
    boolean[] add;

    @Option(names = "--remove", description = "Remove BITMAP.")
    boolean[] remove;

    @Option(names = "--clear", description = "Clear every bit of BITMAP.")
    boolean[] clear;

    @Option(names = "--enable", description = "Enable BITMAP: QEMU records the guest's writes in it.")
    boolean[] enable;

    @Option(names = "--disable", description = "Disable BITMAP.")
    boolean[] disable;

    @Option(names = "--merge", paramLabel = "SOURCE", description = "Set in BITMAP the bits SOURCE has set.")
    List<String> merge;

    @Option(names = "-g", paramLabel = "GRANULARITY", description = "The bytes one bit of an added bitmap covers.")
    String granularity;

    @Option(names = "-b", paramLabel = "SOURCE_FILE", description = "The image whose bitmaps --merge reads.")
    String sourceFile;

    @Option(names = "-F", paramLabel = "SOURCE_FMT", description = "SOURCE_FILE's format (probed when absent).")
    String sourceFormat;

    @Option(names = "-f", paramLabel = "FMT", description = "FILE's format (probed when absent).")
    String format;

    @Option(names = "--image-opts", description = ImageOpts.HELP)
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

    @Mixin
    ProfileOption profile = new ProfileOption();

    @Parameters(arity = "0..*", paramLabel = "FILE BITMAP")
    List<String> args = List.of();

    @Override
    public Integer call() throws IOException {
        long bytesPerBit = granularity == null ? 0 : Sizes.cvtnum("granularity", granularity);
        List<String> steps = steps();
        // qemu-img's checks, in its order.
        if (steps.isEmpty()) {
            throw new IllegalArgumentException(
                    "Need at least one of --add, --remove, --clear, --enable, --disable, or --merge");
        }
        if (bytesPerBit != 0 && !steps.contains("--add")) {
            throw new IllegalArgumentException("granularity only supported with --add");
        }
        if (sourceFormat != null && sourceFile == null) {
            throw new IllegalArgumentException("-F only supported with -b");
        }
        if (sourceFile != null && merge == null) {
            throw new IllegalArgumentException("Merge bitmap source file only supported with --merge");
        }
        if (args.size() != 2) {
            throw new IllegalArgumentException("Expecting filename and bitmap name");
        }
        ImageOpts named = ImageOpts.of(imageOpts, args.get(0), format, objects).requireWritable();
        Path path = named.path();
        String filename = named.fileName();
        List<BitmapAction> actions = actions(steps, args.get(1), bytesPerBit);
        String fmt = named.formatOrProbe(spec.commandLine().getErr());
        if (!fmt.equals("qcow2")) {
            return withoutBitmaps(fmt, filename, actions.getFirst());
        }
        // No guest data changes: the image's other bitmaps stay consistent, as under qemu-img. Nor is any read, so
        // the image opens without its backing file, as qemu-img's bitmap opens it (BDRV_O_NO_BACKING): one that is
        // missing, or encrypted with no passphrase given, does not matter. Its data file is opened, as there.
        OpenOptions options = named.apply(profile.apply(OpenOptions.readWriteDefaults().withGuestWrites(false)
                .withBackingChain(false)));
        if (named.hasBackingOptions()) {
            // qemu-img's bitmap opens the image without its backing file: options for one are left over, refused
            // after what the image's own open refuses
            Qcow2Image.requireOpenable(path, named.spec(), options);
            named.refuseBackingOptions();
        }
        try (Qcow2Image image = (Qcow2Image) named.open("qcow2", options);
                BlockDevice source = sourceFile == null ? null : openSource()) {
            // QEMU loads the bitmaps as it opens an image, and refuses one whose bitmaps it cannot load.
            if (source instanceof Qcow2Image q) {
                ImageInfo.persistentBitmaps(q, sourceFile);
            }
            ImageInfo.persistentBitmaps(image, filename);
            Bitmaps.apply(image, filename, actions, source);
        } catch (BitmapActionException e) {
            throw new ImageException(failed(e.action(), e.getMessage()), e);
        }
        return 0;
    }

    /** The action options in the order given, each once per time given. */
    private List<String> steps() {
        List<String> steps = new ArrayList<>();
        for (ArgSpec arg : spec.commandLine().getParseResult().matchedArgs()) {
            if (arg instanceof OptionSpec o && o.longestName().matches("--(add|remove|clear|enable|disable|merge)")) {
                steps.add(o.longestName());
            }
        }
        return steps;
    }

    private List<BitmapAction> actions(List<String> steps, String bitmap, long bytesPerBit) {
        Iterator<String> sources = merge == null ? null : merge.iterator();
        // QEMU's block-dirty-bitmap-add takes a uint32: qemu-img's value is cut to 32 bits, and one cut to 0 is
        // refused as under 512 bytes, not taken for the default (1 is refused in the same words).
        long granularity = bytesPerBit == 0 ? 0 : Math.max(1, bytesPerBit & 0xffffffffL);
        List<BitmapAction> actions = new ArrayList<>();
        for (String step : steps) {
            actions.add(switch (step) {
                case "--add" -> new BitmapAction.Add(bitmap, granularity);
                case "--remove" -> new BitmapAction.Remove(bitmap);
                case "--clear" -> new BitmapAction.Clear(bitmap);
                case "--enable" -> new BitmapAction.Enable(bitmap);
                case "--disable" -> new BitmapAction.Disable(bitmap);
                default -> new BitmapAction.Merge(sources.next(), bitmap);
            });
        }
        return actions;
    }

    private BlockDevice openSource() throws IOException {
        String context = "Could not open '" + sourceFile + "': ";
        String file = ProtocolNames.localFile(sourceFile, context);
        Path path = Path.of(file);
        if (!Files.exists(path)) {
            // An option's file: Main words only those named as parameters as qemu-img's img_open does.
            throw new ImageException(context + Main.message(new NoSuchFileException(file)));
        }
        String fmt = sourceFormat != null ? sourceFormat : ImageFormat.probe(path);
        return ImageFormat.open(path, fmt, profile.apply(OpenOptions.readOnlyDefaults()));
    }

    private static String failed(BitmapAction action, String why) {
        return "Operation " + action.operation() + " on bitmap " + action.bitmap() + " failed: " + why;
    }

    /** qemu-img's answer for a format that keeps no bitmaps (raw): the first step fails. */
    private Integer withoutBitmaps(String fmt, String filename, BitmapAction first) throws IOException {
        if (!fmt.equals("raw")) {
            throw new UnsupportedFeatureException("format " + fmt, "Unknown file format '" + fmt + "'");
        }
        ImageFormat.open(Path.of(filename), fmt, OpenOptions.readWriteDefaults()).close(); // its lock, its errors
        String why = first instanceof BitmapAction.Add ? "Can't store persistent bitmaps to " + filename
                + ": Operation not supported" : "Dirty bitmap '" + first.bitmap() + "' not found";
        throw new ImageException(failed(first, why));
    }
}
