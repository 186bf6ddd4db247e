package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A host sync that failed on a buffered file may have dropped the writes it covered (Linux marks the pages it could
 * not write back clean and reports the error once), so every later sync must fail too, as QEMU's file-posix makes
 * them (page_cache_inconsistent); otherwise a guest that retries its flush is told lost writes are safe.
 */
class FailedSyncTest {
    @TempDir
    Path dir;

    /** The file's own I/O, with the next {@code failures} syncs failing as fdatasync's EIO, counting the calls. */
    private static final class FailingSyncs extends ForwardingFileIo {
        final AtomicInteger failures = new AtomicInteger();
        final AtomicInteger syncCalls = new AtomicInteger();
        volatile IOException failure = new IOException("Input/output error");
        /** If set, run as each sync begins: another thread's interrupt closing the channel under it. */
        volatile FileStorage.SyncCall closeUnderSync;
        /** If set, the failing sync first counts this down and waits for {@code release}. */
        volatile CountDownLatch entered;
        final CountDownLatch release = new CountDownLatch(1);

        FailingSyncs(FileIo inner) {
            super(inner);
        }

        private void maybeFail() throws IOException {
            syncCalls.incrementAndGet();
            FileStorage.SyncCall close = closeUnderSync;
            if (close != null) {
                close.run();
            }
            if (failures.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                CountDownLatch gate = entered;
                if (gate != null) {
                    gate.countDown();
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                throw failure;
            }
        }

        @Override
        public void force() throws IOException {
            maybeFail();
            inner.force();
        }

        @Override
        public void forceRange(long position, long length) throws IOException {
            maybeFail();
            inner.forceRange(position, length);
        }
    }

    private final FailingSyncs[] io = new FailingSyncs[1]; // the storage opened last

    private FileStorage open(Path file, boolean direct) throws IOException {
        return FileStorage.openWrapped(file, direct, inner -> io[0] = new FailingSyncs(inner));
    }

    private Path file() throws IOException {
        Path file = dir.resolve("f");
        Files.write(file, new byte[65536]);
        return file;
    }

    @Test
    void aBufferedFileFailsEverySyncAfterOneFailedAndMakesNoMoreSyncCalls() throws IOException {
        try (FileStorage s = open(file(), false)) {
            s.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), 4096);
            io[0].failures.set(1);
            IOException first = assertThrows(IOException.class, s::flush);
            assertSame(io[0].failure, first);
            IOException again = assertThrows(IOException.class, s::flush, "the sync itself would succeed now");
            assertSame(first, again.getCause());
            assertTrue(again.getMessage().contains("reopen"), again.getMessage());
            assertThrows(IOException.class, () -> s.flushRange(0, 4096));
            assertThrows(IOException.class, () -> s.flushRange(0, 0));
            assertEquals(1, io[0].syncCalls.get(), "a failed storage asks the host for nothing more");
            s.write(ByteBuffer.wrap(new byte[] {4}), 0); // writes go on, as in QEMU
        }
    }

    /**
     * Linux reports a writeback error to one sync of a descriptor: a sync beside a failing one would return success
     * before the failure is latched, so syncs of a buffered file take turns.
     */
    @Test
    void aSyncBesideAFailingOneDoesNotReportSuccess() throws Exception {
        // Two threads of their own: the common pool may have one, which the held sync would occupy.
        ExecutorService threads = Executors.newFixedThreadPool(2);
        try (FileStorage s = open(file(), false)) {
            s.write(ByteBuffer.wrap(new byte[] {1}), 0);
            io[0].entered = new CountDownLatch(1);
            io[0].failures.set(1);
            CompletableFuture<Void> failing = CompletableFuture.runAsync(() -> flushQuietly(s), threads);
            io[0].entered.await();
            CompletableFuture<Throwable> beside = CompletableFuture.supplyAsync(() -> {
                try {
                    s.flushRange(0, 4096);
                    return null;
                } catch (IOException e) {
                    return e;
                }
            }, threads);
            Thread.sleep(200); // time for the second sync to succeed, had it not waited its turn
            io[0].release.countDown();
            failing.get(10, TimeUnit.SECONDS);
            assertTrue(beside.get(10, TimeUnit.SECONDS) instanceof IOException, "the second sync succeeded");
        } finally {
            threads.shutdownNow();
        }
    }

    private static void flushQuietly(FileStorage s) {
        try {
            s.flush();
        } catch (IOException expected) {
            // the failing one
        }
    }

    @Test
    void aFailedRangedSyncFailsTheWholeOnesAfterIt() throws IOException {
        try (FileStorage s = open(file(), false)) {
            s.write(ByteBuffer.wrap(new byte[] {1}), 0);
            io[0].failures.set(1);
            assertThrows(IOException.class, () -> s.flushRange(0, 4096));
            assertThrows(IOException.class, s::flush);
        }
    }

    @Test
    void withODirectASyncAfterAFailedOneSucceeds() throws IOException {
        try (FileStorage s = open(file(), true)) {
            s.write(ByteBuffer.wrap(new byte[] {1}), 0); // a sync with nothing to sync is skipped
            io[0].failures.set(1);
            assertThrows(IOException.class, s::flush);
            s.flush(); // no page cache holds the writes
            assertEquals(2, io[0].syncCalls.get());
        }
    }

    @Test
    void anInterruptedSyncIsNoFailedOne() throws IOException {
        try (FileStorage s = open(file(), false)) {
            s.write(ByteBuffer.wrap(new byte[] {1}), 0); // a sync with nothing to sync is skipped
            io[0].failure = new ClosedByInterruptException();
            io[0].failures.set(1);
            assertThrows(ClosedByInterruptException.class, s::flush);
            s.flush();
        }
    }

    /**
     * Another thread's interrupt closed the channel under a sync, which was then made again on a new descriptor and
     * succeeded. Had the first descriptor's sync met a writeback error, the JDK reported the close instead and the
     * new descriptor never would: the witness, open since the file was, is asked, and its error is the sync's.
     */
    @Test
    void aSyncCutShortByAnInterruptAsksTheWitnessWhoseErrorIsLatched() throws IOException {
        try (FileStorage s = open(file(), false)) {
            s.write(ByteBuffer.wrap(new byte[] {1}), 0);
            IOException lost = new IOException("Input/output error");
            s.replaceWitnessForTests(() -> {
                throw lost;
            });
            io[0].closeUnderSync = s::closeChannelAsAnInterruptWouldForTests;
            assertSame(lost, assertThrows(IOException.class, s::flush));
            io[0].closeUnderSync = null;
            assertSame(lost, assertThrows(IOException.class, s::flush, "the retried flush").getCause());
        }
    }

    /** The same, for the interrupted caller itself: it learns of the lost error, not only of its interrupt. */
    @Test
    void anInterruptedSyncThatLostAnErrorFailsWithIt() throws IOException {
        try (FileStorage s = open(file(), false)) {
            s.write(ByteBuffer.wrap(new byte[] {1}), 0); // a sync with nothing to sync is skipped
            IOException lost = new IOException("Input/output error");
            s.replaceWitnessForTests(() -> {
                throw lost;
            });
            io[0].closeUnderSync = s::closeChannelAsAnInterruptWouldForTests;
            io[0].failure = new ClosedByInterruptException();
            io[0].failures.set(1);
            IOException e = assertThrows(IOException.class, s::flush);
            assertSame(lost, e);
            assertTrue(e.getSuppressed()[0] instanceof ClosedByInterruptException);
            io[0].closeUnderSync = null;
            assertThrows(IOException.class, s::flush, "latched");
        }
    }

    /** With no lost error the witness's fsync (the real one here) succeeds, and so do the sync and the next. */
    @Test
    void aSyncCutShortWithoutAnErrorSucceeds() throws IOException {
        try (FileStorage s = open(file(), false)) {
            s.write(ByteBuffer.wrap(new byte[] {1}), 0);
            io[0].closeUnderSync = s::closeChannelAsAnInterruptWouldForTests;
            s.flush();
            s.flushRange(0, 4096);
            io[0].closeUnderSync = null;
            s.flush();
        }
    }

    /** The guest's view: a flush retried after a failed one never reports the lost write durable. */
    @Test
    void anImageWhoseFlushFailedFailsTheRetriedFlush() throws IOException {
        Path file = dir.resolve("a.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(1 << 20));
        byte[] b = new byte[65536];
        Arrays.fill(b, (byte) 'B');
        try (FileStorage s = open(file, false)) {
            Qcow2Image img = Qcow2Image.open(s, dir, OpenOptions.readWriteDefaults().withPool(false));
            img.write(0, ByteBuffer.wrap(new byte[65536]));
            img.flush();
            img.write(0, ByteBuffer.wrap(b)); // in place, acknowledged
            io[0].failures.set(1);
            assertThrows(IOException.class, img::flush);
            assertThrows(IOException.class, img::flush, "the retried flush");
            byte[] got = new byte[65536];
            img.read(0, ByteBuffer.wrap(got));
            assertArrayEquals(b, got, "reads still see the write");
            assertThrows(IOException.class, img::close, "its last flush fails too");
        }
    }
}
