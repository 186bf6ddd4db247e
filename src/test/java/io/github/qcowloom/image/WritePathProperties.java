package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.testing.GuestModel;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
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
import net.jqwik.api.state.ActionChain;

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

    /** The image under test and the model of what the guest must see; each step reads back what it changed. */
    static final class Disk extends GuestModel {
        Disk(CreateOptions layout) {
            super("wpp", layout);
        }

        @Override
        protected void afterChange(long off, long len) throws IOException {
            assertRange(off, (int) len);
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
                deleteFiles();
            }
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
                .withAction(6, GuestModel.writes())
                .withAction(2, GuestModel.discards())
                .withAction(2, GuestModel.zeroes())
                .withAction(1, GuestModel.flushes())
                .withAction(1, GuestModel.resizes(4096))
                .withAction(1, GuestModel.reopens())
                .withMaxTransformations(25));
    }
}
