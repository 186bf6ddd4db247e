package io.github.qcowloom.cli;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.EventLoops;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The training runs of the JDK's AOT caches ({@code -XX:AOTCacheOutput}, JDK 25+), made at build time on a scratch
 * image, one JVM each. Two caches: {@code short}, the commands the launcher starts with the quick compiler (info,
 * check, map, measure, snapshot, create, resize, amend), and {@code all}, every command, for the others (convert,
 * compare, rebase, commit, dd, bench, serve).
 * A cache holds the classes its run loaded, linked, and their profiles, and the JVM maps all of them at start-up:
 * info started about 10 ms sooner from a cache of the short commands alone than from one of everything. The launcher
 * ({@code target/bin/qcow2-loom}) uses a cache when the JDK running it is the one that made it, whose home this run
 * records beside the cache.
 *
 * <p>Args: {@code short} or {@code all}, a scratch directory, the file to record the JDK's home in.
 */
public final class AotTraining {
    private AotTraining() {
    }

    public static void main(String[] args) throws IOException, InterruptedException {
        boolean all = switch (args[0]) {
            case "all" -> true;
            case "short" -> false;
            default -> throw new IllegalArgumentException("AOT training: short or all, not " + args[0]);
        };
        Path dir = Files.createDirectories(Path.of(args[1]).resolve(args[0]));
        String image = dir.resolve("train.qcow2").toString();
        String raw = dir.resolve("train.raw").toString();
        String copy = dir.resolve("copy.qcow2").toString();
        String compressed = dir.resolve("compressed.qcow2").toString();
        String overlay = dir.resolve("overlay.qcow2").toString();
        Files.deleteIfExists(Path.of(image));
        Files.write(Path.of(raw), new byte[1 << 20]);
        PrintWriter discard = new PrintWriter(Writer.nullWriter());
        Main.linkNativeCallsAhead("info").join();
        run(discard, List.of("create", "-q", "-f", "qcow2", image, "64M"));
        writeData(Path.of(image));
        List<List<String>> commands = new ArrayList<>();
        if (all) {
            commands.add(List.of("bench", "-q", "-w", "-c", "2000", "-S", "65536", image));
        }
        commands.addAll(List.of(
                List.of("info", image),
                List.of("info", "--output=json", image),
                List.of("check", image),
                List.of("check", "--output=json", image),
                List.of("map", image),
                List.of("map", "--output=json", image),
                List.of("measure", "-O", "qcow2", image),
                List.of("snapshot", "-c", "s1", image),
                List.of("snapshot", "-l", image),
                List.of("snapshot", "-d", "s1", image),
                List.of("resize", image, "+16M"),
                List.of("amend", "-o", "lazy_refcounts=on", image),
                List.of("amend", "-o", "lazy_refcounts=off", image),
                List.of("info", "-f", "raw", raw)));
        if (all) {
            commands.addAll(List.of(
                    List.of("convert", "-O", "raw", image, raw),
                    List.of("convert", "-O", "qcow2", raw, copy),
                    List.of("convert", "-c", "-O", "qcow2", raw, compressed),
                    List.of("convert", "-O", "raw", compressed, raw),
                    List.of("compare", image, raw),
                    List.of("compare", copy, image),
                    List.of("create", "-q", "-f", "qcow2", "-b", image, "-F", "qcow2", overlay),
                    List.of("rebase", "-b", copy, "-F", "qcow2", overlay),
                    List.of("rebase", "-u", "-b", image, "-F", "qcow2", overlay),
                    List.of("commit", "-d", overlay),
                    List.of("dd", "-O", "qcow2", "bs=64k", "count=8", "if=" + image, "of=" + copy),
                    List.of("--help")));
        }
        for (List<String> c : commands) {
            run(discard, c);
        }
        Files.writeString(Path.of(args[2]), System.getProperty("java.home") + "\n", StandardCharsets.UTF_8);
        // As Main ends: the ring threads stopped, and System.exit looks up a logger to report the exit, whose classes
        // the cache then holds.
        EventLoops.stopForExit();
        System.exit(0);
    }

    private static void run(PrintWriter discard, List<String> command) {
        int code = Main.run(discard, discard, command.toArray(String[]::new));
        if (code != 0) {
            throw new IllegalStateException("AOT training: " + command + " exited " + code);
        }
    }

    /**
     * Gives the image what users' images hold, so that the commands' runs go through the code for it: 2 MiB of
     * data at 0 whose 4 KiB blocks are a byte pattern except every fourth, zeroes (a copy keeps those as holes),
     * and 1 MiB written as zeroes at 4 MiB; the rest is unallocated.
     */
    private static void writeData(Path image) throws IOException {
        ByteBuffer data = ByteBuffer.allocate(2 << 20);
        for (int i = 0; i < data.capacity(); i++) {
            data.put(i, (i >> 12) % 4 == 3 ? 0 : (byte) (i * 31 + (i >> 12)));
        }
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            img.write(0, data);
            img.writeZeroes(4 << 20, 1 << 20, false);
        }
    }
}
