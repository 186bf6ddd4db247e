package io.github.qcowloom.cli;

import io.github.qcowloom.api.ChainEncryption;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.crypto.LuksKeySlotChange;
import io.github.qcowloom.image.ImageAmendment;
import io.github.qcowloom.image.ImageFormat;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code amend [-f FMT] [-t CACHE] [-p] [-q] [--force] -o OPTIONS FILE}, as qemu-img amend (img_amend) for qcow2:
 * options parsed and refused in qemu-img's words and order, then {@link ImageAmendment}.
 */
@Command(description = "Change the options of an existing image, as qemu-img amend does.")
final class AmendCommand implements Callable<Integer> {
    /** The options qemu-img amend takes for qcow2 (qcow2_amend_opts). */
    private static final Set<String> AMEND_OPTIONS = Set.of("size", "compat", "backing_file", "backing_fmt",
            "data_file", "data_file_raw", "lazy_refcounts", "refcount_bits", "encrypt.state", "encrypt.keyslot",
            "encrypt.old-secret", "encrypt.new-secret", "encrypt.iter-time");
    /** qcow2's options that only creation takes: qemu-img names them so. */
    private static final Set<String> CREATION_ONLY = Set.of("encryption", "encrypt.format", "encrypt.key-secret",
            "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg",
            "encrypt.hash-alg", "cluster_size", "extended_l2", "preallocation", "compression_type");

    @Spec
    CommandSpec spec;

    @Option(names = "-f", paramLabel = "FMT", description = "FILE's format (probed when absent).")
    String format;

    @Option(names = "-o", paramLabel = "OPTIONS", description = "Options to change: compat, refcount_bits, "
            + "lazy_refcounts, size, data_file, data_file_raw (as for create), a LUKS image's key slots "
            + "(encrypt.state, encrypt.keyslot, encrypt.new-secret, encrypt.old-secret, encrypt.iter-time); -o help "
            + "lists them.")
    List<String> options = List.of();

    @Option(names = "-t", paramLabel = "CACHE", description = "Cache mode: writeback (default), writethrough, none, "
            + "directsync or unsafe.")
    String cache = "writeback";

    @Option(names = "-p", description = "Show progress on stderr (of a refcount width change or a downgrade).")
    boolean progress;

    @Option(names = "-q", description = "Quiet.")
    boolean quiet;

    @Option(names = "--force", description = "Allow dangerous changes of LUKS key slots: overwrite an active one,"
            + " erase an erased one or the last.")
    boolean force;

    @Mixin
    OneImageFile file;

    @Override
    public Integer call() throws Exception {
        if (options.isEmpty()) {
            throw new IllegalArgumentException("Must specify options (-o)");
        }
        Map<String, String> opts = CreateOptionsParser.parse(options);
        if (format != null && CreateOptionsParser.asksForHelp(opts)) {
            return help(format);
        }
        ImageOpts image = file.image(format).requireWritable();
        boolean direct = CacheMode.direct(cache); // its message is qemu-img's
        Path path = image.path();
        String fmt = image.formatOrProbe(spec.commandLine().getErr());
        if (!fmt.equals("qcow2") && !fmt.equals("raw")) {
            throw ImageFormat.unknownDriver(path, fmt);
        }
        if (CreateOptionsParser.asksForHelp(opts)) {
            return help(fmt);
        }
        if (fmt.equals("raw")) {
            throw new ImageException("Format driver 'raw' does not support option amendment");
        }
        ImageAmendment amendment = parse(opts, file.objects, force);
        try (ProgressBar bar = ProgressBars.openPercent(progress && !quiet, "amend")) {
            amendment.apply(path, image.apply(OpenOptions.readWriteDefaults().withDirect(direct)
                    .withHostSyncs(CacheMode.syncs(cache)).withPool(false)), done -> ProgressBars.stepTo(bar, done));
        } catch (IOException e) {
            throw image.named(e);
        }
        return 0;
    }

    private int help(String fmt) throws ImageException {
        if (!fmt.equals("qcow2")) {
            throw new ImageException("Format driver '" + fmt + "' does not support option amendment");
        }
        spec.commandLine().getOut().print("""
                Amend options for 'qcow2':
                  backing_file=<str>     - File name of a base image
                  backing_fmt=<str>      - Image format of the base image
                  compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])
                  data_file=<str>        - File name of an external data file
                  data_file_raw=<bool (on/off)> - The external data file must stay valid as a raw image
                  encrypt.iter-time=<num> - Time to spend in PBKDF in milliseconds
                  encrypt.keyslot=<num>  - Select a single keyslot to modify explicitly
                  encrypt.new-secret=<str> - New secret to set in the matching keyslots. Empty string to erase
                  encrypt.old-secret=<str> - Select all keyslots that match this password
                  encrypt.state=<str>    - Select new state of affected keyslots (active/inactive)
                  lazy_refcounts=<bool (on/off)> - Postpone refcount updates
                  refcount_bits=<num>    - Width of a reference count entry in bits
                  size=<size>            - Virtual disk size
                """);
        return 0;
    }

    /**
     * The options as QemuOpts parses them against qcow2's amend list, in the order given; the secrets the key slot
     * options name are looked up where the change needs them.
     */
    private static ImageAmendment parse(Map<String, String> opts, QemuObjects secrets, boolean force)
            throws ImageException {
        Long size = null;
        Boolean raw = null;
        Boolean lazy = null;
        Long bits = null;
        boolean encryption = false;
        for (Map.Entry<String, String> e : opts.entrySet()) {
            String key = e.getKey();
            String v = e.getValue();
            if (!AMEND_OPTIONS.contains(key)) {
                throw new ImageException("Invalid parameter '" + key + "'" + (CREATION_ONLY.contains(key)
                        ? "\nThis option is only supported for image creation" : ""));
            }
            switch (key) {
                case "size" -> {
                    try {
                        size = Sizes.option("size", v);
                    } catch (IllegalArgumentException ex) {
                        throw new ImageException(ex.getMessage(), ex);
                    }
                }
                case "data_file_raw" -> raw = onOff(key, v);
                case "lazy_refcounts" -> lazy = onOff(key, v);
                case "refcount_bits" -> bits = number(key, v);
                case "encrypt.keyslot", "encrypt.iter-time" -> {
                    number(key, v);
                    encryption = true;
                }
                default -> encryption |= key.startsWith("encrypt.");
            }
        }
        LuksKeySlotChange keySlots = !encryption ? null : new LuksKeySlotChange(opts.get("encrypt.state"),
                opts.get("encrypt.keyslot"), opts.get("encrypt.iter-time"), secret(opts, "new-secret", secrets),
                secret(opts, "old-secret", secrets));
        return new ImageAmendment(size, opts.get("compat"), opts.get("backing_file"), opts.get("backing_fmt"),
                opts.get("data_file"), raw, lazy, bits, keySlots, force);
    }

    /** The secret {@code encrypt.NAME} names, looked up when asked, or null where not given. */
    private static ChainEncryption.Passphrase secret(Map<String, String> opts, String name, QemuObjects secrets) {
        String id = opts.get("encrypt." + name);
        return id == null ? null : secrets.passphraseOf(id);
    }

    private static boolean onOff(String key, String v) throws ImageException {
        Boolean b = CreateOptionsParser.bool(v);
        if (b == null) {
            throw new ImageException("Parameter '" + key + "' expects 'on' or 'off'");
        }
        return b;
    }

    private static long number(String key, String v) throws ImageException {
        try {
            return QemuNumbers.parse(v);
        } catch (ArithmeticException e) {
            throw new ImageException("Value '" + v + "' is too large for parameter '" + key + "'");
        } catch (NumberFormatException e) {
            throw new ImageException("Parameter '" + key + "' expects a number");
        }
    }
}
