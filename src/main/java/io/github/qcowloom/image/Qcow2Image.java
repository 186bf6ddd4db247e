package io.github.qcowloom.image;

import io.github.qcowloom.alloc.ClusterPool;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.TreeRefcounts;
import io.github.qcowloom.api.BatchCapable;
import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.DiscardPolicy;
import io.github.qcowloom.api.EncryptionKeyException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.ImageOptionsException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.OpenFailures;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.api.ReadOnlyImageException;
import io.github.qcowloom.api.ReferencedFileException;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.compress.ClusterCodec;
import io.github.qcowloom.crypto.EncryptionInfo;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.FileType;
import io.github.qcowloom.storage.LockPermissions;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import io.github.qcowloom.storage.UnsyncedStorage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An open qcow2 image. Requests run as straight-line code on the caller's thread, any number at once: they take
 * the image lock shared; only operations that replace whole tables or change the virtual size (resize, snapshot
 * operations) take it exclusive. So a request checks its range with the lock held, against a size that cannot change
 * before it completes. An encrypted image's requests are made whole sectors first ({@link SectorRequests}). The
 * lock order is stated once, in {@link MetadataWriter}.
 */
public final class Qcow2Image implements BlockDevice, BatchCapable {
    private static final Logger LOG = LoggerFactory.getLogger(Qcow2Image.class);
    /** Longest backing chain we follow; deeper chains are refused rather than risking a loop. */
    public static final int MAX_BACKING_DEPTH = 64;
    /** The feature {@link #chainTooDeep} names. */
    private static final String CHAIN_TOO_DEEP = "backing chain deeper than " + MAX_BACKING_DEPTH;

    /** The refusal of a backing chain deeper than {@link #MAX_BACKING_DEPTH}. */
    public static UnsupportedFeatureException chainTooDeep() {
        return new UnsupportedFeatureException(CHAIN_TOO_DEEP,
                "Backing chain is deeper than " + MAX_BACKING_DEPTH + " images (a loop?)");
    }

    private final Storage file;
    private final Storage dataFile;
    private final BlockDevice backing;
    /** The header as it is on disk now; resize and table edits replace it under the exclusive image lock. */
    private volatile Header header;
    /** The snapshot table as it is on disk now; table edits replace it under the exclusive image lock. */
    private volatile List<Snapshot> snapshots;
    private final ImageGeometry geometry;
    private final ReadPath readPath;
    private final BlockStatusPath statusPath;
    private final HostHoles hostHoles;
    /** Null when the image is open read-only. */
    private final MetadataWriter metadata;
    /** Refcounts of whole trees, for table edits; null when the image is open read-only. */
    private final TreeRefcounts trees;
    private final WritePath writePath;
    private final DiscardPath discardPath;
    private final CopyOnRead copyOnRead;
    private final CompressedWritePath compressedWritePath;
    private final ClusterMapper mapper;
    private final boolean readOnly;
    /** False under a metadata-only open: guest data must not change ({@link OpenOptions#guestWrites}). */
    private final boolean guestWrites;
    /** What the guest's discards and zero writes do (QEMU's discard and detect-zeroes). */
    private final DiscardPolicy discards;
    /** The persistent bitmaps kept up to date by the guest's writes, stored at a clean close. */
    private final KeptBitmaps kept;
    /** Set as close begins: requests, resizes and table edits are refused from then on, and a second close is none. */
    private final AtomicBoolean closing = new AtomicBoolean();
    private final ReentrantReadWriteLock imageLock = new ReentrantReadWriteLock();
    /** The image's encryption (LUKS or AES), or null when it has none. */
    private final ImageEncryption encryption;
    /** With encryption, the requests made whole sectors before the paths see them; null without. */
    private final SectorRequests sectorRequests;
    /** Set once metadata was found corrupt: every later request fails, and close writes no metadata. */
    private volatile String corruption;
    /**
     * Set when a table edit failed part way (an I/O error, say): the tables in memory may then disagree with the
     * disk, so every later request fails and close writes nothing more, leaving the crash-consistent state on disk.
     */
    private volatile String unusable;

    private Qcow2Image(Storage file, Storage dataFile, BlockDevice backing, Header header, List<Snapshot> snapshots,
            long[] l1, OpenOptions options, KeptBitmaps kept, ImageEncryption encryption) throws IOException {
        this.file = file;
        this.encryption = encryption;
        this.kept = kept;
        this.dataFile = dataFile;
        this.backing = backing;
        this.header = header;
        this.snapshots = List.copyOf(snapshots);
        this.geometry = ImageGeometry.of(header);
        this.readOnly = options.readOnly();
        this.guestWrites = options.guestWrites();
        this.discards = options.discards();
        TableCache l2Cache = new TableCache(file, l2SliceSize(header), l2CacheSlices(header, options),
                StorageEvent.L2_LOAD);
        this.mapper = new ClusterMapper(geometry, l2Cache, l1);
        Storage data = header.hasDataFile() ? dataFile : file;
        // Guest data through the cipher, and so the zeroes a preallocation writes into clusters it places; the host's
        // own view (holes, the space a resize prepares) stays on the file itself.
        GuestData guestData = encryption != null && encryption.unlocked()
                ? EncryptedData.over(data, encryption.cipher(), encryption.ivsByGuestOffset()) : GuestData.plain(data);
        this.readPath = new ReadPath(geometry, mapper, file, data, guestData, backing, header.backingFile() != null,
                ClusterCodec.forType(header.compressionType()));
        if (readOnly) {
            this.metadata = null;
            this.trees = null;
            this.writePath = null;
            this.discardPath = null;
            this.copyOnRead = null;
            this.compressedWritePath = null;
            this.hostHoles = new HostHoles(file, data, geometry.clusterBits(), (end, limit) -> new RefcountTable(file,
                    header, new TableCache(file, l2SliceSize(header), 4)).countReferenced(end, limit));
            this.statusPath = new BlockStatusPath(geometry, mapper, backing, header.backingFile() != null, hostHoles,
                    encryption != null);
        } else {
            int slices = (int) Math.max(1, options.tuning().refblockCacheBytes() / l2SliceSize(header));
            TableCache refblockCache = new TableCache(file, l2SliceSize(header), slices);
            RefcountTable refcounts = new RefcountTable(file, header, refblockCache);
            HeaderBits headerBits = new HeaderBits(file, header.version(), header.incompatibleFeatures());
            this.metadata = new MetadataWriter(file, dataFile, mapper, refblockCache, refcounts,
                    header.l1TableOffset(), imageLock.writeLock(), header.backingFile() != null, headerBits,
                    header.lazyRefcounts());
            this.trees = new TreeRefcounts(header, l2Cache, refcounts);
            metadata.snapshotAreas(SnapshotAreas.of(header.snapshotsOffset(), snapshots));
            BitmapDirectory.Location.of(header).ifPresent(at -> metadata.bitmapDirectory(at.offset(), at.size()));
            // v2 has no dirty bit, so pooled clusters could not be marked as possible leaks there; data clusters in
            // an external data file are not allocated at all.
            if (options.tuning().pool() && header.version() >= 3 && !header.hasDataFile()) {
                metadata.startPool(options.tuning().poolLow(), options.tuning().poolHigh(),
                        options.tuning().poolMax(), options.ticker(), this::signalCorruption);
            }
            this.hostHoles = new HostHoles(file, data, geometry.clusterBits(), metadata::countReferenced);
            this.statusPath = new BlockStatusPath(geometry, mapper, backing, header.backingFile() != null, hostHoles,
                    encryption != null);
            this.writePath = new WritePath(geometry, mapper, readPath, statusPath, metadata, data, guestData,
                    encryption == null);
            this.discardPath = new DiscardPath(geometry, mapper, metadata, writePath, statusPath, header.version(),
                    header.hasDataFile() ? dataFile : null, header.dataFileRaw());
            this.copyOnRead = new CopyOnRead(geometry, mapper, readPath, writePath, discardPath);
            this.compressedWritePath = new CompressedWritePath(geometry, metadata, writePath, file,
                    ClusterCodec.forType(header.compressionType()));
        }
        this.sectorRequests = encryption == null ? null
                : new SectorRequests((o, l, w, body) -> shared(o, l, w, body::run), readPath, writePath, discardPath);
    }

    /** Opens the image at {@code path}, its backing chain and data file as the options say. */
    public static Qcow2Image open(Path path, OpenOptions options) throws IOException {
        try {
            return open(path, path.toString(), options, 0, new HashSet<>());
        } catch (IOException e) {
            throw OpenFailures.withContext(e, "Could not open '" + path + "': ");
        }
    }

    /**
     * {@code name}: the image's file as QEMU names it (for its backing file's name in errors); {@code chain}: the
     * identities ({@link ReferencedFileLocks#fileKey}) of the images above, this one's added.
     */
    private static Qcow2Image open(Path path, String name, OpenOptions options, int depth, Set<Object> chain)
            throws IOException {
        Storage storage = FileStorage.open(path, options.readOnly(), options.direct(), options.tuning().storage(),
                depth == 0 ? LockPermissions.forImage(options.locking(), options.readOnly())
                        : LockPermissions.forBacking(options.locking()));
        try {
            chain.add(ReferencedFileLocks.fileKey(path));
            return open(storage, path.toAbsolutePath().getParent(), name, options, depth, chain);
        } catch (IOException | RuntimeException e) {
            storage.close();
            throw e;
        }
    }

    /**
     * Opens an image held in {@code storage}. Referenced files resolve against {@code imageDir} (null: they are
     * not followed). The storage is closed with the image.
     */
    public static Qcow2Image open(Storage storage, Path imageDir, OpenOptions options) throws IOException {
        Set<Object> chain = new HashSet<>();
        if (storage.path() != null) { // a file: its backing chain must not lead back to it
            chain.add(ReferencedFileLocks.fileKey(storage.path()));
        }
        return open(storage, imageDir, storage.path() == null ? null : storage.path().toString(), options, 0, chain);
    }

    /** {@code name}: the image's file as QEMU names it, or null where it has none. */
    private static Qcow2Image open(Storage file, Path imageDir, String name, OpenOptions options, int depth,
            Set<Object> chain) throws IOException {
        Storage storage = options.hostSyncs() ? file : new UnsyncedStorage(file);
        Header header = ImageMetadata.readHeader(storage);
        if (header.corrupt() && !options.readOnly()) {
            throw corruptForWriting();
        }
        // Unlocked before the open writes anything (QEMU unlocks while it reads the extensions).
        ImageEncryption encryption = ImageEncryption.load(storage, header, options);
        Optional<PersistentBitmaps.Directory> bitmaps = options.readOnly() || header.version() < 3 ? Optional.empty()
                : PersistentBitmaps.loadable(storage, header);
        // A metadata-only open changes no guest data: the bitmaps stay consistent, and are not marked in use.
        if (!options.readOnly()) {
            header = clearForeignAutoclearBits(storage, header, bitmaps.isPresent());
        }
        long[] l1 = ImageMetadata.readActiveL1(storage, header);
        List<Snapshot> snapshots = ImageMetadata.readSnapshots(storage, header);
        List<AutoCloseable> opened = new ArrayList<>();
        try {
            Storage dataFile = null;
            if (header.hasDataFile() && options.followReferences() && imageDir != null) {
                dataFile = openDataFile(imageDir, header, options);
                if (!options.hostSyncs()) {
                    dataFile = new UnsyncedStorage(dataFile);
                }
                opened.add(dataFile);
            }
            if (header.hasDataFile() && dataFile == null && !options.readOnly()) {
                throw new UnsupportedFeatureException("external data file not opened",
                        "The image keeps its data in an external data file, which was not opened; open read-only");
            }
            BlockDevice backing = null;
            if (header.backingFile() != null && options.followReferences() && options.backingChain()
                    && imageDir != null) {
                backing = openBacking(imageDir, name, header, options, depth, chain);
                opened.add(backing);
            } else if (header.backingFile() == null && options.followReferences()) {
                refuseOptionsBelow(options);
            }
            if (header.dirty() && !options.readOnly()) {
                // QEMU's repair on open, before anything reads the tables; it may rewrite L1 entries (COPIED).
                header = DirtyRepair.run(storage, header, snapshots, options.tuning().recountMemoryLimit());
                l1 = ImageMetadata.readActiveL1(storage, header);
            }
            KeptBitmaps kept = KeptBitmaps.NONE;
            if (bitmaps.isPresent() && options.guestWrites()) {
                kept = KeptBitmaps.load(storage, header, bitmaps.get()); // their bits, before they are in use
                PersistentBitmaps.markInUse(storage, bitmaps.get()); // after every refusal of the open
            }
            return new Qcow2Image(storage, dataFile, backing, header, snapshots, l1, options, kept, encryption);
        } catch (IOException | RuntimeException e) {
            for (AutoCloseable c : opened) {
                try {
                    c.close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    /** Options for a backing file make QEMU open one, from those options alone where the image names none. */
    private static void refuseOptionsBelow(OpenOptions options) throws ImageOptionsException {
        if (options.encryption().saysAnythingBelow()) {
            throw new ImageOptionsException("Could not open backing file: Must specify either driver or file");
        }
    }

    /**
     * For a command that reads the image file without opening it as a disk ({@code check}, {@code snapshot}, {@code
     * rebase -u}, {@code bitmap} given backing options): refuses what QEMU's open of the image, and of its backing
     * chain where {@code options} say {@link OpenOptions#backingChain}, refuses first, naming the image {@code name}
     * as given: a header even check's open refuses, a passphrase missing or refused, of the image or of one down its
     * chain (as {@code options} give them), a data file that does not open, or a backing file that does not open. An
     * image whose snapshot table alone is refused is left to the command.
     */
    public static void requireOpenable(Path image, String name, OpenOptions options) throws IOException {
        // No lock bytes: the command takes its own, and nothing here is read but headers, key slots and tables.
        OpenOptions chainOptions = options.withReadOnly(true).withDirect(false).withFollowReferences(true)
                .withLocking(ImageLocking.NONE);
        try (Storage file = FileStorage.open(image, true, false, StorageBackend.FILECHANNEL,
                LockPermissions.forImage(ImageLocking.NONE, true))) {
            Header header;
            try {
                header = ImageMetadata.readHeader(file);
            } catch (ImageException e) {
                // What even check's open refuses is refused here, in context; the rest (a snapshot table pointer,
                // a refcount or L1 table past the end: check reports and repairs them, other commands' opens
                // refuse them) is left to the command.
                ImageMetadata.readHeaderForCheck(file);
                return;
            }
            if (header.corrupt() && !options.readOnly()) {
                throw corruptForWriting();
            }
            ImageEncryption.load(file, header, chainOptions); // before the data file, as the open
            if (header.hasDataFile()) {
                openDataFile(image.toAbsolutePath().getParent(), header, chainOptions).close();
            }
            if (!options.backingChain()) {
                return;
            }
            if (header.backingFile() == null) {
                refuseOptionsBelow(chainOptions);
                return;
            }
            Set<Object> above = new HashSet<>();
            above.add(ReferencedFileLocks.fileKey(image));
            try (BlockDevice backing = openBacking(image.toAbsolutePath().getParent(), image.toString(), header,
                    chainOptions, 0, above)) {
                // opened: what its open refuses is refused
            }
        } catch (IOException e) {
            throw OpenFailures.withContext(e, "Could not open '" + name + "': ");
        }
    }

    /**
     * A read-write open clears the autoclear bits of what this driver does not maintain (qcow2.md §1), but for the
     * bitmaps extension when QEMU would load its directory: those bitmaps are marked in use instead
     * ({@link PersistentBitmaps}).
     */
    private static Header clearForeignAutoclearBits(Storage storage, Header header, boolean bitmapsKept)
            throws IOException {
        long keep = header.autoclearFeatures() & (Features.AUTOCLEAR_DATA_FILE_RAW
                | (bitmapsKept ? Features.AUTOCLEAR_BITMAPS : 0));
        if (header.version() < 3 || keep == header.autoclearFeatures()) {
            return header;
        }
        storage.write(HeaderField.AUTOCLEAR_FEATURES.encode(keep), HeaderField.AUTOCLEAR_FEATURES.offset());
        storage.flush();
        return header.withFeatures(header.incompatibleFeatures(), header.compatibleFeatures(), keep);
    }

    private static CorruptImageException corruptForWriting() {
        return new CorruptImageException("qcow2: Image is corrupt; cannot be opened read/write (open it read-only, or"
                + " repair it with check -r all)");
    }

    /** {@code imageName}: the image's file as QEMU names it, or null where it has none. */
    private static BlockDevice openBacking(Path imageDir, String imageName, Header header, OpenOptions options,
            int depth, Set<Object> chain) throws IOException {
        if (depth >= MAX_BACKING_DEPTH) {
            throw chainTooDeep();
        }
        Path path;
        try {
            path = ReferencedFiles.resolve(imageDir, header.backingFile(), "backing file");
        } catch (ReferencedFileException e) {
            throw e.withContext("Could not open backing file: ");
        }
        String name = imageName == null ? path.toString()
                : ReferencedFiles.openedName(imageName, header.backingFile());
        OpenOptions backingOptions = options.withReadOnly(true).withL2CacheBytes(0).forBackingDepth(1);
        try {
            String format = header.backingFormat().orElse(null);
            if (format == null) {
                format = ImageFormat.probe(path);
            }
            // Found before the file is opened: each level of a loop would otherwise hold its own L1 table (up to 32
            // MiB) until the depth limit, 2 GiB from one small sparse file. qemu-img's words for it.
            if (format.equals("qcow2") && Files.exists(path) && chain.contains(ReferencedFileLocks.fileKey(path))) {
                throw new UnsupportedFeatureException("backing chain loop",
                        "Backing file '" + header.backingFile() + "' creates an infinite loop");
            }
            return switch (format) {
                case "qcow2" -> open(path, name, backingOptions, depth + 1, chain);
                case "raw" -> {
                    RawImage.refuseEncryptionOptions(backingOptions.encryption());
                    yield new RawImage(FileStorage.open(path, true, options.direct(), options.tuning().storage(),
                            LockPermissions.forBacking(options.locking())));
                }
                default -> throw new UnsupportedFeatureException("backing format " + format,
                        "Unsupported backing file format '" + format + "'");
            };
        } catch (IOException e) {
            if (e instanceof UnsupportedFeatureException u && u.feature().equals(CHAIN_TOO_DEEP)) {
                throw e; // our own limit, said once rather than behind a context per level
            }
            throw OpenFailures.withContext(unreadable(e, path, name), "Could not open backing file: ");
        }
    }

    /**
     * The image's external data file, opened as the options say; one not there, or not readable, in qemu-img's
     * words, which name it as the image does (QEMU 7.2 opens the name as it stands, from its working directory;
     * this driver beside the image, as it finds a backing file).
     */
    private static Storage openDataFile(Path imageDir, Header header, OpenOptions options) throws IOException {
        String dataFileName = header.dataFile().orElseThrow(() -> new CorruptImageException(
                "The image has the external data file bit but no data file name"));
        Path path = ReferencedFiles.resolve(imageDir, dataFileName, "data file");
        try {
            return FileStorage.open(path, options.readOnly(), options.direct(), options.tuning().storage(),
                    LockPermissions.forDataFile(options.locking(), options.readOnly()));
        } catch (IOException e) {
            throw unreadable(e, path, ProtocolPrefix.fileName(dataFileName));
        }
    }

    /**
     * {@code e} as qemu-img words it where it says that the backing or data file at {@code path} is not there or may
     * not be read ("Could not open 'NAME': No such file or directory"); any other failure as it is.
     */
    private static IOException unreadable(IOException e, Path path, String name) {
        String reason = e instanceof NoSuchFileException ? "No such file or directory"
                : e instanceof AccessDeniedException ? "Permission denied" : null;
        if (reason == null || !path.toString().equals(((FileSystemException) e).getFile())) {
            return e;
        }
        return new ReferencedFileException("Could not open '" + name + "': " + reason, e);
    }

    /** L2 slices of at most 4 KiB: a miss reads 4 KiB, not a whole 2 MiB table. */
    private static int l2SliceSize(Header header) {
        return (int) Math.min(4096, header.clusterSize());
    }

    /** QEMU's default: enough L2 for the whole disk, at most 32 MiB, unless the options say otherwise. */
    private static int l2CacheSlices(Header header, OpenOptions options) {
        long bytes = options.tuning().l2CacheBytes();
        if (bytes == 0) {
            long clusters = (header.size() + header.clusterSize() - 1) >>> header.clusterBits();
            bytes = Math.min(OpenOptions.DEFAULT_MAX_L2_CACHE, clusters * header.l2EntrySize());
            return (int) Math.max(4, Math.min(Integer.MAX_VALUE, bytes / l2SliceSize(header)));
        }
        // A size asked for is honoured down to one slice: the explorer runs with one to force evictions.
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, bytes / l2SliceSize(header)));
    }

    public Header header() {
        return header;
    }

    public List<Snapshot> snapshots() {
        return snapshots;
    }

    /**
     * Runs {@code edit} on the image's tables with the image held exclusively, for the snapshot operations: requests
     * that arrive meanwhile wait and then continue, and no flush or pool refill interleaves. Everything pending is
     * flushed before the edit and everything it changed after it. Corruption met on the way marks the image corrupt,
     * as during requests. Under a metadata-only open ({@link OpenOptions#guestWrites}) the editor refuses a snapshot
     * apply; its other steps are the edit's to use on snapshots' trees and new tables only.
     */
    public <T> T editTables(TableEditor.Edit<T> edit) throws IOException {
        refuseWhenClosing();
        return edit(edit);
    }

    private static final String CLOSING = "the image is being closed";

    /** Refuses a request or a change once close has begun (see {@link #close}). */
    private void refuseWhenClosing() throws ImageException {
        if (closing.get()) {
            throw new ImageException(CLOSING);
        }
    }

    /** {@link #editTables}, for close too. */
    private <T> T edit(TableEditor.Edit<T> edit) throws IOException {
        checkWritable();
        requireUsable();
        TableEditor editor = new TableEditor(this, metadata, mapper, trees, file);
        try {
            return metadata.exclusively(() -> edit.apply(editor));
        } catch (MetadataCorruptionException e) {
            signalCorruption(e);
            throw e;
        } catch (IOException | RuntimeException e) {
            if (editor.changedAnything() && unusable == null) {
                unusable = e.toString();
                LOG.error("A table edit failed part way; the image must be reopened: {}", e.toString());
            }
            throw e;
        } finally {
            editor.close();
        }
    }

    /**
     * The persistent dirty bitmaps QEMU would list, from the bitmap directory (in use while a read-write open of ours
     * keeps them, see {@link KeptBitmaps}); a directory QEMU could not load is refused in its words.
     */
    public List<BitmapDirectory.Entry> persistentBitmaps() throws IOException {
        return PersistentBitmaps.list(file, header);
    }

    /**
     * The bits of bitmap {@code name} as QEMU exports them (NBD's qemu:dirty-bitmap context): live, as this open's
     * requests set them, where it keeps the bitmap; else as stored.
     *
     * @throws ImageException in QEMU's words, for a bitmap not found or in use
     */
    public DirtyBits dirtyBits(String name) throws IOException {
        DirtyBits live = kept.live(name);
        if (live != null) {
            return live;
        }
        BitmapDirectory.Entry e = persistentBitmaps().stream().filter(b -> b.name().equals(name)).findFirst()
                .orElseThrow(() -> new ImageException("Bitmap '" + name + "' is not found"));
        if (e.inUse()) {
            throw new ImageException("Bitmap '" + name + "' is inconsistent and cannot be used");
        }
        return bitmapBits(e);
    }

    /** Where the bitmap directory is, if QEMU would read one. */
    public Optional<BitmapDirectory.Location> bitmapDirectory() {
        return BitmapDirectory.Location.of(header);
    }

    /**
     * The bits of {@code bitmap}, one of {@link #persistentBitmaps}, over the disk as it is now; its table is read
     * and checked here, its clusters as they are searched.
     */
    public BitmapBits bitmapBits(BitmapDirectory.Entry bitmap) throws IOException {
        return BitmapBits.load(file, bitmap, header.diskSize(), header.clusterBits());
    }

    /**
     * The entries of {@code bitmap}'s table as stored, unchecked (a step that frees the table frees what its valid
     * entries point to, and leaves the rest).
     */
    public long[] bitmapTable(BitmapDirectory.Entry bitmap) throws IOException {
        return BitmapBits.readTable(file, bitmap);
    }

    /** The bits of a bitmap whose {@code table} (checked entries) was written to this image's file. */
    public BitmapBits bitmapBits(int granularityBits, long[] table) {
        return new BitmapBits(file, table.clone(), granularityBits, header.diskSize(), header.clusterBits());
    }

    /**
     * QEMU's qcow2_snapshot_load_tmp (qemu-img convert -l, measure -l, qemu-nbd -l): from now on the reads and block
     * status of this read-only image see {@code snapshot}'s tree in place of the active one. The virtual size stays
     * the active image's, as in QEMU: past the snapshot's L1 table a read finds no cluster, so the backing file or
     * zeroes. The L2 cache, keyed by host offset, holds only what the file holds (nothing is written read-only), so
     * it stays.
     */
    public void viewSnapshot(Snapshot snapshot) throws IOException {
        if (!readOnly) {
            // QEMU asserts it: the active image's writes would land in the snapshot's tree.
            throw new IllegalStateException("only an image open read-only can view a snapshot");
        }
        mapper.replaceL1(readL1(snapshot));
    }

    /** Reads a snapshot's L1 table, validated as QEMU validates it ({@link ImageMetadata#readSnapshotL1}). */
    long[] readL1(Snapshot snapshot) throws IOException {
        return ImageMetadata.readSnapshotL1(file, header, snapshot);
    }

    /** A table edit changed the header on disk; called under the exclusive image lock. */
    void replaceHeader(Header changed) {
        header = changed;
    }

    /** A table edit pointed the header at a new snapshot table; called under the exclusive image lock. */
    void replaceSnapshots(List<Snapshot> changed, long tableOffset) {
        snapshots = List.copyOf(changed);
        header = header.withSnapshots(changed.size(), tableOffset);
        metadata.snapshotAreas(SnapshotAreas.of(tableOffset, changed));
    }

    /** The pool of preallocated clusters, or null when it is off or the image is read-only or v2. */
    ClusterPool clusterPool() {
        return metadata == null ? null : metadata.pool();
    }

    /** The metadata writer, or null when the image is open read-only. */
    MetadataWriter metadataWriter() {
        return metadata;
    }

    /** The opened backing image, or null. */
    public BlockDevice backing() {
        return backing;
    }

    /** The virtual size in whole sectors, as QEMU sees it (a header size of 1000 is a 512-byte disk). */
    @Override
    public long size() {
        return header.diskSize();
    }

    /** True if the guest's data cannot change: open read-only, or for metadata edits alone. */
    @Override
    public boolean readOnly() {
        return readOnly || !guestWrites;
    }

    private void checkRange(long offset, long length) throws OutOfRangeException {
        long size = size();
        if (offset < 0 || length < 0 || offset > size - length) {
            throw new OutOfRangeException("request of " + length + " bytes at offset " + offset
                    + " reaches beyond the virtual size of " + size + " bytes");
        }
    }

    private void checkWritable() throws ReadOnlyImageException {
        if (readOnly) {
            throw new ReadOnlyImageException("the image is open read-only");
        }
    }

    /** False under a metadata-only open ({@link OpenOptions#guestWrites}): the guest's data cannot change. */
    public boolean acceptsGuestWrites() {
        return guestWrites;
    }

    /** Refuses a change of what the guest reads under a metadata-only open ({@link OpenOptions#guestWrites}). */
    void checkGuestWritable() throws ReadOnlyImageException {
        checkWritable();
        if (!guestWrites) {
            throw new ReadOnlyImageException("the image is open for edits of its metadata alone: its guest data"
                    + " cannot change");
        }
    }

    /** A request body, run under the image lock held shared. */
    @FunctionalInterface
    private interface Request {
        void run() throws IOException;
    }

    /**
     * Runs the request with the image lock shared, after checking writability and, under the lock, the range: the
     * size cannot change while the lock is held (resize and snapshot apply change it holding the lock exclusively),
     * so a request that waited for the lock while the disk shrank is checked against the new size and never reaches
     * past the end. Corrupt metadata met on the way marks a writable image corrupt, as QEMU's
     * qcow2_signal_corruption does, and fails every later request.
     */
    private void shared(long offset, long length, boolean writes, Request request) throws IOException {
        shared(offset, length, writes, writes, request);
    }

    /** {@link #shared}, the range set in the kept bitmaps unless {@code marks} is false. */
    private void shared(long offset, long length, boolean writes, boolean marks, Request request)
            throws IOException {
        if (writes) {
            checkGuestWritable();
        }
        requireUsable();
        imageLock.readLock().lock();
        try {
            checkRange(offset, length);
            refuseWhenClosing(); // under the lock: close drains those holding it, then closes the files
            if (marks) {
                kept.mark(offset, length);
            }
            request.run();
        } catch (MetadataCorruptionException e) {
            signalCorruption(e);
            throw e;
        } finally {
            imageLock.readLock().unlock();
        }
    }

    /** Fails once the image was marked corrupt, or a table edit failed part way. */
    private void requireUsable() throws IOException {
        String known = corruption;
        if (known != null) {
            throw new MetadataCorruptionException("The image was marked corrupt: " + known);
        }
        String failed = unusable;
        if (failed != null) {
            throw new ImageException("The image must be reopened: a snapshot operation failed part way (" + failed
                    + ")");
        }
    }

    private void signalCorruption(MetadataCorruptionException e) throws IOException {
        if (metadata != null && corruption == null) {
            corruption = e.getMessage();
            LOG.error("Marking image as corrupt: {}; further corruption events will be suppressed", e.getMessage());
            metadata.markCorrupt();
        }
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        if (encryption != null) {
            requireUnlocked();
            sectorRequests.read(offset, dst);
            return;
        }
        shared(offset, dst.remaining(), false, () -> readPath.read(offset, dst));
    }

    private void requireUnlocked() throws EncryptionKeyException {
        if (!encryption.unlocked()) {
            throw new EncryptionKeyException(ImageEncryption.KEY_REQUIRED);
        }
    }

    /** An encrypted image's write checks, before its wait in the sectors in flight (no lock is held there). */
    private void requireUnlockedForWrites() throws IOException {
        checkGuestWritable();
        requireUnlocked();
    }

    /** Reads only metadata, under the image lock held shared like a read; see {@link BlockStatusPath}. */
    @Override
    public BlockStatus blockStatus(long offset, long length) throws IOException {
        if (length <= 0) {
            throw new OutOfRangeException("block status of an empty range at offset " + offset);
        }
        BlockStatus[] answer = new BlockStatus[1];
        shared(offset, length, false, () -> answer[0] = statusPath.status(offset, length));
        return hostShown(answer[0]);
    }

    /**
     * No host offset of an encrypted image is given out (QEMU's qcow2_co_block_status sets none with a cipher), so no
     * caller reads or copies its ciphertext as guest data; the paths inside see them.
     */
    private BlockStatus hostShown(BlockStatus status) {
        // A backing file's answer (depth above 0) is its own to give: an encrypted one hid its offsets already.
        return encryption == null || status.host() == null || status.depth() > 0 ? status
                : new BlockStatus(status.length(), status.depth(), status.allocation(), null);
    }

    /**
     * What this image itself holds from {@code offset}, its backing chain not asked (QEMU's bdrv_is_allocated):
     * {@link BlockStatus#present()} is false where reads would go to the backing file, or read zeroes without one.
     */
    public BlockStatus ownStatus(long offset, long length) throws IOException {
        if (length <= 0) {
            throw new OutOfRangeException("block status of an empty range at offset " + offset);
        }
        BlockStatus[] answer = new BlockStatus[1];
        shared(offset, length, false, () -> answer[0] = statusPath.ownStatus(offset, length));
        return hostShown(answer[0]);
    }

    /** The image file's path, or null where its storage is no host file. */
    @Override
    public Path path() {
        return file.path();
    }

    /** The external data file's path, or null where the image has none opened or its storage is no host file. */
    public Path dataFilePath() {
        return dataFile == null ? null : dataFile.path();
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        if (ZeroData.writtenAsZeroes(discards, this, offset, src)) {
            return;
        }
        if (encryption != null) {
            requireUnlockedForWrites();
            sectorRequests.write(offset, src);
            return;
        }
        shared(offset, src.remaining(), true, () -> writePath.write(offset, src));
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        if (!discards.unmap()) {
            // discard=ignore: checked, then dropped, as QEMU's bdrv_co_pdiscard drops it (no bitmap marked)
            shared(offset, length, true, false, () -> { });
            return;
        }
        if (encryption != null) {
            requireUnlockedForWrites();
            sectorRequests.discard(offset, length, this::size);
            return;
        }
        shared(offset, length, true, () -> discardPath.discard(offset, length, size()));
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        boolean unmaps = discards.mayUnmap(mayUnmap);
        if (encryption != null) {
            requireUnlockedForWrites();
            sectorRequests.writeZeroes(offset, length, unmaps, false, this::size);
            return;
        }
        shared(offset, length, true, () -> discardPath.writeZeroes(offset, length, unmaps, size()));
    }

    /**
     * {@link #writeZeroes} without writing zero bytes, as QEMU's qcow2 zeroes with BDRV_REQ_NO_FALLBACK: false where
     * a piece of the range would need them (a partial cluster that holds data, or whose rest does not read as
     * zeroes), the pieces before it zeroed; always false for version 2, as in QEMU, and for an image whose raw data
     * file would be zeroed too; for an encrypted image, a range not on whole 512-byte sectors, as QEMU refuses a
     * fast zero write that it would pad to its request alignment.
     */
    @Override
    public boolean writeZeroesFast(long offset, long length, boolean mayUnmap) throws IOException {
        boolean unmaps = discards.mayUnmap(mayUnmap);
        if (encryption != null) {
            requireUnlockedForWrites();
            if (!SectorRequests.onWholeSectors(offset, length)) {
                checkRange(offset, length); // refused before it is tracked, as QEMU's: no bitmap marks it
                return false;
            }
            return sectorRequests.writeZeroes(offset, length, unmaps, true, this::size);
        }
        boolean[] zeroed = new boolean[1];
        shared(offset, length, true, () -> zeroed[0] = discardPath.writeZeroes(offset, length, unmaps, true, size()));
        return zeroed[0];
    }

    /**
     * QEMU's copy-on-read prefetch, as qemu-nbd serves NBD_CMD_CACHE: the clusters of the range this image does not
     * hold get what the guest reads there, from the backing chain or as zeroes ({@link CopyOnRead}). No bitmap marks
     * them: the guest's data did not change (QEMU's copy-on-read writes bypass its dirty bitmaps too). Nothing is
     * copied in a read-only or encrypted image.
     */
    @Override
    public void prefetch(long offset, long length) throws IOException {
        if (readOnly() || encryption != null) {
            checkRange(offset, length);
            return;
        }
        shared(offset, length, true, false, () -> copyOnRead.prefetch(offset, length, size()));
    }

    /**
     * Drops every cluster this image holds, so that all of it reads from the backing file again, or as zeroes
     * without one (QEMU's bdrv_make_empty, after a commit): the entries become unallocated, the clusters are freed
     * as a discard frees them. Tables are not allocated where there are none. For an image no request is using
     * (qemu-img commit's top, once committed): the interleaving explorer does not run it beside requests.
     */
    public void makeEmpty() throws IOException {
        long size = size();
        if (size > 0) {
            // The guest reads the same through the backing file, which the commit filled first: no bit is set, as
            // QEMU's bdrv_make_empty sets none.
            shared(0, size, true, false, () -> discardPath.dropAll(size));
        }
    }

    /**
     * QEMU's compressed write (qemu-io's write -c): {@code src} covers whole clusters from a cluster-aligned
     * {@code offset} (it may end at the disk's end inside a cluster, which is padded with zeroes); each cluster is
     * stored compressed, or as a normal cluster when compression does not shrink it. A cluster that already has a
     * host offset cannot take compressed data ({@link io.github.qcowloom.api.ImageException}, QEMU's EIO); an
     * unaligned request is an {@link OutOfRangeException} (QEMU's EINVAL); an image with an external data file takes
     * none ({@link UnsupportedFeatureException}, QEMU's ENOTSUP). An empty {@code src} pads the file to whole
     * sectors, as QEMU's zero-length compressed write does: see {@link #padFileToSector()}.
     */
    public void writeCompressed(long offset, ByteBuffer src) throws IOException {
        refuseCompressedWhenEncrypted();
        if (!src.hasRemaining()) {
            padFileToSector();
            return;
        }
        shared(offset, src.remaining(), true, () -> compressedWritePath.write(offset, src, size()));
    }

    /**
     * Compresses one cluster for {@link #writeCompressed(CompressedCluster)}, checking the same alignment rules;
     * no I/O and no lock, so many threads can compress while the writes happen in an order the caller chooses.
     */
    public CompressedCluster compressCluster(long offset, ByteBuffer src) throws IOException {
        refuseCompressedWhenEncrypted();
        checkRange(offset, src.remaining());
        checkWritable();
        return compressedWritePath.compress(offset, src, size());
    }

    /** Writes a cluster {@link #compressCluster compressed} for this image, as {@link #writeCompressed} does. */
    public void writeCompressed(CompressedCluster cluster) throws IOException {
        refuseCompressedWhenEncrypted();
        ByteBuffer data = cluster.data();
        shared(cluster.guestOffset(), data.remaining(), true, () -> compressedWritePath.write(cluster));
    }

    /**
     * QEMU stores compressed clusters of an encrypted image unencrypted (qcow2_co_pwritev_compressed does not
     * encrypt; its reads, and ours, do not decrypt them): guest data written that way would lie in the file in the
     * clear, so this driver writes none.
     */
    private void refuseCompressedWhenEncrypted() throws UnsupportedFeatureException {
        if (encryption != null) {
            throw new UnsupportedFeatureException("compressed writes into an encrypted image",
                    "Compressed writes into an encrypted image are not supported: QEMU would store them unencrypted");
        }
    }

    /** What {@code qemu-img info} shows of the image's encryption, if it has one. */
    public Optional<EncryptionInfo> encryption() {
        return Optional.ofNullable(encryption).map(ImageEncryption::info);
    }

    /**
     * Rounds the image file's length up to whole 512-byte sectors, as qemu-img convert -c does after its last
     * compressed write, so that sector-based readers find the last compressed cluster's last sector in the file.
     */
    public void padFileToSector() throws IOException {
        checkWritable();
        imageLock.writeLock().lock();
        try {
            compressedWritePath.padFileToSector();
        } finally {
            imageLock.writeLock().unlock();
        }
    }

    /** Counts the clusters of the range that a write would allocate (not owned alone: not NORMAL with COPIED). */
    @Override
    public int clustersToAllocate(long offset, long length) throws IOException {
        checkRange(offset, length);
        int n = 0;
        long cs = geometry.clusterSize();
        for (long c = offset / cs; c * cs < offset + length; c++) {
            if (!(mapper.lookup(new GuestCluster(c)) instanceof L2Mapping.Data data && data.copied())) {
                n++;
            }
        }
        return n;
    }

    /**
     * Reserves clusters for a batch; not on v2 images, which have no dirty bit to cover them on a crash, nor with
     * an external data file, where data clusters are not allocated.
     */
    @Override
    public void reserve(int clusters) throws IOException {
        checkGuestWritable(); // only writes reserve
        if (header.version() >= 3 && !header.hasDataFile()) {
            metadata.reserve(clusters);
        }
    }

    @Override
    public void flush() throws IOException {
        refuseWhenClosing(); // close flushes everything itself
        if (metadata != null) {
            try {
                metadata.flush();
            } catch (MetadataCorruptionException e) {
                signalCorruption(e); // a table's write-back refused by the overlap check
                throw e;
            } catch (IOException e) {
                if (closing.get()) { // begun before close, which flushed everything and closed the files meanwhile
                    throw new ImageException(CLOSING, e);
                }
                throw e;
            }
        }
    }

    /**
     * Grows (growing L1 in QEMU's order when needed) or shrinks the virtual size. Shrinking is refused while the
     * range cut off holds data. Newly exposed bytes read as zeroes, never as stale data or the backing file's, even
     * after a crash: they are zeroed, durably, before the new size is written. The whole resize holds the image
     * exclusively ({@link MetadataWriter#exclusively}), so no request sees the new size before the zeroes, none
     * writes into the new range before they are written (they would overwrite its data), and none checked against
     * the old size runs after a shrink.
     */
    @Override
    public void resize(long newSize) throws IOException {
        resize(newSize, Preallocation.OFF);
    }

    /**
     * QEMU's qcow2_co_truncate with a preallocation mode: as {@link #resize(long)}, and for a growth every cluster
     * the new space touches that has no host cluster placed and linked before the new size is written, as QEMU's
     * preallocate_co places it ({@link WritePath#preallocate}), its host space left sparse, reserved or zeroed. All
     * of it holds the image exclusively, so a request sees the old size or the new one with every cluster placed
     * (a large {@code FULL} growth holds the guest's requests for as long as its zeroes take, as QEMU's truncate
     * holds its image lock), and a failure leaves the old size (with the clusters of the run that failed allocated:
     * leaks that {@code check -r leaks} frees). A mode other than {@code OFF} is refused, in QEMU's words, where the
     * disk does not grow. The guest reads the same zeroes as before, so no bitmap bit is set.
     */
    @Override
    public void resize(long newSize, Preallocation mode) throws IOException {
        checkGuestWritable();
        if (newSize < 0) {
            throw new OutOfRangeException("Image size cannot be negative"); // QEMU's bdrv_co_truncate
        }
        Limits.requireDiskLength(newSize);
        if (newSize % 512 != 0) {
            throw new OutOfRangeException("The new size must be a multiple of 512"); // qcow2_co_truncate
        }
        // Its flushes would write caches that may disagree with the disk once the image is corrupt or unusable.
        requireUsable();
        refuseWhenClosing();
        try {
            metadata.exclusively(() -> {
                resizeExclusively(newSize, mode);
                return null;
            });
        } catch (MetadataCorruptionException e) {
            signalCorruption(e);
            throw e;
        }
    }

    /** Whether the external data file is a regular file, which a resize may truncate (a device keeps its size). */
    private boolean regularDataFile() {
        Path path = dataFilePath();
        return path != null && FileType.of(path).orElse(null) == FileType.REGULAR;
    }

    /** The resize, with the image held exclusively (flush lock, image lock, metadata lock). */
    private void resizeExclusively(long newSize, Preallocation mode) throws IOException {
        long oldSize = size();
        mode.requireGrowth(oldSize, newSize);
        long dataFileEnd = header.hasDataFile() ? dataFile.size() : 0; // before a raw data file grows
        String bitmapRefusal = kept.resizeRefusal(); // QEMU refuses a resize to the same size as well
        if (bitmapRefusal != null) {
            throw new ImageException(bitmapRefusal);
        }
        if (header.version() < 3 && !snapshots.isEmpty() && newSize != oldSize) {
            // QEMU's qcow2_co_truncate: v2 snapshot entries may lack the disk size they were taken at.
            throw new UnsupportedFeatureException("resizing v2 images with snapshots",
                    "Can't resize a v2 image which has snapshots");
        }
        if (newSize < oldSize) {
            requireUnallocated(newSize, oldSize);
        }
        long neededL1 = Limits.sizeToL1(newSize, geometry.clusterBits(), geometry.l2Bits());
        if (neededL1 < 0 || neededL1 > Limits.MAX_L1_BYTES / 8) { // qcow2_grow_l1_table's EFBIG, as QEMU words it
            throw new ImageTooLargeException("Failed to grow the L1 table: File too large");
        }
        if (neededL1 > header.l1Size()) {
            int entries = metadata.growL1(neededL1, false);
            header = header.withL1(entries, metadata.l1Offset());
        }
        if (header.dataFileRaw() && dataFile.size() < newSize) {
            // A raw data file is the disk itself: it grows first, as QEMU truncates the data file first.
            dataFile.setLength(newSize);
        } else if (header.hasDataFile() && !header.dataFileRaw() && mode == Preallocation.OFF && regularDataFile()
                && dataFile.size() != newSize) {
            // QEMU's qcow2_co_truncate truncates an external data file to the new size (file-posix resizes a
            // regular file, not a device); before, it kept its old length. A raw one only grows, as there: what lies
            // past the new size in a longer one is the disk's, not the image's.
            dataFile.setLength(newSize);
        }
        if (newSize > oldSize && header.version() >= 3 && backing != null && backing.size() > oldSize) {
            // QEMU's bdrv_co_truncate: the backing file would show through the new range, so all of it is zeroed
            // (qcow2_co_truncate with BDRV_REQ_ZERO_WRITE): zero flags from the first subcluster boundary on, zero
            // bytes written before it. The old last cluster is zeroed apart, so that the whole clusters after it,
            // which hold nothing yet, always take zero flags: never more than one cluster of zero bytes is written.
            // (Version 2 has no zero flags; QEMU refuses there, and the branch below zeroes what the backing file
            // would show.) Durable before the size, as below.
            long zeroStart = Math.min(newSize, Bytes.alignUp(oldSize, geometry.subclusterSize()));
            long wholeStart = Math.max(zeroStart, Math.min(newSize, Bytes.alignUp(oldSize, geometry.clusterSize())));
            if (wholeStart > zeroStart) {
                discardPath.writeZeroes(zeroStart, wholeStart - zeroStart, false, newSize);
            }
            if (newSize > wholeStart) {
                zeroWholeClusters(wholeStart, newSize);
            }
            if (zeroStart > oldSize) {
                discardPath.writeZeroBytes(oldSize, zeroStart - oldSize);
            }
            metadata.flushEverything();
        } else if (newSize > oldSize) {
            long end = Math.max(exposedEnd(oldSize, newSize), Math.min(newSize,
                    Bytes.alignUp(oldSize, geometry.clusterSize())));
            // Nothing changes where the range already reads as zeroes (qemu-img resize changes no entry at all).
            // The range lies past the size in the header: no request can reach it until the size is written.
            if (end > oldSize && !statusPath.readsAsZero(oldSize, end)) {
                discardPath.writeZeroes(oldSize, end - oldSize, true, newSize);
                // The zeroes (zero flags, or zero bytes written into the old last cluster) must be durable before
                // the size that exposes the range: a crash in between must not find the new size with the old
                // last cluster's stale tail or the backing file's data there (QEMU's qcow2_co_truncate also zeroes
                // before it writes the size; here the zeroes are flushed first, for invariant g).
                metadata.flushEverything();
            }
        }
        // A raw data file is read where the L2 entries say: the new clusters are linked to it, as QEMU links them
        // (metadata preallocation, as its create makes such an image); before, the new range stayed unallocated,
        // and what the data file held there read as zeroes.
        Preallocation growth = header.dataFileRaw() && mode == Preallocation.OFF && newSize > oldSize
                ? Preallocation.METADATA : mode;
        if (growth != Preallocation.OFF) {
            preallocateGrowth(oldSize, newSize, growth, dataFileEnd);
        }
        metadata.writeHeaderField(HeaderField.SIZE, newSize);
        header = header.withSize(newSize);
        kept.resize(header.diskSize(), geometry.clusterBits());
    }

    /**
     * Zero flags over {@code [from, newSize)}, an L2 table's range at a time, with the tables written back on the way
     * ({@link MetadataWriter#writeBackWhenCacheFull}: a growth of 50G over a longer backing file took 11 s without).
     */
    private void zeroWholeClusters(long from, long newSize) throws IOException {
        long span = geometry.clusterSize() << geometry.l2Bits();
        for (long at = from; at < newSize; ) {
            long next = Math.min(newSize, (at / span + 1) * span);
            discardPath.writeZeroes(at, next - at, false, newSize);
            metadata.writeBackWhenCacheFull();
            at = next;
        }
    }

    /**
     * The growth's clusters placed ({@link WritePath#preallocate}). For falloc and full their host space is taken
     * first, in one piece past the end of the image file (or of the data file), as QEMU's truncate takes it before
     * it places anything: where the host has no room the resize fails there, the file cut back, the image as it was.
     * In the image file the piece also holds the tables the growth may need (an upper bound), so that the clusters,
     * allocated from the end of the file, all land in it.
     */
    private void preallocateGrowth(long oldSize, long newSize, Preallocation mode, long dataFileEnd)
            throws IOException {
        boolean hasDataFile = header.hasDataFile();
        Storage target = hasDataFile ? dataFile : file;
        long cs = geometry.clusterSize();
        long fileEnd = file.size();
        // In the image file from the next whole cluster, as QEMU rounds the file's end up.
        long from = hasDataFile ? dataFileEnd : Bytes.alignUp(fileEnd, cs);
        long to = from;
        if (mode == Preallocation.FALLOC || mode == Preallocation.FULL) {
            long clusters = (Bytes.alignUp(newSize, cs) - (oldSize & -cs)) / cs;
            to = hasDataFile ? Math.max(from, Bytes.alignUp(newSize, cs))
                    : from + (clusters + tablesFor(clusters, from)) * cs;
            try {
                HostSpace.prepare(target, mode, from, to - from, true);
            } catch (IOException e) {
                try {
                    target.setLength(hasDataFile ? dataFileEnd : fileEnd);
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
        }
        try {
            writePath.preallocate(oldSize, newSize - oldSize, mode, from, to);
        } finally {
            if (!hasDataFile && to > from && file.size() <= to) {
                // What no cluster took of the piece is given back, after a failure too (the tables' share of it is
                // an upper bound).
                file.setLength(Math.max(fileEnd, metadata.referencedEnd(from, to)));
            }
        }
    }

    /**
     * At most how many clusters of tables {@code clusters} new data clusters need past {@code fileEnd}: L2 tables,
     * refblocks, and where the refcount table must grow, the new table (at least twice the old one), its own
     * refblocks and the rest of the refblock range its area starts at.
     */
    private long tablesFor(long clusters, long fileEnd) {
        long cs = geometry.clusterSize();
        long perRefblock = cs * 8 / header.refcountBits();
        long l2Tables = (clusters >>> geometry.l2Bits()) + 2;
        long refblocks = (clusters + l2Tables) / perRefblock + 2;
        long tables = l2Tables + refblocks;
        long lastCluster = fileEnd / cs + clusters + 2 * tables;
        long covered = (long) header.refcountTableClusters() * (cs / 8) * perRefblock;
        if (lastCluster >= covered) {
            long newTable = 2L * header.refcountTableClusters() + (lastCluster / perRefblock) * 8 / cs + 2;
            tables += newTable + newTable / perRefblock + 2 + perRefblock;
        }
        return tables;
    }

    /**
     * How far a grown disk must be zeroed past its old end outside the branch above: nowhere where the backing file
     * does not reach past it; up to the backing file's end for version 2; all of it where the backing file is named
     * but not open (QEMU leaves that case to the user; zeroing is the safe side).
     */
    private long exposedEnd(long oldSize, long newSize) throws IOException {
        if (header.backingFile() == null) {
            return oldSize;
        }
        return backing == null ? newSize : Math.min(newSize, Math.max(oldSize, backing.size()));
    }

    /** Refuses to cut off clusters that hold anything: the user must discard them first. */
    private void requireUnallocated(long newSize, long oldSize) throws IOException {
        long cs = geometry.clusterSize();
        for (long c = Bytes.alignUp(newSize, cs) / cs; c * cs < oldSize; c++) {
            GuestCluster cluster = new GuestCluster(c);
            L2Mapping m = mapper.lookup(cluster);
            if (m instanceof L2Mapping.Invalid) {
                throw L2Mapping.found(m, geometry.l2Index(cluster));
            }
            boolean holdsNothing = m instanceof L2Mapping.Unallocated
                    || m instanceof L2Mapping.Zero zero && zero.preallocated() == null;
            if (!holdsNothing) {
                throw new ImageException("Cannot shrink below " + newSize
                        + " bytes: the range beyond holds data (guest offset " + c * cs + "); discard it first");
            }
        }
    }

    /**
     * Refuses a snapshot apply that a disabled persistent bitmap would miss, in QEMU's words: an apply sets every bit
     * of the enabled ones, and a disabled one is a record kept still. Snapshots.apply asks first; a caller may ask
     * before it looks the snapshot up, as QEMU's goto does.
     */
    public void refuseApplyUnderDisabledBitmaps() throws ImageException {
        String refusal = kept.applyRefusal();
        if (refusal != null) {
            throw new ImageException(refusal);
        }
    }

    /** A snapshot apply replaced the guest's data, and maybe its size: every kept bitmap is dirty all over. */
    void guestDataReplaced() {
        kept.resize(header.diskSize(), geometry.clusterBits());
        kept.markAll();
    }

    private static final String BITMAPS_NOT_STORED = "the persistent bitmaps could not be stored; they stay in use";

    @Override
    public void close() throws IOException {
        // From here on requests, resizes and table edits are refused: no write may land after the bitmaps are stored.
        if (closing.getAndSet(true)) {
            return; // closed, or being closed, already (Closeable: no effect)
        }
        IOException failure = null;
        if (metadata != null && !kept.isEmpty() && corruption == null && unusable == null) {
            try {
                edit(tables -> {
                    kept.store(tables);
                    return null;
                });
            } catch (ImageException e) {
                // The bitmaps stay in use: inconsistent for QEMU, as after a crash. The files close all the same.
                // What the image refused (a corrupt refcount, say) keeps its type, so a caller can tell it apart.
                failure = OpenFailures.withContext(e, BITMAPS_NOT_STORED + ": ");
            } catch (IOException | RuntimeException e) {
                failure = new IOException(BITMAPS_NOT_STORED, e);
            }
        }
        if (metadata != null) {
            try {
                if (corruption == null && unusable == null) {
                    try {
                        metadata.close();
                    } catch (MetadataCorruptionException e) {
                        signalCorruption(e);
                        metadata.abandon();
                        throw e;
                    }
                } else {
                    metadata.abandon();
                }
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        // The requests in flight finish first (the metadata's close drained them already where there is one);
        // later ones find the image closing and are refused, rather than meeting closed files.
        imageLock.writeLock().lock();
        imageLock.writeLock().unlock();
        for (AutoCloseable c : new AutoCloseable[] {hostHoles, backing, dataFile, file}) {
            if (c == null) {
                continue;
            }
            try {
                c.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = e instanceof IOException io ? io : new IOException(e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }
}
