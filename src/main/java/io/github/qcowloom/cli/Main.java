package io.github.qcowloom.cli;

import io.github.qcowloom.api.UnsupportedFeatureException;
import java.io.PrintWriter;
import java.nio.file.NoSuchFileException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the qemu-img-like command line. Errors print one line, "qcow2-loom: message", and exit 1. */
@Command(name = "qcow2-loom", mixinStandardHelpOptions = true, version = "qcow2-loom 0.1.0",
        description = "A qcow2 driver on virtual threads, with qemu-img's commands.",
        subcommands = {CreateCommand.class, InfoCommand.class, CheckCommand.class, ConvertCommand.class,
                MapCommand.class, ResizeCommand.class, SnapshotCommand.class, BenchCommand.class, ServeCommand.class,
                DemoCommand.class})
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
    }

    /** Runs a command line with the given streams and returns the exit code (for tests and the demo). */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        // "resize FILE -1G": the negative size is a parameter, as in qemu-img.
        cl.getSubcommands().get("resize").setUnmatchedOptionsArePositionalParams(true);
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            cmd.getErr().println("qcow2-loom: " + message(e));
            cmd.getErr().flush();
            return 1;
        });
        cl.setParameterExceptionHandler((e, args1) -> {
            e.getCommandLine().getErr().println("qcow2-loom: " + e.getMessage());
            e.getCommandLine().usage(e.getCommandLine().getErr());
            return 1;
        });
        int code = cl.execute(args);
        out.flush();
        err.flush();
        return code;
    }

    static String message(Throwable e) {
        if (e instanceof NoSuchFileException n) {
            return "Could not open '" + n.getFile() + "': No such file or directory";
        }
        if (e instanceof UnsupportedFeatureException u) {
            return u.getMessage();
        }
        String m = e.getMessage();
        return m == null ? e.toString() : m;
    }
}
