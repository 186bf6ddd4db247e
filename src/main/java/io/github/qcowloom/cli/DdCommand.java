package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code dd [-f FMT] [-O raw|qcow2] [-U] [bs=N] [count=N] [skip=N] if=INPUT of=OUTPUT}, as qemu-img dd (img_dd):
 * OUTPUT is created (raw by default) and given INPUT's bytes from {@code skip} blocks on, every byte written. As in
 * qemu-img, {@code count} blocks are counted from the start of INPUT, not from {@code skip}: the output holds
 * {@code min(count × bs, size) - skip × bs} bytes; a skip past the end warns and leaves the output empty. Blocks
 * are copied a run of them at a time; the bytes are the same.
 */
@Command(description = "Copy part of an image into a new one, as qemu-img dd does.")
final class DdCommand implements Callable<Integer> {
    /** The most copied at once: whole blocks up to this much. */
    private static final int RUN = 2 << 20;

    @Spec
    CommandSpec spec;

    @Option(names = "-f", paramLabel = "FMT", description = "INPUT's format (probed when absent).")
    String format;

    @Option(names = "-O", paramLabel = "FMT", description = "OUTPUT's format: raw (default) or qcow2.")
    String outputFormat = "raw";

    @Option(names = {"-U", "--force-share"}, description = "Share INPUT with writers.")
    boolean forceShare;

    @Option(names = "--image-opts", description = "INPUT is an option string (driver=qcow2,file.filename=PATH,...).")
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

    @Parameters(arity = "0..*", paramLabel = "OPERAND", description = "bs=N, count=N, skip=N, if=INPUT, of=OUTPUT.")
    List<String> operands = List.of();

    @Override
    public Integer call() throws Exception {
        long bs = 512;
        Long count = null;
        Long skip = null;
        String in = null;
        String out = null;
        for (String operand : operands) {
            int eq = operand.indexOf('=');
            String name = eq < 0 ? operand : operand.substring(0, eq);
            String value = eq < 0 ? null : operand.substring(eq + 1);
            switch (eq < 0 ? "" : name) {
                case "bs" -> bs = Sizes.cvtnum("bs", value, 1, Integer.MAX_VALUE);
                case "count" -> count = Sizes.cvtnum("count", value);
                case "skip" -> skip = Sizes.cvtnum("skip", value);
                case "if" -> in = value;
                case "of" -> out = value;
                default -> throw new IllegalArgumentException("unrecognized operand " + name);
            }
        }
        if (in == null || out == null) {
            throw new IllegalArgumentException("Must specify both input and output files");
        }
        ImageOpts input = ImageOpts.of(imageOpts, in, format, objects);
        OpenOptions inOptions = input.apply(OpenOptions.readOnlyDefaults()
                .withLocking(forceShare ? ImageLocking.FORCE_SHARE : ImageLocking.DEFAULT));
        try (BlockDevice src = open(input, inOptions)) {
            if (!outputFormat.equals("raw") && !outputFormat.equals("qcow2")) {
                throw ImageFormat.QEMU_OTHER_FORMATS.contains(outputFormat)
                        ? new UnsupportedFeatureException("dd -O " + outputFormat)
                        : new IllegalArgumentException("Unknown file format");
            }
            long size = src.size();
            if (count != null && count <= Long.MAX_VALUE / bs && count * bs < size) {
                size = count * bs;
            }
            boolean skipsPastTheEnd = skip != null && (skip > Long.MAX_VALUE / bs || size < bs * skip);
            long from = skipsPastTheEnd || skip == null ? 0 : skip * bs;
            long outSize = skipsPastTheEnd ? 0 : size - from;
            Path target = Path.of(ProtocolNames.newFile(out, "")); // qemu-img dd gives the reason alone
            create(target, out, outSize);
            try (BlockDevice dst = ImageFormat.open(target, outputFormat,
                    OpenOptions.readWriteDefaults().withPool(false))) {
                if (skipsPastTheEnd) {
                    // qemu-img warns and copies nothing, like dd(1); the exit code stays 0.
                    spec.commandLine().getErr().println("qcow2-loom: " + in + ": cannot skip to specified offset");
                    return 0;
                }
                copy(src, dst, from, size, (int) bs);
            }
        }
        return 0;
    }

    /** INPUT, an open that fails worded as qemu-img words it (its operand is not a file name Main would know). */
    private static BlockDevice open(ImageOpts input, OpenOptions options) throws IOException {
        try {
            return input.open(input.format(), options);
        } catch (IOException | RuntimeException e) {
            throw new IOException(Main.openFailure(input.path().toString(), e), e);
        }
    }

    /**
     * Makes OUTPUT ({@code name} as given, at {@code path}) as bdrv_create makes it: of the size in whole 512-byte
     * sectors, default options. A file that another open holds is refused before it is truncated, in qemu-img's words,
     * as the input itself or its backing file would be (before, a raw OUTPUT was emptied first).
     */
    private void create(Path path, String name, long bytes) throws IOException {
        long size = (bytes + 511) & -512L;
        try {
            if (outputFormat.equals("qcow2")) {
                ImageCreator.create(path, CreateOptions.defaults(size));
            } else {
                try (Storage s = FileStorage.create(path, false, StorageBackend.AUTO)) { // locked, then truncated
                    RawImage.grow(s, size, Preallocation.OFF);
                }
            }
        } catch (ImageLockedException e) {
            ImageLockedException bare = e;
            while (bare.getCause() instanceof ImageLockedException inner) {
                bare = inner;
            }
            throw new ImageLockedException(bare.file(), name + ": error while creating output image: "
                    + bare.getMessage());
        } catch (IOException e) {
            throw new IOException(name + ": error while creating output image: Could not create '" + path + "': "
                    + Main.reason(e), e);
        }
    }

    /** img_dd's loop, whole blocks a run at a time: every byte of {@code [from, size)} to OUTPUT from 0. */
    private static void copy(BlockDevice src, BlockDevice dst, long from, long size, int bs) throws IOException {
        int run = Math.max(bs, RUN / bs * bs);
        ByteBuffer buf = DirectBuffers.aligned(run);
        for (long at = from; at < size; ) {
            int n = (int) Math.min(run, size - at);
            buf.clear().limit(n);
            try {
                src.read(at, buf);
            } catch (IOException e) {
                throw new IOException("error while reading from input image file: " + Main.message(e), e);
            }
            try {
                dst.write(at - from, buf.flip());
            } catch (IOException e) {
                throw new IOException("error while writing to output image file: " + Main.message(e), e);
            }
            at += n;
        }
    }
}
