package io.github.qcowloom.testing;

import static io.github.qcowloom.testing.Chains.io;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.state.Action;
import net.jqwik.api.state.Transformer;

/**
 * An image under test and the guest disk it must show, as a byte array, for the driver's jqwik action chains:
 * each guest operation is done on the image and on the model the way QEMU defines its effect (a discard drops
 * whole clusters only), then {@link #afterChange} lets the chain check what it wants. The actions below draw the
 * operations; a property class extends this with its own state (snapshots) and checks.
 */
public abstract class GuestModel {
    public final Path dir;
    public final Path path;
    public final int clusterSize;
    public final int version;
    public Qcow2Image img;
    /** What the guest must read: byte i of the disk is {@code model[i]}. */
    public byte[] model;

    /** Creates the image from {@code layout} in a fresh temporary directory named after {@code prefix}; opens it. */
    protected GuestModel(String prefix, CreateOptions layout) {
        try {
            dir = Files.createTempDirectory(prefix);
            path = dir.resolve(prefix + ".qcow2");
            ImageCreator.create(path, layout);
            clusterSize = layout.clusterSize();
            version = layout.version();
            model = new byte[(int) layout.size()];
            img = Qcow2Image.open(path, OpenOptions.readWriteDefaults());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Checks the image after an operation that changed the guest range {@code [off, off + len)}. */
    protected abstract void afterChange(long off, long len) throws IOException;

    /** Whether {@link #resizes} may act on this image (QEMU refuses to resize a v2 image with snapshots). */
    protected boolean resizable() {
        return true;
    }

    public void write(long off, byte[] data) throws IOException {
        img.write(off, ByteBuffer.wrap(data));
        System.arraycopy(data, 0, model, (int) off, data.length);
        afterChange(off, data.length);
    }

    /** Discards; QEMU drops whole clusters only, plus the partial last cluster of the disk (with no backing). */
    public void discard(long off, long len) throws IOException {
        img.discard(off, len);
        long end = off + len;
        long from = Bytes.alignUp(off, clusterSize);
        long to = end == model.length ? end : end / clusterSize * clusterSize;
        if (to > from) {
            Arrays.fill(model, (int) from, (int) to, (byte) 0);
        }
        afterChange(off, len);
    }

    public void writeZeroes(long off, long len, boolean unmap) throws IOException {
        img.writeZeroes(off, len, unmap);
        Arrays.fill(model, (int) off, (int) (off + len), (byte) 0);
        afterChange(off, len);
    }

    /** Resizes; shrinking discards the cut-off clusters first, as a user must. */
    public void resize(int newSize) throws IOException {
        int old = model.length;
        if (newSize < old) {
            long from = Bytes.alignUp(newSize, clusterSize);
            if (from < old) {
                img.discard(from, old - from);
            }
        }
        img.resize(newSize);
        model = Arrays.copyOf(model, newSize);
        assertEquals(newSize, img.size());
        afterChange(Math.min(old, newSize), Math.max(0, newSize - old));
    }

    public void reopen() throws IOException {
        img.close();
        img = Qcow2Image.open(path, OpenOptions.readWriteDefaults());
    }

    /** Deletes the image and whatever else the chain left in its directory (the image must be closed). */
    public void deleteFiles() throws IOException {
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(dir);
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "[v" + version + ", cluster " + clusterSize + ", size " + model.length
                + "]";
    }

    private static Arbitrary<long[]> range(GuestModel d) {
        return Chains.range(d.model.length, d.clusterSize);
    }

    /** Writes of a one-byte pattern over a random range. */
    public static <D extends GuestModel> Action.Dependent<D> writes() {
        return d -> Combinators.combine(range(d), Arbitraries.integers().between(1, 255)).as((r, p) ->
                Transformer.mutate("write " + r[0] + "+" + r[1] + " pattern " + p, disk -> io(() -> {
                    byte[] data = new byte[(int) r[1]];
                    Arrays.fill(data, p.byteValue());
                    disk.write(r[0], data);
                })));
    }

    public static <D extends GuestModel> Action.Dependent<D> discards() {
        return d -> range(d).map(r -> Transformer.mutate("discard " + r[0] + "+" + r[1],
                disk -> io(() -> disk.discard(r[0], r[1]))));
    }

    public static <D extends GuestModel> Action.Dependent<D> zeroes() {
        return d -> Combinators.combine(range(d), Arbitraries.of(true, false)).as((r, unmap) ->
                Transformer.mutate("zero " + r[0] + "+" + r[1] + (unmap ? " unmap" : ""),
                        disk -> io(() -> disk.writeZeroes(r[0], r[1], unmap))));
    }

    /** Resizes to 1 to {@code maxSectors} sectors of 512 bytes, where {@link #resizable()} allows it. */
    public static <D extends GuestModel> Action.Dependent<D> resizes(int maxSectors) {
        return new Action.Dependent<>() {
            @Override
            public boolean precondition(D d) {
                return d.resizable();
            }

            @Override
            public Arbitrary<Transformer<D>> transformer(D d) {
                return Arbitraries.integers().between(1, maxSectors).map(s -> s * 512).map(newSize ->
                        Transformer.mutate("resize " + newSize, disk -> io(() -> disk.resize(newSize))));
            }
        };
    }

    public static <D extends GuestModel> Action.Independent<D> flushes() {
        return Action.just(Transformer.mutate("flush", d -> io(d.img::flush)));
    }

    /** Closes and reopens the image, then checks the whole disk. */
    public static <D extends GuestModel> Action.Independent<D> reopens() {
        return Action.just(Transformer.mutate("reopen", d -> io(() -> {
            d.reopen();
            d.afterChange(0, d.model.length);
        })));
    }
}
