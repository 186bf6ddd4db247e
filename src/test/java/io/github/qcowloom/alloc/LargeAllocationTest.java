package io.github.qcowloom.alloc;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Contiguous runs that span many missing refblocks (the cluster pool asks for thousands at once) finish quickly. */
class LargeAllocationTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(ints = {1, 100, 4100, 8192})
    @Timeout(value = 20, unit = TimeUnit.SECONDS)
    void largeRunsOnSmallClusters(int n) throws Exception {
        Path p = dir.resolve("a.qcow2");
        ImageCreator.create(p, CreateOptions.defaults(64 << 20).withClusterSize(512));
        try (Storage s = FileStorage.open(p, false, false)) {
            byte[] c0 = new byte[512];
            s.readFully(ByteBuffer.wrap(c0), 0);
            Header h = Header.parse(c0, s.size());
            RefcountTable t = new RefcountTable(s, h, new TableCache(s, 512, 512));
            long first = t.allocate(n).bytes() >>> 9;
            for (long c = first; c < first + n; c++) {
                assertEquals(1, t.get(new HostCluster(c)));
            }
        }
    }
}
