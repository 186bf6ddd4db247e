package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

class BufferedFileStorageTest extends FileStorageContract {
    @Override
    protected boolean direct() {
        return false;
    }

    @Test
    void theFileChannelsRangedSyncIsTheJava22LayersOnThisJdk() {
        // On Java 22+ a silent fallback to the whole file's sync would pass every other test, only slower.
        assertNull(ReopeningChannel.rangedSyncMissing());
    }
}
