package io.github.qcowloom.image;

import io.github.qcowloom.crypto.SectorCipher;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The guest data of an encrypted image as the read and write paths see it: a read decrypts what the host read
 * gave, a write encrypts a copy before the host write (the caller's buffer stays as it was). Each 512-byte sector's
 * IV is its host offset in sectors for LUKS, as QEMU's qcow2 keys it (crypt_physical_offset), so a cluster's bytes
 * change with its place in the file and the copy-on-write of a cluster is a decrypt and an encrypt; for AES it is
 * the guest offset in sectors, so each run of guest data gets a view of its own, shifted by {@code guest - host}.
 *
 * <p>Whole sectors only: the image makes every guest request sector-aligned before it reaches the paths
 * ({@link SectorRequests}), and clusters are whole sectors. Zeroes written through {@link #writeZeroes} are guest
 * zeroes, encrypted; host zeroes (holes, fallocated space) read back as noise, as they do in QEMU.
 */
final class EncryptedData extends ForwardingStorage {
    static final int SECTOR = SectorCipher.SECTOR_SIZE;
    private static final int CHUNK = 256 << 10;

    private final SectorCipher cipher;
    /** Added to a host offset to give the offset whose sector number is the IV: 0 for LUKS. */
    private final long ivShift;

    private EncryptedData(Storage hostData, SectorCipher cipher, long ivShift) {
        super(hostData);
        this.cipher = cipher;
        this.ivShift = ivShift;
    }

    /** The guest data in {@code hostData} under {@code cipher}, its IVs numbered by guest offset or by host offset. */
    static GuestData over(Storage hostData, SectorCipher cipher, boolean ivsByGuestOffset) {
        if (ivsByGuestOffset) {
            return (host, guest) -> new EncryptedData(hostData, cipher, guest - host);
        }
        EncryptedData byHostOffset = new EncryptedData(hostData, cipher, 0);
        return (host, guest) -> byHostOffset;
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        int n = dst.remaining();
        readFully(dst, position);
        return n;
    }

    @Override
    public void readFully(ByteBuffer dst, long position) throws IOException {
        requireWholeSectors(position, dst.remaining());
        ByteBuffer sectors = dst.slice();
        inner().readFully(dst, position); // past the end of the file: zeroes, decrypted as QEMU decrypts them
        cipher.decrypt((position + ivShift) / SECTOR, sectors);
    }

    /** Encrypts a copy of at most {@link #CHUNK} bytes at a time, so a long write needs no copy of its length. */
    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        int length = src.remaining();
        requireWholeSectors(position, length);
        int at = src.position();
        for (int done = 0; done < length; ) {
            int n = Math.min(CHUNK, length - done);
            ByteBuffer copy = ByteBuffer.allocate(n).put(0, src, at + done, n);
            cipher.encrypt((position + done + ivShift) / SECTOR, copy.duplicate());
            inner().write(copy, position + done);
            done += n;
        }
        src.position(at + length);
    }

    @Override
    public void writeZeroes(long position, long length) throws IOException {
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(length - done, CHUNK);
            write(ByteBuffer.allocate(n), position + done);
            done += n;
        }
    }

    private static void requireWholeSectors(long position, int length) {
        if (position % SECTOR != 0 || length % SECTOR != 0) {
            throw new IllegalStateException("encrypted data I/O of " + length + " bytes at " + position
                    + " is not whole sectors");
        }
    }
}
