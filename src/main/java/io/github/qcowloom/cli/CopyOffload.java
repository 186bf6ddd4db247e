package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.storage.Java22Method;
import io.github.qcowloom.storage.KernelCopy;
import java.io.Closeable;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * convert -C, qemu-img's copy offloading (blk_co_copy_range): the data of a piece of the source, stored as it is in
 * the files of its chain (uncompressed, with a host offset), is copied whole, without looking for zeroes in it, as
 * QEMU's copy_range copies it; the piece's parts that read as zeroes are written as zeroes, as qemu-img writes its
 * zero chunks. Into a raw target the kernel copies the data from those files ({@link KernelCopy}), and the piece is
 * never read here. Into a qcow2 target the piece is read and its data written whole: its clusters land where QEMU's
 * do (QEMU allocates and links them, then has the kernel copy into them), but the bytes pass through the process,
 * and so never meet a refusal by the kernel (across file systems, say) that would stop QEMU's offloading and leave
 * the rest of its target allocated as without -C.
 *
 * <p>As in qemu-img, offloading stops for good at the first piece it cannot take, a compressed part (QEMU's qcow2
 * answers ENOTSUP), data the source cannot place in a file, a copy the kernel refused; that piece and the rest are
 * copied as without -C, zeroes looked for.
 *
 * <p>Lock discipline: none; {@code chains} is filled before the copy's workers start and only read after, {@code on}
 * is volatile, set once to false, and the kernel copy is safe for concurrent use.
 */
final class CopyOffload implements Closeable {
    private static final Logger LOG = LoggerFactory.getLogger(CopyOffload.class);
    private static final Java22Method OPEN = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.os.CopyFileRange", "into", MethodType.methodType(KernelCopy.class, Path.class),
            "copy offloading");

    /** One layer of the source's chain: its file and its external data file (or null). */
    private record Layer(Path file, Path dataFile) {
    }

    private final BlockDevice source;
    /** Each source's chain, by depth (several sources are concatenated); the source itself when there is one. */
    private final Map<BlockDevice, List<Layer>> chains = new IdentityHashMap<>();
    /** Where a raw target's pieces are copied; null into a qcow2 target. */
    private final KernelCopy kernel;
    private volatile boolean on;

    private CopyOffload(BlockDevice source, boolean toRaw, Path target) throws IOException {
        this.source = source;
        List<BlockDevice> parts = source instanceof ConcatenatedSources c ? c.parts() : List.of(source);
        for (BlockDevice part : parts) {
            chains.put(part, layers(part));
        }
        boolean known = chains.values().stream().noneMatch(List::isEmpty);
        this.kernel = toRaw && known ? open(target) : null;
        this.on = known && (kernel != null || !toRaw);
    }

    /** Offloading into the raw file {@code target}. */
    static CopyOffload intoRaw(BlockDevice source, Path target) throws IOException {
        return new CopyOffload(source, true, target);
    }

    /** Offloading where the kernel does not copy (a qcow2 target; a raw one under -n -B): pieces written whole. */
    static CopyOffload throughProcess(BlockDevice source) throws IOException {
        return new CopyOffload(source, false, null);
    }

    private static KernelCopy open(Path target) throws IOException {
        if (OPEN.handle() == null) {
            LOG.debug("no copy offloading: {}", OPEN.missing());
            return null;
        }
        try {
            return (KernelCopy) OPEN.handle().invokeExact(target);
        } catch (UnsupportedOperationException e) {
            LOG.debug("no copy offloading: {}", e.getMessage());
            return null;
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The files of the source's chain, by depth; empty where a layer is neither a qcow2 image nor a raw file. */
    private static List<Layer> layers(BlockDevice source) {
        List<Layer> layers = new ArrayList<>();
        for (BlockDevice dev = source; dev != null; ) {
            if (dev instanceof Qcow2Image q && q.path() != null) {
                layers.add(new Layer(q.path(), q.dataFilePath()));
                dev = q.backing();
            } else if (dev instanceof RawImage r && r.path() != null) {
                layers.add(new Layer(r.path(), null));
                dev = null;
            } else {
                return List.of();
            }
        }
        return layers;
    }

    /**
     * {@code inner}, with the pieces this can copy into a raw target copied here: their data by the kernel, their
     * parts that read as zeroes through {@code zeroes} (a new target reads as zeroes already: nothing to do).
     */
    ChunkCopy.Sink offloading(ChunkCopy.Sink inner, ChunkCopy.ZeroWriter zeroes) {
        return new ChunkCopy.Sink() {
            @Override
            public ChunkCopy.Write prepare(long offset, ByteBuffer chunk, boolean zero) throws IOException {
                return inner.prepare(offset, chunk, zero);
            }

            @Override
            public boolean offload(long offset, int length) throws IOException {
                return copy(offset, length, zeroes);
            }
        };
    }

    /**
     * Copies the piece at {@code offset} in the kernel; false where it did not, and offloading may have stopped. Not
     * held to convert's rate (-r), as QEMU's copy_range is not.
     */
    private boolean copy(long offset, int length, ChunkCopy.ZeroWriter zeroes) throws IOException {
        List<BlockStatus> parts = parts(offset, length);
        if (parts == null) {
            return false;
        }
        long at = offset;
        for (BlockStatus part : parts) {
            if (part.zero()) {
                zeroes.writeZeroes(at, part.length());
            } else if (!kernel.copy(file(at, part), part.host().offset(), at, part.length())) {
                stop("the kernel refused a copy");
                return false; // the piece is then copied as usual, over what this wrote of it
            }
            at += part.length();
        }
        return true;
    }

    /**
     * {@code inner}, but where offloading takes a piece: its data parts are written whole into {@code dst}, its parts
     * that read as zeroes through {@code zeroes}.
     */
    ChunkCopy.Sink writingWhole(ChunkCopy.Sink inner, BlockDevice dst, ChunkCopy.ZeroWriter zeroes) {
        return (offset, chunk, zero) -> {
            List<BlockStatus> parts = zero ? null : parts(offset, chunk.remaining());
            return parts == null ? inner.prepare(offset, chunk, zero) : wholeWrite(dst, offset, chunk, parts, zeroes);
        };
    }

    private static ChunkCopy.Write wholeWrite(BlockDevice dst, long offset, ByteBuffer chunk, List<BlockStatus> parts,
            ChunkCopy.ZeroWriter zeroes) {
        return () -> {
            int at = 0;
            for (BlockStatus part : parts) {
                int n = (int) part.length();
                if (part.zero()) {
                    zeroes.writeZeroes(offset + at, n);
                } else {
                    dst.write(offset + at, chunk.slice(at, n));
                }
                at += n;
            }
        };
    }

    /**
     * The piece's parts: data stored as it is, with its place in a file, and ranges that read as zeroes (qemu-img's
     * zero chunks, which it writes as zeroes); null where offloading is off, or stops at this piece, or where the
     * piece is all zeroes (copied as usual).
     */
    private List<BlockStatus> parts(long offset, int length) throws IOException {
        if (!on) {
            return null;
        }
        List<BlockStatus> parts = new ArrayList<>();
        boolean data = false;
        for (long done = 0; done < length; ) {
            BlockStatus s = source.blockStatus(offset + done, length - done);
            if (!s.zero()) {
                if (s.allocation() != BlockStatus.Allocation.DATA || s.host() == null
                        || file(offset + done, s) == null) {
                    stop(s.compressed() ? "compressed data" : "data the source cannot place in a file");
                    return null;
                }
                data = true;
            }
            parts.add(s);
            done += s.length();
        }
        return data ? parts : null;
    }

    /** The file that holds the data {@code s} reports at {@code offset}, or null where it is not known. */
    private Path file(long offset, BlockStatus s) {
        BlockDevice part = source instanceof ConcatenatedSources c ? c.partAt(offset) : source;
        List<Layer> layers = chains.get(part);
        if (s.depth() >= layers.size()) {
            return null;
        }
        Layer layer = layers.get(s.depth());
        return s.host().file() == BlockStatus.HostFile.DATA_FILE ? layer.dataFile() : layer.file();
    }

    private void stop(String why) {
        if (on) {
            on = false;
            LOG.debug("copy offloading stops: {}", why);
        }
    }

    @Override
    public void close() {
        if (kernel != null) {
            kernel.close();
        }
    }
}
