package io.github.qcowloom.image;

import static io.github.qcowloom.testing.Chains.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.testing.Chains;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.BeforeProperty;
import net.jqwik.api.state.Action;
import net.jqwik.api.state.ActionChain;
import net.jqwik.api.state.Transformer;

/**
 * Random chains of writes, discards, write-zeroes, flushes, resizes and reopens against a byte-array model of the
 * guest disk, over assorted layouts. After every action the touched range reads back as the model says; after
 * every chain the real qemu-img finds no corruption and no leak, and compares the image equal to the model.
 */
class WritePathProperties {
    @BeforeProperty
    void needQemu() {
        Qemu.assume();
    }

    /** The image under test and the model of what the guest must see. */
    static final class Disk {
        final Path dir;
        final Path path;
        final int clusterSize;
        final int version;
        Qcow2Image img;
        byte[] model;

        Disk(CreateOptions layout) {
            try {
                dir = Files.createTempDirectory("wpp");
                path = dir.resolve("p.qcow2");
                ImageCreator.create(path, layout);
                clusterSize = layout.clusterSize();
                version = layout.version();
                model = new byte[(int) layout.size()];
                img = Qcow2Image.open(path, OpenOptions.readWriteDefaults());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        void assertRange(long off, int len) throws IOException {
            if (len == 0) {
                return;
            }
            ByteBuffer buf = ByteBuffer.allocate(len);
            img.read(off, buf);
            byte[] expected = Arrays.copyOfRange(model, (int) off, (int) off + len);
            assertEquals(-1, Images.firstDifference(expected, buf.array()), "range " + off + "+" + len);
        }

        /** Closes the image and has qemu-img check and compare it; deletes the files. */
        void finish() throws IOException {
            img.close();
            try {
                String check = Qemu.img("check", "--output=json", path.toString());
                assertFalse(check.contains("\"corruptions\""), check);
                assertFalse(check.contains("\"leaks\""), check);
                Path raw = dir.resolve("model.raw");
                Files.write(raw, model);
                Qemu.img("compare", "-f", "qcow2", "-F", "raw", path.toString(), raw.toString());
            } finally {
                try (var files = Files.list(dir)) {
                    for (Path p : files.toList()) {
                        Files.delete(p);
                    }
                }
                Files.delete(dir);
            }
        }

        @Override
        public String toString() {
            return "Disk[v" + version + ", cluster " + clusterSize + ", size " + model.length + "]";
        }
    }

    @Property(tries = 40)
    void imageMatchesModel(@ForAll("chains") ActionChain<Disk> chain) throws IOException {
        Disk disk = chain.run();
        disk.assertRange(0, disk.model.length);
        disk.finish();
    }

    @Provide
    Arbitrary<ActionChain<Disk>> chains() {
        Arbitrary<CreateOptions> layouts = Combinators.combine(
                Arbitraries.of(512, 4096, 65536),
                Arbitraries.of(1, 16, 64),
                Arbitraries.of(2, 3),
                Arbitraries.integers().between(1, 4096).map(s -> s * 512L))
                .as((cs, rb, v, size) -> CreateOptions.defaults(size).withClusterSize(cs)
                        .withRefcountBits(v == 2 ? 16 : rb).withVersion(v));
        return layouts.flatMap(layout -> ActionChain.startWith(() -> new Disk(layout))
                .withAction(6, new WriteAction())
                .withAction(2, new DiscardAction())
                .withAction(2, new ZeroAction())
                .withAction(1, Action.just(Transformer.mutate("flush", d -> io(d.img::flush))))
                .withAction(1, new ResizeAction())
                .withAction(1, Action.just(Transformer.mutate("reopen", d -> io(() -> {
                    d.img.close();
                    d.img = Qcow2Image.open(d.path, OpenOptions.readWriteDefaults());
                }))))
                .withMaxTransformations(25));
    }

    static Arbitrary<long[]> range(Disk d) {
        return Chains.range(d.model.length, d.clusterSize);
    }

    static final class WriteAction implements Action.Dependent<Disk> {
        @Override
        public Arbitrary<Transformer<Disk>> transformer(Disk d) {
            return Combinators.combine(range(d), Arbitraries.integers().between(1, 255)).as((r, p) ->
                    Transformer.mutate("write " + r[0] + "+" + r[1] + " pattern " + p, disk -> io(() -> {
                        byte[] data = new byte[(int) r[1]];
                        Arrays.fill(data, p.byteValue());
                        disk.img.write(r[0], ByteBuffer.wrap(data));
                        System.arraycopy(data, 0, disk.model, (int) r[0], data.length);
                        disk.assertRange(r[0], data.length);
                    })));
        }
    }

    static final class DiscardAction implements Action.Dependent<Disk> {
        @Override
        public Arbitrary<Transformer<Disk>> transformer(Disk d) {
            return range(d).map(r -> Transformer.mutate("discard " + r[0] + "+" + r[1], disk -> io(() -> {
                disk.img.discard(r[0], r[1]);
                // QEMU discards whole clusters only, plus the partial last cluster of the disk.
                long cs = disk.clusterSize;
                long end = r[0] + r[1];
                long from = Bytes.alignUp(r[0], cs);
                long to = end == disk.model.length ? end : end / cs * cs;
                if (to > from) {
                    Arrays.fill(disk.model, (int) from, (int) to, (byte) 0);
                }
                disk.assertRange(r[0], (int) r[1]);
            })));
        }
    }

    static final class ZeroAction implements Action.Dependent<Disk> {
        @Override
        public Arbitrary<Transformer<Disk>> transformer(Disk d) {
            return Combinators.combine(range(d), Arbitraries.of(true, false)).as((r, unmap) ->
                    Transformer.mutate("zero " + r[0] + "+" + r[1] + (unmap ? " unmap" : ""), disk -> io(() -> {
                        disk.img.writeZeroes(r[0], r[1], unmap);
                        Arrays.fill(disk.model, (int) r[0], (int) (r[0] + r[1]), (byte) 0);
                        disk.assertRange(r[0], (int) r[1]);
                    })));
        }
    }

    static final class ResizeAction implements Action.Dependent<Disk> {
        @Override
        public Arbitrary<Transformer<Disk>> transformer(Disk d) {
            return Arbitraries.integers().between(1, 4096).map(s -> s * 512).map(newSize ->
                    Transformer.mutate("resize " + newSize, disk -> io(() -> {
                        int old = disk.model.length;
                        if (newSize < old) {
                            // Shrinking needs the cut-off clusters empty: discard them first, as a user must.
                            long from = Bytes.alignUp(newSize, disk.clusterSize);
                            if (from < old) {
                                disk.img.discard(from, old - from);
                            }
                        }
                        disk.img.resize(newSize);
                        disk.model = Arrays.copyOf(disk.model, newSize);
                        assertEquals((long) newSize, disk.img.size());
                        disk.assertRange(Math.min(old, newSize), Math.max(0, newSize - old));
                    })));
        }
    }
}
