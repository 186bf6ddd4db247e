package io.github.qcowloom.cli;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** qemu-img's {@code -o key=value,...} qcow2 creation options, shared by create and convert. */
final class CreateOptionsParser {
    private CreateOptionsParser() {
    }

    /** Splits every {@code -o} argument into keys and values; later keys win, as in qemu-img. */
    static Map<String, String> parse(List<String> options) throws ImageException {
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

    /**
     * Turns parsed options into qcow2 creation options for the image at {@code path}. Without a size the backing
     * file's is taken, unless {@code unsafe} (-u) forbids opening it.
     */
    static CreateOptions toCreateOptions(Map<String, String> opts, Path path, boolean unsafe) throws IOException {
        String filename = path.toString();
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
        if (backing != null && resolveBacking(path, backing).normalize().equals(path.toAbsolutePath().normalize())) {
            throw new ImageException(filename + ": Error: Trying to create an image with the same filename as the"
                    + " backing file");
        }
        if (backingFmt != null && !backingFmt.equals("qcow2") && !backingFmt.equals("raw")) {
            // The chain could never be opened here (qemu-img says "Unknown driver" for a name it does not know).
            throw new UnsupportedFeatureException("backing format " + backingFmt,
                    "Unsupported backing file format '" + backingFmt + "'");
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

    /** The backing file as the image names it: relative names resolve against the image's directory. */
    static Path resolveBacking(Path image, String backing) {
        return backing.startsWith("/") ? Path.of(backing) : image.toAbsolutePath().getParent().resolve(backing);
    }

    private static long backingSize(Path image, String backing, String format) throws IOException {
        Path p = resolveBacking(image, backing);
        if (!Files.exists(p)) {
            throw new ImageException("Could not open backing file '" + backing + "': No such file or directory");
        }
        String fmt = format != null ? format : ImageFormat.probe(p);
        if ("qcow2".equals(fmt)) {
            try (Qcow2Image img = Qcow2Image.open(p, OpenOptions.readOnlyDefaults().withFollowReferences(false)
                    .withLocking(ImageLocking.NONE))) {
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
}
