package io.github.qcowloom.cli;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.HostSpace;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code create [-f fmt] [-o options] [-b backing -F fmt] [-u] FILE [SIZE]}, as qemu-img create. */
@Command(description = "Create a new image.")
final class CreateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "-f", description = "Image format: qcow2 (default) or raw.")
    String format = "qcow2";

    @Option(names = "-o", description = "Options, key=value[,key=value...] (compat, cluster_size, refcount_bits, "
            + "lazy_refcounts, extended_l2, compression_type, preallocation, backing_file, backing_fmt, data_file, "
            + "data_file_raw, size, encrypt.format=luks|aes or encryption=on, encrypt.key-secret and the other "
            + "encrypt.* options).")
    List<String> options = new ArrayList<>();

    @Option(names = "-b", description = "Backing file.")
    String backingFile;

    @Option(names = "-F", description = "Backing file format.")
    String backingFormat;

    @Option(names = "-u", description = "Do not open the backing file (the size must then be given).")
    boolean unsafe;

    @Option(names = "-q", description = "Quiet.")
    boolean quiet;

    @Mixin
    QemuObjects objects = new QemuObjects();

    @Parameters(index = "0", arity = "0..1", paramLabel = "FILE")
    String filename;

    @Parameters(index = "1", arity = "0..1", paramLabel = "SIZE", description = "Virtual size (k, M, G, T suffixes).")
    String size;

    @Override
    public Integer call() throws IOException {
        Map<String, String> opts = CreateOptionsParser.parse(options);
        if (CreateOptionsParser.asksForHelp(opts)) { // before anything else is checked, as in qemu-img
            spec.commandLine().getOut().print(CreateOptionsParser.help(format));
            return 0;
        }
        if (filename == null) {
            throw new ImageException("Expecting image file name"); // qemu-img's words
        }
        if (backingFile != null) {
            opts.put("backing_file", backingFile);
        }
        if (backingFormat != null) {
            opts.put("backing_fmt", backingFormat);
        }
        if (size != null) {
            long bytes = Sizes.cvtnum("image size", size);
            if (opts.containsKey("size")) {
                CreateOptionsParser.optionSize(filename + ": ", "size", opts.get("size")); // its own error first
                throw new ImageException(filename + ": The image size must be specified only once");
            }
            opts.put("size", Long.toString(bytes));
        }
        Path path = Path.of(ProtocolNames.newFile(filename, filename + ": "));
        if ("raw".equals(format)) {
            return createRaw(path, opts);
        }
        if (!"qcow2".equals(format)) {
            throw new UnsupportedFeatureException("format " + format, "Unknown file format '" + format + "'");
        }
        CreateOptionsParser.Contexts contexts = CreateOptionsParser.Contexts.ofCreate(filename);
        CreateOptions co = CreateOptionsParser.toCreateOptions(opts, path, unsafe, contexts);
        try {
            EncryptionOptions.checkNumbers(opts);
        } catch (ImageException e) {
            throw new ImageException(filename + ": " + e.getMessage(), e);
        }
        if (!quiet) {
            // Before the image is made, as qemu-img prints it: the driver's refusals come after it.
            spec.commandLine().getOut().println(formattingLine(opts, co));
            spec.commandLine().getOut().flush();
        }
        try (AtomicTarget out = AtomicTarget.begin(path)) {
            try {
                EncryptionOptions.format(opts); // QEMU's order: the alias, the version, then the rest
                CreateOptionsParser.requireKnownCompat(opts);
                EncryptionOptions encryption = EncryptionOptions.of(opts, objects);
                if (encryption == null) {
                    ImageCreator.create(out.file(), co);
                } else {
                    Arrays.fill(encryption.create(out.file(), co), (byte) 0);
                }
            } catch (ImageException e) { // each refusal of the options named by the file, as in qemu-img
                throw contexts.inCreation(e);
            }
            out.commit(true);
        }
        return 0;
    }

    private int createRaw(Path path, Map<String, String> opts) throws IOException {
        for (String k : opts.keySet()) {
            if (!k.equals("size") && !k.equals("preallocation")) {
                throw new ImageException(filename + ": Invalid parameter '" + k + "'");
            }
        }
        if (!opts.containsKey("size")) {
            throw new ImageException(filename + ": Image creation needs a size parameter");
        }
        long bytes = io.github.qcowloom.format.Bytes.alignUp(
                CreateOptionsParser.optionSize(filename + ": ", "size", opts.get("size")), 512);
        String given = opts.get("preallocation");
        if (!quiet) {
            spec.commandLine().getOut().println("Formatting '" + filename + "', fmt=raw size=" + bytes
                    + (given == null ? "" : " preallocation=" + given));
            spec.commandLine().getOut().flush();
        }
        // qemu-img's raw create: an unknown mode fails the file driver's create, as metadata does
        Preallocation mode = given == null ? Preallocation.OFF : Preallocation.named(given)
                .orElseThrow(() -> new ImageException(filename + ": invalid parameter value: " + given));
        try (AtomicTarget out = AtomicTarget.begin(path)) {
            // AUTO, not FileChannel by name: preallocation=falloc may then reserve space with fallocate.
            try (Storage s = FileStorage.create(out.file(), false, StorageBackend.AUTO)) {
                RawImage.grow(s, bytes, mode);
                HostSpace.allocateFirstBlock(s, bytes);
            } catch (UnsupportedFeatureException e) {
                throw new UnsupportedFeatureException(e.feature(), filename + ": " + e.getMessage());
            }
            out.commit(true);
        }
        return 0;
    }

    /**
     * The line qemu-img create prints before it creates the image: QemuOpts' print of the qcow2 driver's create
     * options in the order QEMU 7.2 describes them, each one given as given (a size or a number as the value read),
     * and those with a default (cluster_size, extended_l2, compression_type, lazy_refcounts, refcount_bits) always.
     */
    private String formattingLine(Map<String, String> opts, CreateOptions co) throws ImageException {
        StringBuilder sb = new StringBuilder("Formatting '").append(filename).append("', fmt=qcow2");
        for (String key : EncryptionOptions.KEYS) {
            given(sb, opts, key);
        }
        // A given number prints as QemuOpts prints it: the u64 read, as a signed 64-bit number (-1 for 2^64 - 1).
        String cluster = opts.get("cluster_size");
        sb.append(" cluster_size=").append(cluster == null ? co.clusterSize()
                : CreateOptionsParser.optionSize(filename + ": ", "cluster_size", cluster));
        sb.append(" extended_l2=").append(opts.getOrDefault("extended_l2", "off"));
        given(sb, opts, "preallocation");
        sb.append(" compression_type=").append(opts.getOrDefault("compression_type", "zlib"));
        sb.append(" size=").append(co.size());
        for (String key : List.of("compat", "backing_file", "backing_fmt", "data_file", "data_file_raw")) {
            given(sb, opts, key);
        }
        sb.append(" lazy_refcounts=").append(opts.getOrDefault("lazy_refcounts", "off"));
        String bits = opts.get("refcount_bits");
        sb.append(" refcount_bits=").append(bits == null ? co.refcountBits() : QemuNumbers.parse(bits));
        return sb.toString();
    }

    private static void given(StringBuilder sb, Map<String, String> opts, String key) {
        if (opts.containsKey(key)) {
            sb.append(' ').append(key).append('=').append(opts.get(key));
        }
    }
}
