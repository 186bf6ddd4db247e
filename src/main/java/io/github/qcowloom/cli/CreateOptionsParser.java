package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.OpenFailures;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.ReferencedFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** qemu-img's {@code -o key=value,...} qcow2 creation options, shared by create and convert. */
final class CreateOptionsParser {
    private CreateOptionsParser() {
    }

    /**
     * Splits the {@code -o} arguments into keys and values as QemuOpts does; later keys win, as in qemu-img. Each
     * argument must be a valid option list (not empty, not starting with a comma, no odd run of trailing commas);
     * a doubled comma is a comma in a value ("data_file=a,,b"); a key without a value is a flag ("x" is x=on, "nox"
     * is x=off).
     */
    static Map<String, String> parse(List<String> options) throws ImageException {
        for (String group : options) {
            if (!isValidOptionList(group)) {
                throw new ImageException("Invalid option list: " + group);
            }
        }
        return keyValues(String.join(",", options));
    }

    /**
     * QemuOpts' split of an option list into keys and values (later keys win; ",," is a comma in a value; a key
     * alone is a flag), also for convert's and measure's {@code -l snapshot.id=...}.
     */
    static Map<String, String> keyValues(String params) {
        Map<String, String> m = new LinkedHashMap<>();
        int at = 0;
        while (at < params.length()) {
            int nameEnd = at;
            while (nameEnd < params.length() && params.charAt(nameEnd) != '=' && params.charAt(nameEnd) != ',') {
                nameEnd++;
            }
            String name = params.substring(at, nameEnd);
            if (nameEnd == params.length() || params.charAt(nameEnd) == ',') {
                boolean off = name.startsWith("no");
                m.put(off ? name.substring(2) : name, off ? "off" : "on");
                at = nameEnd + 1;
                continue;
            }
            StringBuilder value = new StringBuilder();
            at = nameEnd + 1;
            while (at < params.length()) {
                char c = params.charAt(at);
                if (c == ',') {
                    if (at + 1 < params.length() && params.charAt(at + 1) == ',') {
                        value.append(',');
                        at += 2;
                        continue;
                    }
                    break;
                }
                value.append(c);
                at++;
            }
            m.put(name, value.toString());
            at++; // the comma after the value
        }
        return m;
    }

    /** True if the list asks for help ({@code -o help} or {@code -o ?}, alone or beside other options). */
    static boolean asksForHelp(Map<String, String> opts) {
        return "on".equals(opts.get("help")) || "on".equals(opts.get("?"));
    }

    /**
     * What {@code -o help} prints for {@code format}: qemu-img's lines for the options this tool takes (qemu-img's
     * others, such as encryption, are not listed: they are refused).
     */
    static String help(String format) {
        StringBuilder sb = new StringBuilder("Supported options:\n");
        if ("qcow2".equals(format)) {
            sb.append("""
                      backing_file=<str>     - File name of a base image
                      backing_fmt=<str>      - Image format of the base image
                      cluster_size=<size>    - qcow2 cluster size
                      compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])
                      compression_type=<str> - Compression method used for image cluster compression
                      data_file=<str>        - File name of an external data file
                      data_file_raw=<bool (on/off)> - The external data file must stay valid as a raw image
                      extended_l2=<bool (on/off)> - Extended L2 tables
                      lazy_refcounts=<bool (on/off)> - Postpone refcount updates
                      preallocation=<str>    - Preallocation mode (allowed values: off, metadata, falloc, full)
                      refcount_bits=<num>    - Width of a reference count entry in bits
                    """);
        }
        if ("raw".equals(format)) {
            sb.append("  preallocation=<str>    - Preallocation mode (allowed values: off, falloc, full)\n");
        }
        return sb.append("  size=<size>            - Virtual disk size\n").toString();
    }

    /** qemu-img's is_valid_option_list. */
    private static boolean isValidOptionList(String list) {
        if (list.isEmpty() || list.charAt(0) == ',') {
            return false;
        }
        int trailing = 0;
        while (trailing < list.length() && list.charAt(list.length() - 1 - trailing) == ',') {
            trailing++;
        }
        return trailing % 2 == 0;
    }

    /**
     * What qemu-img puts before a refusal of creation options: before QemuOpts' own (a name or a value it cannot
     * parse), and before the ones its image creation makes. create names the new file before both; convert nothing
     * before the first, and "TARGET: error while converting qcow2: " before the second.
     */
    record Contexts(String parse, String create) {
        static Contexts ofCreate(String filename) {
            return new Contexts(filename + ": ", filename + ": ");
        }

        static Contexts ofConvert(String target) {
            return new Contexts("", target + ": error while converting qcow2: ");
        }

        /** {@code e}, a refusal of the image's creation, after {@link #create}, of its own type. */
        ImageException inCreation(ImageException e) {
            return switch (e) {
                case ImageTooLargeException tooLarge -> tooLarge.withContext(create);
                case UnsupportedFeatureException unsupported -> unsupported.withContext(create);
                default -> new ImageException(create + e.getMessage(), e);
            };
        }
    }

    /** A size option, refused as qemu-img refuses it, after {@code context} ("FILE: " for create). */
    static long optionSize(String context, String name, String value) throws ImageException {
        try {
            return Sizes.option(name, value);
        } catch (IllegalArgumentException e) {
            throw new ImageException(context + e.getMessage(), e);
        }
    }

    /**
     * Turns parsed options into qcow2 creation options for the image at {@code path}, refusing them after
     * {@code contexts}. Without a size the backing file's is taken, unless {@code unsafe} (-u) forbids opening it.
     */
    static CreateOptions toCreateOptions(Map<String, String> opts, Path path, boolean unsafe, Contexts contexts)
            throws IOException {
        String filename = path.toString();
        String parse = contexts.parse();
        String create = contexts.create();
        CreateOptions co = CreateOptions.defaults(0);
        String backing = null;
        String backingFmt = null;
        String dataFile = null;
        boolean dataFileRaw = false;
        for (Map.Entry<String, String> e : opts.entrySet()) {
            String v = e.getValue();
            switch (e.getKey()) {
                case "size" -> co = co.withSize(optionSize(parse, "size", v));
                case "compat" -> { // an unknown level is refused later, by requireKnownCompat
                    Integer version = compatVersion(v);
                    co = version == null ? co : co.withVersion(version);
                }
                case "cluster_size" -> co = co.withClusterSize(
                        (int) Math.min(Integer.MAX_VALUE, optionSize(parse, "cluster_size", v)));
                case "refcount_bits" -> co = co.withRefcountBits(number(parse, e.getKey(), v));
                case "lazy_refcounts" -> co = co.withLazyRefcounts(onOff(parse, e.getKey(), v));
                case "extended_l2" -> co = co.withExtendedL2(onOff(parse, e.getKey(), v));
                case "compression_type" -> co = co.withCompressionType(v);
                case "preallocation" -> co = co.withPreallocation(v);
                case "backing_file" -> backing = v;
                case "backing_fmt" -> backingFmt = v;
                case "data_file" -> dataFile = v;
                case "data_file_raw" -> dataFileRaw = onOff(parse, e.getKey(), v);
                case "encryption" -> onOff(parse, e.getKey(), v); // QemuOpts' parse; read by EncryptionOptions
                default -> {
                    if (!EncryptionOptions.isEncryptionKey(e.getKey())) { // taken by EncryptionOptions
                        throw new ImageException(parse + "Invalid parameter '" + e.getKey() + "'");
                    }
                }
            }
        }
        if (backing != null && resolveBacking(path, backing).toAbsolutePath().normalize()
                .equals(path.toAbsolutePath().normalize())) {
            throw new ImageException(create + "Error: Trying to create an image with the same filename as the"
                    + " backing file");
        }
        // bdrv_img_create's order: the backing file is opened (by -F, else probed) unless -u, then -F is required.
        OpenedBacking opened = backing == null || unsafe ? null
                : openBacking(filename, create, path, backing, backingFmt);
        if (backing != null && backingFmt == null) {
            throw new ImageException(create + "Backing file specified without backing format"
                    + (opened == null ? "" : "\nDetected format of " + opened.format() + "."));
        }
        if (backingFmt != null && !backingFmt.equals("qcow2") && !backingFmt.equals("raw")) {
            // Under -u, not opened: the chain could never be opened here.
            throw new UnsupportedFeatureException("backing format " + backingFmt,
                    "Unsupported backing file format '" + backingFmt + "'");
        }
        co = co.withBacking(backing, backingFmt).withDataFile(dataFile, dataFileRaw);
        if (!opts.containsKey("size")) {
            if (opened == null) {
                throw new ImageException(create + "Image creation needs a size parameter");
            }
            co = co.withSize(opened.size());
        }
        return co;
    }

    /** The qcow2 version a compat option names, or null for none. */
    private static Integer compatVersion(String compat) {
        return switch (compat) {
            case "0.10", "v2" -> 2;
            case "1.1", "v3" -> 3;
            default -> null;
        };
    }

    /**
     * Refuses an unknown compat level, where QEMU's qcow2 creation reads it (its QAPI visitor: after the encryption
     * alias's checks, before the image's own; in create, after the Formatting line). The caller adds the context.
     */
    static void requireKnownCompat(Map<String, String> opts) throws ImageException {
        String compat = opts.get("compat");
        if (compat != null && compatVersion(compat) == null) {
            throw new ImageException("Parameter 'version' does not accept value '" + compat + "'");
        }
    }

    /** The backing file as bdrv_img_create finds it: its format (given or probed) and its size. */
    private record OpenedBacking(String format, long size) {
    }

    /** The backing file as the image names it ({@link ReferencedFiles#path}). */
    static Path resolveBacking(Path image, String backing) {
        return ReferencedFiles.path(image.toAbsolutePath().getParent(), backing);
    }

    /**
     * Opens the backing file as bdrv_img_create opens it, in {@code format} or the one its bytes show; a refusal is
     * worded as qemu-img create words it: {@code context} ("NAME: ") before the open's own words, and the hint
     * "Could not open backing image." after them, a missing file named as QEMU joins its name to the image's
     * ({@code filename}, as given). A raw file's size is taken in whole sectors, as QEMU's block layer takes it.
     */
    private static OpenedBacking openBacking(String filename, String context, Path image, String backing,
            String format) throws IOException {
        Path p = resolveBacking(image, backing);
        try {
            ProtocolNames.localFile(backing, ""); // a protocol, or the wrong kind of file, refused in QEMU's words
            if (format != null && !format.equals("qcow2") && !format.equals("raw")) {
                throw ImageFormat.unknownDriver(format);
            }
            if (!Files.exists(p)) {
                throw new NoSuchFileException(ReferencedFiles.openedName(filename, backing));
            }
            String fmt = format != null ? format : ImageFormat.probe(p);
            try (BlockDevice device = ImageFormat.open(p, fmt, OpenOptions.readOnlyDefaults()
                    .withFollowReferences(false).withLocking(ImageLocking.NONE))) {
                return new OpenedBacking(fmt, Bytes.alignUp(device.size(), 512));
            }
        } catch (IOException e) {
            IOException reason = OpenFailures.withoutContext(e, "Could not open '" + p + "': ");
            String message = context + Main.message(reason) + "\nCould not open backing image.";
            throw reason instanceof UnsupportedFeatureException u ? new UnsupportedFeatureException(u.feature(),
                    message) : new ImageException(message, e);
        }
    }

    private static boolean onOff(String context, String key, String v) throws ImageException {
        Boolean b = bool(v);
        if (b == null) {
            throw new ImageException(context + "Parameter '" + key + "' expects 'on' or 'off'");
        }
        return b;
    }

    /** A boolean option's value as QemuOpts reads it (qapi_bool_parse), or null if it is none. */
    static Boolean bool(String v) {
        return switch (v) {
            case "on", "true", "yes", "y" -> true;
            case "off", "false", "no", "n" -> false;
            default -> null;
        };
    }

    /**
     * A number option as QemuOpts reads it (strtoull, base 0: decimal, 0x hex, 0 octal), clamped to an int: the
     * creation then refuses what is out of its range in its own words.
     */
    private static int number(String context, String key, String v) throws ImageException {
        long n;
        try {
            n = QemuNumbers.parse(v);
        } catch (ArithmeticException e) {
            throw new ImageException(context + "Value '" + v + "' is too large for parameter '" + key + "'");
        } catch (NumberFormatException e) {
            throw new ImageException(context + "Parameter '" + key + "' expects a number");
        }
        return Long.compareUnsigned(n, Integer.MAX_VALUE) > 0 ? Integer.MAX_VALUE : (int) n;
    }
}
