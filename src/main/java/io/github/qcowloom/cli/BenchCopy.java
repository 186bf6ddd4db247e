package io.github.qcowloom.cli;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The copy of the image each timed run of {@code bench} starts from, rewritten in place rather than made anew.
 *
 * <p>Why in place: on a virtual disk the host answers each file at its own speed (on this project's VM one fresh copy
 * of the same image took 72-92k O_DIRECT overwrites a second, another 113-152k, for minutes on end), and a file
 * made anew lands somewhere else each time. Rewritten over its own blocks (a file system without copy-on-write
 * writes them where they are), the copy keeps its place, so that the runs of a call, ours and qemu-img's alike, are
 * compared on the same blocks rather than on whichever the host gave each.
 */
final class BenchCopy {
    private BenchCopy() {
    }

    /** Makes {@code copy} hold exactly {@code source}'s bytes, over its own blocks where it has them. */
    static void restore(Path source, Path copy) throws IOException {
        try (FileChannel in = FileChannel.open(source, StandardOpenOption.READ);
                FileChannel out = FileChannel.open(copy, StandardOpenOption.WRITE, StandardOpenOption.CREATE)) {
            long size = in.size();
            long at = 0;
            while (at < size) {
                at += in.transferTo(at, size - at, out.position(at));
            }
            out.truncate(size);
        }
    }
}
