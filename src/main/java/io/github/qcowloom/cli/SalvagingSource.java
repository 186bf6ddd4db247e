package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.storage.Zeroes;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;

/**
 * convert's {@code --salvage}, as qemu-img's: a source whose reads and block status queries that fail are retried
 * in smaller parts, and what still fails reads as zeroes, with a warning naming its offset in this source. A read
 * that fails is made again a sector (512 bytes) at a time, and each sector that fails reads as zeroes
 * (convert_co_read); a block status query that fails is made again over a quarter of its range, down to one
 * sector, which is then taken as data to read (convert_iteration_sectors). Unchecked exceptions, requests outside
 * the disk and interrupts are not salvaged.
 */
final class SalvagingSource extends ReadOnlySource {
    private static final int SECTOR = 512;

    private final BlockDevice source;
    /** Where the warnings go, or null under -q (qemu-img prints none then). */
    private final PrintWriter warnings;

    SalvagingSource(BlockDevice source, PrintWriter warnings) {
        this.source = source;
        this.warnings = warnings;
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        try {
            source.read(offset, dst.duplicate());
            dst.position(dst.limit());
            return;
        } catch (IOException e) {
            rethrowUnsalvageable(e); // else each sector again on its own
        }
        while (dst.hasRemaining()) {
            int n = Math.min(SECTOR, dst.remaining());
            ByteBuffer sector = dst.duplicate().limit(dst.position() + n);
            try {
                source.read(offset, sector.duplicate());
            } catch (IOException e) {
                rethrowUnsalvageable(e);
                warn("error while reading offset " + offset + ": " + Main.message(e));
                Zeroes.fill(sector);
            }
            dst.position(dst.position() + n);
            offset += n;
        }
    }

    @Override
    public BlockStatus blockStatus(long offset, long length) throws IOException {
        long sectors = (length + SECTOR - 1) / SECTOR;
        while (true) {
            try {
                return source.blockStatus(offset, Math.min(length, sectors * SECTOR));
            } catch (IOException e) {
                rethrowUnsalvageable(e);
                if (sectors <= 1) {
                    warn("error while reading block status at offset " + offset + ": " + Main.message(e));
                    return new BlockStatus(Math.min(length, SECTOR), 0, BlockStatus.Allocation.DATA, null);
                }
                sectors = (sectors + 3) / 4;
            }
        }
    }

    /** A request outside the disk or an interrupt is the caller's, not the image's: it is never read as zeroes. */
    private static void rethrowUnsalvageable(IOException e) throws IOException {
        if (e instanceof OutOfRangeException || e instanceof InterruptedIOException
                || e instanceof ClosedByInterruptException) {
            throw e;
        }
    }

    private void warn(String message) {
        if (warnings != null) {
            warnings.println("qcow2-loom: warning: " + message);
            warnings.flush();
        }
    }

    @Override
    public long size() {
        return source.size();
    }

    @Override
    public void close() throws IOException {
        source.close();
    }
}
