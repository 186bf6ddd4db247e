package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.PrintWriter;
import java.io.StringWriter;

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
}
