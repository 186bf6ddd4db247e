package io.github.qcowloom.api;

/**
 * How to open an image.
 *
 * @param readOnly open the file read-only; a corrupt image can only be opened so
 * @param direct use O_DIRECT for the image file (and its data file)
 * @param followReferences open the backing file and external data file the image names; when false, reads
 *     that need them fail, which is what metadata-only inspection (info) wants (CVE-2024-4467)
 * @param tuning cache sizes and the cluster pool
 * @param ticker the time the image's background work (the cluster pool) runs by: real time, or the interleaving
 *     explorer's virtual clock
 * @param locking which of QEMU's lock bytes the open takes ({@link ImageLocking}); force-share needs read-only
 * @param hostSyncs whether a flush asks the host to sync the files (fdatasync); false is QEMU's
 *     {@code cache.no-flush} (what {@code cache=unsafe} means): flushes still write, in order, what the image holds
 *     in memory, so a closed image is whole, but a host crash may lose what the page cache had not written
 * @param guestWrites false to open a qcow2 image read-write for edits of its metadata alone (internal snapshots
 *     created or deleted): every request that would change what the guest reads is refused, and the image says
 *     it is {@link BlockDevice#readOnly}
 *     ({@link ReadOnlyImageException}), so that the image's persistent dirty bitmaps stay as they are (not marked
 *     in use, not stored again) and may be edited
 * @param encryption what the open is told of the encryption of the image and of each image down its backing
 *     chain: passphrases (QEMU's {@code encrypt.key-secret}, {@code backing.encrypt.key-secret}, ...) and formats;
 *     an encrypted image opened without its passphrase can only be inspected (read-only, {@code followReferences}
 *     false); null is {@link ChainEncryption#NONE}
 * @param backingChain with {@code followReferences}, whether the backing file is opened too; false opens the
 *     external data file alone (QEMU's BDRV_O_NO_BACKING, as qemu-img's bitmap opens an image), and reads that need
 *     the backing file fail
 * @param discards what the image does with the guest's discards and zero writes (QEMU's {@code discard} and
 *     {@code detect-zeroes}); null is {@link DiscardPolicy#UNMAP}
 */
public record OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning,
        Ticker ticker, ImageLocking locking, boolean hostSyncs, boolean guestWrites, ChainEncryption encryption,
        boolean backingChain, DiscardPolicy discards) {
    public static final long DEFAULT_MAX_L2_CACHE = 32L << 20;

    public OpenOptions {
        java.util.Objects.requireNonNull(tuning, "tuning");
        java.util.Objects.requireNonNull(ticker, "ticker");
        java.util.Objects.requireNonNull(locking, "locking");
        encryption = encryption == null ? ChainEncryption.NONE : encryption;
        discards = discards == null ? DiscardPolicy.UNMAP : discards;
        if (locking == ImageLocking.FORCE_SHARE && !readOnly) {
            // qemu-img: "force-share=on can only be used with read-only images"
            throw new IllegalArgumentException("force-share can only be used with read-only images");
        }
        if (locking == ImageLocking.STILL_SOURCE && !readOnly) {
            throw new IllegalArgumentException("a source held still must be opened read-only");
        }
    }

    /** Options whose image passes discards on, without zero detection. */
    public OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning,
            Ticker ticker, ImageLocking locking, boolean hostSyncs, boolean guestWrites, ChainEncryption encryption,
            boolean backingChain) {
        this(readOnly, direct, followReferences, tuning, ticker, locking, hostSyncs, guestWrites, encryption,
                backingChain, null);
    }

    /** Options that open the whole backing chain, when they follow references. */
    public OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning,
            Ticker ticker, ImageLocking locking, boolean hostSyncs, boolean guestWrites, ChainEncryption encryption) {
        this(readOnly, direct, followReferences, tuning, ticker, locking, hostSyncs, guestWrites, encryption, true);
    }

    /** Options without encryption passphrases. */
    public OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning,
            Ticker ticker, ImageLocking locking, boolean hostSyncs, boolean guestWrites) {
        this(readOnly, direct, followReferences, tuning, ticker, locking, hostSyncs, guestWrites, null);
    }

    /** Options that may change guest data. */
    public OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning,
            Ticker ticker, ImageLocking locking, boolean hostSyncs) {
        this(readOnly, direct, followReferences, tuning, ticker, locking, hostSyncs, true);
    }

    /** Options whose flushes sync the host's files. */
    public OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning,
            Ticker ticker, ImageLocking locking) {
        this(readOnly, direct, followReferences, tuning, ticker, locking, true);
    }

    /** Options that run by real time, with QEMU's default locks. */
    public OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning,
            Ticker ticker) {
        this(readOnly, direct, followReferences, tuning, ticker, ImageLocking.DEFAULT);
    }

    /** Options that run by real time, with QEMU's default locks. */
    public OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning) {
        this(readOnly, direct, followReferences, tuning, Ticker.SYSTEM);
    }

    /** Read-only, buffered, following references, default tuning. */
    public static OpenOptions readOnlyDefaults() {
        return new OpenOptions(true, false, true, ImageOptions.defaults());
    }

    /** Read-write, buffered, following references, default tuning. */
    public static OpenOptions readWriteDefaults() {
        return new OpenOptions(false, false, true, ImageOptions.defaults());
    }

    public OpenOptions withReadOnly(boolean v) {
        return new OpenOptions(v, direct, followReferences, tuning, ticker, locking, hostSyncs, guestWrites,
                encryption, backingChain, discards);
    }

    public OpenOptions withDirect(boolean v) {
        return new OpenOptions(readOnly, v, followReferences, tuning, ticker, locking, hostSyncs,
                guestWrites, encryption, backingChain, discards);
    }

    public OpenOptions withFollowReferences(boolean v) {
        return new OpenOptions(readOnly, direct, v, tuning, ticker, locking, hostSyncs, guestWrites, encryption,
                backingChain, discards);
    }

    public OpenOptions withTuning(ImageOptions v) {
        return new OpenOptions(readOnly, direct, followReferences, v, ticker, locking, hostSyncs,
                guestWrites, encryption, backingChain, discards);
    }

    public OpenOptions withTicker(Ticker v) {
        return new OpenOptions(readOnly, direct, followReferences, tuning, v, locking, hostSyncs,
                guestWrites, encryption, backingChain, discards);
    }

    public OpenOptions withLocking(ImageLocking v) {
        return new OpenOptions(readOnly, direct, followReferences, tuning, ticker, v, hostSyncs, guestWrites,
                encryption, backingChain, discards);
    }

    public OpenOptions withHostSyncs(boolean v) {
        return new OpenOptions(readOnly, direct, followReferences, tuning, ticker, locking, v, guestWrites,
                encryption, backingChain, discards);
    }

    public OpenOptions withGuestWrites(boolean v) {
        return new OpenOptions(readOnly, direct, followReferences, tuning, ticker, locking, hostSyncs, v,
                encryption, backingChain, discards);
    }

    public OpenOptions withEncryption(ChainEncryption v) {
        return new OpenOptions(readOnly, direct, followReferences, tuning, ticker, locking, hostSyncs, guestWrites, v,
                backingChain, discards);
    }

    public OpenOptions withBackingChain(boolean v) {
        return new OpenOptions(readOnly, direct, followReferences, tuning, ticker, locking, hostSyncs, guestWrites,
                encryption, v, discards);
    }

    public OpenOptions withDiscards(DiscardPolicy v) {
        return new OpenOptions(readOnly, direct, followReferences, tuning, ticker, locking, hostSyncs, guestWrites,
                encryption, backingChain, v);
    }

    /** These options with {@code v} (copied) the passphrase of the image itself, not of its backing files. */
    public OpenOptions withEncryptionKey(byte[] v) {
        return withEncryption(encryption.withPassphrase(0, v));
    }

    /**
     * The options a backing file {@code depth} levels down the chain is opened with, as far as encryption goes:
     * what these say of that image, as its own.
     */
    public OpenOptions forBackingDepth(int depth) {
        return withEncryption(encryption.below(depth));
    }

    public OpenOptions withL2CacheBytes(long v) {
        return withTuning(tuning.withL2CacheBytes(v));
    }

    public OpenOptions withPool(boolean v) {
        return withTuning(tuning.withPool(v));
    }
}
