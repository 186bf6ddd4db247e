package io.github.qcowloom.virtio;

import io.github.qcowloom.api.BlockDevice;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One virtio-blk request (virtio 1.2, 5.2.6), decoded from its chain and run to the end on the calling thread:
 * header, data moved between guest memory and the disk through views of guest memory (no copy, no allocation
 * sized by the guest), status byte written. Returns the bytes written into the chain's writable buffers, as the
 * used ring reports them.
 *
 * <p>A request the device can answer fails with VIRTIO_BLK_S_IOERR (buffers outside guest memory, in the wrong
 * direction, a range outside the disk or not aligned to the logical block, more bytes than allowed, a disk error)
 * or VIRTIO_BLK_S_UNSUPP (an unknown type or flag). A chain without a status byte in guest memory cannot be
 * answered: {@link VirtqueueException}.
 */
final class BlkRequest {
    private static final Logger LOG = LoggerFactory.getLogger(BlkRequest.class);

    private final DescriptorChain chain;
    private final GuestMemory memory;
    private final BlockDevice disk;
    private final VirtioBlkConfig config;
    private final boolean writeThrough; // the driver cannot flush: writes are made durable before they complete
    private final Consumer<RuntimeException> defects; // hears an unchecked exception the request was failed for

    BlkRequest(DescriptorChain chain, GuestMemory memory, BlockDevice disk, VirtioBlkConfig config,
            boolean writeThrough, Consumer<RuntimeException> defects) {
        this.chain = chain;
        this.memory = memory;
        this.disk = disk;
        this.config = config;
        this.writeThrough = writeThrough;
        this.defects = defects;
    }

    /** A request the device answers with a status other than OK. */
    private static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;
        final int status;

        Refused(int status, String why) {
            super(why, null, false, false);
            this.status = status;
        }
    }

    /** Runs the request and writes its status; returns the used length. */
    int run() {
        int firstWritable = 0;
        while (firstWritable < chain.buffers().size() && !chain.buffers().get(firstWritable).writable()) {
            firstWritable++;
        }
        IoVec out = IoVec.of(chain.buffers().subList(0, firstWritable));
        IoVec in = IoVec.of(chain.buffers().subList(firstWritable, chain.buffers().size()));
        if (in.total() < 1) {
            throw new VirtqueueException("request at head " + chain.head() + " has no device-writable status byte");
        }
        long statusAddress = in.addressOf(in.total() - 1);
        if (!memory.contains(statusAddress, 1)) {
            throw new VirtqueueException("status byte of the request at head " + chain.head()
                    + " is outside guest memory (0x" + Long.toHexString(statusAddress) + ")");
        }
        IoVec data = in.range(0, in.total() - 1);
        int status;
        long written = 0;
        try {
            written = execute(out, data);
            status = VirtioBlk.S_OK;
        } catch (Refused r) {
            LOG.debug("request at head {} refused: {}", chain.head(), r.getMessage());
            status = r.status;
        } catch (IOException | UncheckedIOException e) {
            LOG.debug("request at head {} failed", chain.head(), e);
            status = VirtioBlk.S_IOERR;
        } catch (GuestMemoryException e) {
            LOG.debug("request at head {}: {}", chain.head(), e.getMessage());
            status = VirtioBlk.S_IOERR;
        } catch (RuntimeException e) {
            // A defect of the device or the disk: the guest gets an I/O error, the embedder hears of it.
            LOG.warn("request at head {} failed", chain.head(), e);
            status = VirtioBlk.S_IOERR;
            defects.accept(e);
        }
        memory.write8(statusAddress, status);
        return (int) Math.min(written + 1, Integer.MAX_VALUE);
    }

    /** Does the request; returns the data bytes written into guest memory. */
    private long execute(IoVec out, IoVec data) throws IOException, Refused {
        if (out.total() < VirtioBlk.HEADER_BYTES) {
            throw new Refused(VirtioBlk.S_IOERR, "header of " + out.total() + " bytes");
        }
        ByteBuffer header = ByteBuffer.allocate(VirtioBlk.HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        copyIn(out.range(0, VirtioBlk.HEADER_BYTES), header);
        int type = header.getInt(0);
        long sector = header.getLong(8);
        IoVec payload = out.range(VirtioBlk.HEADER_BYTES, out.total() - VirtioBlk.HEADER_BYTES);
        switch (type) {
            case VirtioBlk.T_IN -> {
                onlyStatus(payload, "read");
                long offset = range(sector, data.total());
                transfer(data, offset, true);
                return data.total();
            }
            case VirtioBlk.T_OUT -> {
                writable();
                onlyStatus(data, "write");
                long offset = range(sector, payload.total());
                transfer(payload, offset, false);
                flushIfWriteThrough();
                return 0;
            }
            case VirtioBlk.T_FLUSH -> {
                disk.flush();
                return 0;
            }
            case VirtioBlk.T_GET_ID -> {
                byte[] id = config.serial().getBytes(StandardCharsets.UTF_8);
                long n = Math.min(VirtioBlk.ID_BYTES, data.total());
                ByteBuffer answer = ByteBuffer.allocate(VirtioBlk.ID_BYTES);
                answer.put(id);
                answer.clear().limit((int) n);
                copyOut(answer, data.range(0, n));
                return n;
            }
            case VirtioBlk.T_DISCARD, VirtioBlk.T_WRITE_ZEROES -> {
                writable();
                onlyStatus(data, "discard");
                segments(type == VirtioBlk.T_DISCARD, payload);
                if (type == VirtioBlk.T_WRITE_ZEROES) { // a discard's blocks may read as before: nothing to keep
                    flushIfWriteThrough();
                }
                return 0;
            }
            default -> throw new Refused(VirtioBlk.S_UNSUPP, "request type " + type);
        }
    }

    /** QEMU's writethrough: a write is flushed before it completes (its FUA, emulated). */
    private void flushIfWriteThrough() throws IOException {
        if (writeThrough) {
            disk.flush();
        }
    }

    private void writable() throws Refused {
        if (config.readOnly()) {
            throw new Refused(VirtioBlk.S_IOERR, "the disk is read-only");
        }
    }

    /** The driver put buffers in the wrong direction (data the device cannot use). */
    private static void onlyStatus(IoVec extra, String what) throws Refused {
        if (extra.total() != 0) {
            throw new Refused(VirtioBlk.S_IOERR, what + " request with " + extra.total()
                    + " bytes in the wrong direction");
        }
    }

    /** The disk offset of {@code bytes} from {@code sector}, checked against the disk, the blocks and the limit. */
    private long range(long sector, long bytes) throws Refused {
        if (bytes > config.maxRequestBytes()) {
            throw new Refused(VirtioBlk.S_IOERR, bytes + " bytes, more than " + config.maxRequestBytes());
        }
        int block = config.logicalBlockSize();
        if (sector < 0 || sector > disk.size() / VirtioBlk.SECTOR) {
            throw new Refused(VirtioBlk.S_IOERR, "sector " + Long.toUnsignedString(sector) + " outside the disk");
        }
        long offset = sector * VirtioBlk.SECTOR;
        if (offset % block != 0 || bytes % block != 0) {
            throw new Refused(VirtioBlk.S_IOERR, bytes + " bytes at " + offset + " not aligned to " + block);
        }
        if (bytes > disk.size() - offset) {
            throw new Refused(VirtioBlk.S_IOERR, bytes + " bytes at " + offset + " end past the disk of "
                    + disk.size());
        }
        return offset;
    }

    /** Moves data between the disk and guest memory, one view of guest memory at a time. */
    private void transfer(IoVec buffers, long offset, boolean read) throws IOException, Refused {
        if (!buffers.inside(memory)) {
            throw new Refused(VirtioBlk.S_IOERR, "data buffers outside guest memory");
        }
        long at = offset;
        for (int i = 0; i < buffers.pieces(); i++) {
            long address = buffers.address(i);
            long left = buffers.length(i);
            while (left > 0) {
                ByteBuffer view = memory.slice(address, left);
                int n = view.remaining();
                if (read) {
                    disk.read(at, view);
                } else {
                    disk.write(at, view);
                }
                at += n;
                address += n;
                left -= n;
            }
        }
    }

    private void segments(boolean discard, IoVec payload) throws IOException, Refused {
        long bytes = payload.total();
        int maxSegments = discard ? config.maxDiscardSegments() : config.maxWriteZeroesSegments();
        int maxSectors = discard ? config.maxDiscardSectors() : config.maxWriteZeroesSectors();
        if (bytes == 0 || bytes % VirtioBlk.SEGMENT_BYTES != 0 || bytes / VirtioBlk.SEGMENT_BYTES > maxSegments) {
            throw new Refused(VirtioBlk.S_IOERR, bytes + " bytes of segments (at most " + maxSegments + ")");
        }
        ByteBuffer segment = ByteBuffer.allocate(VirtioBlk.SEGMENT_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (long at = 0; at < bytes; at += VirtioBlk.SEGMENT_BYTES) {
            segment.clear();
            copyIn(payload.range(at, VirtioBlk.SEGMENT_BYTES), segment);
            long sector = segment.getLong(0);
            long sectors = Integer.toUnsignedLong(segment.getInt(8));
            int flags = segment.getInt(12);
            if ((flags & ~VirtioBlk.WRITE_ZEROES_FLAG_UNMAP) != 0
                    || (discard && (flags & VirtioBlk.WRITE_ZEROES_FLAG_UNMAP) != 0)) {
                throw new Refused(VirtioBlk.S_UNSUPP, "segment flags 0x" + Integer.toHexString(flags));
            }
            if (sectors > maxSectors) {
                throw new Refused(VirtioBlk.S_IOERR, sectors + " sectors, more than " + maxSectors);
            }
            long length = sectors * VirtioBlk.SECTOR;
            long offset = range(sector, length);
            if (length == 0) {
                continue;
            }
            if (discard) {
                disk.discard(offset, length);
            } else {
                disk.writeZeroes(offset, length, (flags & VirtioBlk.WRITE_ZEROES_FLAG_UNMAP) != 0);
            }
        }
    }

    /** Copies the bytes of {@code from} (at most dst's room) out of guest memory. */
    private void copyIn(IoVec from, ByteBuffer dst) throws Refused {
        if (!from.inside(memory)) {
            throw new Refused(VirtioBlk.S_IOERR, "request bytes outside guest memory");
        }
        for (int i = 0; i < from.pieces(); i++) {
            int n = (int) from.length(i);
            memory.read(from.address(i), dst.slice(dst.position(), n));
            dst.position(dst.position() + n);
        }
    }

    private void copyOut(ByteBuffer src, IoVec to) throws Refused {
        if (!to.inside(memory)) {
            throw new Refused(VirtioBlk.S_IOERR, "request bytes outside guest memory");
        }
        for (int i = 0; i < to.pieces(); i++) {
            int n = (int) to.length(i);
            memory.write(to.address(i), src.slice(src.position(), n));
            src.position(src.position() + n);
        }
    }
}
