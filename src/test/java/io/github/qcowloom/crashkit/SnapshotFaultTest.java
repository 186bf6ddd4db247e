package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshots;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QEMU iotests 026 and 217 for snapshots: an I/O error after each event a snapshot create, apply or delete
 * announces leaves an image with leaks at worst (and COPIED flags that follow the true references, not the leaked
 * refcounts), which qemu-img check -r leaks makes clean and after our read-write open's repair qemu-img check finds no
 * error in, and whose surviving snapshots still hold their data. A failed operation that had changed anything makes
 * the open image refuse further requests, so that memory that may disagree with the disk is never written.
 */
class SnapshotFaultTest {
    /** The events snapshot operations announce. */
    private static final Set<StorageEvent> EVENTS = EnumSet.of(StorageEvent.CLUSTER_ALLOC,
            StorageEvent.CLUSTER_FREE, StorageEvent.FLUSH, StorageEvent.L1_UPDATE, StorageEvent.L2_UPDATE,
            StorageEvent.L2_LOAD, StorageEvent.L1_GROW, StorageEvent.REFBLOCK_ALLOC);

    @TempDir
    Path dir;

    @Test
    void anErrorAtEveryEventOfASnapshotOperationLeavesACheckableImage() throws Exception {
        Qemu.assume();
        Path pristine = dir.resolve("pristine.qcow2");
        // 512-byte clusters with 64-bit refcounts: a refblock covers 32 KiB, so snapshots need new refblocks.
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", pristine.toString(),
                "1M");
        Qemu.io(pristine, "write -P 0x11 0 200k");
        Qemu.img("snapshot", "-c", "kept", pristine.toString());
        byte[] kept = Qemu.toRaw(pristine, dir);
        Qemu.io(pristine, "write -P 0x22 100k 50k");
        Set<StorageEvent> fired = EnumSet.noneOf(StorageEvent.class);
        for (StorageEvent event : EVENTS) {
            for (Errno errno : Errno.values()) {
                for (boolean once : new boolean[] {true, false}) {
                    String what = event + " " + errno + (once ? " once" : " always");
                    Path image = dir.resolve("run.qcow2");
                    Files.copy(pristine, image, StandardCopyOption.REPLACE_EXISTING);
                    if (runWorkload(image, event, errno, once) > 0) {
                        fired.add(event);
                    }
                    // Leaks are allowed, and COPIED flags that disagree with a leaked refcount: between raising
                    // (or lowering) a tree's refcounts and writing its flags there is always such a window, in QEMU
                    // too. Every flag left must be safe: set only where the cluster truly has one reference.
                    Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
                    check.stderr().lines().filter(l -> l.startsWith("ERROR")).forEach(l -> assertTrue(
                            l.contains("OFLAG_COPIED"), what + ": " + check.stderr()));
                    assertCopiedOnlyWhereReferencedOnce(image, what);
                    // The table edit marked the image dirty before its first change reached the disk, so our next
                    // read-write open repairs refcounts and COPIED flags alike (as QEMU's does): qemu-img check then
                    // finds no error, only leaks a failed plain write may have left in a clean image.
                    Path reopened = dir.resolve("reopened.qcow2");
                    Files.copy(image, reopened, StandardCopyOption.REPLACE_EXISTING);
                    Qcow2Image.open(reopened, OpenOptions.readWriteDefaults().withPool(false)).close();
                    Qemu.Result afterOpen = Qemu.exec(List.of("qemu-img", "check", reopened.toString()));
                    assertFalse(afterOpen.stderr().contains("ERROR"), what + " after our open: " + afterOpen.stderr());
                    // -r leaks lowers the refcounts and then, the image being sound, fixes the flags to match.
                    Qemu.exec(List.of("qemu-img", "check", "-r", "leaks", image.toString()));
                    String repaired = Qemu.img("check", "--output=json", image.toString());
                    assertFalse(repaired.contains("\"leaks\"") || repaired.contains("\"corruptions\""),
                            what + " after -r leaks: " + repaired);
                    // qemu-img reads a snapshot at the image's current size (2 MiB once the resize went through).
                    byte[] read = snapshotData(image, "kept");
                    assertEquals(-1, java.util.Arrays.mismatch(kept, 0, kept.length, read, 0, kept.length), what);
                }
            }
        }
        assertEquals(EVENTS, fired, "every event must fire, or this test proves less than it says");
    }

    /**
     * A disk that fills up during the create (40 000 bytes free past the file's end, counted in pages as tmpfs
     * counts them; the L1 copy needs 256 KiB): allocating the copy first, as QEMU does, leaves the tree's refcounts
     * as they were, so qemu-img check finds no error. Raised first, they reached the disk with the refblocks the
     * copy's allocation wrote back, and every shared cluster was left at 2 under a COPIED flag.
     */
    @Test
    void aDiskThatFillsUpDuringTheCreateLeavesNoError() throws Exception {
        Qemu.assume();
        Path image = dir.resolve("full.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", image.toString(), "1G");
        Qemu.io(image, "write -P 0x11 0 1M");
        long end = Files.size(image);
        AtomicLong spaceLeft = new AtomicLong(40_000);
        Storage full = new ForwardingStorage(FileStorage.open(image, false, false)) {
            // As tmpfs counts it: each 4 KiB page first written past the old end takes space, wherever it lies.
            @Override
            public void write(ByteBuffer src, long position) throws IOException {
                long first = Math.max(position, end) / 4096;
                long last = (position + src.remaining() - 1) / 4096;
                long pages = position + src.remaining() > end ? last - first + 1 : 0;
                if (spaceLeft.addAndGet(-pages * 4096) < 0) {
                    spaceLeft.addAndGet(pages * 4096);
                    throw new IOException("No space left on device");
                }
                super.write(src, position);
            }
        };
        try (Qcow2Image img = Qcow2Image.open(full, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            IOException e = assertThrows(IOException.class, () -> Snapshots.create(img, "new"));
            assertEquals("No space left on device", e.getMessage());
        } catch (IOException e) {
            // a close refused by the image the failed edit left unusable is allowed
        }
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertFalse(check.stderr().contains("ERROR"), check.stderr());
        assertTrue(check.exitCode() == 0 || check.exitCode() == 3, check.stdout() + check.stderr());
    }

    /**
     * Every COPIED flag of the active tree (L1 and L2 entries) is on a cluster that, counting the references of
     * every tree, is referenced exactly once: a write in place there cannot change what a snapshot sees.
     */
    private static void assertCopiedOnlyWhereReferencedOnce(Path image, String what) throws IOException {
        try (Storage file = FileStorage.open(image, true, false)) {
            Header h = ImageMetadata.readHeader(file);
            assertEquals(List.of(), ReferenceCount.compute(file, h, ImageMetadata.readSnapshots(file, h))
                    .copiedOnShared(), what);
        }
    }

    /** Create, write, apply, delete (each may fail); returns how many faults were injected. */
    private long runWorkload(Path image, StorageEvent event, Errno errno, boolean once) throws IOException {
        FaultStorage faulty = new FaultStorage(FileStorage.open(image, false, false))
                .failAfterEvent(event, errno, once);
        try (Qcow2Image img = Qcow2Image.open(faulty, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            List<IOException> failures = new ArrayList<>();
            attempt(failures, () -> Snapshots.create(img, "new"));
            attempt(failures, () -> img.write(0, ByteBuffer.wrap(new byte[40_000])));
            attempt(failures, () -> img.resize(2 << 20));
            attempt(failures, () -> Snapshots.apply(img, Snapshots.findByName(Snapshots.list(img), "kept")
                    .orElseThrow()));
            attempt(failures, () -> Snapshots.delete(img, Snapshots.findByName(Snapshots.list(img), "new")
                    .orElseThrow(() -> new IOException("no snapshot 'new'"))));
            attempt(failures, () -> img.write(300_000, ByteBuffer.wrap(new byte[40_000])));
            attempt(failures, img::flush);
            assertTrue(faulty.faultsInjected() == 0 || !failures.isEmpty(), "an injected fault went unreported");
        } catch (IOException e) {
            // Open or close failed under the injected error: that is allowed, corruption is not.
        }
        return faulty.faultsInjected();
    }

    /** The snapshot's guest contents as qemu-img reads them (convert -l). */
    private byte[] snapshotData(Path image, String name) throws IOException {
        Path raw = dir.resolve("snapshot.raw");
        Files.deleteIfExists(raw);
        Qemu.img("convert", "-l", "snapshot.name=" + name, "-O", "raw", image.toString(), raw.toString());
        return Files.readAllBytes(raw);
    }

    private interface Step {
        void run() throws IOException;
    }

    private static void attempt(List<IOException> failures, Step step) {
        try {
            step.run();
        } catch (IOException e) {
            failures.add(e);
        }
    }
}
