package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

/** Random sequences of unaligned operations on each {@link Storage} agree with a plain byte-array model. */
class StorageModelProperties {
    private static final int BLOCK = 4096;
    private static final AtomicInteger FILES = new AtomicInteger();
    private static Path dir;

    @BeforeContainer
    static void createDir() throws IOException {
        dir = Files.createTempDirectory("storage-model");
    }

    @AfterContainer
    static void deleteDir() throws IOException {
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(path);
            }
        }
    }

    @Property(tries = 400)
    void memoryMatchesModel(@ForAll("ops") List<Op> ops) throws IOException {
        try (MemoryStorage storage = new MemoryStorage()) {
            check(storage, ops);
        }
    }

    @Property(tries = 200)
    void bufferedFileMatchesModel(@ForAll("ops") List<Op> ops) throws IOException {
        checkFile(ops, false);
    }

    @Property(tries = 200)
    void directFileMatchesModel(@ForAll("ops") List<Op> ops) throws IOException {
        checkFile(ops, true);
    }

    private static void checkFile(List<Op> ops, boolean direct) throws IOException {
        Path file = dir.resolve("f" + FILES.incrementAndGet());
        try (FileStorage storage = FileStorage.create(file, direct)) {
            check(storage, ops);
            assertEquals(storage.size(), Files.size(file), "host file length");
        } finally {
            Files.delete(file);
        }
    }

    private static void check(Storage storage, List<Op> ops) throws IOException {
        Model model = new Model();
        for (Op op : ops) {
            op.apply(storage, model);
            assertEquals(model.size, storage.size(), () -> "size after " + op);
        }
        ByteBuffer all = ByteBuffer.allocate(model.size);
        assertEquals(model.size, storage.read(all, 0));
        assertArrayEquals(Arrays.copyOf(model.data, model.size), all.array(), "final contents");
    }

    @Provide
    Arbitrary<List<Op>> ops() {
        Arbitrary<Long> position = Arbitraries.frequencyOf(
                Tuple.of(1, Arbitraries.integers().between(0, 5).map(b -> (long) b * BLOCK)),
                Tuple.of(3, Arbitraries.longs().between(0, 6L * BLOCK)));
        Arbitrary<Integer> length = Arbitraries.frequencyOf(
                Tuple.of(1, Arbitraries.integers().between(1, 3).map(b -> b * BLOCK)),
                Tuple.of(3, Arbitraries.integers().between(0, 3 * BLOCK)));
        Arbitrary<Kind> kind = Arbitraries.of(Kind.class);
        Arbitrary<Op> write = Combinators.combine(position, length, kind, Arbitraries.longs())
                .as(Write::new);
        Arbitrary<Op> read = Combinators.combine(position, length, kind).as(Read::new);
        Arbitrary<Op> setLength = position.map(SetLength::new);
        Arbitrary<Op> punchHole = Combinators.combine(position, length).as(PunchHole::new);
        Arbitrary<Op> writeZeroes = Combinators.combine(position, length).as(WriteZeroes::new);
        return Arbitraries.frequencyOf(
                Tuple.of(5, write), Tuple.of(4, read), Tuple.of(1, setLength),
                Tuple.of(1, punchHole), Tuple.of(1, writeZeroes)).list().ofMaxSize(25);
    }

    /** How an operation's buffer is allocated: the direct I/O fast path needs ALIGNED. */
    enum Kind {
        HEAP, DIRECT, ALIGNED;

        ByteBuffer allocate(int length) {
            return switch (this) {
                case HEAP -> ByteBuffer.allocate(length);
                case DIRECT -> ByteBuffer.allocateDirect(length + 1).position(1).slice();
                // alignedSlice also rounds the end down, so allocate whole blocks plus one.
                case ALIGNED -> ByteBuffer.allocateDirect((length / BLOCK + 2) * BLOCK).alignedSlice(BLOCK)
                        .slice(0, length);
            };
        }
    }

    sealed interface Op {
        void apply(Storage storage, Model model) throws IOException;
    }

    record Write(long position, int length, Kind kind, long seed) implements Op {
        @Override
        public void apply(Storage storage, Model model) throws IOException {
            byte[] bytes = new byte[length];
            new Random(seed).nextBytes(bytes);
            storage.write(kind.allocate(length).put(bytes).flip(), position);
            model.write(position, bytes);
        }
    }

    record Read(long position, int length, Kind kind) implements Op {
        @Override
        public void apply(Storage storage, Model model) throws IOException {
            ByteBuffer dst = kind.allocate(length);
            int n = storage.read(dst, position);
            byte[] expected = model.read(position, length);
            assertEquals(expected.length, n, () -> "count of " + this);
            byte[] actual = new byte[n];
            dst.flip().get(actual);
            assertArrayEquals(expected, actual, () -> "bytes of " + this);
        }
    }

    record SetLength(long length) implements Op {
        @Override
        public void apply(Storage storage, Model model) throws IOException {
            storage.setLength(length);
            model.setLength((int) length);
        }
    }

    record PunchHole(long position, int length) implements Op {
        @Override
        public void apply(Storage storage, Model model) throws IOException {
            storage.punchHole(position, length);
            model.zero((int) position, (int) Math.min(position + length, model.size));
        }
    }

    record WriteZeroes(long position, int length) implements Op {
        @Override
        public void apply(Storage storage, Model model) throws IOException {
            storage.writeZeroes(position, length);
            if (length > 0) {
                model.write(position, new byte[length]);
            }
        }
    }

    /** The reference: a byte array and a length. */
    static final class Model {
        byte[] data = new byte[0];
        int size;

        void write(long position, byte[] bytes) {
            if (bytes.length == 0) {
                return;
            }
            int end = (int) position + bytes.length;
            setLength(Math.max(size, end));
            System.arraycopy(bytes, 0, data, (int) position, bytes.length);
        }

        byte[] read(long position, int length) {
            int n = (int) Math.max(0, Math.min(length, size - position));
            return n == 0 ? new byte[0] : Arrays.copyOfRange(data, (int) position, (int) position + n);
        }

        void setLength(int length) {
            data = Arrays.copyOf(Arrays.copyOf(data, Math.min(size, length)), length);
            size = length;
        }

        void zero(int from, int to) {
            if (from < to) {
                Arrays.fill(data, from, to, (byte) 0);
            }
        }
    }
}
