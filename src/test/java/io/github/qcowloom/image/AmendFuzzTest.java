package io.github.qcowloom.image;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.qcowloom.fuzz.FuzzImage;
import io.github.qcowloom.fuzz.SeedImages;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import org.junit.jupiter.api.BeforeAll;

/**
 * Fuzz targets for amend's two rewrites of an image's tables, on the fuzzer's bytes as the whole image file (see
 * {@link FuzzImage} for what may end a run): a refcount width change and a downgrade's expansion of zero clusters
 * with its version 2 header. Both walk tables a hostile image may make huge, shared or circular; they must end in a
 * typed error or a result, in bounded time and memory. A plain test run replays the qemu-img seeds and the inputs
 * kept under src/test/resources/.../AmendFuzzTestInputs/TARGET; {@code ./mvnw test -Pfuzz
 * -Dfuzz.class=AmendFuzzTest -Dfuzz.target=downgrade} fuzzes one.
 */
class AmendFuzzTest {
    @BeforeAll
    static void seeds() {
        SeedImages.layOut(AmendFuzzTest.class, "refcountWidth", "downgrade");
    }

    /** qemu-img amend -o refcount_bits=8 (and back to 16, on what the first made). */
    @FuzzTest
    void refcountWidth(byte[] data) throws IOException {
        try {
            Storage file = FuzzImage.writable(data);
            RefcountWidthChange.apply(file, 8, done -> { });
            RefcountWidthChange.apply(file, 16, done -> { });
        } catch (IOException e) {
            FuzzImage.expected(e);
        }
    }

    /** qemu-img amend -o compat=0.10, past the bitmaps' removal (which the other targets' open covers). */
    @FuzzTest
    void downgrade(byte[] data) throws IOException {
        try {
            Storage file = FuzzImage.writable(data);
            VersionDowngrade.expandZeroClusters(file, done -> { });
            VersionDowngrade.writeVersion2Header(file);
        } catch (IOException e) {
            FuzzImage.expected(e);
        }
    }
}
