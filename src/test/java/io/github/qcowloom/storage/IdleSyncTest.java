package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A whole-file sync with nothing changed since the last one that succeeded is skipped, as QEMU's bdrv_co_flush
 * skips it (flushed_gen == write_gen); any change in between, of whatever kind, makes the next flush sync.
 */
class IdleSyncTest {
    @TempDir
    Path dir;

    /** The file's own I/O, counting whole-file syncs; a write may be held inside the kernel call. */
    private static final class Syncs extends ForwardingFileIo {
        final AtomicInteger forces = new AtomicInteger();
        final AtomicInteger failures = new AtomicInteger();
        volatile CountDownLatch writeEntered;
        final CountDownLatch releaseWrite = new CountDownLatch(1);

        Syncs(FileIo inner) {
            super(inner);
        }

        @Override
        public void force() throws IOException {
            forces.incrementAndGet();
            if (failures.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                throw new IOException("Input/output error");
            }
            inner.force();
        }

        @Override
        public int write(ByteBuffer src, long position) throws IOException {
            CountDownLatch entered = writeEntered;
            if (entered != null) {
                writeEntered = null;
                entered.countDown();
                try {
                    releaseWrite.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return inner.write(src, position);
        }
    }

    private Syncs syncs;

    private FileStorage open(boolean direct) throws IOException {
        Path file = dir.resolve("f");
        Files.write(file, new byte[1 << 20]);
        return FileStorage.openWrapped(file, direct, io -> syncs = new Syncs(io));
    }

    private static ByteBuffer block() {
        ByteBuffer b = ByteBuffer.allocateDirect(8192).alignedSlice(4096);
        return b.slice(0, 4096);
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void aFlushWithNothingChangedMakesNoSync(boolean direct) throws IOException {
        try (FileStorage s = open(direct)) {
            s.flush();
            assertEquals(0, syncs.forces.get(), "nothing written since open");
            s.write(block(), 4096);
            s.flush();
            s.flush();
            s.flush();
            assertEquals(1, syncs.forces.get());
            s.read(block(), 0);
            s.flush();
            assertEquals(1, syncs.forces.get(), "a read changes nothing");
        }
    }

    /** Every kind of change, each followed by a flush that must sync it. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void everyKindOfChangeIsSynced(boolean direct) throws IOException {
        try (FileStorage s = open(direct)) {
            int expected = 0;
            String[] kinds = {"write", "writeZeroes", "punchHole inside", "punchHole at the end", "discard",
                "preallocate", "setLength", "extendTo", "writeDurably"};
            for (String kind : kinds) {
                switch (kind) {
                    case "write" -> s.write(block(), 8192);
                    case "writeZeroes" -> s.writeZeroes(65536, 4096);
                    case "punchHole inside" -> s.punchHole(131072, 65536);
                    case "punchHole at the end" -> s.punchHole(s.size() - 4096, 4096);
                    case "discard" -> s.discard(262144, 65536);
                    case "preallocate" -> s.preallocate(s.size(), 65536);
                    case "setLength" -> s.setLength(s.size() + 4096);
                    case "extendTo" -> s.extendTo(s.size() + 4096);
                    case "writeDurably" -> s.writeDurably(block(), 12288); // a ranged sync is not a whole-file one
                    default -> throw new AssertionError(kind);
                }
                s.flush();
                if (!kind.equals("preallocate") || direct) { // buffered files are not preallocated: no change
                    expected++;
                }
                assertEquals(expected, syncs.forces.get(), kind + " was not synced");
                s.flush();
                assertEquals(expected, syncs.forces.get(), "a second flush after " + kind);
            }
        }
    }

    /**
     * A failed sync covers nothing: the next flush is not skipped. With O_DIRECT it syncs again; buffered, it fails
     * with the latched error (FailedSyncTest), which a skip would have hidden.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void aFailedSyncIsNotSkippedNext(boolean direct) throws IOException {
        try (FileStorage s = open(direct)) {
            s.write(block(), 0);
            syncs.failures.set(1);
            assertThrows(IOException.class, s::flush);
            if (direct) {
                s.flush();
                assertEquals(2, syncs.forces.get());
            } else {
                assertTrue(assertThrows(IOException.class, s::flush).getMessage().contains("reopen"));
                assertEquals(1, syncs.forces.get(), "latched, without a system call");
            }
        }
    }

    /**
     * A write still in the kernel when a flush reads the count is not the flush's to cover; once it ends, the next
     * flush syncs. Had the count been taken as the write started, the first flush would have marked the write
     * synced before it was made, and the second would have skipped it.
     */
    @Test
    void aWriteThatEndsAfterAFlushBeganIsSyncedByTheNext() throws Exception {
        try (FileStorage s = open(false)) {
            syncs.writeEntered = new CountDownLatch(1);
            CountDownLatch entered = syncs.writeEntered;
            CompletableFuture<Void> write = CompletableFuture.runAsync(() -> {
                try {
                    s.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), 0);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            assertTrue(entered.await(10, TimeUnit.SECONDS));
            s.flush();
            assertEquals(0, syncs.forces.get(), "the write has not ended: nothing to sync yet");
            syncs.releaseWrite.countDown();
            write.get(10, TimeUnit.SECONDS);
            s.flush();
            assertEquals(1, syncs.forces.get());
        }
    }
}
