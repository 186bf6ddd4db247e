package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Profiles;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code convert [-f fmt] -O raw SRC DST}: reads the whole source through the read path, on several virtual
 * threads at once, and writes a raw file in which all-zero chunks stay holes.
 */
@Command(name = "convert", description = "Convert an image (qcow2 or raw source) to raw.")
final class ConvertCommand implements Callable<Integer> {
    /** Bytes each worker reads at a time; qemu-img convert also works in chunks of this order. */
    static final int CHUNK = 1 << 20;
    static final int WORKERS = 8;

    @Option(names = "-f", description = "Source format (probed when absent).")
    String sourceFormat;

    @Option(names = "-O", description = "Output format: raw.")
    String outputFormat = "raw";

    @Option(names = "-t", description = "Target cache mode; qemu-img convert's default, unsafe, skips the final sync.")
    String targetCache = "unsafe";

    @Option(names = "-T", description = "Source cache mode: writeback (page cache) or none (O_DIRECT).")
    String sourceCache;

    @Option(names = "--profile", description = "Configuration profile: a name from props/ or a .properties path.")
    String profile = "default";

    @Option(names = "-q", description = "Quiet.")
    boolean quiet;

    @Parameters(index = "0", paramLabel = "SRC")
    String source;

    @Parameters(index = "1", paramLabel = "DST")
    String target;

    @Override
    public Integer call() throws IOException {
        if (!"raw".equals(outputFormat)) {
            throw new UnsupportedFeatureException("convert -O " + outputFormat,
                    "convert -O " + outputFormat + " needs the write path, which is not implemented yet");
        }
        OpenOptions options = Profiles.apply(Profiles.load(profile), OpenOptions.readOnlyDefaults());
        if (sourceCache != null) {
            options = options.withDirect(CacheMode.direct(sourceCache));
        }
        try (BlockDevice src = ImageFormat.open(Path.of(source), sourceFormat, options);
                Storage dst = FileStorage.create(Path.of(target), false)) {
            copyToRaw(src, dst);
            dst.setLength(src.size());
            CacheMode.direct(targetCache); // rejects unknown modes
            if (!"unsafe".equals(targetCache)) {
                dst.flush();
            }
        }
        return 0;
    }

    /** Copies every non-zero chunk; workers take chunks in order from a shared counter. */
    static void copyToRaw(BlockDevice src, Storage dst) throws IOException {
        long size = src.size();
        AtomicLong next = new AtomicLong();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<Void>> workers = new ArrayList<>();
            for (int w = 0; w < WORKERS; w++) {
                workers.add(pool.submit(() -> {
                    // Direct: FileChannel copies heap buffers through a temporary direct one on every call.
                    ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK);
                    for (long off = next.getAndAdd(CHUNK); off < size; off = next.getAndAdd(CHUNK)) {
                        int n = (int) Math.min(CHUNK, size - off);
                        buf.clear().limit(n);
                        src.read(off, buf);
                        buf.flip();
                        if (!isZero(buf)) {
                            dst.write(buf, off);
                        }
                    }
                    return null;
                }));
            }
            for (Future<Void> f : workers) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new IOException(e.getCause());
        }
    }

    static boolean isZero(ByteBuffer b) {
        int i = b.position();
        int end = b.limit();
        for (; i + 8 <= end; i += 8) {
            if (b.getLong(i) != 0) {
                return false;
            }
        }
        for (; i < end; i++) {
            if (b.get(i) != 0) {
                return false;
            }
        }
        return true;
    }
}
