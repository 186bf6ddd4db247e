package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.StorageEvent;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QEMU iotest 026: an I/O error (EIO or ENOSPC, once or from then on) after each named event during a 128 KiB
 * allocating write leaves an image that reopens and that qemu-img check finds free of corruption (leaks
 * allowed, and repaired by -r leaks).
 */
class FaultInjectionTest {
    @TempDir
    Path dir;

    /** One image setup: where its events happen (COW from a backing file, L2 and refblock allocation...). */
    record Setup(String name, String createOptions, String prefill) {
    }

    private static final List<Setup> SETUPS = List.of(
            // Copy-on-write from the backing file, a new L2 table, frees from a discard.
            new Setup("backing", "cluster_size=65536", "write -P 0x21 1M 256k"),
            // 512-byte clusters and 64-bit refcounts: a refblock covers 32 KiB, the reftable 2 MiB of file.
            new Setup("refblocks", "cluster_size=512,refcount_bits=64", "write -P 0x22 0 1900k"));

    @Test
    void everyEventAndErrorLeavesACheckableImage() throws Exception {
        Qemu.assume();
        Set<StorageEvent> fired = EnumSet.noneOf(StorageEvent.class);
        for (Setup setup : SETUPS) {
            Path pristine = prepare(setup);
            for (StorageEvent event : StorageEvent.values()) {
                for (Errno errno : Errno.values()) {
                    for (boolean once : new boolean[] {true, false}) {
                        Path image = dir.resolve("run.qcow2");
                        Files.copy(pristine, image, StandardCopyOption.REPLACE_EXISTING);
                        long faults = runWorkload(image, event, errno, once);
                        if (faults > 0) {
                            fired.add(event);
                        }
                        String what = setup.name() + " " + event + " " + errno + (once ? " once" : " always");
                        String check = Qemu.exec(List.of("qemu-img", "check", "--output=json", image.toString()))
                                .stdout();
                        assertFalse(check.contains("\"corruptions\""), what + ": " + check);
                        Qemu.exec(List.of("qemu-img", "check", "-r", "leaks", image.toString()));
                        String repaired = Qemu.img("check", "--output=json", image.toString());
                        assertFalse(repaired.contains("\"leaks\"") || repaired.contains("\"corruptions\""),
                                what + " after -r leaks: " + repaired);
                        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
                            img.read(0, ByteBuffer.allocate(4096));
                        }
                    }
                }
            }
        }
        // Every event must have been exercised by some setup, or this test proves less than it says.
        Set<StorageEvent> missing = EnumSet.complementOf(EnumSet.copyOf(fired));
        assertTrue(missing.isEmpty(), "events that never fired: " + missing);
    }

    private Path prepare(Setup setup) throws IOException {
        Path base = dir.resolve(setup.name() + "-base.raw");
        Qemu.img("create", "-q", "-f", "raw", base.toString(), "4M");
        Qemu.ioFormat("raw", base, "write -P 0x11 0 4M");
        Path image = dir.resolve(setup.name() + ".qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", setup.createOptions(), "-b", base.getFileName().toString(),
                "-F", "raw", image.toString(), "4M");
        Qemu.io(image, setup.prefill());
        return image;
    }

    /** The workload: a 128 KiB write across clusters, a discard, a resize, a flush, a close; errors are expected. */
    private long runWorkload(Path image, StorageEvent event, Errno errno, boolean once) {
        FaultStorage faulty;
        try {
            faulty = new FaultStorage(FileStorage.open(image, false, false)).failAfterEvent(event, errno, once);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        try (Qcow2Image img = Qcow2Image.open(faulty, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            attempt(() -> img.write(32 * 1024, ByteBuffer.wrap(new byte[128 * 1024])));
            attempt(() -> img.discard(1 << 20, 128 * 1024));
            attempt(() -> img.write(3 << 20, ByteBuffer.wrap(new byte[128 * 1024])));
            attempt(() -> img.resize(1L << 30)); // grows L1 in both setups
            attempt(img::flush);
        } catch (IOException e) {
            // Open or close failed under the injected error: that is allowed, corruption is not.
        }
        return faulty.faultsInjected();
    }

    private interface Step {
        void run() throws IOException;
    }

    private static void attempt(Step step) {
        try {
            step.run();
        } catch (IOException expected) {
            // The injected error surfaces as an IOException of the request; the image must stay consistent.
        }
    }
}
