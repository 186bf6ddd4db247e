package io.github.qcowloom.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The training run of the JDK's AOT cache ({@code -XX:AOTCacheOutput}, JDK 25+), made at build time: the short
 * commands users run most, in one JVM, on a scratch image, so that the cache holds the classes they load, linked,
 * and their profiles. The launcher ({@code target/bin/qcow2-loom}) uses the cache when the JDK running it is the
 * one that made it, whose home this run records beside the cache.
 *
 * <p>Args: a scratch directory, the file to record the JDK's home in.
 */
public final class AotTraining {
    private AotTraining() {
    }

    public static void main(String[] args) throws IOException {
        Path dir = Files.createDirectories(Path.of(args[0]));
        String image = dir.resolve("train.qcow2").toString();
        String raw = dir.resolve("train.raw").toString();
        String copy = dir.resolve("copy.qcow2").toString();
        List<List<String>> commands = List.of(
                List.of("create", "-q", "-f", "qcow2", image, "64M"),
                List.of("bench", "-q", "-w", "-c", "2000", "-S", "65536", image),
                List.of("info", image),
                List.of("info", "--output=json", image),
                List.of("check", image),
                List.of("check", "--output=json", image),
                List.of("map", image),
                List.of("map", "--output=json", image),
                List.of("snapshot", "-c", "s1", image),
                List.of("snapshot", "-l", image),
                List.of("snapshot", "-d", "s1", image),
                List.of("resize", image, "+16M"),
                List.of("convert", "-O", "raw", image, raw),
                List.of("convert", "-O", "qcow2", raw, copy),
                List.of("info", "-f", "raw", raw),
                List.of("--help"));
        PrintWriter discard = new PrintWriter(Writer.nullWriter());
        for (List<String> c : commands) {
            int code = Main.run(discard, discard, c.toArray(String[]::new));
            if (code != 0) {
                throw new IllegalStateException("AOT training: " + c + " exited " + code);
            }
        }
        Files.writeString(Path.of(args[1]), System.getProperty("java.home") + "\n", StandardCharsets.UTF_8);
    }
}
