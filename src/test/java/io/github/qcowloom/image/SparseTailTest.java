package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.Qemu;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A dirty image with 512-byte clusters whose file was extended sparsely to 64 GiB: 128 Mi clusters, almost all of
 * them past everything the tables reference. The recount that a read-write open (and check) makes must not size
 * itself by the file: at -Xmx512m the open repairs the image and check reports what qemu-img reports.
 */
class SparseTailTest {
    private static final long SPARSE_LENGTH = 64L << 30;

    @TempDir
    Path dir;

    @Test
    void aDirtyImageInA64GiBSparseFileOpensAndChecksAt512MiBOfHeap() throws Exception {
        Path image = dir.resolve("sparse.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(16L << 20).withClusterSize(512));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            byte[] data = new byte[64 << 10];
            Arrays.fill(data, (byte) 0x5a);
            img.write(0, ByteBuffer.wrap(data));
            img.write(8L << 20, ByteBuffer.wrap(data));
        }
        leakOneCluster(image);
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            // Incompatible feature bit 0 (dirty) at byte 72, then 64 GiB of hole.
            f.seek(72);
            long features = f.readLong();
            f.seek(72);
            f.writeLong(features | 1);
            f.setLength(SPARSE_LENGTH);
        }
        String qemuBefore = Qemu.available() ? qemuCheck(image) : null;

        List<String> lines = runAt512MiB(image);
        assertEquals(3, lines.size(), () -> "the child printed: " + lines);
        assertTrue(lines.get(0).startsWith("check"), lines::toString);
        assertEquals("opened", lines.get(1), lines::toString);
        assertTrue(lines.get(2).startsWith("check"), lines::toString);
        assertEquals("1", fields(lines.get(0)).get("leaks"), lines.get(0));
        // Clean after the repair; the image still ends where its data does, not at 64 GiB.
        TreeMap<String, String> after = fields(lines.get(2));
        assertEquals("0", after.get("check-errors"), lines.get(2));
        assertTrue(!after.containsKey("leaks") && !after.containsKey("corruptions"), lines.get(2));
        long end = Long.parseLong(after.get("image-end-offset"));
        assertTrue(end < (1L << 20), "image-end-offset " + end);

        if (qemuBefore != null) {
            // What our check said about the dirty image is what qemu-img says, field by field.
            assertEquals(qemuBefore, fields(lines.get(0)).toString(), "before the repair");
            assertEquals(qemuCheck(image), fields(lines.get(2)).toString(), "after the repair");
        }
        assertEquals(SPARSE_LENGTH, Files.size(image), "the file was cut or grown");
    }

    /** Checks and opens {@code image} in a JVM with a 512 MiB heap; returns its output, failing on an OOM. */
    private static List<String> runAt512MiB(Path image) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process child = new ProcessBuilder(java, "-Xmx512m", "-XX:+ExitOnOutOfMemoryError",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                SparseTailProcess.class.getName(), image.toString()).redirectErrorStream(true).start();
        child.getOutputStream().close();
        String out = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the child did not finish");
        assertEquals(0, child.exitValue(), () -> "the child failed: " + out);
        List<String> lines = new ArrayList<>();
        for (String l : out.split("\n")) {
            // Only the child's own lines; the image's log may say more.
            if (l.startsWith("check") || l.startsWith("opened") || l.startsWith("refused")) {
                lines.add(l);
            }
        }
        return lines;
    }

    /** qemu-img check --output=json's fields (filename left out), as a sorted map's string. */
    private static String qemuCheck(Path image) {
        Qemu.Result r = Qemu.exec(List.of("qemu-img", "check", "--output=json", image.toString()));
        TreeMap<String, String> m = new TreeMap<>();
        Matcher x = Pattern.compile("\"([a-z-]+)\": (\\d+|\"[^\"]*\")").matcher(r.stdout());
        while (x.find()) {
            m.put(x.group(1), x.group(2).replace("\"", ""));
        }
        m.remove("filename");
        return m.toString();
    }

    /** The KEY=VALUE fields of a {@code check} line, sorted. */
    private static TreeMap<String, String> fields(String line) {
        TreeMap<String, String> m = new TreeMap<>();
        for (String f : line.split(" ")) {
            int eq = f.indexOf('=');
            if (eq > 0) {
                m.put(f.substring(0, eq), f.substring(eq + 1));
            }
        }
        return m;
    }

    /** Raises the refcount of one free cluster that an existing refblock covers: a leak for the repair to fix. */
    private static void leakOneCluster(Path image) throws Exception {
        try (FileStorage file = FileStorage.open(image, false, false)) {
            Header header = ImageMetadata.readHeader(file);
            TableCache cache = new TableCache(file, 512, 16);
            RefcountTable table = new RefcountTable(file, header, cache);
            long c = 1;
            while (table.get(new HostCluster(c)) != 0 || !table.hasBlockFor(c)) {
                c++;
                assertTrue(table.hasBlockFor(c) || c < (1 << 16), "no free cluster under a refblock");
            }
            table.update(new HostCluster(c), 1);
            cache.writeBack(cache.copyDirty());
            file.flush();
        }
    }
}
