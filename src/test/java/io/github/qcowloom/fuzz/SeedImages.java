package io.github.qcowloom.fuzz;

import io.github.qcowloom.testing.FuzzInputs;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.Stream;

/**
 * The fuzz targets' seed corpus: small images qemu-img and qemu-io make over the options users meet (cluster sizes, v2,
 * extended L2, lazy refcounts, every refcount width, zlib and zstd compressed clusters, zero and discarded clusters,
 * snapshots, persistent bitmaps, a backing file, an external data file, metadata preallocation, LUKS and AES
 * encryption, a dirty and a corrupt image). Made once into {@code target/fuzz-seeds} (a cache: delete it to make them
 * anew), then copied beside each target's committed inputs in the test class path, where Jazzer reads its {@code
 * <Class>Inputs/<method>} directory: replayed in regression mode, the starting corpus when fuzzing. Without qemu-img
 * only the committed inputs are there.
 *
 * <p>Locks: {@link #LOCK} makes the seeds once when test classes run in parallel, and a lock on the file
 * {@code target/fuzz-seeds.lock}, taken under it, when test JVMs do (surefire's forks); nothing else is shared.
 */
public final class SeedImages {
    private static final Path CACHE = Path.of("target", "fuzz-seeds");
    private static final Path CACHE_LOCK = Path.of("target", "fuzz-seeds.lock");
    /** Marks a complete cache; named anew whenever the seeds change, so that an old cache is made again. */
    private static final String DONE = ".complete-aes";
    private static final ReentrantLock LOCK = new ReentrantLock();

    private SeedImages() {
    }

    /** One seed: commands run in the cache directory, "IMG" standing for the seed's file name. */
    private record Seed(String name, List<List<String>> commands) {
    }

    private static List<String> cmd(String... words) {
        return Arrays.asList(words);
    }

    /** A seed made by qemu-img create with {@code options} (may be empty) over 2 MiB, then qemu-io commands. */
    private static Seed seed(String name, String options, String io, List<List<String>> more) {
        return seed(name, "2M", options, io, more);
    }

    private static Seed seed(String name, String size, String options, String io, List<List<String>> more) {
        List<List<String>> c = new ArrayList<>();
        List<String> create = new ArrayList<>(List.of("qemu-img", "create", "-q", "-f", "qcow2"));
        if (!options.isEmpty()) {
            create.addAll(List.of("-o", options));
        }
        create.addAll(List.of("IMG", size));
        c.add(create);
        if (!io.isEmpty()) {
            c.add(cmd("qemu-io", "-f", "qcow2", "-c", io, "IMG"));
        }
        c.addAll(more);
        return new Seed(name, c);
    }

    private static Seed seed(String name, String options, String io) {
        return seed(name, options, io, List.of());
    }

    /** The passphrase of the encrypted seeds. */
    static final String PASSPHRASE = "fuzz";
    private static final String SECRET = "secret,id=sec0,data=" + PASSPHRASE;
    /** The encrypted seeds' names begin with their format's. */
    private static final List<String> ENCRYPTED_PREFIXES = List.of("luks-", "aes-");

    /**
     * An encrypted seed over 2 MiB, in the format its name begins with: created with {@code options} besides the
     * encryption's (for LUKS 10 ms of PBKDF2, so that a replay unlocks in milliseconds), then qemu-io's commands
     * {@code io} run through the passphrase.
     */
    private static Seed encryptedSeed(String name, String options, String... io) {
        String format = name.substring(0, name.indexOf('-'));
        if (!ENCRYPTED_PREFIXES.contains(format + "-")) {
            throw new IllegalArgumentException(name);
        }
        String encrypt = "encrypt.format=" + format + ",encrypt.key-secret=sec0"
                + (format.equals("luks") ? ",encrypt.iter-time=10" : "");
        List<String> write = new ArrayList<>(List.of("qemu-io", "--object", SECRET, "--image-opts"));
        for (String c : io) {
            write.addAll(List.of("-c", c));
        }
        write.add("driver=qcow2,file.filename=IMG,encrypt.key-secret=sec0");
        return new Seed(name, List.of(
                cmd("qemu-img", "create", "-q", "-f", "qcow2", "--object", SECRET, "-o", encrypt + "," + options,
                        "IMG", "2M"),
                write));
    }

    private static List<Seed> seeds() {
        // Little data, so that the inputs stay small (the fuzzer mutates metadata, not guest data).
        String data = "write -P 0x5a 0 8k";
        String more = "write -P 0xa5 1M 8k";
        String zero = "write -z 512k 64k";
        List<Seed> s = new ArrayList<>();
        s.add(seed("default-64k", "", data));
        s.add(seed("c512", "cluster_size=512", data, List.of(cmd("qemu-io", "-f", "qcow2", "-c", more, "-c", zero,
                "IMG"))));
        s.add(seed("c4k", "cluster_size=4096", data, List.of(cmd("qemu-io", "-f", "qcow2", "-c", more, "-c", zero,
                "IMG"))));
        s.add(seed("c16k-extl2", "cluster_size=16k,extended_l2=on", "write -P 1 0 4k",
                List.of(cmd("qemu-io", "-f", "qcow2", "-c", "write -P 2 20k 2k", "-c", "write -z 40k 1k", "IMG"))));
        s.add(seed("c64k-extl2", "extended_l2=on", "write -P 1 0 2k",
                List.of(cmd("qemu-io", "-f", "qcow2", "-c", "write -z 8k 2k", "IMG"))));
        s.add(seed("v2-4k", "compat=0.10,cluster_size=4096", data));
        s.add(seed("lazy-4k", "lazy_refcounts=on,cluster_size=4096", data));
        for (int bits : new int[] {1, 2, 4, 8, 32, 64}) {
            s.add(seed("refcount" + bits, "refcount_bits=" + bits + ",cluster_size=4096", data));
        }
        List<List<String>> compressed = List.of(cmd("qemu-io", "-f", "qcow2", "-c", "write -c -P 0x22 8k 8k", "-c",
                "write -P 0x33 64k 4k", "IMG"));
        s.add(seed("zlib-4k", "cluster_size=4096", "write -c -P 0x11 0 4k", compressed));
        s.add(seed("zstd-4k", "cluster_size=4096,compression_type=zstd", "write -c -P 0x11 0 4k", compressed));
        s.add(seed("zstd-64k", "compression_type=zstd", "write -c -P 0x44 0 64k"));
        s.add(seed("discarded-4k", "cluster_size=4096", data,
                List.of(cmd("qemu-io", "-f", "qcow2", "-c", "discard 0 8k", "-c", "write -z -u 128k 4k", "IMG"))));
        s.add(seed("prealloc-4k", "256k", "cluster_size=4096,preallocation=metadata", "write -P 7 4k 4k", List.of()));
        s.add(seed("dirty-4k", "cluster_size=4096,lazy_refcounts=on", "write -P 9 0 8k",
                List.of(cmd("qemu-io", "-f", "qcow2", "-c", "write -P 8 8k 4k", "-c", "abort", "IMG"))));
        s.add(seed("snapshots-4k", "cluster_size=4096", data, List.of(
                cmd("qemu-img", "snapshot", "-c", "s1", "IMG"),
                cmd("qemu-io", "-f", "qcow2", "-c", "write -P 0x77 0 4k", "IMG"),
                cmd("qemu-img", "snapshot", "-c", "second snapshot", "IMG"))));
        s.add(seed("snapshot-64k", "", data, List.of(cmd("qemu-img", "snapshot", "-c", "s1", "IMG"))));
        s.add(seed("bitmaps-4k", "cluster_size=4096", data, List.of(
                cmd("qemu-img", "bitmap", "--add", "IMG", "b0"),
                cmd("qemu-img", "bitmap", "--add", "-g", "64k", "IMG", "b1"),
                cmd("qemu-img", "bitmap", "--add", "--disable", "IMG", "b2"))));
        s.add(seed("bitmap-64k", "", data, List.of(cmd("qemu-img", "bitmap", "--add", "IMG", "b0"))));
        s.add(seed("bitmaps-snapshot-4k", "cluster_size=4096", data, List.of(
                cmd("qemu-img", "bitmap", "--add", "IMG", "b0"),
                cmd("qemu-img", "snapshot", "-c", "s1", "IMG"))));
        s.add(new Seed("backing-4k", List.of(
                cmd("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "base-IMG", "2M"),
                cmd("qemu-io", "-f", "qcow2", "-c", data, "base-IMG"),
                cmd("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base-IMG", "-F",
                        "qcow2", "IMG"),
                cmd("qemu-io", "-f", "qcow2", "-c", "write -P 3 4k 4k", "IMG"))));
        s.add(seed("datafile-4k", "cluster_size=4096,data_file=IMG.raw", data));
        s.add(seed("datafile-raw-4k", "cluster_size=4096,data_file=IMG.raw,data_file_raw=on", data));
        s.add(encryptedSeed("luks-xts-4k", "cluster_size=4096", data, "write -z 64k 8k"));
        s.add(encryptedSeed("luks-cbc-essiv-512", "cluster_size=512,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,"
                + "encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha512", "write -P 4 1k 1k"));
        s.add(encryptedSeed("luks-plain-extl2", "extended_l2=on,encrypt.cipher-alg=aes-128,encrypt.ivgen-alg=plain",
                "write -P 5 2k 2k"));
        s.add(encryptedSeed("aes-4k", "cluster_size=4096", data, "write -P 6 64k 1k"));
        s.add(seed("corrupt-4k", "cluster_size=4096", data, List.of(cmd("python3", "-c",
                "import sys\nf=open('IMG','r+b');f.seek(79);b=f.read(1)[0];f.seek(79);f.write(bytes([b|2]))"))));
        return s;
    }

    /**
     * Makes the seeds if the cache lacks them, and copies them into {@code target}'s inputs directory of each of
     * {@code methods} in the test class path. Returns how many seeds there are (0 without qemu-img).
     */
    public static int layOut(Class<?> target, String... methods) {
        return underLocks(() -> {
            List<Path> seeds = make();
            for (String m : methods) {
                Path dir = FuzzInputs.directory(target, m);
                for (Path seed : seeds) {
                    Path to = dir.resolve("seed-" + seed.getFileName());
                    if (!Files.exists(to)) {
                        Files.copy(seed, to, StandardCopyOption.REPLACE_EXISTING);
                    }
                }
            }
            return seeds.size();
        });
    }

    /** The encrypted seeds (made if need be; none without qemu-img), their passphrase {@link #PASSPHRASE}. */
    static List<Path> encryptedSeeds() {
        return underLocks(() -> make().stream().filter(p -> ENCRYPTED_PREFIXES.stream()
                .anyMatch(prefix -> p.getFileName().toString().startsWith(prefix))).toList());
    }

    private interface CacheWork<T> {
        T run() throws IOException;
    }

    /** Runs {@code work} on the cache under both locks (see the class comment). */
    private static <T> T underLocks(CacheWork<T> work) {
        LOCK.lock();
        try {
            Files.createDirectories(CACHE_LOCK.getParent());
            try (FileChannel lockFile = FileChannel.open(CACHE_LOCK, StandardOpenOption.CREATE,
                    StandardOpenOption.WRITE); FileLock held = lockFile.lock()) {
                return work.run();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            LOCK.unlock();
        }
    }

    private static List<Path> make() throws IOException {
        if (!Files.exists(CACHE.resolve(DONE))) {
            if (!Qemu.available()) {
                return List.of();
            }
            Files.createDirectories(CACHE);
            for (Seed s : seeds()) {
                String image = s.name() + ".qcow2";
                for (List<String> c : s.commands()) {
                    List<String> words = c.stream().map(w -> w.replace("IMG", image)).toList();
                    Qemu.Result r = Qemu.execTimingPbkdf2(words, CACHE);
                    // qemu-io's abort ends the process by a signal on purpose (the dirty seed).
                    if (r.exitCode() != 0 && !c.contains("abort")) {
                        throw new IOException("seed " + s.name() + ": " + words + " failed: " + r.stderr());
                    }
                }
            }
            Files.writeString(CACHE.resolve(DONE), "");
        }
        try (Stream<Path> files = Files.list(CACHE)) {
            return files.filter(p -> p.toString().endsWith(".qcow2") && !p.getFileName().toString().startsWith(
                    "base-")).sorted().toList();
        }
    }
}
