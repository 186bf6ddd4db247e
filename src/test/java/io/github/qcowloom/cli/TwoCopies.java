package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A qemu-img command that changes images, and ours, each run on its own copy of the same images (built twice
 * alike, by qemu-img and qemu-io), and compared: exit code and messages, and for each image named, the backing file
 * its header names, its guest contents (qemu-img compare), its allocation (qemu-img map without host offsets, which
 * the two tools place differently) and a clean qemu-img check of ours.
 */
final class TwoCopies {
    private static final Pattern ENTRY = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+), \"depth\": (\\d+), "
            + "\"present\": (true|false), \"zero\": (true|false), \"data\": (true|false)");
    private static final Pattern BACKING = Pattern.compile("\"(backing-filename(-format)?)\": \"([^\"]*)\"");

    /** Builds one case's images in a folder. */
    @FunctionalInterface
    interface Setup {
        void build(Path folder) throws IOException;
    }

    private final Path dir;
    private int cases;

    TwoCopies(Path dir) {
        this.dir = dir;
    }

    /**
     * Runs {@code qemu-img COMMAND ARGS FILE} and ours, FILE being {@code image} of each copy (in place of an "@" in
     * ARGS, if there is one), and compares them and then each of {@code images} (those of them that exist).
     */
    void assertSame(Setup setup, String command, List<String> args, String image, String... images)
            throws IOException {
        cases++;
        Path theirs = Files.createDirectories(dir.resolve("qemu" + cases));
        Path ours = Files.createDirectories(dir.resolve("ours" + cases));
        setup.build(theirs);
        setup.build(ours);
        List<String> qemu = new ArrayList<>(List.of("qemu-img", command));
        qemu.addAll(withImage(args, theirs.resolve(image)));
        Qemu.Result r = Qemu.exec(qemu);
        List<String> mine = new ArrayList<>(List.of(command));
        mine.addAll(withImage(args, ours.resolve(image)));
        Cli.Run o = Cli.ours(mine.toArray(String[]::new));
        String context = command + " " + args + ": qemu-img said " + r.stdout() + r.stderr() + ", ours " + o.out()
                + o.err();
        assertEquals(r.exitCode(), o.code(), context);
        assertEquals(r.stdout(), o.out(), context);
        assertEquals(r.stderr().replace(theirs.toString(), ours.toString()).replace("qemu-img: ", "qcow2-loom: "),
                o.err(), context);
        for (String name : images) {
            if (!Files.exists(theirs.resolve(name))) {
                assertTrue(Files.notExists(ours.resolve(name)), context + ": " + name);
                continue;
            }
            String about = context + ": " + name;
            assertEquals(backingOf(theirs.resolve(name)), backingOf(ours.resolve(name)), about);
            assertEquals(map(theirs, name), map(ours, name), about);
            Qemu.Result same = Qemu.exec(List.of("qemu-img", "compare", "-U", theirs.resolve(name).toString(),
                    ours.resolve(name).toString()));
            assertEquals("Images are identical.\n", same.stdout(), about + "; " + same.stderr());
            if (name.endsWith(".qcow2")) {
                Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", "-U", ours.resolve(name).toString()));
                assertEquals(0, check.exitCode(), about + ": " + check.stdout() + check.stderr());
            }
        }
    }

    /**
     * A qcow2 image {@code name} of {@code size} made by qemu-img in {@code folder}, with more create arguments;
     * relative backing file names are taken from the folder, as qemu-img takes them beside the image.
     */
    static Path qcow2(Path folder, String name, String size, String... createArgs) {
        Path img = folder.resolve(name);
        List<String> args = new ArrayList<>(List.of("create", "-q", "-f", "qcow2"));
        args.addAll(List.of(createArgs));
        args.addAll(List.of(img.toString(), size));
        Qemu.imgIn(folder, args.toArray(String[]::new));
        return img;
    }

    /** {@code args} with FILE in place of an "@", or after them where there is none. */
    private static List<String> withImage(List<String> args, Path image) {
        List<String> line = new ArrayList<>(args.stream().map(a -> a.equals("@") ? image.toString() : a).toList());
        if (!args.contains("@")) {
            line.add(image.toString());
        }
        return line;
    }

    /** The backing file names and formats of the chain, as qemu-img info reads them from the headers. */
    private static List<String> backingOf(Path image) {
        Qemu.Result info = Qemu.exec(List.of("qemu-img", "info", "-U", "--backing-chain", "--output=json",
                image.toString()));
        List<String> found = new ArrayList<>();
        Matcher m = BACKING.matcher(info.stdout());
        while (m.find()) {
            found.add(m.group(1) + "=" + m.group(3));
        }
        return found;
    }

    /**
     * qemu-img map's runs with their flags, merged where only host offsets kept them apart. Whether data reads as
     * zeroes is left out: qemu-img finds that in the file's holes, which the two tools leave in different places
     * within clusters they allocate alike (QEMU fills a new cluster's rest with fallocated zeroes).
     */
    private static String map(Path folder, String image) {
        Qemu.Result map = Qemu.exec(List.of("qemu-img", "map", "-U", "--output=json",
                folder.resolve(image).toString()));
        StringBuilder runs = new StringBuilder().append(map.exitCode()).append(map.stderr().replace(folder.toString(),
                "F"));
        long start = -1;
        long end = -1;
        String flags = null;
        Matcher m = ENTRY.matcher(map.stdout());
        while (m.find()) {
            String f = m.group(3) + (m.group(4).equals("true") ? " present" : "")
                    + (m.group(6).equals("true") ? " data" : m.group(5).equals("true") ? " zero" : "");
            long s = Long.parseLong(m.group(1));
            if (f.equals(flags) && s == end) {
                end += Long.parseLong(m.group(2));
                continue;
            }
            if (flags != null) {
                runs.append('\n').append(start).append('+').append(end - start).append(' ').append(flags);
            }
            start = s;
            end = s + Long.parseLong(m.group(2));
            flags = f;
        }
        if (flags != null) {
            runs.append('\n').append(start).append('+').append(end - start).append(' ').append(flags);
        }
        return runs.toString();
    }
}
