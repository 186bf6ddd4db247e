package io.github.qcowloom.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The module's public surface as a user on the module path meets it (tests themselves run on the class path,
 * where exports do not count): the compiled module-info exports exactly the user packages, a consumer module
 * that uses what the README shows compiles, and one that reaches into the driver's insides does not.
 */
class ModuleSurfaceTest {
    static final String MODULE = "io.github.qcowloom";
    static final Set<String> EXPORTED = Set.of("api", "image", "snapshot", "bitmap", "check", "crashkit", "nbd",
            "exec", "virtio", "simulation", "storage", "crypto");
    private static final List<String> INTERNAL = List.of("format", "cache", "compress", "alloc");

    @TempDir
    Path dir;

    @Test
    void theModuleExportsTheUserPackagesOnly() {
        ModuleDescriptor module = ModuleFinder.of(moduleClasses()).find(MODULE).orElseThrow().descriptor();
        Set<String> exported = module.exports().stream().map(e -> e.source().substring(MODULE.length() + 1))
                .collect(Collectors.toCollection(TreeSet::new));
        assertEquals(new TreeSet<>(EXPORTED), exported);
        for (ModuleDescriptor.Exports e : module.exports()) {
            assertFalse(e.isQualified(), e.toString());
        }
    }

    @Test
    void aConsumerCompilesAgainstWhatTheReadmeShows() throws Exception {
        String source = """
                package consumer;

                import io.github.qcowloom.api.AsyncBlockDevice;
                import io.github.qcowloom.api.BlockStatus;
                import io.github.qcowloom.api.CreateOptions;
                import io.github.qcowloom.api.OpenOptions;
                import io.github.qcowloom.bitmap.BitmapAction;
                import io.github.qcowloom.bitmap.Bitmaps;
                import io.github.qcowloom.crashkit.CrashInvariants;
                import io.github.qcowloom.crashkit.CrashMode;
                import io.github.qcowloom.crashkit.CrashOptions;
                import io.github.qcowloom.crashkit.CrashSimStorage;
                import io.github.qcowloom.crashkit.Errno;
                import io.github.qcowloom.crashkit.FaultStorage;
                import io.github.qcowloom.crashkit.GuestHistory;
                import io.github.qcowloom.crashkit.IoKind;
                import io.github.qcowloom.exec.ExecutionModel;
                import io.github.qcowloom.image.ImageCreator;
                import io.github.qcowloom.image.Qcow2Image;
                import io.github.qcowloom.simulation.SectorHistory;
                import io.github.qcowloom.simulation.SimStorage;
                import io.github.qcowloom.simulation.Simulation;
                import io.github.qcowloom.snapshot.Snapshot;
                import io.github.qcowloom.snapshot.Snapshots;
                import io.github.qcowloom.storage.MemoryStorage;
                import io.github.qcowloom.storage.Storage;
                import io.github.qcowloom.storage.StorageEvent;
                import java.nio.ByteBuffer;
                import java.nio.file.Files;
                import java.nio.file.Path;
                import java.util.List;

                public class Consumer {
                    static void library(Path path, byte[] data, byte[] cluster) throws Exception {
                        ImageCreator.create(path, CreateOptions.defaults(1L << 30).withClusterSize(4096));
                        try (Qcow2Image img = Qcow2Image.open(path, OpenOptions.readWriteDefaults())) {
                            Snapshot before = Snapshots.create(img, "before-upgrade");
                            img.write(0, ByteBuffer.wrap(data));
                            BlockStatus s = img.blockStatus(0, img.size());
                            img.writeCompressed(1L << 20, ByteBuffer.wrap(cluster));
                            Snapshots.apply(img, before);
                            System.out.println(before.name() + " " + s);
                            try (AsyncBlockDevice async = ExecutionModel.parse("virtual").drive(img)) {
                                async.write(0, ByteBuffer.wrap(data)).join();
                            }
                        }
                        try (Qcow2Image img = Qcow2Image.open(path,
                                OpenOptions.readWriteDefaults().withGuestWrites(false))) {
                            Bitmaps.apply(img, path.toString(), List.of(new BitmapAction.Add("nightly", 0),
                                    new BitmapAction.Merge("weekly", "nightly")), null);
                        }
                    }

                    static void crashKit(Path imagePath, long virtualSize) throws Exception {
                        CrashSimStorage disk = new CrashSimStorage(Files.readAllBytes(imagePath));
                        GuestHistory history = new GuestHistory(virtualSize);
                        FaultStorage faulty = new FaultStorage(new MemoryStorage(Files.readAllBytes(imagePath)));
                        faulty.failAt(IoKind.WRITE, 3, Errno.ENOSPC, true);
                        faulty.failAfterEvent(StorageEvent.L2_UPDATE, Errno.EIO, false);
                        try (Qcow2Image img = Qcow2Image.open(disk, null, OpenOptions.readWriteDefaults())) {
                            img.write(0, ByteBuffer.wrap(history.write(0, 4096)));
                            img.flush();
                            history.flushed(disk.flushCount());
                        }
                        disk.crashStates(CrashOptions.defaults().withMode(CrashMode.TORN_APPENDS))
                                .map(state -> CrashInvariants.check(state, history))
                                .filter(check -> !check.ok())
                                .forEach(check -> System.err.println(check.message()));
                    }

                    static void simulation(byte[] fresh) {
                        Simulation.Exploration e = Simulation.explore(0, 10, 1_000_000, sim -> {
                            SectorHistory history = new SectorHistory(false);
                            Storage disk = new SimStorage(new MemoryStorage(fresh), sim);
                            OpenOptions opts = OpenOptions.readWriteDefaults().withTicker(sim);
                            try (Qcow2Image img = Qcow2Image.open(disk, null, opts)) {
                                img.flush();
                            }
                            history.violations();
                        });
                        System.out.println(e.distinct());
                    }
                }
                """;
        assertEquals("", compile(source), "the consumer should compile against the exported packages");
    }

    @Test
    void aConsumerCannotReachTheDriversInsides() throws Exception {
        for (String pkg : INTERNAL) {
            String source = "package consumer;\n\npublic class Consumer {\n    Class<?> inside = "
                    + insideClass(pkg) + ".class;\n}\n";
            String errors = compile(source);
            assertTrue(errors.contains(MODULE + "." + pkg) && errors.contains("not visible"),
                    () -> pkg + " should not be visible to a consumer module, javac said: " + errors);
        }
    }

    private static String insideClass(String pkg) {
        return switch (pkg) {
            case "format" -> "io.github.qcowloom.format.Header";
            case "cache" -> "io.github.qcowloom.cache.TableCache";
            case "compress" -> "io.github.qcowloom.compress.ClusterCodec";
            case "alloc" -> "io.github.qcowloom.alloc.RefcountTable";
            default -> throw new IllegalArgumentException(pkg);
        };
    }

    /** Compiles {@code source} as module {@code consumer} (requiring ours) on the module path; javac's errors. */
    private String compile(String source) throws Exception {
        Path src = dir.resolve("src");
        Path pkg = Files.createDirectories(src.resolve("consumer"));
        Files.writeString(src.resolve("module-info.java"), "module consumer {\n    requires " + MODULE + ";\n}\n");
        Files.writeString(pkg.resolve("Consumer.java"), source);
        Path out = Files.createDirectories(dir.resolve("out"));
        List<String> modulePath = new ArrayList<>();
        modulePath.add(moduleClasses().toString());
        modulePath.addAll(dependencyJars());
        // The JDK running this test compiles, in a process of its own, as a user would (the test module does not
        // read java.compiler).
        Path javac = Path.of(ProcessHandle.current().info().command().orElseThrow()).resolveSibling("javac");
        Process p = new ProcessBuilder(javac.toString(), "-proc:none", "--release", "21", "-d", out.toString(),
                "--module-path", String.join(File.pathSeparator, modulePath),
                src.resolve("module-info.java").toString(), pkg.resolve("Consumer.java").toString())
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor();
        return output.trim();
    }

    /** The main output directory on the test class path: the exploded module, with its module-info.class. */
    private static Path moduleClasses() {
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path p = Path.of(entry);
            if (Files.isRegularFile(p.resolve("module-info.class"))) {
                return p;
            }
        }
        throw new AssertionError("no module-info.class on the class path");
    }

    /** The jars the module requires (picocli, zstd-jni, slf4j, progressbar and its jline, xchart). */
    private static List<String> dependencyJars() {
        List<String> jars = new ArrayList<>();
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            String name = Path.of(entry).getFileName().toString();
            if (name.endsWith(".jar") && (name.startsWith("picocli") || name.startsWith("zstd-jni")
                    || name.startsWith("slf4j") || name.startsWith("progressbar") || name.startsWith("xchart")
                    || name.startsWith("jline"))) {
                jars.add(entry);
            }
        }
        return jars;
    }
}
