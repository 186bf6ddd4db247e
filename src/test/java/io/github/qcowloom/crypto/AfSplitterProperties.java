package io.github.qcowloom.crypto;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Arrays;
import net.jqwik.api.Assume;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/** Any split joins back, and the split is all-or-nothing: change any byte of any stripe and the key is lost. */
class AfSplitterProperties {
    /** At least 16 bytes: a part of a block keeps only as many bytes of its hash, and one byte collides often. */
    @Property(tries = 200)
    void decodeUndoesEncodeAndEveryByteCounts(@ForAll LuksHash hash, @ForAll @IntRange(min = 16, max = 100) int length,
            @ForAll @IntRange(min = 1, max = 50) int stripes, @ForAll @IntRange(min = 0) int where) {
        Assume.that(hash.implemented());
        byte[] in = LuksFixtures.random(length);
        byte[] split = AfSplitter.encode(hash, length, stripes, in, LuksFixtures.RANDOM);
        assertArrayEquals(in, AfSplitter.decode(hash, length, stripes, split));
        split[where % split.length] ^= 1;
        assertFalse(Arrays.equals(in, AfSplitter.decode(hash, length, stripes, split)),
                "byte " + where % split.length + " changed");
    }
}
