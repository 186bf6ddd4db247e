package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** bench's copy is rewritten in place: the same file (and so the same blocks) with the source's bytes only. */
class BenchCopyTest {
    @TempDir
    Path dir;

    @Test
    void theCopyIsRewrittenInPlaceWithTheSourcesBytes() throws Exception {
        Random random = new Random(7);
        byte[] source = new byte[300_000];
        random.nextBytes(source);
        byte[] older = new byte[700_000]; // a longer copy left by an allocating run
        random.nextBytes(older);
        Path src = Files.write(dir.resolve("image"), source);
        Path copy = Files.write(dir.resolve("image.bench-copy"), older);
        try (FileChannel before = FileChannel.open(copy)) {
            BenchCopy.restore(src, copy);
            assertArrayEquals(source, Files.readAllBytes(copy));
            // The file opened before is the one rewritten (a copy made anew would leave it the old, deleted bytes).
            assertEquals(source.length, before.size());
            ByteBuffer seen = ByteBuffer.allocate(source.length);
            while (seen.hasRemaining() && before.read(seen, seen.position()) > 0) {
                // reads to the end
            }
            assertArrayEquals(source, seen.array());
        }
        Files.delete(copy);
        BenchCopy.restore(src, copy); // none yet: made
        assertArrayEquals(source, Files.readAllBytes(copy));
    }
}
