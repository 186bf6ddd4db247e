package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Profiles;
import io.github.qcowloom.api.StorageBackend;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Properties;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StorageBackendTest {
    @TempDir
    Path dir;

    @Test
    void autoRunsIoUringWithODirectAndFileChannelThroughThePageCache() throws IOException {
        try (FileStorage direct = FileStorage.create(dir.resolve("d"), true, StorageBackend.AUTO);
                FileStorage buffered = FileStorage.create(dir.resolve("b"), false, StorageBackend.AUTO)) {
            assertEquals(StorageBackend.IO_URING, direct.backend());
            assertEquals(StorageBackend.FILECHANNEL, buffered.backend());
        }
        assertEquals(StorageBackend.AUTO, OpenOptions.readWriteDefaults().tuning().storage());
    }

    @Test
    void theProfileKeyParsesEveryBackendAndRefusesOthers() {
        for (StorageBackend b : StorageBackend.values()) {
            Properties p = new Properties();
            p.setProperty("storage", b.key());
            assertEquals(b, Profiles.apply(p, OpenOptions.readWriteDefaults()).tuning().storage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> StorageBackend.parse("aio"));
        assertEquals("storage must be 'auto', 'io_uring' or 'filechannel', not 'aio'", e.getMessage());
    }
}
