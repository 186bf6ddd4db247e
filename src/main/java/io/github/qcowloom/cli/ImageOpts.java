package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ChainEncryption;
import io.github.qcowloom.api.DetectZeroes;
import io.github.qcowloom.api.DiscardPolicy;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenFailures;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.ProtocolPrefix;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.StringJoiner;

/**
 * qemu-img's {@code --image-opts}: an image named by QEMU's block options rather than a file name, such as {@code
 * driver=qcow2,file.filename=disk.qcow2,cache.direct=on} (QemuOpts syntax: commas between options, {@code ,,} for a
 * comma in a value). The options this driver has a meaning for are taken: {@code driver} (qcow2 or raw; absent, the
 * format is probed), {@code file.filename}, {@code file.driver} ({@code file}, {@code host_device} or {@code
 * host_cdrom}, the file checked to be of its kind), {@code file.locking} ({@code off}: no lock bytes), {@code
 * file.aio} (any of QEMU's: the storage backend is the profile's), {@code cache.direct} (O_DIRECT), {@code
 * cache.no-flush} (no host syncs), {@code read-only}, {@code force-share}, {@code l2-cache-size}, {@code
 * refcount-cache-size}, {@code discard}, {@code detect-zeroes}, and {@code encrypt.key-secret} and {@code
 * encrypt.format} of the image and of each image down its chain ({@code backing.encrypt.key-secret}, ...). Other
 * options QEMU takes for these formats are refused as features not done; options it does not take, in its words.
 * Without --image-opts a name is read for its protocol ({@link #of}).
 *
 * @param spec the option string, or the name, as given (qemu-img names the image by it in its errors)
 * @param fileName the image file as named: {@code file.filename}, or the name given without its protocol prefix
 *     ({@code file:}, {@code host_device:}: {@link ProtocolNames})
 * @param path the file at {@code fileName}
 * @param format {@code driver}, or null to probe
 * @param options the options by name, values unescaped
 * @param secrets the secrets {@code encrypt.key-secret} may name (its passphrase is looked up at the open)
 */
record ImageOpts(String spec, String fileName, Path path, String format, Map<String, String> options,
        QemuObjects secrets) {
    /** The --image-opts flag's help, for the commands whose FILE it names. */
    static final String HELP = "FILE is an option string (driver=qcow2,file.filename=PATH,...).";
    /** The prefix of an option for the backing file, once per level down the chain. */
    private static final String BACKING = "backing.";
    /** Options QEMU takes for qcow2 or raw images (block/qcow2.c's runtime options, raw's) that are not taken here. */
    private static final Set<String> NOT_DONE = Set.of("cache-size", "cache-clean-interval", "lazy-refcounts",
            "pass-discard-request", "pass-discard-snapshot", "pass-discard-other", "discard-no-unref",
            "overlap-check", "data-file", "encrypt", "backing", "offset", "size", "auto-read-only", "node-name",
            "file.node-name", "file.x-check-cache-dropped", "file.pr-manager", "file.drop-cache", "file.discard",
            "file.detect-zeroes", "file.auto-read-only");

    /**
     * The image {@code spec} names.
     *
     * @throws ImageException in qemu-img's words for an image named other than by {@code file.filename}, or an
     *     option QEMU does not take
     * @throws UnsupportedFeatureException naming an option QEMU takes that is not done here
     */
    static ImageOpts parse(String spec, QemuObjects secrets) throws ImageException {
        Map<String, String> options = split(spec);
        String file = options.get("file");
        if (file != null) { // QemuOpts' implied option: a bare name, or file=NAME, names a block node
            throw new ImageException("Could not open '" + spec + "': Cannot find device='" + file + "' nor node-name='"
                    + file + "'");
        }
        String filename = options.get("file.filename");
        if (filename == null) {
            throw new ImageException("Could not open '" + spec + "': A block device must be specified for \"file\"");
        }
        String format = options.get("driver");
        refuseUnknownDriver(spec, format);
        for (Map.Entry<String, String> e : options.entrySet()) {
            check(spec, format, e.getKey(), e.getValue());
        }
        String driver = options.get("file.driver");
        if (driver != null) { // a wrong kind of file, in QEMU's words
            try {
                ProtocolPrefix.requireKind(driver, filename);
            } catch (ImageException e) {
                throw new ImageException("Could not open '" + spec + "': " + e.getMessage(), e);
            }
        }
        return new ImageOpts(spec, filename, Path.of(filename), format, options, secrets);
    }

    /** The options of {@code spec}, in order; a bare first value is QemuOpts' implied option, {@code file}. */
    private static Map<String, String> split(String spec) {
        Map<String, String> options = new LinkedHashMap<>();
        StringBuilder part = new StringBuilder();
        for (int i = 0; i <= spec.length(); i++) {
            if (i < spec.length() && spec.charAt(i) == ',' && i + 1 < spec.length() && spec.charAt(i + 1) == ',') {
                part.append(',');
                i++;
            } else if (i == spec.length() || spec.charAt(i) == ',') {
                String p = part.toString();
                part.setLength(0);
                if (p.isEmpty()) {
                    continue; // an empty option (a trailing comma): QemuOpts passes over it
                }
                int eq = p.indexOf('=');
                if (eq < 0) {
                    options.put(options.isEmpty() ? "file" : p, options.isEmpty() ? p : "on");
                } else {
                    options.put(p.substring(0, eq), p.substring(eq + 1));
                }
            } else {
                part.append(spec.charAt(i));
            }
        }
        return options;
    }

    private static void check(String spec, String format, String key, String value) throws ImageException {
        switch (key) {
            case "driver", "file.filename" -> { }
            case "file.driver" -> {
                if (!ProtocolPrefix.local(value)) {
                    throw new UnsupportedFeatureException("protocol " + value, "Could not open '" + spec
                            + "': the protocol '" + value + "' is not supported (only files)");
                }
            }
            case "file.locking", "file.aio" -> {
                Set<String> values = key.equals("file.locking") ? Set.of("on", "off", "auto")
                        : Set.of("threads", "native", "io_uring");
                if (!values.contains(value)) {
                    throw new ImageException("Could not open '" + spec + "': invalid parameter value: " + value);
                }
            }
            case "cache.direct", "cache.no-flush", "read-only", "force-share" -> bool(spec, key, value);
            case "l2-cache-size", "refcount-cache-size" -> size(spec, key, value);
            case "discard" -> {
                if (DiscardPolicy.unmaps(value).isEmpty()) {
                    throw new ImageException("Could not open '" + spec + "': Invalid discard option");
                }
            }
            case "detect-zeroes" -> {
                if (DetectZeroes.named(value).isEmpty()) {
                    throw new ImageException("Could not open '" + spec + "': invalid parameter value: " + value);
                }
            }
            default -> {
                // encrypt.format and encrypt.key-secret, of the image or of one down its chain: the image's open
                // checks the format against the header it finds, as QEMU's does (a raw one: formatOrProbe).
                String own = layerOption(key);
                if (own.equals("encrypt.key-secret") || own.equals("encrypt.format")) {
                    return;
                }
                if (depthOf(key) > 0) {
                    throw new UnsupportedFeatureException("--image-opts " + key, "Could not open '" + spec
                            + "': the option '" + key + "' is not supported (of a backing file's options, only"
                            + " encrypt.key-secret and encrypt.format are)");
                }
                String root = key.contains(".") && !key.startsWith("file.") ? key.substring(0, key.indexOf('.'))
                        : key;
                if (NOT_DONE.contains(root)) {
                    throw new UnsupportedFeatureException("--image-opts " + key, "Could not open '" + spec
                            + "': the option '" + key + "' is not supported");
                }
                if (key.startsWith("file.")) {
                    throw new ImageException("Could not open '" + spec + "': Block protocol 'file' doesn't support"
                            + " the option '" + key.substring(5) + "'");
                }
                throw new ImageException("Could not open '" + spec + "': Block format '"
                        + (format == null ? "qcow2" : format) + "' does not support the option '" + key + "'");
            }
        }
    }

    /** {@code key} without its {@code backing.} prefixes: the option as the image it is meant for names it. */
    private static String layerOption(String key) {
        String own = key;
        while (own.startsWith(BACKING)) {
            own = own.substring(BACKING.length());
        }
        return own;
    }

    /** How many levels down the backing chain {@code key} reaches: its {@code backing.} prefixes. */
    private static int depthOf(String key) {
        return (key.length() - layerOption(key).length()) / BACKING.length();
    }

    /** A QemuOpts size, refused in qemu-img's words. */
    private static long size(String spec, String key, String value) throws ImageException {
        try {
            return Sizes.option(key, value);
        } catch (IllegalArgumentException e) {
            throw new ImageException("Could not open '" + spec + "': " + e.getMessage(), e);
        }
    }

    /** QemuOpts' booleans: on/off, yes/no, true/false. */
    private static boolean bool(String spec, String key, String value) throws ImageException {
        return switch (value) {
            case "on", "yes", "true" -> true;
            case "off", "no", "false" -> false;
            default -> throw new ImageException("Could not open '" + spec + "': Parameter '" + key + "' expects 'on'"
                    + " or 'off'");
        };
    }

    /** The option string with {@code file} for {@code file.filename}: how qemu-img is given a copy of the image. */
    String naming(Path file) {
        StringJoiner spec = new StringJoiner(",");
        for (Map.Entry<String, String> e : options.entrySet()) {
            String value = e.getKey().equals("file.filename") ? file.toString() : e.getValue();
            spec.add(e.getKey() + "=" + value.replace(",", ",,"));
        }
        return spec.toString();
    }

    /**
     * The format named ({@code -f}, or {@code driver}), else the one the file's first bytes show.
     *
     * @throws NoSuchFileException if the file does not exist, named as given (given by options: an IOException in
     *     qemu-img's words, see {@link #named})
     * @throws ImageException in qemu-img's words for encryption options of a raw image, named or found to be
     */
    String formatOrProbe() throws IOException {
        return formatOrProbe(null);
    }

    /**
     * {@link #formatOrProbe()} for a command that opens the image read-write: a format probed as raw is warned of on
     * {@code err}, in the words QEMU's raw driver prints at such an open (the first sector is then guarded, here as
     * there: RawImage). Null {@code err}: a read-only open, no warning.
     */
    String formatOrProbe(PrintWriter err) throws IOException {
        String found;
        try {
            if (!Files.exists(path)) {
                throw new NoSuchFileException(fileName());
            }
            found = format != null ? format : ImageFormat.probe(path);
        } catch (IOException e) {
            throw named(e);
        }
        // Read from the options rather than left to RawImage's refusal at the open: info's open of a raw image, and
        // check, open none, and an inspection's options hold no passphrase.
        for (String option : List.of("encrypt.format", "encrypt.key-secret")) { // QEMU's raw names the format first
            if (found.equals("raw") && options.containsKey(option)) {
                throw new ImageException("Could not open '" + spec + "': Block format 'raw' does not support the"
                        + " option '" + option + "'");
            }
        }
        if (err != null && format == null && found.equals("raw")) {
            err.print("WARNING: Image format was not specified for '" + fileName + "' and probing guessed raw.\n"
                    + "         Automatically detecting the format is dangerous for raw images, write operations on"
                    + " block 0 will be restricted.\n"
                    + "         Specify the 'raw' format explicitly to remove the restrictions.\n");
            err.flush();
        }
        return found;
    }

    /**
     * For a command whose open leaves the backing chain alone (info, bitmap, rebase -u: QEMU's BDRV_O_NO_BACKING):
     * refuses options for a backing file, in qemu-img's words, as its open does.
     */
    ImageOpts refuseBackingOptions() throws ImageException {
        String first = null; // the one QEMU names: the first of its QDict, whose order is its hash's
        int firstBucket = Integer.MAX_VALUE;
        for (String key : options.keySet()) {
            int bucket = qdictBucket(key);
            // <=: of keys in one bucket the last added comes first (QLIST_INSERT_HEAD)
            if (depthOf(key) > 0 && bucket <= firstBucket) {
                first = key;
                firstBucket = bucket;
            }
        }
        if (first != null) {
            throw new ImageException("Could not open '" + spec + "': Block format '"
                    + (format == null ? "qcow2" : format) + "' does not support the option '" + first + "'");
        }
        return this;
    }

    /** Whether the options say anything of a backing file. */
    boolean hasBackingOptions() {
        return options.keySet().stream().anyMatch(k -> depthOf(k) > 0);
    }

    /** The bucket of QEMU 7.2's QDict (512 of them, walked from 0) that {@code key} lies in: its tdb_hash. */
    private static int qdictBucket(String key) {
        byte[] name = key.getBytes(StandardCharsets.UTF_8);
        int value = 0x238F13AF * name.length;
        for (int i = 0; i < name.length; i++) {
            value += (name[i] & 0xff) << (i * 5 % 24);
        }
        return Integer.remainderUnsigned(1103515243 * value + 12345, 512);
    }

    /** For a command that writes the image: refuses {@code read-only=on} in qemu-img's words, as its open does. */
    ImageOpts requireWritable() throws ImageException {
        String readOnly = options.get("read-only");
        if (readOnly != null && bool(spec, "read-only", readOnly)) {
            throw new ImageException("Could not open '" + spec + "': Block node is read-only");
        }
        return this;
    }

    /**
     * Opens the image in {@code format} (null: probed, a raw image's first sector then guarded as QEMU guards it)
     * with {@code applied}, the options {@link #apply} made. Its open names the file in "Could not open" errors;
     * qemu-img names an image given by options by their string, and so do these.
     */
    BlockDevice open(String format, OpenOptions applied) throws IOException {
        try {
            return ImageFormat.open(path, format, applied);
        } catch (IOException e) {
            throw named(e);
        }
    }

    /**
     * {@code e} as qemu-img words it for an image given by options: the context "Could not open 'FILE': " of its
     * open naming the option string, and a file that cannot be opened named inside that context ("Could not open
     * 'driver=qcow2,file.filename=F': Could not open 'F': No such file or directory").
     */
    IOException named(IOException e) {
        if (spec.equals(fileName)) { // a plain name: Main words it
            return e;
        }
        if (e instanceof NoSuchFileException || e instanceof AccessDeniedException a && a.getReason() == null) {
            return new IOException("Could not open '" + spec + "': " + Main.message(e), e);
        }
        return OpenFailures.replaceContext(e, "Could not open '" + path + "': ", "Could not open '" + spec + "': ");
    }

    /** Whether the image opens with O_DIRECT: {@code cache.direct} if the options say, else {@code otherwise}. */
    boolean direct(boolean otherwise) throws ImageException {
        String value = options.get("cache.direct");
        return value == null ? otherwise : bool(spec, "cache.direct", value);
    }

    /** {@code base} with what the options say of the open, for a qemu-img command that opens without unmap. */
    OpenOptions apply(OpenOptions base) throws ImageException {
        return apply(base, false);
    }

    /**
     * {@code base} with what the options say of the open; {@code toolUnmaps}: whether the command opens the image
     * with discards passed on (QEMU's BDRV_O_UNMAP: qemu-img commit's and convert's target, qemu-nbd's {@code
     * --discard=unmap}), which {@code detect-zeroes=unmap} needs unless {@code discard} says it.
     */
    OpenOptions apply(OpenOptions base, boolean toolUnmaps) throws ImageException {
        OpenOptions o = base;
        if (options.containsKey("discard") || options.containsKey("detect-zeroes")) {
            o = o.withDiscards(discards(o.discards(), toolUnmaps));
        }
        if (options.containsKey("read-only")) {
            o = o.withReadOnly(bool(spec, "read-only", options.get("read-only")));
        }
        o = o.withDirect(direct(o.direct()));
        if (options.containsKey("cache.no-flush")) {
            o = o.withHostSyncs(!bool(spec, "cache.no-flush", options.get("cache.no-flush")));
        }
        if (options.containsKey("force-share") && bool(spec, "force-share", options.get("force-share"))) {
            if (!o.readOnly()) {
                throw new ImageException("Could not open '" + spec + "': force-share=on can only be used with"
                        + " read-only images");
            }
            o = o.withLocking(ImageLocking.FORCE_SHARE);
        }
        String locking = options.get("file.locking");
        if (locking != null && !locking.equals("auto") && !bool(spec, "file.locking", locking)) {
            o = o.withLocking(ImageLocking.NONE);
        }
        if (options.containsKey("l2-cache-size")) {
            o = o.withTuning(o.tuning().withL2CacheBytes(size(spec, "l2-cache-size", options.get("l2-cache-size"))));
        }
        if (!options.isEmpty()) { // a plain name leaves what the caller set
            o = o.withEncryption(encryption(o.followReferences() || !o.readOnly()));
        }
        if (options.containsKey("refcount-cache-size")) {
            o = o.withTuning(o.tuning().withRefblockCacheBytes(size(spec, "refcount-cache-size",
                    options.get("refcount-cache-size"))));
        }
        return o;
    }

    /** {@code base} with what {@code discard} and {@code detect-zeroes} say, refused as QEMU's open refuses them. */
    private DiscardPolicy discards(DiscardPolicy base, boolean toolUnmaps) throws ImageException {
        String discard = options.get("discard");
        boolean unmap = discard != null ? DiscardPolicy.unmaps(discard).orElseThrow() : toolUnmaps;
        String detect = options.get("detect-zeroes");
        DetectZeroes detectZeroes = detect != null ? DetectZeroes.named(detect).orElseThrow() : base.detectZeroes();
        if (detectZeroes == DetectZeroes.UNMAP && !unmap) {
            throw new ImageException("Could not open '" + spec + "': " + DiscardPolicy.UNMAP_NEEDS_DISCARD);
        }
        return new DiscardPolicy(discard != null ? unmap : base.unmap(), detectZeroes);
    }

    /**
     * What the options say of the encryption of the image and of each image down its chain. A secret is looked up
     * when the image it is for needs its passphrase ({@code unlock} false: never, as for qemu-img info's open, which
     * reads no guest data and unlocks nothing), so that a missing one fails there, as in QEMU. What an unlock gives
     * is kept for the command's other opens of the image (the secrets' {@link QemuObjects#unlockedKeys}).
     */
    private ChainEncryption encryption(boolean unlock) {
        ChainEncryption chain = ChainEncryption.NONE.rememberingKeys(secrets.unlockedKeys());
        for (Map.Entry<String, String> e : options.entrySet()) {
            int depth = depthOf(e.getKey());
            String secret = e.getValue();
            switch (layerOption(e.getKey())) {
                case "encrypt.format" -> chain = chain.withFormat(depth, e.getValue());
                case "encrypt.key-secret" -> chain = !unlock ? chain
                        : chain.withPassphrase(depth, secrets.passphraseOf(secret));
                default -> { }
            }
        }
        return chain;
    }

    /**
     * The image a command names: by {@code name} and {@code format} (-f), or with {@code --image-opts} by the options
     * {@code name} holds, where -f is refused as qemu-img refuses it.
     */
    static ImageOpts of(boolean imageOpts, String name, String format, QemuObjects secrets)
            throws ImageException {
        secrets.secrets(); // every --object is checked, as qemu-img checks them before it opens anything
        if (!imageOpts) {
            refuseUnknownDriver(name, format);
            String context = "Could not open '" + name + "': ";
            String file = ProtocolNames.localFile(name, context);
            if (ProtocolPrefix.of(name) == null) {
                try {
                    ProtocolPrefix.requirePlainFile(file);
                } catch (ImageException e) {
                    throw new ImageException(context + e.getMessage(), e);
                }
            }
            return new ImageOpts(name, file, Path.of(file), format, Map.of(), secrets);
        }
        if (format != null) {
            throw new ImageException("--image-opts and --format are mutually exclusive");
        }
        return parse(name, secrets);
    }

    /** A format this driver does not open, refused before the file is looked at, as QEMU's bdrv_fill_options does. */
    private static void refuseUnknownDriver(String name, String format) throws ImageException {
        if (format != null && !format.equals("qcow2") && !format.equals("raw")) {
            throw ImageFormat.unknownDriver(name, format);
        }
    }

    /** {@link #of(boolean, String, String, QemuObjects)} where no secret is defined. */
    static ImageOpts of(boolean imageOpts, String name, String format) throws ImageException {
        return of(imageOpts, name, format, new QemuObjects());
    }
}
