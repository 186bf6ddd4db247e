package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Arguments read as qemu-img reads them (sizes through qemu_strtosz, cvtnum and QemuOpts; -o lists), checked
 * against qemu-img itself: for each text, both tools' exit code and their words on stderr (the program's name aside),
 * and the virtual size of what each created.
 */
class ArgumentsInteropTest {
    /** Texts qemu-img takes in its own ways (hex, fractions, a point alone, white space) or refuses. */
    private static final List<String> TEXTS = List.of("1.5M", "0x10000", "0X10000", "0x", "00x10", "0x1.0", "1e3",
            "1.5e3M", "1.5E", "1.E", "1E", "010", "1.5", "1.25k", "0.0005k", "0.3k", "1.99999999999999999999k",
            " 1M", "1M ", "\t2k", "1b", "1B", "1kB", "1K", "1.M", "1.", ".5M", "1.0x", "+1M", "1..5M", "1,5M", "1m",
            "512", "513", "8E", "7.99999E", "9223372036854775296", "18446744073709551615", "18446744073709551616",
            "18446744073709551616k", "0x10000000000000000", "99999999999999999999.5", "16E", "");

    /**
     * Sizes that parse but that no qcow2 image can have, beyond the cvtnum's bounds that TEXTS cover: qemu-img
     * refuses them in its block layer's words ("Could not resize image: Image size cannot be negative"), ours as too
     * large; and 2^64 - 1, QEMU's "no size given" (its "Image creation needs a size parameter"). Left out of the
     * comparison but where cvtnum refuses them first.
     */
    private static final List<String> BEYOND_QCOW2 = List.of("8E", "7.99999E", "9223372036854775296", "16E",
            "18446744073709551615");

    @TempDir
    Path dir;

    @BeforeEach
    void qemu() {
        Qemu.assume();
    }

    @Test
    void createsPositionalSize() throws Exception {
        for (String text : TEXTS) {
            // cvtnum refuses these three before any block layer
            if (!BEYOND_QCOW2.contains(text) || List.of("8E", "16E", "18446744073709551615").contains(text)) {
                compare(text, "create", "-f", "qcow2", "IMAGE", text);
            }
        }
    }

    @Test
    void createsSizeOption() throws Exception {
        for (String text : TEXTS) {
            // "size=" alone asks for no size, and each tool then refuses in its own way
            if (!text.isEmpty() && !BEYOND_QCOW2.contains(text)) {
                compare(text, "create", "-f", "qcow2", "-o", "size=" + text, "IMAGE");
            }
        }
        compare("size twice", "create", "-f", "qcow2", "-o", "size=1M", "IMAGE", "2M");
        compare("bad size twice", "create", "-f", "qcow2", "-o", "size=1e3", "IMAGE", "2M");
        compare("empty list", "create", "-f", "qcow2", "-o", "", "IMAGE", "1M");
        compare("leading comma", "create", "-f", "qcow2", "-o", ",size=1M", "IMAGE");
        compare("odd trailing commas", "create", "-f", "qcow2", "-o", "size=1M,", "IMAGE");
        compare("even trailing commas", "create", "-f", "qcow2", "-o", "size=1M,,", "IMAGE");
        compare("escaped comma", "create", "-f", "qcow2", "-o", "size=1M,,cluster_size=4k", "IMAGE");
        compare("two lists", "create", "-f", "qcow2", "-o", "size=1M", "-o", "cluster_size=4k", "IMAGE");
        compare("flag", "create", "-f", "qcow2", "-o", "lazy_refcounts", "IMAGE", "1M");
        compare("no-flag", "create", "-f", "qcow2", "-o", "nolazy_refcounts", "IMAGE", "1M");
        for (String option : List.of("refcount_bits=x", "refcount_bits=010", "refcount_bits=0x20", "refcount_bits=3",
                "refcount_bits=18446744073709551616", "refcount_bits= 0x10", "refcount_bits=-1",
                "lazy_refcounts=maybe", "extended_l2=yes", "foo=bar", "compat=2", "cluster_size=3000",
                "compression_type=lz4", "compat=0.10,compression_type=zstd", "compat=0.10,lazy_refcounts=on",
                "compat=0.10,extended_l2=on", "compat=0.10,refcount_bits=8", "compat=0.10,data_file=d.raw",
                "extended_l2=on,cluster_size=4k", "compat=9", "compat=9,cluster_size=3",
                "compat=9,encryption=on,encrypt.format=luks", "compat=9,encrypt.format=foo",
                "compat=9,encrypt.key-secret=x")) {
            compare(option, "create", "-f", "qcow2", "-o", option, "IMAGE", "1M");
        }
        compare("raw", "create", "-f", "raw", "IMAGE", "1e3");
        compare("raw option", "create", "-f", "raw", "-o", "size=1.5", "IMAGE");
    }

    @Test
    void otherCommandsSizes() throws Exception {
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("s.qcow2").toString(), "64M");
        for (String text : List.of("1e3", "8E", "0x1000", "1.5k", "4k ", "2G")) {
            compare(text, "bench", "-c", "1", "-s", text, "SOURCE");
            compare(text, "bench", "-c", "1", "-S", text, "SOURCE");
            compare(text, "bench", "-c", "1", "-o", text, "SOURCE");
            compare(text, "map", "--start-offset", text, "SOURCE");
            compare(text, "map", "--max-length", text, "SOURCE");
        }
        for (String text : List.of("1e3", "+1e3", "8E", "+8E", "-0x1000", "128M", "18446744073709551616")) {
            Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("r.qcow2").toString(), "64M");
            compare(text, "resize", "RESIZED", text);
        }
    }

    /**
     * bench's numbers as qemu-img reads them (base 0: 0x hex, 0 octal, nothing after the digits), its bounds and its
     * words; where both run, the same count, depth and flush interval (stdout's lines up to ours' additions).
     */
    @Test
    void benchNumbersAndOptions() throws Exception {
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("s.qcow2").toString(), "64M");
        for (String text : List.of("0x10", "010", "08", "abc", "-1", "-0", " 5", "+5", "0x", "", "1k", "0",
                "2147483648", "18446744073709551616")) {
            compare("count " + text, "bench", "-w", "-c", text, "-d", "2", "SOURCE");
            if (!text.equals("0") && !text.equals("-0")) { // qemu-img waits forever with no request in flight
                compare("depth " + text, "bench", "-w", "-c", "3", "-d", text, "SOURCE");
            }
            compare("pattern " + text, "bench", "-w", "-c", "3", "--pattern", text, "SOURCE");
            compare("flush interval " + text, "bench", "-w", "-c", "3", "-d", "1", "--flush-interval", text,
                    "SOURCE");
        }
        for (String text : List.of("255", "0377", "0xff", "256", "0x100")) {
            compare("pattern " + text, "bench", "-w", "-c", "3", "--pattern", text, "SOURCE");
        }
        compare("flush on reads", "bench", "-c", "3", "-d", "1", "--flush-interval", "4", "SOURCE");
        compare("flush below depth", "bench", "-w", "-c", "3", "-d", "4", "--flush-interval", "2", "SOURCE");
        compare("no drain", "bench", "-w", "-c", "8", "-d", "2", "--flush-interval", "2", "--no-drain", "SOURCE");
        compare("aio", "bench", "-c", "3", "-i", "foo", "SOURCE");
        compare("aio threads", "bench", "-c", "3", "-i", "threads", "SOURCE");
        compare("aio io_uring", "bench", "-c", "3", "-t", "none", "-i", "io_uring", "SOURCE");
        compare("native without O_DIRECT", "bench", "-c", "3", "-n", "SOURCE");
        compare("raw", "bench", "-c", "3", "-f", "raw", "SOURCE");
        compare("unknown format", "bench", "-c", "3", "-f", "bogus", "SOURCE");
        compare("unknown format", "info", "-f", "bogus", "SOURCE");
        compare("unknown format", "map", "-f", "bogus", "SOURCE");
        compare("unknown format", "convert", "-f", "bogus", "-O", "raw", "SOURCE", "IMAGE");
    }

    /** A file named on the line that is missing, told in qemu-img's words for opening it or for creating it. */
    @Test
    void missingFiles() throws Exception {
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("s.qcow2").toString(), "64M");
        String nope = dir.resolve("nope.qcow2").toString();
        String noDir = dir.resolve("nodir/x.qcow2").toString();
        compare("info", "info", nope);
        compare("check", "check", nope);
        compare("map", "map", nope);
        compare("measure", "measure", nope);
        compare("snapshot", "snapshot", "-l", nope);
        compare("resize", "resize", nope, "1G");
        compare("bench", "bench", "-c", "1", nope);
        compare("convert source", "convert", "-O", "raw", nope, "IMAGE");
        compare("convert target", "convert", "-O", "qcow2", "SOURCE", noDir);
        compare("convert raw target", "convert", "SOURCE", noDir);
        compare("convert target before -O", "convert", "SOURCE", noDir, "-O", "qcow2");
        compare("create", "create", "-q", "-f", "qcow2", noDir, "1M");
    }

    /**
     * A name whose ':' comes before any '/' names a protocol, as QEMU reads it (path_has_protocol): one QEMU does not
     * have is refused in qemu-img's words by every command, before any file is looked at or made; one it has (NBD,
     * HTTP, file:, json:, ...) is refused as not supported here, where before it was taken for a missing file.
     */
    @Test
    void protocolNames() throws Exception {
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("s.qcow2").toString(), "64M");
        String unknown = "x:" + dir.resolve("s.qcow2"); // a relative path into no folder, were it read as one
        compare("info", "info", unknown);
        compare("check", "check", unknown);
        compare("map", "map", unknown);
        compare("measure", "measure", "-O", "qcow2", unknown);
        compare("snapshot", "snapshot", "-l", unknown);
        compare("resize", "resize", unknown, "1G");
        compare("commit", "commit", unknown);
        compare("convert source", "convert", "-O", "raw", unknown, "IMAGE");
        compare("convert target", "convert", "-O", "raw", "SOURCE", "x:" + dir.resolve("t.raw"));
        compare("create", "create", "-q", "-f", "qcow2", "x:" + dir.resolve("c.qcow2"), "1M");
        for (String name : List.of("nbd://localhost:1/disk", "nbd+unix:///?socket=" + dir.resolve("s.sock"),
                "ssh://localhost/" + dir.resolve("s.qcow2"), "json:{\"file.filename\":\"s.qcow2\"}")) {
            String protocol = name.substring(0, name.indexOf(':'));
            for (List<String> args : List.of(List.of("info", name), List.of("create", "-f", "qcow2", name, "1M"),
                    List.of("convert", "-O", "raw", dir.resolve("s.qcow2").toString(), name))) {
                Cli.Run r = Cli.ours(args.toArray(String[]::new));
                assertEquals(1, r.code(), args + ": " + r.err());
                assertTrue(r.err().contains("the protocol '" + protocol + "' is not supported"), args + ": " + r.err());
            }
        }
    }

    /**
     * Options read as getopt_long reads them: given twice, the last one counts (before, refused with the usage text);
     * a long one shortened to a prefix that only it has (before, unknown), its value after '=' or as the next
     * argument, which is never read as an option itself.
     */
    @Test
    void optionsGivenTwiceOrShortenedAsGetoptLongReadsThem() throws Exception {
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("s.qcow2").toString(), "64M");
        String s = dir.resolve("s.qcow2").toString();
        Cli.sameAsQemuImg("info", "-f", "raw", "-f", "qcow2", s);
        Cli.sameAsQemuImg("map", "--output=json", "--output=human", s);
        Cli.sameAsQemuImg("measure", "--size", "1G", "--size", "2G", "-O", "qcow2");
        Cli.sameAsQemuImg("info", "--out=json", s);
        Cli.sameAsQemuImg("info", "--back", "--out", "json", s);
        Cli.sameAsQemuImg("check", "--outp=json", s);
        Cli.sameAsQemuImg("info", "--im", "file.filename=" + s);
        Cli.sameAsQemuImg("info", "-f", "--out=json", s); // a value, not an option
        // a name like an option's without its dash ("f") is a file's (here one not there, in the working directory)
        Cli.sameAsQemuImg("info", "f", "--out=json");
        compare("-f twice", "create", "-f", "raw", "-f", "qcow2", "IMAGE", "1M");
        compare("-O twice", "convert", "-O", "raw", "-O", "qcow2", "SOURCE", "IMAGE");
        compare("an empty value", "create", "-f", "qcow2", "IMAGE", "");
    }

    /**
     * A folder, or no name at all, where an image is named: refused in the words of QEMU's file driver where it would
     * be opened, in its create's where it would be made (before, a bare "Is a directory").
     */
    @Test
    void foldersAndEmptyNamesAreRefusedAsQemuImgRefusesThem() throws Exception {
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("s.qcow2").toString(), "64M");
        String folder = Files.createDirectories(dir.resolve("folder")).toString();
        for (String name : List.of(folder, "")) {
            compare("info", "info", name);
            compare("check", "check", name);
            compare("map", "map", name);
            Cli.sameAsQemuImg("compare", name, dir.resolve("s.qcow2")); // exit 2, as there
            compare("convert source", "convert", "-O", "raw", name, "IMAGE");
            compare("dd input", "dd", "if=" + name, "of=" + dir.resolve("o.raw"));
        }
        compare("create", "create", "-f", "qcow2", folder, "1M");
        compare("create raw", "create", "-f", "raw", folder, "1M");
        compare("convert target", "convert", "-O", "qcow2", "SOURCE", folder);
        compare("dd output", "dd", "if=" + dir.resolve("s.qcow2"), "of=" + folder);
    }

    /** One refusal of an --output that is neither human nor json, in qemu-img's words, before anything is opened. */
    @Test
    void outputFormats() throws Exception {
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("s.qcow2").toString(), "64M");
        for (String command : List.of("info", "check", "map", "measure")) {
            compare(command, command, "--output=xml", "SOURCE");
            compare(command + " of nothing", command, "--output=xml", dir.resolve("nope.qcow2").toString());
        }
    }

    @Test
    void convertNeedsTheBackingFormatWithABackingFile() throws Exception {
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("s.qcow2").toString(), "64M");
        Qemu.img("create", "-q", "-f", "qcow2", dir.resolve("b.qcow2").toString(), "64M");
        compare("-B", "convert", "-O", "qcow2", "-B", "b.qcow2", "SOURCE", "IMAGE");
        compare("-o backing_file", "convert", "-O", "qcow2", "-o", "backing_file=b.qcow2", "SOURCE", "IMAGE");
        compare("-B raw", "convert", "-O", "raw", "-B", "b.qcow2", "SOURCE", "IMAGE");
        compare("-B -F", "convert", "-O", "qcow2", "-B", "b.qcow2", "-F", "qcow2", "SOURCE", "IMAGE");
    }

    /** -o help lists, in qemu-img's words, the options this tool takes; nothing is created. */
    @Test
    void optionHelp() {
        for (String format : List.of("qcow2", "raw")) {
            Path file = dir.resolve("h." + format);
            String theirs = Qemu.img("create", "-f", format, "-o", "help", file.toString(), "1M");
            String ours = Cli.succeeding("create", "-f", format, "-o", "help", file.toString(), "1M");
            assertEquals("Supported options:", ours.lines().findFirst().orElseThrow());
            for (String line : ours.lines().skip(1).toList()) {
                assertTrue(theirs.lines().anyMatch(line::equals), format + ": " + line + " in\n" + theirs);
            }
            assertEquals(false, Files.exists(file));
        }
        assertEquals(Cli.succeeding("create", "-f", "qcow2", "-o", "size=1M,?", dir.resolve("x").toString()),
                Cli.succeeding("convert", "-O", "qcow2", "-o", "help", "a", "b"));
    }

    /**
     * Runs both tools with {@code args} (IMAGE: a new image per tool; SOURCE: s.qcow2; RESIZED: r.qcow2, which
     * qemu-img resizes first and ours then from the same start) and compares exit codes, error words (but for a
     * bench request that failed) and the virtual size of IMAGE or RESIZED.
     */
    private void compare(String what, String... args) throws Exception {
        Path theirs = dir.resolve("q.img");
        Path ours = dir.resolve("o.img");
        Files.deleteIfExists(theirs);
        Files.deleteIfExists(ours);
        boolean resizes = List.of(args).contains("RESIZED");
        Path resized = dir.resolve("r.qcow2");
        Path before = dir.resolve("r.before");
        if (resizes) {
            Files.copy(resized, before, StandardCopyOption.REPLACE_EXISTING);
        }
        List<String> q = new ArrayList<>(List.of("qemu-img"));
        q.addAll(substitute(args, theirs));
        Qemu.Result qr = Qemu.exec(q);
        String qSize = virtualSize(resizes ? resized : theirs);
        if (resizes) {
            Files.copy(before, resized, StandardCopyOption.REPLACE_EXISTING);
        }
        Cli.Run or = Cli.ours(substitute(args, ours).toArray(String[]::new));
        String oSize = virtualSize(resizes ? resized : ours);
        String context = what + " " + List.of(args) + ": qemu-img said " + qr.stderr() + " ours " + or.err();
        assertEquals(qr.exitCode() == 0 ? 0 : 1, or.code(), context);
        // A failed bench request is told in each tool's own words; refused arguments in qemu-img's.
        boolean failedRequest = qr.stderr().contains("Failed request");
        if (qr.exitCode() != 0 && !failedRequest) {
            assertEquals(qr.stderr().replace("qemu-img: ", "qcow2-loom: ").replace(theirs.toString(), ours.toString()),
                    or.err(), context);
        }
        assertEquals(qSize, oSize, context);
        if (args[0].equals("create")) { // the Formatting line: printed, or not, where qemu-img prints it
            assertEquals(qr.stdout().replace(theirs.toString(), ours.toString()), or.out(), context);
        }
        if (args[0].equals("bench") && qr.exitCode() == 0) {
            assertEquals(benchLines(qr.stdout()), benchLines(or.out()), context);
        }
    }

    /** What bench says of its workload: the first line up to our additions, and a flush line if any. */
    private static List<String> benchLines(String stdout) {
        return stdout.lines().filter(l -> l.startsWith("Sending"))
                .map(l -> l.contains(")") ? l.substring(0, l.indexOf(')') + 1) : l).toList();
    }

    private List<String> substitute(String[] args, Path image) {
        List<String> out = new ArrayList<>();
        for (String a : args) {
            out.add(switch (a) {
                case "IMAGE" -> image.toString();
                case "SOURCE" -> dir.resolve("s.qcow2").toString();
                case "RESIZED" -> dir.resolve("r.qcow2").toString();
                default -> a;
            });
        }
        return out;
    }

    private static String virtualSize(Path image) {
        if (!Files.exists(image)) {
            return "none";
        }
        String json = Qemu.img("info", "--output=json", "-U", image.toString());
        int at = json.indexOf("\"virtual-size\": ");
        return json.substring(at, json.indexOf(',', at));
    }
}
