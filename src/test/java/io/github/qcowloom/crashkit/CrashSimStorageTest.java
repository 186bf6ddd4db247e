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
