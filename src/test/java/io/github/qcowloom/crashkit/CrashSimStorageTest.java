package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** Crash states of small hand-made logs. */
class CrashSimStorageTest {
    private static void put(CrashSimStorage s, long at, int value) throws IOException {
        s.write(ByteBuffer.wrap(new byte[] {(byte) value}), at);
    }

    private static Set<String> images(List<CrashState> states) {
        return states.stream().map(st -> java.util.Arrays.toString(st.image())).collect(Collectors.toSet());
    }

    @Test
    void readsSeeIssuedWritesAndStatesKeepFlushedEpochs() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[3]);
        put(s, 0, 1);
        s.flush();
        put(s, 1, 2);
        put(s, 2, 3);
        ByteBuffer b = ByteBuffer.allocate(3);
        s.read(b, 0);
        assertArrayEquals(new byte[] {1, 2, 3}, b.array());
        List<CrashState> states = s.crashStates().toList();
        // Before the flush: [0,0,0], [1,0,0]; after: any subset of the two later writes on [1,0,0].
        assertEquals(Set.of("[0, 0, 0]", "[1, 0, 0]", "[1, 2, 0]", "[1, 0, 3]", "[1, 2, 3]"), images(states));
        assertTrue(states.stream().filter(st -> st.image()[0] == 0).allMatch(st -> st.durableFlushes() == 0));
    }

    @Test
    void aRangedFlushKeepsTheWritesItCoversAndNoOthers() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[2]);
        put(s, 0, 1);
        put(s, 1, 2);
        s.flushRange(0, 1);
        s.write(ByteBuffer.wrap(new byte[] {3, 4}), 0); // half inside the range of the next ranged flush
        s.flushRange(0, 1);
        put(s, 1, 5);
        // Prefixes: [0, 0] [1, 0] [1, 2] [3, 4] [3, 5]. During the first ranged flush, any subset of the two writes
        // before it: [0, 2] too. After it, the write of 1 always survives; the write of 3 and 4 does not count as
        // covered by the second, so it may be lost while the later write of 5 survives: [1, 5].
        assertEquals(Set.of("[0, 0]", "[1, 0]", "[1, 2]", "[3, 4]", "[3, 5]", "[0, 2]", "[1, 5]"),
                images(s.crashStates().toList()));
        // A ranged flush closes no epoch: the guest's flushes count the whole flushes alone.
        assertEquals(0, s.flushCount());
    }

    @Test
    void withFlushesOrderingNothingARangedFlushOrdersNothingEither() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[2]);
        put(s, 0, 1);
        s.flushRange(0, 1);
        put(s, 1, 2);
        assertTrue(images(s.crashStates(CrashOptions.defaults().withFlushesOrder(false)).toList())
                .contains("[0, 2]"), "the covered write may be lost on a disk that orders nothing");
    }

    @Test
    void aFileCutShortAndGrownAgainReadsZeroesInBetween() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[] {1, 2, 3});
        s.setLength(1);
        s.writeZeroes(4, 1);
        put(s, 5, 6);
        // Every subset of the three operations, in order, on [1, 2, 3].
        assertEquals(Set.of("[1, 2, 3]", "[1]", "[1, 2, 3, 0, 0]", "[1, 0, 0, 0, 0]", "[1, 2, 3, 0, 0, 6]",
                "[1, 0, 0, 0, 0, 6]"), images(s.crashStates().toList()));
    }

    @Test
    void processKillKeepsEverything() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[2]);
        put(s, 0, 1);
        put(s, 3, 4);
        List<CrashState> states = s.crashStates(CrashOptions.defaults().withMode(CrashMode.PROCESS_KILL)).toList();
        assertEquals(1, states.size());
        assertArrayEquals(new byte[] {1, 0, 0, 4}, states.get(0).image());
    }

    @Test
    void tornWritesLeaveGarbageOfTheWriteSize() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[8]);
        s.write(ByteBuffer.wrap(new byte[8]), 8);
        List<CrashState> states = s.crashStates(CrashOptions.defaults().withMode(CrashMode.TORN)).toList();
        assertTrue(states.stream().anyMatch(st -> st.image().length == 16 && st.image()[8] != 0
                || st.image().length == 16 && st.image()[9] != 0), "a dropped extending write leaves garbage");
    }

    private static List<CrashState> tornAppends(CrashSimStorage s) {
        return s.crashStates(CrashOptions.defaults().withMode(CrashMode.TORN_APPENDS)).toList();
    }

    private static void fill(CrashSimStorage s, long at, int length, int value) throws IOException {
        byte[] b = new byte[length];
        java.util.Arrays.fill(b, (byte) value);
        s.write(ByteBuffer.wrap(b), at);
    }

    // Torn appends: a write inside the file as of the last flush survives whole or not at all.
    @Test
    void tornAppendsKeepInPlaceWritesSectorAtomic() throws IOException {
        byte[] initial = new byte[8];
        java.util.Arrays.fill(initial, (byte) 5);
        CrashSimStorage s = new CrashSimStorage(initial);
        fill(s, 8, 8, 6);
        s.flush();
        // Both rewrites are in place now: the file had 16 bytes at the flush.
        fill(s, 0, 4, 7);
        fill(s, 10, 4, 8);
        for (CrashState st : tornAppends(s)) {
            if (st.durableFlushes() == 0) {
                continue; // the append itself may be torn
            }
            byte[] b = st.image();
            assertEquals(16, b.length, st.toString());
            for (int i = 0; i < 16; i++) {
                int expectedOld = i < 8 ? 5 : 6;
                int expectedNew = i < 4 ? 7 : i >= 10 && i < 14 ? 8 : expectedOld;
                assertTrue(b[i] == expectedOld || b[i] == expectedNew, st + " byte " + i + " = " + b[i]);
            }
        }
    }

    // A dropped write past the file's size at the last flush leaves garbage; the in-place part of a write that
    // straddles that size keeps the old bytes.
    @Test
    void tornAppendsTearDroppedWritesPastTheFlushedSize() throws IOException {
        byte[] initial = new byte[8];
        java.util.Arrays.fill(initial, (byte) 5);
        CrashSimStorage s = new CrashSimStorage(initial);
        fill(s, 4, 12, 9);
        fill(s, 20, 4, 10);
        List<CrashState> states = tornAppends(s);
        assertTrue(states.stream().anyMatch(st -> st.image().length >= 16 && st.image()[12] != 9
                && st.image()[12] != 0), "a dropped append leaves garbage");
        for (CrashState st : states) {
            byte[] b = st.image();
            for (int i = 4; i < 8; i++) {
                assertTrue(b[i] == 5 || b[i] == 9, st + " byte " + i + " = " + b[i]);
            }
        }
    }

    // Space a kept write extends the file over without writing it reads as zeros.
    @Test
    void tornAppendsLeaveGapsZero() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[8]);
        fill(s, 16, 4, 3);
        for (CrashState st : tornAppends(s)) {
            byte[] b = st.image();
            if (b.length == 20 && b[16] == 3) {
                for (int i = 8; i < 16; i++) {
                    assertEquals(0, b[i], st + " byte " + i);
                }
            }
        }
    }

    @Test
    void largeEpochsGetPairsAndRandomSubsets() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[0]);
        for (int i = 0; i < 12; i++) {
            s.write(ByteBuffer.wrap(new byte[] {(byte) (i + 1)}), i);
        }
        long n = s.crashStates(CrashOptions.defaults().withRandomSubsets(0)).count();
        // Prefixes (13) and subsets of at most 2 (1 + 12 + 66) overlap in the empty set, {0} and {0,1}.
        assertEquals(13 + 1 + 12 + 66 - 3, n);
        assertTrue(s.crashStates().count() > n);
    }

    @Test
    void flushesThatOrderNothingLetLaterWritesSurviveAlone() throws IOException {
        CrashSimStorage s = new CrashSimStorage(new byte[2]);
        put(s, 0, 1);
        s.flush();
        put(s, 1, 2);
        List<CrashState> states = s.crashStates(CrashOptions.defaults().withFlushesOrder(false)).toList();
        assertTrue(images(states).contains("[0, 2]"));
        assertTrue(states.stream().anyMatch(st -> st.image()[0] == 0 && st.durableFlushes() == 1));
    }
}
