package io.github.qcowloom.storage;

import com.sun.nio.file.ExtendedOpenOption;
import io.github.qcowloom.api.StorageBackend;
import java.io.Closeable;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.RandomAccessFile;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.UnaryOperator;

/**
 * A host file accessed by positional I/O, through the page cache (buffered) or with O_DIRECT (direct), and
 * moved by FileChannel or by io_uring ({@link StorageBackend}; the bytes move in a {@link FileIo}).
 *
 * <p>In direct mode any offset, length and buffer is accepted: aligned direct buffers go straight to the
 * channel, everything else through an aligned bounce buffer, with read-modify-write of partial edge blocks.
 * Every direct write holds striped per-block locks so that concurrent read-modify-writes of one block
 * cannot lose each other's bytes.
 *
 * <p>{@link #punchHole} releases host space: at the tail of the file by truncating, inside it by io_uring's fallocate
 * (on a descriptor of its own when FileChannel moves the bytes; by fallocate(2) itself there where FileChannel was
 * asked for by name); on Java 21 it writes zeroes there, like {@link #writeZeroes}. {@link #zeroRange} punches or
 * fallocates ZERO_RANGE the same way, or declines. {@link #preallocate} fallocates only with O_DIRECT through io_uring.
 *
 * <p>The file is held with QEMU's lock bytes ({@link ImageLock}) from open to close, taken before anything is
 * read (and, on create, before the file is truncated).
 *
 * <p>Once a host sync of a buffered file has failed, every later one fails too ({@link #flush}). A whole-file sync
 * with nothing changed since the last one that succeeded is skipped ({@link #changes}), as QEMU's bdrv_co_flush
 * skips a node whose write generation its last flush covered.
 *
 * <p>Lock discipline: {@code syncLock} (buffered files) is taken before the size lock's read side, which a ranged
 * sync through FileChannel takes; nothing that holds the size lock syncs. Block locks are taken inside the size
 * lock by direct writes and punches. {@code fallocatorLock}, innermost, only opens the descriptor that
 * punches holes and reserves space for FileChannel's I/O.
 */
public final class FileStorage implements Storage {
    private static final int ZERO_CHUNK = 1 << 20;
    // Aligned for any block size up to 64 KiB, so zero chunks take the direct fast path.
    private static final ByteBuffer ZEROES =
            ByteBuffer.allocateDirect(ZERO_CHUNK + 65536).alignedSlice(65536).slice(0, ZERO_CHUNK).asReadOnlyBuffer();
    // One cluster of the default size: a 4 KiB request at depth 256 keeps at most 16 MiB of bounce buffers idle.
    private static final int BOUNCE_SIZE = 64 * 1024;
    private static final int IDLE_BOUNCE_BUFFERS = 256;
    private static final int BLOCK_LOCK_STRIPES = 1024;
    private static final Java22Method SYSCALL_FALLOCATOR = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.storage.FallocateFileIo", "open", MethodType.methodType(FileIo.class, Path.class),
            "fallocate");

    private final Path path;
    private final ReopeningChannel channel;
    private final FileIo io; // the channel itself, or io_uring on a descriptor of its own
    private final boolean throughRing; // io is io_uring's
    private final RandomAccessFile resizer; // null when read-only
    private final ImageLock lock; // null when the permissions take no lock byte
    private final boolean direct;
    /** What a request must be aligned to, or be bounced: 1 buffered, else {@link DirectIoAlignment}'s. */
    private final int alignment;
    /**
     * The unit of {@code blockLocks}: a multiple of {@code alignment}, the file system's block, so that a 4 KiB
     * request takes one stripe however small the alignment (any unit at least as large as a read-modify-write's
     * keeps two of them apart).
     */
    private final int lockUnit;
    private final AlignedBufferPool bounce; // direct mode only
    private final BlockLocks blockLocks; // direct mode only
    // Writes hold it shared; whatever may shrink the file, even for a moment, holds it exclusively.
    private final ReentrantReadWriteLock sizeLock = new ReentrantReadWriteLock();
    // The file's length as far as callers are concerned: in direct mode the host file can be briefly longer.
    private final AtomicLong size;
    /** False once the host refused a {@link #preallocate}. */
    private volatile boolean preallocates = true;
    /** False once this I/O or the host could not punch a hole ({@link #punchHole}). */
    private volatile boolean punches = true;
    /** False once this I/O or the host could not zero a range with ZERO_RANGE ({@link #zeroRange}). */
    private volatile boolean zeroesRanges = true;
    /**
     * The holes and reserved space of a file whose bytes FileChannel moves (it has no fallocate), on a descriptor of
     * its own: io_uring's I/O, or fallocate(2) on the caller's thread where FileChannel was asked for by name
     * ({@code channelOnly}: no ring opened). Opened at the first punch or reservation; null before it or where
     * neither can run (Java 21). Under fallocatorLock.
     */
    private FileIo fallocator;
    private boolean fallocatorOpened; // true once opened, refused or closed: never opened again
    /** FileChannel was asked for by name: holes are punched by fallocate(2) itself, no ring opened for them. */
    private final boolean channelOnly;
    private final ReentrantLock fallocatorLock = new ReentrantLock();
    /**
     * The first failed host sync of a buffered file, the cause of every later sync's failure. Linux marks the
     * pages it could not write back clean and reports the error once, so a later fdatasync would succeed without
     * them, and a guest whose retried flush succeeded would lose writes it was told were safe. QEMU's file-posix
     * does the same (page_cache_inconsistent). With O_DIRECT no page cache holds the writes.
     */
    private volatile IOException failedSync;
    /**
     * One sync of a buffered file at a time: Linux reports a writeback error to one sync of a descriptor, so a sync
     * running beside a failing one could return success before the failure is latched.
     */
    private final ReentrantLock syncLock = new ReentrantLock();
    /**
     * An fsync through {@code resizer}, a descriptor open as long as the file: the witness of writeback errors that
     * a sync cut short by an interrupt lost ({@link #checkWitness}). Null when read-only. Replaced by tests only.
     */
    private volatile SyncCall witness;
    /**
     * Changes made to the file (writes, punches, preallocations, length changes), counted as each ends, whether or
     * not it succeeded; and {@code syncedChanges}, how many of them the last successful whole-file sync covered. A
     * change is counted only once it has reached the kernel, never as it starts: a sync that read the count before
     * the change ended may have run before it, and must not mark it durable.
     */
    private final AtomicLong changes = new AtomicLong();
    private final AtomicLong syncedChanges = new AtomicLong();

    private FileStorage(Path path, ReopeningChannel channel, FileIo io, boolean throughRing, RandomAccessFile resizer,
            ImageLock lock, boolean direct, int alignment, int lockUnit, boolean channelOnly) throws IOException {
        this.path = path;
        this.channelOnly = channelOnly;
        this.lock = lock;
        this.channel = channel;
        this.io = io;
        this.throughRing = throughRing;
        this.resizer = resizer;
        this.witness = resizer == null ? null : () -> resizer.getFD().sync();
        this.direct = direct;
        this.alignment = alignment;
        this.lockUnit = Math.max(lockUnit, alignment);
        this.bounce = direct ? new AlignedBufferPool(alignment, Math.max(BOUNCE_SIZE, alignment), IDLE_BOUNCE_BUFFERS)
                : null;
        this.blockLocks = direct ? new BlockLocks(BLOCK_LOCK_STRIPES) : null;
        this.size = new AtomicLong(channel.size());
    }

    /** Opens an existing file through FileChannel, read-only or read-write, buffered or with O_DIRECT. */
    public static FileStorage open(Path path, boolean readOnly, boolean direct) throws IOException {
        return open(path, readOnly, direct, StorageBackend.FILECHANNEL);
    }

    /**
     * Opens an existing file, read-only or read-write, buffered or with O_DIRECT, through {@code backend}
     * (io_uring falls back to FileChannel where it cannot run: {@link #backend()} says which is used).
     */
    public static FileStorage open(Path path, boolean readOnly, boolean direct, StorageBackend backend)
            throws IOException {
        return open(path, readOnly, direct, backend,
                readOnly ? LockPermissions.readOnly() : LockPermissions.readWrite());
    }

    /**
     * Opens an existing file as {@link #open(Path, boolean, boolean, StorageBackend)} does, held with QEMU's lock
     * bytes for {@code permissions}.
     *
     * @throws io.github.qcowloom.api.ImageLockedException if another process's locks conflict with them
     */
    public static FileStorage open(Path path, boolean readOnly, boolean direct, StorageBackend backend,
            LockPermissions permissions) throws IOException {
        return readOnly
                ? open(path, Set.of(StandardOpenOption.READ), direct, false, backend, permissions, false,
                        UnaryOperator.identity())
                : open(path, Set.of(StandardOpenOption.READ, StandardOpenOption.WRITE), direct, true, backend,
                        permissions, false, UnaryOperator.identity());
    }

    /** Creates a file, or truncates an existing one, and opens it read-write through FileChannel. */
    public static FileStorage create(Path path, boolean direct) throws IOException {
        return create(path, direct, StorageBackend.FILECHANNEL);
    }

    /**
     * Creates a file, or truncates an existing one, and opens it read-write through {@code backend}. An existing
     * file is truncated only once its write lock is held, so a file in use by QEMU is refused, not emptied.
     */
    public static FileStorage create(Path path, boolean direct, StorageBackend backend) throws IOException {
        return open(path, Set.of(StandardOpenOption.READ, StandardOpenOption.WRITE, StandardOpenOption.CREATE),
                direct, true, backend, LockPermissions.readWrite(), true, UnaryOperator.identity());
    }

    /**
     * Tests: opens an existing file read-write through the default backend ({@link StorageBackend#AUTO}: FileChannel
     * buffered, io_uring with O_DIRECT), its I/O seen through {@code wrap}.
     */
    static FileStorage openWrapped(Path path, boolean direct, UnaryOperator<FileIo> wrap) throws IOException {
        return open(path, Set.of(StandardOpenOption.READ, StandardOpenOption.WRITE), direct, true,
                StorageBackend.AUTO, LockPermissions.readWrite(), false, wrap);
    }

    /**
     * Refuses a FIFO or a socket, whose open(2) waits for a peer: an image naming one as its backing or data file
     * would hold the command forever. Anything else (a missing file, a regular file, a device) is left to the open.
     */
    public static void requireOpenable(Path path) throws IOException {
        FileType type = FileType.of(path).orElse(FileType.REGULAR); // missing: the open says so
        if (type == FileType.FIFO || type == FileType.SOCKET) {
            throw new IOException("Could not open '" + path + "': it is a " + (type == FileType.FIFO ? "FIFO"
                    : "socket") + ", not an image file");
        }
    }

    private static FileStorage open(Path path, Set<OpenOption> options, boolean direct, boolean writable,
            StorageBackend backend, LockPermissions permissions, boolean truncate, UnaryOperator<FileIo> wrap)
            throws IOException {
        requireOpenable(path);
        // The channel opens (or creates) the file and answers its size even when io_uring moves the bytes.
        // An existing file is locked before any other descriptor of it is opened: with POSIX locks, closing a
        // descriptor after a refusal would drop another open's locks (PosixLockBytes).
        ImageLock lock = Files.exists(path) ? ImageLock.acquire(path, path.toString(), permissions) : null;
        ReopeningChannel channel;
        try {
            channel = direct ? openDirect(path, options) : new ReopeningChannel(path, options);
        } catch (IOException | RuntimeException e) {
            closeAfterFailure(e, lock);
            throw e;
        }
        FileIo io = null;
        RandomAccessFile resizer = null;
        try {
            if (lock == null) {
                lock = ImageLock.acquire(path, path.toString(), permissions);
            }
            if (backend.resolve(direct) == StorageBackend.IO_URING) {
                io = UringSupport.open(path, writable, direct); // null: io_uring cannot run here
            }
            int block = direct ? blockSize(path) : 1;
            int alignment = direct ? DirectIoAlignment.of(path, block, io != null) : 1;
            resizer = writable ? new RandomAccessFile(path.toFile(), "rw") : null;
            // Not an empty file: ext4 takes a truncation to 0 for a rewrite in progress (auto_da_alloc) and writes
            // the file back when it is closed, 0.4 s of a 2 GiB convert's new target.
            if (truncate && resizer.length() != 0) {
                resizer.setLength(0);
            }
            return new FileStorage(path, channel, wrap.apply(io != null ? io : channel), io != null, resizer, lock,
                    direct, alignment, block, backend == StorageBackend.FILECHANNEL);
        } catch (IOException | RuntimeException e) {
            closeAfterFailure(e, channel, io, resizer, lock);
            throw e;
        }
    }

    private static void closeAfterFailure(Exception failure, Closeable... resources) {
        for (Closeable resource : resources) {
            try {
                if (resource != null) {
                    resource.close();
                }
            } catch (IOException e) {
                failure.addSuppressed(e);
            }
        }
    }

    private static ReopeningChannel openDirect(Path path, Set<OpenOption> options) throws IOException {
        Set<OpenOption> withDirect = new HashSet<>(options);
        withDirect.add(ExtendedOpenOption.DIRECT);
        try {
            return new ReopeningChannel(path, withDirect);
        } catch (NoSuchFileException | AccessDeniedException | FileAlreadyExistsException e) {
            throw e;
        } catch (IOException | UnsupportedOperationException e) {
            throw new IOException("cannot open " + path + " with O_DIRECT; the file system may not support it"
                    + " (open it buffered instead): " + e.getMessage(), e);
        }
    }

    private static int blockSize(Path path) throws IOException {
        long blockSize;
        try {
            blockSize = Files.getFileStore(path).getBlockSize();
        } catch (UnsupportedOperationException e) {
            throw new IOException("cannot find the O_DIRECT alignment of " + path, e);
        }
        if (blockSize <= 0 || blockSize > (1 << 20) || Long.bitCount(blockSize) != 1) {
            throw new IOException("unusable O_DIRECT alignment " + blockSize + " for " + path);
        }
        return (int) blockSize;
    }

    /** The file this storage was opened on. */
    @Override
    public Path path() {
        return path;
    }

    /** True if opened with O_DIRECT. */
    public boolean direct() {
        return direct;
    }

    /** The backend that moves the bytes: io_uring only if it was asked for and can run here. */
    public StorageBackend backend() {
        return throughRing ? StorageBackend.IO_URING : StorageBackend.FILECHANNEL;
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        Ranges.checkPosition(position);
        if (!dst.hasRemaining()) {
            return 0;
        }
        if (!direct) {
            int start = dst.position();
            readUntilShort(dst, position);
            return dst.position() - start;
        }
        return isAligned(dst, position) ? readAlignedDirect(dst, position) : readBounced(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        Ranges.checkPosition(position);
        ensureWritable();
        if (src.hasRemaining()) {
            try {
                if (direct) {
                    writeDirect(src, position);
                } else {
                    writeBuffered(src, position);
                }
            } finally {
                changes.incrementAndGet();
            }
        }
    }

    /**
     * {@code fdatasync}, unless nothing changed since the last one that succeeded (it would make nothing durable, and
     * on ext4 it still sends the disk a cache flush). Fails, without a system call, once an earlier sync of this
     * buffered file has failed (see {@link #failedSync}): reopening the image is the way out, as in QEMU.
     */
    @Override
    public void flush() throws IOException {
        long changed = changes.get(); // before the sync: what it is sure to cover
        if (changed == syncedChanges.get() && failedSync == null) { // a failed sync fails every later one
            return;
        }
        sync(io::force);
        syncedChanges.accumulateAndGet(changed, Math::max);
    }

    /** What a sync does: {@link FileIo#force} or {@link FileIo#forceRange}. */
    @FunctionalInterface
    interface SyncCall {
        void run() throws IOException;
    }

    /** Runs {@code call} as a sync: refused once one failed, latched if it fails (buffered files, under syncLock). */
    private void sync(SyncCall call) throws IOException {
        if (direct) {
            call.run();
            return;
        }
        syncLock.lock();
        try {
            throwIfASyncFailed();
            long reopens = channel.reopens();
            try {
                call.run();
            } catch (IOException e) {
                if (channel.reopens() != reopens) {
                    checkWitness(e);
                }
                latch(e);
                throw e;
            }
            if (channel.reopens() != reopens) {
                checkWitness(null);
            }
        } finally {
            syncLock.unlock();
        }
    }

    /**
     * An interrupt closed the channel while this sync ran, and it was reopened (the sync then failed, or was made
     * again on the new descriptor). Had the cut-short fdatasync met a writeback error, the JDK reported the close
     * instead, and the new descriptor, opened after the error was seen, would never report it: a flush would succeed
     * without the lost writes. The witness, open since the file was, has not seen it: its fsync reports any writeback
     * error since then, which is latched as the sync's failure ({@code cutShort}, the sync's own exception if any,
     * goes with it). Nothing to check once the storage is closed.
     */
    private void checkWitness(IOException cutShort) throws IOException {
        SyncCall w = witness;
        if (w == null || channel.closed()) {
            return;
        }
        try {
            w.run();
        } catch (IOException e) {
            if (channel.closed()) { // closed meanwhile: the witness went with it, and it says nothing of the file
                if (cutShort != null) {
                    throw cutShort;
                }
                return;
            }
            if (cutShort != null) {
                e.addSuppressed(cutShort);
            }
            if (failedSync == null) {
                failedSync = e;
            }
            throw e;
        }
    }

    /** Tests: the witness's sync, in place of an fsync of {@code resizer}. */
    void replaceWitnessForTests(SyncCall w) {
        witness = w;
    }

    /** Tests: closes the channel as another thread's interrupt would; the next user reopens it. */
    void closeChannelAsAnInterruptWouldForTests() throws IOException {
        channel.closeAsAnInterruptWouldForTests();
    }

    private void throwIfASyncFailed() throws IOException {
        IOException failed = failedSync;
        if (failed != null) {
            throw new IOException("an earlier host sync of " + path + " failed (" + failed.getMessage()
                    + "): the writes it covered may never reach the disk, so no later sync can succeed; reopen the"
                    + " image", failed);
        }
    }

    /**
     * Records {@code e}, a failed sync, unless the channel was closed under it (by this storage's close, or by an
     * interrupt): that sync's outcome is unknown, and latching it would fail every flush after any interrupt. Should
     * the cut-short call have met a writeback error, {@link #checkWitness} has found it already.
     */
    private void latch(IOException e) {
        if (!(e instanceof ClosedChannelException) && !(e instanceof InterruptedIOException) && failedSync == null) {
            failedSync = e;
        }
    }

    /**
     * {@code fdatasync} of the range alone: see {@link Storage#flushRange}. FileChannel's maps the range, and a
     * mapping past the end would grow the file: it runs under the size lock's read side, as a write does, so that
     * the file does not shrink meanwhile. io_uring's needs no lock.
     */
    @Override
    public void flushRange(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        if (readOnly()) {
            flush(); // nothing of ours to make durable, and a ranged sync needs a writable mapping
            return;
        }
        sync(() -> {
            if (length == 0) {
                return;
            }
            Lock lock = throughRing ? null : sizeLock.readLock();
            if (lock != null) {
                lock.lock();
            }
            try {
                io.forceRange(position, length);
            } finally {
                if (lock != null) {
                    lock.unlock();
                }
            }
        });
    }

    /**
     * Releases host space: at the tail of the file by truncating and re-extending it (the size does not change);
     * inside it through io_uring's fallocate (PUNCH_HOLE), as QEMU's raw discard does, where the file system allows
     * it, else ZERO_RANGE, which keeps the space ({@link #zeroBlocks}); elsewhere, and over the partial edge blocks
     * with O_DIRECT, writes zeroes. Never extends the file.
     */
    @Override
    public void punchHole(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        ensureWritable();
        Lock lock = sizeLock.writeLock();
        lock.lock();
        try {
            long oldSize = size.get();
            if (position >= oldSize || length == 0) {
                return;
            }
            if (position + length >= oldSize) {
                // Reads take no size lock: one meanwhile finds the tail gone, and readFully gives it zeroes,
                // which a read racing the discard of its range may get either way.
                try {
                    setFileLength(position);
                    setFileLength(oldSize);
                } finally {
                    changes.incrementAndGet();
                }
                return;
            }
        } finally {
            lock.unlock();
        }
        // A hole inside the file: needs only the shared lock, like any write.
        long end = Math.min(position + length, size.get());
        if (end > position) { // else shrunk meanwhile past the range
            zeroBlocks(position, end - position, true);
        }
    }

    /** Zeroes the range and keeps its space: ZERO_RANGE over its whole blocks ({@link #zeroBlocks}). */
    @Override
    public void zeroKeepingSpace(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        ensureWritable();
        zeroBlocks(position, length, false);
    }

    /**
     * Zeroes {@code [position, position + length)} as QEMU's file layer zeroes a write-zeroes request, its request
     * alignment being the O_DIRECT one: the whole blocks inside the file by {@link #zeroWithoutWriting} (a hole
     * punched with {@code unmap}, else ZERO_RANGE); the partial edge blocks, and all of the range where the host can
     * do neither, get zeroes written, as QEMU's block layer writes the unaligned head and tail.
     */
    private void zeroBlocks(long position, long length, boolean unmap) throws IOException {
        long end = position + length;
        long from = alignUp(position);
        long to = alignDown(Math.min(end, size.get()));
        if (from < to && zeroWithoutWriting(from, to - from, unmap)) {
            writeZeroes(position, from - position);
            writeZeroes(to, end - to);
            return;
        }
        writeZeroes(position, length);
    }

    /**
     * Punches a hole over the whole blocks of the range inside the file where {@link #punchHole} can; writes nothing
     * where it cannot, nor at the range's partial edge blocks (with O_DIRECT; through the page cache the kernel
     * zeroes the partial pages of a hole). True if all of the range inside the file was punched.
     */
    @Override
    public boolean discard(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        ensureWritable();
        long end = Math.min(position + length, size.get());
        long from = alignUp(position);
        long to = alignDown(end);
        if (position >= end) {
            return true;
        }
        // No block locks: nothing reads or writes a range whose bytes no longer matter, and only whole blocks are
        // punched, so no read-modify-write of a block can straddle the hole. (Taken, the locks of a 2 MiB run were
        // every stripe, one by one, against a depth of writers: the pool's refill starved behind them.)
        return punches && from < to && punchInside(from, to - from) && from == position && to == end;
    }

    /** The descriptor that punches holes and reserves space for FileChannel's I/O ({@link #fallocator}): opened once. */
    private FileIo fallocator() throws IOException {
        fallocatorLock.lock();
        try {
            if (!fallocatorOpened) {
                fallocatorOpened = true;
                fallocator = channelOnly ? openSyscallFallocator(path) : UringSupport.openQuietly(path, true, direct);
            }
            return fallocator;
        } finally {
            fallocatorLock.unlock();
        }
    }

    /** fallocate(2) made on the caller's thread, no ring ({@code FallocateFileIo}); null where Java 21 cannot. */
    private static FileIo openSyscallFallocator(Path path) throws IOException {
        if (SYSCALL_FALLOCATOR.handle() == null) {
            return null;
        }
        try {
            return (FileIo) SYSCALL_FALLOCATOR.handle().invokeExact(path);
        } catch (UnsupportedOperationException e) {
            return null; // no native calls here (not Linux, native access denied)
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * fallocate(PUNCH_HOLE) of whole blocks inside the file, for {@link #discard}, without their block locks (see
     * there); false where the I/O or the file system cannot.
     */
    private boolean punchInside(long position, long length) throws IOException {
        try {
            if (fallocateInside(position, length, false, FileIo::punchHole)) {
                return true;
            }
        } catch (FailedCallException e) {
            if (e.errno() == FailedCallException.EINVAL) {
                return false; // this range only, as for zeroRange
            }
        } catch (IOException e) {
            // Failed: a discard may leave the bytes as they were.
        }
        punches = false; // FileChannel, or refused: not asked again
        return false;
    }

    /**
     * fallocate(PUNCH_HOLE) with {@code unmap}, else fallocate(ZERO_RANGE), of a range inside the file, whole blocks
     * with O_DIRECT, under their block locks (so that no read-modify-write of a block straddles it, as for
     * {@link #punchHole}; {@link #discard} takes none); false, changing nothing, where the range is not that, or the
     * I/O or the file system cannot. As QEMU's handle_aiocb_write_zeroes: EINVAL declines this range only, a call
     * the host does not have every later one too, and other errors are thrown.
     */
    @Override
    public boolean zeroRange(long position, long length, boolean unmap) throws IOException {
        Ranges.checkRange(position, length);
        ensureWritable();
        boolean wholeBlocks = position % alignment == 0 && length % alignment == 0;
        if (!(unmap ? punches : zeroesRanges) || !wholeBlocks || position + length > size.get()) {
            return false;
        }
        try {
            if (length == 0 || fallocateInside(position, length, direct,
                    unmap ? FileIo::punchHole : FileIo::zeroRange)) {
                return true;
            }
        } catch (FailedCallException e) {
            if (e.errno() == FailedCallException.EINVAL) {
                return false;
            }
            if (!e.unsupported()) {
                throw e;
            }
        }
        // FileChannel, or a host without the call: not asked again
        if (unmap) {
            punches = false;
        } else {
            zeroesRanges = false;
        }
        return false;
    }

    /** A call of fallocate in one of its modes, on a {@link FileIo}: false where that I/O has no fallocate. */
    private interface Fallocate {
        boolean apply(FileIo io, long position, long length) throws IOException;
    }

    /**
     * {@code call} over a range inside the file (with {@code blockLocked}, under the blocks' locks), through this
     * storage's I/O or else the descriptor of its own that FileChannel's I/O fallocates on; false where neither can.
     * The part past the end of the file, shrunk meanwhile, is left out. Throws what the call throws.
     */
    private boolean fallocateInside(long position, long length, boolean blockLocked, Fallocate call)
            throws IOException {
        Lock lock = sizeLock.readLock();
        lock.lock();
        long firstBlock = firstLockBlock(position);
        long endBlock = endLockBlock(position + length);
        if (blockLocked) {
            blockLocks.lock(firstBlock, endBlock);
        }
        try {
            long inside = Math.min(length, size.get() - position);
            if (inside <= 0) {
                return true;
            }
            if (call.apply(io, position, inside)) {
                return true;
            }
            FileIo other = throughRing ? null : fallocator();
            if (other != null && call.apply(other, position, inside)) {
                return true;
            }
        } finally {
            changes.incrementAndGet();
            if (blockLocked) {
                blockLocks.unlock(firstBlock, endBlock);
            }
            lock.unlock();
        }
        return false;
    }

    /** Writes zeroes in chunks of at most 1 MiB, extending the file if the range reaches past the end. */
    @Override
    public void writeZeroes(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        ensureWritable();
        long end = position + length;
        for (long at = position; at < end; ) {
            // Chunks end on ZERO_CHUNK boundaries so that after the first they stay aligned in direct mode.
            long next = Math.min(end, (at / ZERO_CHUNK + 1) * ZERO_CHUNK);
            write(ZEROES.slice(0, (int) (next - at)), at);
            at = next;
        }
    }

    /**
     * With O_DIRECT through io_uring, fallocate: a write into allocated space is then made without blocking, where
     * one that must allocate (or grow the file) is handed to io_uring's worker threads. Elsewhere nothing: buffered
     * writes allocate lazily anyway, and FileChannel has no fallocate. A file system that refuses it (no fallocate,
     * no space) is not asked again; its writes allocate as before.
     */
    @Override
    public void preallocate(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        ensureWritable();
        if (!direct || !preallocates) {
            return;
        }
        Lock lock = sizeLock.readLock(); // as a write: it grows the file, never shrinks it
        lock.lock();
        try {
            if (io.allocate(position, length)) {
                size.accumulateAndGet(position + length, Math::max);
            } else {
                preallocates = false; // FileChannel: asked once
            }
        } catch (IOException e) {
            preallocates = false;
        } finally {
            changes.incrementAndGet();
            lock.unlock();
        }
    }

    /**
     * preallocation=falloc: fallocate over the range through this I/O, or through the descriptor that does it for
     * FileChannel's; zeroes written where neither can (Java 21, a file system without fallocate: EOPNOTSUPP), which
     * read the same and take the same space. Any other failure is thrown as it is.
     */
    @Override
    public void reserve(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        ensureWritable();
        if (length == 0) {
            return;
        }
        boolean reserved = false;
        Lock lock = sizeLock.readLock(); // as a write: it grows the file, never shrinks it
        lock.lock();
        try {
            FileIo other = throughRing ? null : fallocator();
            reserved = io.allocate(position, length) || other != null && other.allocate(position, length);
            if (reserved) {
                size.accumulateAndGet(position + length, Math::max);
            }
        } catch (IOException e) {
            // Refused by the file system: zeroes below. Any other failure (ENOSPC above all) is the caller's at once:
            // zeroes written instead would fill the disk before they failed the same way.
            if (!(e instanceof FailedCallException f && f.errno() == FailedCallException.EOPNOTSUPP)) {
                throw e;
            }
        } finally {
            changes.incrementAndGet();
            lock.unlock();
        }
        if (!reserved) {
            writeZeroes(position, length);
        }
    }

    @Override
    public long size() throws IOException {
        return size.get();
    }

    @Override
    public void setLength(long length) throws IOException {
        Ranges.checkPosition(length);
        ensureWritable();
        Lock lock = sizeLock.writeLock();
        lock.lock();
        try {
            setFileLength(length);
            size.set(length);
        } finally {
            changes.incrementAndGet();
            lock.unlock();
        }
    }

    @Override
    public void extendTo(long end) throws IOException {
        Ranges.checkPosition(end);
        if (end <= size.get()) {
            return; // the size never shrinks under a caller that only extends
        }
        ensureWritable();
        Lock lock = sizeLock.writeLock();
        lock.lock();
        try {
            // Writes hold the shared side, so no write is extending the file while its size is compared here.
            if (size.get() < end) {
                setFileLength(end);
                size.set(end);
            }
        } finally {
            changes.incrementAndGet();
            lock.unlock();
        }
    }

    @Override
    public int alignment() {
        return alignment;
    }

    @Override
    public boolean waitsForDevice() {
        return direct;
    }

    @Override
    public boolean readOnly() {
        return resizer == null;
    }

    @Override
    public void close() throws IOException {
        try {
            if (io != channel) { // io_uring's, or a test's view of the channel
                io.close();
            }
        } finally {
            closeRest();
        }
    }

    private void closeRest() throws IOException {
        try {
            fallocatorLock.lock();
            try {
                fallocatorOpened = true; // a punch or reservation racing the close opens none
                if (fallocator != null) {
                    fallocator.close();
                }
            } finally {
                fallocatorLock.unlock();
            }
            channel.close();
        } finally {
            try {
                if (resizer != null) {
                    resizer.close();
                }
            } finally {
                if (lock != null) {
                    lock.close(); // last: the locks outlive every descriptor that could write
                }
            }
        }
    }

    /** The lock bytes held on the file, or null if its permissions take none. */
    public ImageLock lock() {
        return lock;
    }

    @Override
    public String toString() {
        return "FileStorage[" + path + (direct ? ", direct" : ", buffered") + ", " + backend()
                + (readOnly() ? ", read-only]" : "]");
    }

    private void writeBuffered(ByteBuffer src, long position) throws IOException {
        long end = position + src.remaining();
        Lock lock = sizeLock.readLock();
        lock.lock();
        try {
            writeFully(src, position);
            size.accumulateAndGet(end, Math::max);
        } finally {
            lock.unlock();
        }
    }

    /**
     * A direct write covers whole blocks, so when its end is unaligned and its last block reaches past the
     * end of the file, the host file grows beyond {@code end}: such writes run exclusively and trim it back.
     */
    private void writeDirect(ByteBuffer src, long position) throws IOException {
        long end = position + src.remaining();
        Lock lock = sizeLock.readLock();
        lock.lock();
        if (overshootsEnd(end)) {
            lock.unlock();
            lock = sizeLock.writeLock();
            lock.lock();
        }
        try {
            long sizeBefore = size.get();
            boolean trim = overshootsEnd(end);
            long firstBlock = firstLockBlock(position);
            long endBlock = endLockBlock(end);
            blockLocks.lock(firstBlock, endBlock);
            try {
                if (isAligned(src, position)) {
                    writeFully(src, position);
                } else {
                    writeBounced(src, position);
                }
            } finally {
                blockLocks.unlock(firstBlock, endBlock);
            }
            if (trim) {
                setFileLength(Math.max(sizeBefore, end));
            }
            size.accumulateAndGet(end, Math::max);
        } finally {
            lock.unlock();
        }
    }

    /**
     * ftruncate, under the size write lock: through the I/O's own call where it has one (on an event loop, its
     * ring, so the loop is not held while the file system journals it), else through the resizer, a second,
     * buffered descriptor (FileChannel.truncate cannot extend).
     */
    private void setFileLength(long length) throws IOException {
        if (!io.truncate(length)) {
            resizer.setLength(length);
        }
    }

    private boolean overshootsEnd(long end) {
        return end % alignment != 0 && alignUp(end) > size.get();
    }

    /** Writes through bounce buffers, one chunk of whole blocks at a time, reading in partial edge blocks. */
    private void writeBounced(ByteBuffer src, long position) throws IOException {
        long end = position + src.remaining();
        long at = position;
        while (at < end) {
            long chunkStart = alignDown(at);
            long chunkEnd = Math.min(chunkStart + bounce.bufferSize(), alignUp(end));
            int chunkLength = (int) (chunkEnd - chunkStart);
            long dataEnd = Math.min(end, chunkEnd);
            ByteBuffer buffer = bounce.take();
            try {
                ByteBuffer chunk = buffer.slice(0, chunkLength);
                boolean head = at > chunkStart;
                if (head) {
                    readBlock(chunk, 0, chunkStart);
                }
                // The tail block is the head block when the chunk is one block: already read.
                if (dataEnd < chunkEnd && (!head || chunkLength > alignment)) {
                    readBlock(chunk, chunkLength - alignment, chunkEnd - alignment);
                }
                int n = (int) (dataEnd - at);
                chunk.put((int) (at - chunkStart), src, src.position(), n);
                src.position(src.position() + n);
                writeFully(chunk, chunkStart);
            } finally {
                bounce.give(buffer);
            }
            at = dataEnd;
        }
    }

    /** Reads the block at {@code position} into {@code chunk[offset, offset + alignment)}, zeroes past EOF. */
    private void readBlock(ByteBuffer chunk, int offset, long position) throws IOException {
        ByteBuffer block = chunk.slice(offset, alignment);
        readUntilShort(block, position);
        Zeroes.fill(block);
    }

    private int readAlignedDirect(ByteBuffer dst, long position) throws IOException {
        int start = dst.position();
        readUntilShort(dst, position);
        int n = visible(position, dst.position() - start);
        dst.position(start + n);
        return n;
    }

    private int readBounced(ByteBuffer dst, long position) throws IOException {
        long end = position + dst.remaining();
        long at = position;
        while (at < end) {
            long chunkStart = alignDown(at);
            int chunkLength = (int) (Math.min(chunkStart + bounce.bufferSize(), alignUp(end)) - chunkStart);
            ByteBuffer buffer = bounce.take();
            try {
                ByteBuffer chunk = buffer.slice(0, chunkLength);
                readUntilShort(chunk, chunkStart);
                int skip = (int) (at - chunkStart);
                int n = visible(at, (int) Math.min(chunk.position() - skip, end - at));
                if (n <= 0) {
                    break;
                }
                dst.put(dst.position(), chunk, skip, n);
                dst.position(dst.position() + n);
                at += n;
                if (chunk.hasRemaining()) {
                    break; // end of file
                }
            } finally {
                bounce.give(buffer);
            }
        }
        return (int) (at - position);
    }

    /** Of {@code n} bytes read at {@code position}, how many lie inside the file (it may be briefly longer). */
    private int visible(long position, int n) {
        return (int) Math.max(0, Math.min(n, size.get() - position));
    }

    /** Reads until {@code dst} is full or the file ends; in direct mode also stops at an unaligned short read. */
    private void readUntilShort(ByteBuffer dst, long position) throws IOException {
        int start = dst.position();
        while (dst.hasRemaining()) {
            int n = io.read(dst, position + (dst.position() - start));
            if (n <= 0 || (direct && n % alignment != 0)) {
                return;
            }
        }
    }

    private void writeFully(ByteBuffer src, long position) throws IOException {
        int start = src.position();
        while (src.hasRemaining()) {
            io.write(src, position + (src.position() - start));
        }
    }

    private boolean isAligned(ByteBuffer buffer, long position) {
        return position % alignment == 0 && buffer.remaining() % alignment == 0 && buffer.isDirect()
                && buffer.alignmentOffset(buffer.position(), alignment) == 0;
    }

    /** The first of the {@code lockUnit} blocks that a range from {@code position} touches. */
    private long firstLockBlock(long position) {
        return position / lockUnit;
    }

    /** One past the last of the {@code lockUnit} blocks that a range ending at {@code end} touches. */
    private long endLockBlock(long end) {
        return (end + lockUnit - 1) / lockUnit;
    }

    private long alignDown(long position) {
        return position - position % alignment;
    }

    private long alignUp(long position) {
        return alignDown(position + alignment - 1);
    }

    private void ensureWritable() throws IOException {
        if (resizer == null) {
            throw new IOException("storage is read-only: " + path);
        }
    }

}
