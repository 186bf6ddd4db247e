package io.github.qcowloom.snapshot;

import static io.github.qcowloom.testing.Chains.io;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.RefcountOverflowException;
import io.github.qcowloom.testing.GuestModel;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
 * Random chains of writes, discards, zero writes, resizes, reopens and snapshot creates, applies and deletes,
 * against an in-memory model: the guest disk, and a copy of it per snapshot. After each step the image reads as
 * the model says; after each chain qemu-img check finds no corruption and no leak, and qemu-img reads the active
 * image and every snapshot as the model has them.
 */
class SnapshotProperties {
    @BeforeProperty
    void needQemu() {
        Qemu.assume();
    }

    /** The image under test, the guest disk it must show, and what each snapshot must show. */
    static final class Disk extends GuestModel {
        /** Snapshot name to the guest disk at its creation (names are unique within a chain). */
        final Map<String, byte[]> snapshots = new LinkedHashMap<>();
        int created;

        Disk(CreateOptions layout) {
            super("snapprop", layout);
        }

        @Override
        protected void afterChange(long off, long len) throws IOException {
            assertAll();
        }

        /** v2 images with snapshots cannot be resized, as in QEMU. */
        @Override
        protected boolean resizable() {
            return version == 3;
        }

        void assertAll() throws IOException {
            assertEquals(model.length, img.size());
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)));
            assertEquals(List.copyOf(snapshots.keySet()), Snapshots.list(img).stream().map(Snapshot::name).toList());
        }

        Snapshot find(String name) {
            return Snapshots.findByName(Snapshots.list(img), name).orElseThrow();
        }

        /** Closes the image; qemu-img checks it and reads the active disk and each snapshot; deletes the files. */
        void finish() throws IOException {
            img.close();
            try {
                SnapshotInteropTest.assertClean(path);
                assertEquals(-1, Images.firstDifference(model, Qemu.toRaw(path, dir)));
                List<Map<String, Object>> listed = QemuSnapshots.info(path);
                List<String> names = new ArrayList<>(snapshots.keySet());
                assertEquals(names.size(), listed.size());
                for (int i = 0; i < names.size(); i++) {
                    assertEquals(names.get(i), listed.get(i).get("name"));
                    byte[] expected = snapshots.get(names.get(i));
                    // qemu-img reads a snapshot at the image's current size: compare the snapshot's own extent.
                    byte[] read = QemuSnapshots.read(path, Integer.parseInt((String) listed.get(i).get("id")), dir);
                    int n = Math.min(expected.length, read.length);
                    assertEquals(-1, Arrays.mismatch(expected, 0, n, read, 0, n), "snapshot " + names.get(i));
                }
            } finally {
                deleteFiles();
            }
        }
    }

    @Property(tries = 15)
    void imageAndSnapshotsMatchTheModel(@ForAll("chains") ActionChain<Disk> chain) throws IOException {
        Disk disk = chain.run();
        disk.assertAll();
        disk.finish();
    }

    @Provide
    Arbitrary<ActionChain<Disk>> chains() {
        Arbitrary<CreateOptions> layouts = Combinators.combine(
                Arbitraries.of(512, 4096, 65536),
                Arbitraries.of(4, 16),
                Arbitraries.of(2, 3),
                Arbitraries.of(true, false),
                Arbitraries.integers().between(1, 2048).map(s -> s * 512L))
                .as((cs, rb, v, lazy, size) -> CreateOptions.defaults(size).withClusterSize(cs)
                        .withRefcountBits(v == 2 ? 16 : rb).withVersion(v).withLazyRefcounts(v == 3 && lazy));
        return layouts.flatMap(layout -> ActionChain.startWith(() -> new Disk(layout))
                .withAction(5, GuestModel.writes())
                .withAction(1, GuestModel.discards())
                .withAction(1, GuestModel.zeroes())
                .withAction(3, Action.just(Transformer.mutate("create", SnapshotProperties::create)))
                .withAction(2, new ApplyAction())
                .withAction(2, new DeleteAction())
                .withAction(1, GuestModel.resizes(2048))
                .withAction(1, GuestModel.flushes())
                .withAction(1, GuestModel.reopens())
                .withMaxTransformations(20));
    }

    private static void create(Disk d) {
        io(() -> {
            String name = "s" + d.created++;
            try {
                Snapshots.create(d.img, name);
                d.snapshots.put(name, d.model.clone());
            } catch (RefcountOverflowException e) {
                // 4-bit refcounts count 15 references: the refused snapshot changed nothing.
            }
            d.assertAll();
        });
    }

    static final class ApplyAction implements Action.Dependent<Disk> {
        @Override
        public boolean precondition(Disk d) {
            return !d.snapshots.isEmpty();
        }

        @Override
        public Arbitrary<Transformer<Disk>> transformer(Disk d) {
            return Arbitraries.of(List.copyOf(d.snapshots.keySet())).map(name ->
                    Transformer.mutate("apply " + name, disk -> io(() -> {
                        Snapshots.apply(disk.img, disk.find(name));
                        disk.model = disk.snapshots.get(name).clone();
                        disk.assertAll();
                    })));
        }
    }

    static final class DeleteAction implements Action.Dependent<Disk> {
        @Override
        public boolean precondition(Disk d) {
            return !d.snapshots.isEmpty();
        }

        @Override
        public Arbitrary<Transformer<Disk>> transformer(Disk d) {
            return Arbitraries.of(List.copyOf(d.snapshots.keySet())).map(name ->
                    Transformer.mutate("delete " + name, disk -> io(() -> {
                        Snapshots.delete(disk.img, disk.find(name));
                        disk.snapshots.remove(name);
                        disk.assertAll();
                    })));
        }
    }
}
