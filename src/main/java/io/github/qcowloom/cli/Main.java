package io.github.qcowloom.cli;

import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.exec.EventLoops;
import io.github.qcowloom.image.ProtocolPrefix;
import io.github.qcowloom.storage.ImageLock;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * Entry point of the qemu-img-like command line. Errors print one line, "qcow2-loom: message", and exit 1 (compare
 * exits with qemu-img compare's codes).
 */
public final class Main {
    /**
     * The commands by name, in the order help lists them: each makes a new command's picocli model, from its
     * annotations or, for the three that must start fastest, in code ({@link CodeModel}).
     */
    private static final Map<String, Supplier<Object>> COMMANDS = commands();

    private static Map<String, Supplier<Object>> commands() {
        Map<String, Supplier<Object>> c = new LinkedHashMap<>();
        c.put("amend", () -> AmendCommand.class);
        c.put("create", () -> CreateCommand.class);
        c.put("info", () -> new InfoCommand().spec);
        c.put("check", () -> new CheckCommand().spec);
        c.put("commit", () -> CommitCommand.class);
        c.put("convert", () -> new ConvertCommand().spec);
        c.put("dd", () -> DdCommand.class);
        c.put("compare", () -> CompareCommand.class);
        c.put("map", () -> MapCommand.class);
        c.put("measure", () -> MeasureCommand.class);
        c.put("rebase", () -> RebaseCommand.class);
        c.put("resize", () -> ResizeCommand.class);
        c.put("snapshot", () -> SnapshotCommand.class);
        c.put("bitmap", () -> BitmapCommand.class);
        c.put("bench", () -> BenchCommand.class);
        c.put("serve", () -> ServeCommand.class);
        c.put("demo", () -> DemoCommand.class);
        return Collections.unmodifiableMap(c);
    }

    private Main() {
    }

    /** Set when this class's main runs: the JVM is the command line's own (serve --fork starts it again). */
    private static volatile boolean ownsProcess;

    public static void main(String[] args) {
        ownsProcess = true;
        // The JDK's socket poller as one platform thread that resumes a virtual thread itself, not as virtual
        // threads on the JDK's scheduler (its default on Linux): a socket's readiness then reaches an event loop's
        // thread (loop:N) in one hand-off, not three. NBD O_DIRECT random reads on loop:1: 75k against 45k. Read when
        // the first socket blocks, so set before anything opens one; a -D on the command line wins.
        if (System.getProperty("jdk.pollerMode") == null) {
            System.setProperty("jdk.pollerMode", "1");
        }
        if (args.length > 0 && !args[0].startsWith("-")) {
            linkNativeCallsAhead(args[0]);
        }
        int code = run(utf8(System.out), utf8(System.err), args);
        // Every image is closed: the threads waiting in io_uring end, or the JVM would wait up to 300 ms for them.
        EventLoops.stopForExit();
        System.exit(code);
    }

    /** Whether this JVM runs the command line's main, not a command run inside another program (a test). */
    static boolean ownsProcess() {
        return ownsProcess;
    }

    /**
     * Starts a thread that links the native calls {@code command} will make. A command that opens an image takes
     * its lock through FFM, whose set-up is a good part of a short command's start-up: done on the other core
     * while picocli builds and parses; for info, the disk size's class and first statx too. {@link AotTraining}
     * runs it too, so that the AOT cache holds what it loads.
     */
    static Thread linkNativeCallsAhead(String command) {
        return Thread.ofPlatform().daemon().name("qcow2-loom-native-link").start(() -> {
            try {
                ImageLock.linkNativeCalls();
                if (command.equals("info")) {
                    DiskUsage.link();
                }
            } catch (Throwable t) {
                // never a stack trace on the command line: the main thread meets any failure again
            }
        });
    }

    /**
     * A writer of UTF-8 text to {@code stream}, whatever the locale. qemu-img prints names and paths as their
     * bytes, which for UTF-8 text are these; the locale's charset would print '?' for them under LANG=C.
     */
    static PrintWriter utf8(PrintStream stream) {
        return new PrintWriter(stream, true, StandardCharsets.UTF_8);
    }

    /** Runs a command line with the given streams and returns the exit code (for tests and the demo). */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        // Built in code, help options too: picocli's standard help mixin is an annotated class (see CodeModel).
        CommandSpec root = CommandSpec.create().name("qcow2-loom").version("qcow2-loom 0.1.0")
                .addOption(OptionSpec.builder("-h", "--help").usageHelp(true)
                        .description("Show this help message and exit.").build())
                .addOption(OptionSpec.builder("-V", "--version").versionHelp(true)
                        .description("Print version information and exit.").build());
        root.usageMessage().description("A qcow2 driver on virtual threads, with qemu-img's commands.");
        CommandLine cl = new CommandLine(root);
        // Picocli builds an annotated command's model by reflection, a large part of a short command's start-up:
        // only the command named is built, all of them when none is (help, a misspelt name).
        String named = args.length > 0 && COMMANDS.containsKey(args[0]) ? args[0] : null;
        COMMANDS.forEach((name, command) -> {
            if (named == null || named.equals(name)) {
                cl.addSubcommand(name, command.get());
            }
        });
        cl.setOut(out);
        cl.setErr(err);
        // getopt_long's ways, as qemu-img and qemu-nbd read their options: an option given again overrides the one
        // before (options that collect, -o and --object, collect; serve's --cache, --aio and --discard refuse a
        // second as qemu-nbd does), and a long option may be shortened to a prefix only it has (--out=json).
        cl.setOverwrittenOptionsAllowed(true);
        if (named != null) {
            args = LongOptionPrefixes.expand(cl.getSubcommands().get(named).getCommandSpec(), args);
        }
        CommandLine resize = cl.getSubcommands().get("resize");
        if (resize != null) {
            // "resize FILE -1G": the negative size is a parameter, as in qemu-img.
            resize.setUnmatchedOptionsArePositionalParams(true);
        }
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            cmd.getErr().println("qcow2-loom: " + message(e, cmd.getCommandName(), parsed));
            cmd.getErr().flush();
            return 1;
        });
        cl.setParameterExceptionHandler((e, args1) -> {
            e.getCommandLine().getErr().println("qcow2-loom: " + e.getMessage());
            e.getCommandLine().usage(e.getCommandLine().getErr());
            return 1;
        });
        int code;
        try {
            code = cl.execute(args);
        } finally {
            closeSecrets(cl.getCommandSpec());
        }
        out.flush();
        err.flush();
        return code;
    }

    /**
     * Closes the secrets of {@code command}, its subcommands and their mixins, which hold the keys their images
     * unlocked for the command's run alone.
     */
    static void closeSecrets(CommandSpec command) {
        if (command.userObject() instanceof QemuObjects secrets) {
            secrets.close();
        } else if (command.userObject() instanceof QemuObjects.Holder holder) {
            holder.secretObjects().close();
        }
        for (CommandLine sub : command.subcommands().values()) {
            closeSecrets(sub.getCommandSpec());
        }
        for (CommandSpec mixin : command.mixins().values()) {
            closeSecrets(mixin);
        }
    }

    static String message(Throwable e) {
        if (e instanceof NoSuchFileException n) {
            return "Could not open '" + n.getFile() + "': No such file or directory";
        }
        if (e instanceof AccessDeniedException a && a.getReason() == null) { // its message is the bare file name
            return "Could not open '" + a.getFile() + "': Permission denied";
        }
        if (e instanceof UnsupportedFeatureException u) {
            return u.getMessage();
        }
        String m = e.getMessage();
        return m == null ? e.toString() : m;
    }

    /**
     * Why the image named {@code file} could not be opened, as qemu-img's img_open says it: its context ("Could not
     * open 'F': ") around the file layer's words, which for the named file itself say the same again.
     */
    static String openFailure(String file, Throwable e) {
        return names(file, unopenedFile(e)) ? "Could not open '" + file + "': " + message(e) : message(e);
    }

    /** Whether the name {@code given} names the file {@code file}: as it stands, or after its protocol's prefix. */
    private static boolean names(String given, String file) {
        return given.equals(file) || ProtocolPrefix.fileName(given).equals(file);
    }

    /**
     * {@link #message} as qemu-img words it for a file named on the line of {@code command} (one of qemu-img's) that
     * could not be opened: an image it opens (img_open's context around the file layer's words), or the one that
     * create or convert makes ("F: Could not create 'F': ...").
     */
    static String message(Throwable e, String command, CommandLine.ParseResult parsed) {
        String file = unopenedFile(e);
        if (parsed != null && parsed.hasSubcommand()) {
            parsed = parsed.subcommand(); // the handler gets the top command's
        }
        // The file names given (not options' values, nor the command's name): for convert the last is the target.
        List<String> args = parsed == null ? List.of() : parsed.matchedPositionals().stream()
                .flatMap(p -> p.stringValues().stream()).distinct().toList();
        boolean makes = command.equals("create")
                || command.equals("convert") && parsed != null && !parsed.hasMatchedOption("-n");
        if (file == null && makes && e instanceof FileSystemException f && f.getFile() != null
                && f.getReason() != null) {
            file = f.getFile(); // what the new image's file system refused ("Is a directory"), worded below
        }
        String named = file;
        String given = file == null ? null : args.stream().filter(a -> names(a, named)).findFirst().orElse(null);
        if (given == null || command.equals("serve") || command.equals("demo")) {
            return message(e); // serve words its own, as qemu-nbd ("Failed to blk_new_open ..."); demo plainly
        }
        String reason = reason(e);
        if (command.equals("create")) {
            return given + ": Could not create '" + file + "': " + reason;
        }
        if (command.equals("convert") && given.equals(args.get(args.size() - 1)) && !parsed.hasMatchedOption("-n")) {
            List<String> formats = parsed.hasMatchedOption("-O") ? parsed.matchedOption("-O").stringValues()
                    : List.of();
            String format = formats.isEmpty() ? "raw" : formats.get(formats.size() - 1);
            return given + ": error while converting " + format + ": Could not create '" + file + "': " + reason;
        }
        return openFailure(given, e);
    }

    /** Why the file system refused, as strerror words it ("No such file or directory", "Is a directory"). */
    static String reason(Throwable e) {
        return e instanceof NoSuchFileException ? "No such file or directory"
                : e instanceof AccessDeniedException a && a.getReason() == null ? "Permission denied"
                : e instanceof FileSystemException f && f.getReason() != null ? f.getReason() : message(e);
    }

    /** The file a NoSuchFileException or a bare AccessDeniedException names, else null. */
    private static String unopenedFile(Throwable e) {
        if (e instanceof NoSuchFileException n) {
            return n.getFile();
        }
        return e instanceof AccessDeniedException a && a.getReason() == null ? a.getFile() : null;
    }
}
