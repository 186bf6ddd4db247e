package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.testing.Qemu;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;

/** Runs our command line in-process and captures what it prints, for the CLI tests. */
final class Cli {
    private Cli() {
    }

    /** Output, error text and exit code of one of our commands. */
    record Run(int code, String out, String err) {
    }

    static Run ours(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(new PrintWriter(out), new PrintWriter(err), args);
        return new Run(code, out.toString(), err.toString());
    }

    /** The output of one of our commands, which must succeed (else the test fails with its error text). */
    static String succeeding(String... args) {
        Run r = ours(args);
        assertEquals(0, r.code(), r.err());
        return r.out();
    }

    /** qemu-img's run and ours of the same arguments, each given its own target. */
    record Both(Qemu.Result theirs, Run mine) {
    }

    /** Runs {@code qemu-img ARGS THEIRS} and ours as {@code ARGS MINE}: commands whose last argument is a target. */
    static Both intoTargets(List<String> args, String theirs, String mine) {
        List<String> q = new ArrayList<>(List.of("qemu-img"));
        q.addAll(args);
        q.add(theirs);
        List<String> o = new ArrayList<>(args);
        o.add(mine);
        return new Both(Qemu.exec(q), ours(o.toArray(String[]::new)));
    }

    /**
     * Runs {@code qemu-img COMMAND ARGS} and ours with the same arguments and asserts the same exit code, output and
     * errors (our name for qemu-img's in them); returns the output.
     */
    static String sameAsQemuImg(String command, Object... args) {
        return sameRunAsQemuImg(command, args).out();
    }

    /** {@link #sameAsQemuImg}, returning our run. */
    static Run sameRunAsQemuImg(String command, Object... args) {
        List<String> a = new ArrayList<>();
        for (Object o : args) {
            a.add(o.toString());
        }
        List<String> q = new ArrayList<>(List.of("qemu-img", command));
        q.addAll(a);
        Qemu.Result theirs = Qemu.exec(q);
        List<String> o = new ArrayList<>(List.of(command));
        o.addAll(a);
        Run run = ours(o.toArray(String[]::new));
        String context = command + " " + a + ": qemu-img said " + theirs.stdout() + theirs.stderr() + " ours "
                + run.out() + run.err();
        assertEquals(theirs.exitCode(), run.code(), context);
        assertEquals(theirs.stdout(), run.out(), context);
        assertEquals(theirs.stderr().replace("qemu-img: ", "qcow2-loom: "), run.err(), context);
        return run;
    }
}
