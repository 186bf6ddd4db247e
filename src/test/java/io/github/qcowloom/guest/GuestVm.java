package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.guest.GuestResult.Mark;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * A real Linux guest under {@code qemu-system-x86_64 -accel tcg}, for tests that attach our exports to a real
 * hypervisor. The guest boots the host's Debian kernel with an initramfs built from the host's busybox-static,
 * kernel modules (virtio-pci, virtio-blk, ext4) and e2fsprogs ({@link GuestInitramfs}, cached under
 * {@code target/guest/}), runs a shell workload and powers off. A boot to the workload takes about 10-20 s.
 *
 * <p>Use:
 * <pre>{@code
 * GuestVm.assumeAvailable();                    // skip, or fail under -Dqcowloom.requireQemu=true
 * GuestResult r = GuestVm.boot(GuestDisk.nbdUnix(socket), """
 *         wait_for_device /dev/vda
 *         mkfs.ext4 -q /dev/vda
 *         mark formatted
 *         """).requireSuccess();
 *
 * try (GuestVm vm = GuestVm.start(GuestVm.Options.defaults(), workload,
 *         GuestDisk.vhostUserBlk("vhost0", socket, 4))) {
 *     List<String> synced = vm.awaitMarks("synced", 3, Duration.ofSeconds(120));  // while it runs
 *     server.kill();
 *     GuestResult r = vm.awaitExit(Duration.ofSeconds(60));                     // or vm.kill()
 * }
 * }</pre>
 *
 * <p>The workload is POSIX shell run by busybox under {@code set -e}, from / with PATH holding busybox's
 * applets and /usr/sbin/mkfs.ext4, mke2fs, e2fsck. It may call {@code mark NAME VALUE...}, which prints
 * {@code @@MARK NAME VALUE...} on the serial console (read back as {@link Mark}s, live by
 * {@link #awaitMarks} and in the {@link GuestResult}), and {@code wait_for_device /dev/vdX}, which waits up to
 * 10 s for a disk to appear. Its exit status comes back as {@link GuestResult#workloadStatus()}. Disks are
 * {@link GuestDisk}s, attached in order as /dev/vda, /dev/vdb...; one that needs shared guest memory
 * (vhost-user) makes the VM back its RAM with a shared memfd. Every wait has a timeout that kills QEMU and
 * fails the test with the console's last lines.
 *
 * <p>Locking: {@code lock} guards the console tail, the marks, the workload status and the end-of-console flag
 * the reader thread fills; {@code changed} is signalled on each line and at the end. Nothing else is shared.
 */
public final class GuestVm implements AutoCloseable {
    private static final Path QEMU = Path.of("/usr/bin/qemu-system-x86_64");
    private static final int TAIL_LINES = 400;
    private static final int MAX_MARKS = 100_000;
    private static final Pattern MARK = Pattern.compile("@@MARK (\\S+) ?(.*)$");
    private static final Pattern EXIT = Pattern.compile("@@GUEST exit (\\d+)");

    private static final ReentrantLock BUILD_LOCK = new ReentrantLock();
    /** The base initramfs, built once per test JVM; guarded by BUILD_LOCK. */
    private static Path baseInitramfs;
    private static GuestKernel bootKernel;

    /**
     * How the VM is sized: RAM in MiB, vCPUs, kernel command-line additions and the longest a whole run may
     * take ({@code -Dguest.timeoutSeconds}, default 300: TCG on a loaded shared machine is slow).
     */
    public record Options(int memoryMiB, int cpus, String extraKernelArgs, Duration timeout) {
        public static Options defaults() {
            return new Options(512, 1, "", Duration.ofSeconds(Long.getLong("guest.timeoutSeconds", 300)));
        }

        public Options withCpus(int n) {
            return new Options(memoryMiB, n, extraKernelArgs, timeout);
        }

        public Options withMemoryMiB(int m) {
            return new Options(m, cpus, extraKernelArgs, timeout);
        }

        public Options withTimeout(Duration t) {
            return new Options(memoryMiB, cpus, extraKernelArgs, t);
        }

        public Options withKernelArgs(String args) {
            return new Options(memoryMiB, cpus, args, timeout);
        }
    }

    private final Process qemu;
    private final Path workDir;
    private final Options options;
    private final long startNanos;
    private final Thread reader;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final ArrayDeque<String> tail = new ArrayDeque<>();
    private final List<Mark> marks = new ArrayList<>();
    private int workloadStatus = -1;
    private boolean consoleClosed;

    private GuestVm(Process qemu, Path workDir, Options options) {
        this.qemu = qemu;
        this.workDir = workDir;
        this.options = options;
        this.startNanos = System.nanoTime();
        this.reader = Thread.ofPlatform().daemon().name("guest-console").start(this::readConsole);
    }

    /** True when QEMU, busybox-static, a kernel with modules and e2fsprogs are installed. */
    public static boolean available() {
        return Files.isExecutable(QEMU) && Files.isExecutable(Path.of(GuestInitramfs.BUSYBOX))
                && GuestKernel.find().isPresent() && GuestInitramfs.TOOLS.stream().allMatch(GuestVm::hasTool);
    }

    private static boolean hasTool(String tool) {
        try {
            GuestInitramfs.findTool(tool);
            return true;
        } catch (IllegalStateException e) {
            return false;
        }
    }

    /** Skips the calling test when a guest cannot be booted, or fails it under -Dqcowloom.requireQemu=true. */
    public static void assumeAvailable() {
        String why = "qemu-system-x86_64, /bin/busybox, a /boot/vmlinuz-* with /lib/modules, mke2fs and e2fsck are"
                + " needed (apt-get install qemu-system-x86 busybox-static linux-image-amd64 e2fsprogs)";
        boolean ok = available();
        if (!ok && Boolean.getBoolean("qcowloom.requireQemu")) {
            fail("a guest VM is required (qcowloom.requireQemu) but cannot boot: " + why);
        }
        Assumptions.assumeTrue(ok, why);
    }

    /** Boots a guest with default options and {@code disks}, runs {@code workload} to its end. */
    public static GuestResult boot(GuestDisk disk, String workload) {
        return boot(Options.defaults(), workload, disk);
    }

    /** Boots a guest, runs {@code workload} to its end (failing the test at the timeout) and returns what it left. */
    public static GuestResult boot(Options options, String workload, GuestDisk... disks) {
        try (GuestVm vm = start(options, workload, disks)) {
            return vm.awaitExit(options.timeout());
        }
    }

    /** Starts a guest running {@code workload}; the caller watches it and ends it (close() kills it). */
    public static GuestVm start(Options options, String workload, GuestDisk... disks) {
        Path base = baseInitramfs();
        try {
            Path dir = Files.createTempDirectory("guest-vm");
            Path initrd = dir.resolve("initramfs.cpio");
            GuestInitramfs.withWorkload(base, workload, initrd);
            List<String> cmd = new ArrayList<>(List.of(QEMU.toString(), "-accel", "tcg", "-nodefaults",
                    "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
                    "-m", options.memoryMiB() + "M", "-smp", Integer.toString(options.cpus())));
            boolean shared = false;
            for (GuestDisk d : disks) {
                shared |= d.sharedMemory();
            }
            if (shared) {
                cmd.addAll(List.of("-object", "memory-backend-memfd,id=mem,size=" + options.memoryMiB()
                        + "M,share=on", "-numa", "node,memdev=mem"));
            }
            cmd.addAll(List.of("-kernel", bootKernel().image().toString(), "-initrd", initrd.toString(),
                    "-append", ("console=ttyS0 quiet panic=-1 " + options.extraKernelArgs()).trim()));
            for (GuestDisk d : disks) {
                cmd.addAll(d.qemuArgs());
            }
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            return new GuestVm(p, dir, options);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + QEMU, e);
        }
    }

    private static Path baseInitramfs() {
        BUILD_LOCK.lock();
        try {
            if (baseInitramfs == null) {
                GuestKernel kernel = GuestKernel.find().orElseThrow(() -> new IllegalStateException(
                        "no /boot/vmlinuz-* with /lib/modules (apt-get install linux-image-amd64)"));
                Path cache = Path.of(System.getProperty("guest.cacheDir", "target/guest"));
                baseInitramfs = GuestInitramfs.forKernel(kernel).base(cache);
                bootKernel = kernel;
            }
            return baseInitramfs;
        } finally {
            BUILD_LOCK.unlock();
        }
    }

    private static GuestKernel bootKernel() {
        BUILD_LOCK.lock();
        try {
            return bootKernel;
        } finally {
            BUILD_LOCK.unlock();
        }
    }

    /**
     * Waits until the workload has printed {@code count} marks called {@code name} and returns their values;
     * fails the test (killing the VM) when the guest ends first or {@code timeout} passes.
     */
    public List<String> awaitMarks(String name, int count, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        lock.lock();
        try {
            while (true) {
                List<String> values = marks.stream().filter(m -> m.name().equals(name)).map(Mark::value).toList();
                if (values.size() >= count) {
                    return values.subList(0, count);
                }
                if (consoleClosed) {
                    break;
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    break;
                }
                changed.awaitNanos(left);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            lock.unlock();
        }
        String state = qemu.isAlive() ? "still running after " + timeout.toSeconds() + " s" : "ended";
        kill();
        fail("waiting for " + count + " '" + name + "' marks, the guest " + state + "\n" + snapshot().tail(60));
        return List.of();
    }

    /** The marks printed so far. */
    public List<Mark> marks() {
        lock.lock();
        try {
            return List.copyOf(marks);
        } finally {
            lock.unlock();
        }
    }

    /** Waits for QEMU to exit; at {@code timeout} kills it and fails the test with the console's tail. */
    public GuestResult awaitExit(Duration timeout) {
        try {
            if (!qemu.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                kill();
                fail("the guest did not finish within " + timeout.toSeconds() + " s\n" + snapshot().tail(60));
            }
            reader.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            qemu.destroyForcibly();
            throw new IllegalStateException("interrupted waiting for the guest", e);
        }
        return snapshot();
    }

    /** Kills QEMU (SIGKILL) and returns what the guest left up to then. */
    public GuestResult kill() {
        qemu.destroyForcibly();
        try {
            qemu.waitFor(30, TimeUnit.SECONDS);
            reader.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return snapshot();
    }

    @Override
    public void close() {
        if (qemu.isAlive()) {
            kill();
        }
        try (Stream<Path> files = Files.walk(workDir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove " + workDir, e);
        }
    }

    private GuestResult snapshot() {
        lock.lock();
        try {
            int exit = qemu.isAlive() ? -1 : qemu.exitValue();
            return new GuestResult(workloadStatus, marks, new ArrayList<>(tail), exit,
                    Duration.ofNanos(System.nanoTime() - startNanos));
        } finally {
            lock.unlock();
        }
    }

    private void readConsole() {
        try (BufferedReader in = new BufferedReader(new InputStreamReader(qemu.getInputStream(),
                StandardCharsets.UTF_8))) {
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                accept(line.replace("\r", ""));
            }
        } catch (IOException e) {
            accept("(console read failed: " + e + ")");
        } finally {
            lock.lock();
            try {
                consoleClosed = true;
                changed.signalAll();
            } finally {
                lock.unlock();
            }
        }
    }

    private void accept(String line) {
        lock.lock();
        try {
            tail.addLast(line);
            if (tail.size() > TAIL_LINES) {
                tail.removeFirst();
            }
            Matcher m = MARK.matcher(line);
            if (m.find() && marks.size() < MAX_MARKS) {
                marks.add(new Mark(m.group(1), m.group(2).trim()));
            }
            Matcher e = EXIT.matcher(line);
            if (e.find()) {
                workloadStatus = Integer.parseInt(e.group(1));
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    static String formatTail(List<String> lines, int n) {
        List<String> last = lines.subList(Math.max(0, lines.size() - n), lines.size());
        return "--- guest console, last " + last.size() + " lines ---\n" + String.join("\n", last)
                + "\n--- end of console ---";
    }
}
