package io.github.qcowloom.testing;

import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Tests that drop a file's pages from the page cache. */
public final class PageCacheDrops {
    private PageCacheDrops() {
    }

    /**
     * Skips the test where {@code dir}'s files cannot leave the page cache: on tmpfs their pages are the file itself,
     * and POSIX_FADV_DONTNEED leaves them.
     */
    public static void assumeDroppable(Path dir) throws IOException {
        assumeFalse("tmpfs".equals(Files.getFileStore(dir).type()), "tmpfs pages cannot be dropped from the cache");
    }
}
