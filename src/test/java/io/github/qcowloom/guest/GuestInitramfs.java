package io.github.qcowloom.guest;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The guest's initramfs, built from the host's own files: busybox-static as the shell and tools, the kernel
 * modules for virtio-pci, virtio-blk and ext4 with their dependencies (from the kernel's modules.dep, loaded in
 * dependency order, left out when built in), and e2fsprogs' mke2fs and e2fsck with the shared libraries ldd
 * names. Its /init mounts proc, sys and dev, loads the modules, runs /workload.sh, prints
 * {@code @@GUEST exit N} and powers off.
 *
 * <p>The base archive is cached under {@code target/guest/} by a hash of its inputs (paths, sizes and
 * modification times of the files taken, and the init script), so only the first boot after a kernel or
 * package upgrade builds it. A boot's workload travels in a second, tiny cpio archive appended to the base
 * one ({@link #withWorkload}); the kernel unpacks concatenated archives in turn.
 */
final class GuestInitramfs {
    /** Modules the guest loads, each after its dependencies; crc32c is what ext4 and jbd2 checksum with. */
    static final List<String> MODULES = List.of("virtio_pci", "virtio_blk", "crc32c_generic", "ext4");

    /** The tools taken from the host besides busybox (found in /usr/sbin or /sbin), with their libraries. */
    static final List<String> TOOLS = List.of("mke2fs", "e2fsck");

    static final String BUSYBOX = "/bin/busybox";

    /** Shell helpers the workload can use: {@code mark NAME VALUE...} and {@code wait_for_device /dev/vda}. */
    static final String INIT = """
            #!/bin/sh
            /bin/busybox --install -s /bin
            export PATH=/usr/sbin:/usr/bin:/sbin:/bin
            mount -t proc proc /proc
            mount -t sysfs sysfs /sys
            mount -t devtmpfs devtmpfs /dev
            mkdir -p /tmp /mnt
            while read -r m; do
              insmod "/lib/modules/$m" || echo "@@GUEST insmod-failed $m"
            done < /etc/guest-modules
            mark() { echo "@@MARK $*"; }
            wait_for_device() {
              n=0
              while [ ! -b "$1" ]; do
                n=$((n + 1))
                if [ "$n" -gt 200 ]; then echo "@@GUEST no-device $1"; return 1; fi
                sleep 0.05
              done
            }
            echo "@@GUEST start"
            ( set -e; . /workload.sh )
            echo "@@GUEST exit $?"
            sync
            poweroff -f
            """;

    /** Bump when the archive's layout changes, so old cached archives are not reused. */
    private static final String LAYOUT_VERSION = "1";

    private final GuestKernel kernel;
    private final Map<String, Path> files;
    private final List<String> moduleOrder;

    private GuestInitramfs(GuestKernel kernel, Map<String, Path> files, List<String> moduleOrder) {
        this.kernel = kernel;
        this.files = files;
        this.moduleOrder = moduleOrder;
    }

    /** Collects the inputs for {@code kernel}'s modules; fails when a module or tool is missing. */
    static GuestInitramfs forKernel(GuestKernel kernel) {
        Map<String, Path> files = new LinkedHashMap<>();
        files.put(BUSYBOX, Path.of(BUSYBOX));
        for (String tool : TOOLS) {
            Path bin = findTool(tool);
            files.put("/usr/sbin/" + tool, bin);
            for (String lib : sharedLibraries(bin)) {
                files.put(lib, Path.of(lib));
            }
        }
        Path mke2fsConf = Path.of("/etc/mke2fs.conf");
        if (Files.isRegularFile(mke2fsConf)) {
            files.put("/etc/mke2fs.conf", mke2fsConf);
        }
        List<String> order = new ArrayList<>();
        for (String relative : kernel.modulesInLoadOrder(MODULES)) {
            String inArchive = relative.replaceFirst("\\.ko(\\.(xz|zst|gz))?$", ".ko");
            files.put("/lib/modules/" + inArchive, kernel.moduleDirectory().resolve(relative));
            order.add(inArchive);
        }
        return new GuestInitramfs(kernel, files, order);
    }

    /** The base archive, built or taken from the cache directory. */
    Path base(Path cacheDirectory) {
        try {
            Files.createDirectories(cacheDirectory);
            Path cached = cacheDirectory.resolve("initramfs-" + inputHash() + ".cpio");
            if (Files.isRegularFile(cached)) {
                return cached;
            }
            Path tmp = Files.createTempFile(cacheDirectory, "initramfs", ".tmp");
            Files.write(tmp, build());
            Files.move(tmp, cached, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return cached;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot build the guest initramfs in " + cacheDirectory, e);
        }
    }

    /** Writes to {@code target} the base archive followed by one holding {@code workload} as /workload.sh. */
    static void withWorkload(Path base, String workload, Path target) throws IOException {
        byte[] extra = new CpioArchive().file("/workload.sh", 0755, workload.getBytes(StandardCharsets.UTF_8))
                .finish();
        Files.copy(base, target, StandardCopyOption.REPLACE_EXISTING);
        Files.write(target, extra, java.nio.file.StandardOpenOption.APPEND);
    }

    GuestKernel kernel() {
        return kernel;
    }

    private byte[] build() throws IOException {
        CpioArchive a = new CpioArchive();
        for (String dir : List.of("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/proc", "/sys", "/dev", "/tmp",
                "/mnt", "/etc")) {
            a.directory(dir);
        }
        a.characterDevice("/dev/console", 5, 1);
        a.characterDevice("/dev/null", 1, 3);
        for (Map.Entry<String, Path> f : files.entrySet()) {
            a.file(f.getKey(), f.getKey().startsWith("/etc/") ? 0644 : 0755, contents(f.getValue()));
        }
        a.symlink("/bin/sh", "busybox");
        a.symlink("/usr/sbin/mkfs.ext4", "mke2fs");
        a.symlink("/usr/sbin/fsck.ext4", "e2fsck");
        a.file("/etc/guest-modules", 0644, (String.join("\n", moduleOrder) + "\n").getBytes(StandardCharsets.UTF_8));
        a.file("/init", 0755, INIT.getBytes(StandardCharsets.UTF_8));
        return a.finish();
    }

    /** A file's bytes; compressed modules are decompressed with the host's xz, zstd or gzip. */
    private static byte[] contents(Path file) throws IOException {
        String name = file.getFileName().toString();
        String tool = name.endsWith(".xz") ? "xz" : name.endsWith(".zst") ? "zstd" : name.endsWith(".gz") ? "gzip"
                : null;
        if (tool == null) {
            return Files.readAllBytes(file);
        }
        Process p = new ProcessBuilder(tool, "-dc", file.toString()).redirectError(ProcessBuilder.Redirect.DISCARD)
                .start();
        byte[] out = p.getInputStream().readAllBytes();
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IOException(tool + " -dc " + file + " failed");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted decompressing " + file, e);
        }
        return out;
    }

    private String inputHash() throws IOException {
        try {
            MessageDigest d = MessageDigest.getInstance("SHA-256");
            d.update((LAYOUT_VERSION + "\n" + INIT + "\n" + String.join(",", moduleOrder) + "\n")
                    .getBytes(StandardCharsets.UTF_8));
            for (Map.Entry<String, Path> f : files.entrySet()) {
                Path real = f.getValue().toRealPath();
                d.update((f.getKey() + " " + real + " " + Files.size(real) + " " + Files.getLastModifiedTime(real)
                        + "\n").getBytes(StandardCharsets.UTF_8));
            }
            return HexFormat.of().formatHex(d.digest(), 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static Path findTool(String tool) {
        for (String dir : List.of("/usr/sbin", "/sbin", "/usr/bin", "/bin")) {
            Path p = Path.of(dir, tool);
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        throw new IllegalStateException(tool + " not found (apt-get install e2fsprogs)");
    }

    private static final Pattern LDD_LINE = Pattern.compile("(?:=>\\s*)?(/\\S+)\\s+\\(0x");

    /** The absolute library paths ldd prints for {@code binary}, the program interpreter included. */
    static Set<String> sharedLibraries(Path binary) {
        try {
            Process p = new ProcessBuilder("ldd", binary.toString()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException("ldd " + binary + " failed: " + out);
            }
            Set<String> libs = new LinkedHashSet<>();
            try (Stream<String> lines = out.lines()) {
                lines.forEach(line -> {
                    Matcher m = LDD_LINE.matcher(line);
                    if (m.find()) {
                        libs.add(m.group(1));
                    }
                });
            }
            return libs;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run ldd " + binary, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted running ldd", e);
        }
    }
}
