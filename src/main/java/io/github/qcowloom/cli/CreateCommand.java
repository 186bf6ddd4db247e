package io.github.qcowloom.cli;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code create [-f fmt] [-o options] [-b backing -F fmt] [-u] FILE [SIZE]}, as qemu-img create. */
@Command(name = "create", description = "Create a new image.")
final class CreateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "-f", description = "Image format: qcow2 (default) or raw.")
    String format = "qcow2";

    @Option(names = "-o", description = "Options, key=value[,key=value...] (compat, cluster_size, refcount_bits, "
            + "lazy_refcounts, extended_l2, compression_type, preallocation, backing_file, backing_fmt, data_file, "
            + "data_file_raw, size).")
    List<String> options = new ArrayList<>();

    @Option(names = "-b", description = "Backing file.")
    String backingFile;

    @Option(names = "-F", description = "Backing file format.")
    String backingFormat;

    @Option(names = "-u", description = "Do not open the backing file (the size must then be given).")
    boolean unsafe;

    @Option(names = "-q", description = "Quiet.")
    boolean quiet;

    @Parameters(index = "0", paramLabel = "FILE")
    String filename;

    @Parameters(index = "1", arity = "0..1", paramLabel = "SIZE", description = "Virtual size (k, M, G, T suffixes).")
    String size;

    @Override
    public Integer call() throws IOException {
        Map<String, String> opts = parseOptions(options);
        if (backingFile != null) {
            opts.put("backing_file", backingFile);
        }
        if (backingFormat != null) {
            opts.put("backing_fmt", backingFormat);
        }
        if (size != null) {
            opts.put("size", size);
        }
        Path path = Path.of(filename);
        if ("raw".equals(format)) {
            return createRaw(path, opts);
        }
        if (!"qcow2".equals(format)) {
            throw new UnsupportedFeatureException("format " + format, "Unknown file format '" + format + "'");
        }
        CreateOptions co = toCreateOptions(opts, path);
        ImageCreator.create(path, co);
        if (!quiet) {
            spec.commandLine().getOut().println(formattingLine(co));
        }
        return 0;
    }

    private int createRaw(Path path, Map<String, String> opts) throws IOException {
        for (String k : opts.keySet()) {
            if (!k.equals("size")) {
                throw new ImageException(filename + ": Invalid parameter '" + k + "'");
            }
        }
        if (!opts.containsKey("size")) {
            throw new ImageException(filename + ": Image creation needs a size parameter");
        }
        long bytes = io.github.qcowloom.format.Bytes.alignUp(Sizes.parse(opts.get("size")), 512);
        try (Storage s = FileStorage.create(path, false)) {
            s.setLength(bytes);
        }
        if (!quiet) {
            spec.commandLine().getOut().println("Formatting '" + filename + "', fmt=raw size=" + bytes);
        }
        return 0;
    }

    static Map<String, String> parseOptions(List<String> options) throws ImageException {
        Map<String, String> m = new LinkedHashMap<>();
        for (String group : options) {
            for (String kv : group.split(",")) {
                if (kv.isEmpty()) {
                    continue;
                }
                int eq = kv.indexOf('=');
                if (eq < 0) {
                    throw new ImageException("Invalid option '" + kv + "': expected key=value");
                }
                m.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
        }
        return m;
    }

    private CreateOptions toCreateOptions(Map<String, String> opts, Path path) throws IOException {
        CreateOptions co = CreateOptions.defaults(0);
        String backing = null;
        String backingFmt = null;
        String dataFile = null;
        boolean dataFileRaw = false;
        for (Map.Entry<String, String> e : opts.entrySet()) {
            String v = e.getValue();
            switch (e.getKey()) {
                case "size" -> co = co.withSize(Sizes.parse(v));
                case "compat" -> co = co.withVersion(switch (v) {
                    case "0.10", "v2" -> 2;
                    case "1.1", "v3" -> 3;
                    default -> throw new ImageException("Invalid compatibility level: '" + v + "'");
                });
                case "cluster_size" -> co = co.withClusterSize((int) Math.min(Integer.MAX_VALUE, Sizes.parse(v)));
                case "refcount_bits" -> co = co.withRefcountBits(Integer.parseInt(v));
                case "lazy_refcounts" -> co = co.withLazyRefcounts(onOff(e.getKey(), v));
                case "extended_l2" -> co = co.withExtendedL2(onOff(e.getKey(), v));
                case "compression_type" -> co = co.withCompressionType(v);
                case "preallocation" -> co = co.withPreallocation(v);
                case "backing_file" -> backing = v;
                case "backing_fmt" -> backingFmt = v;
                case "data_file" -> dataFile = v;
                case "data_file_raw" -> dataFileRaw = onOff(e.getKey(), v);
                case "encryption", "encrypt.format" -> throw new UnsupportedFeatureException("encryption",
                        "Encrypted images are not supported");
                default -> throw new ImageException(filename + ": Invalid parameter '" + e.getKey() + "'");
            }
        }
        if (backing != null && backingFmt == null) {
            throw new ImageException(filename + ": Backing file specified without backing format");
        }
        co = co.withBacking(backing, backingFmt).withDataFile(dataFile, dataFileRaw);
        if (!opts.containsKey("size")) {
            if (backing == null || unsafe) {
                throw new ImageException(filename + ": Image creation needs a size parameter");
            }
            co = co.withSize(backingSize(path, backing, backingFmt));
        } else if (backing != null && !unsafe) {
            backingSize(path, backing, backingFmt); // qemu-img checks that the backing file opens
        }
        return co;
    }

    private static long backingSize(Path image, String backing, String format) throws IOException {
        Path dir = image.toAbsolutePath().getParent();
        Path p = backing.startsWith("/") ? Path.of(backing) : dir.resolve(backing);
        if (!Files.exists(p)) {
            throw new ImageException("Could not open backing file '" + backing + "': No such file or directory");
        }
        String fmt = format != null ? format : ImageFormat.probe(p);
        if ("qcow2".equals(fmt)) {
            try (Qcow2Image img = Qcow2Image.open(p, OpenOptions.readOnlyDefaults().withFollowReferences(false))) {
                return img.size();
            }
        }
        return Files.size(p);
    }

    private static boolean onOff(String key, String v) throws ImageException {
        return switch (v) {
            case "on", "true", "yes" -> true;
            case "off", "false", "no" -> false;
            default -> throw new ImageException("Parameter '" + key + "' expects 'on' or 'off'");
        };
    }

    /** The line qemu-img create prints. */
    private String formattingLine(CreateOptions co) {
        StringBuilder sb = new StringBuilder("Formatting '").append(filename).append("', fmt=qcow2");
        sb.append(" cluster_size=").append(co.clusterSize());
        if (co.version() == 2) {
            sb.append(" compat=0.10");
        }
        sb.append(" extended_l2=").append(co.extendedL2() ? "on" : "off");
        sb.append(" compression_type=").append(co.compressionType());
        if (co.backingFile() != null) {
            sb.append(" backing_file=").append(co.backingFile());
            sb.append(" backing_fmt=").append(co.backingFormat());
        }
        if (co.dataFile() != null) {
            sb.append(" data_file=").append(co.dataFile()).append(" data_file_raw=")
                    .append(co.dataFileRaw() ? "on" : "off");
        }
        if (!"off".equals(co.preallocation())) {
            sb.append(" preallocation=").append(co.preallocation());
        }
        sb.append(" size=").append(co.size());
        sb.append(" lazy_refcounts=").append(co.lazyRefcounts() ? "on" : "off");
        sb.append(" refcount_bits=").append(co.refcountBits());
        return sb.toString();
    }
}
