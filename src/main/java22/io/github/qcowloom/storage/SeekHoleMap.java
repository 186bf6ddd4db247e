package io.github.qcowloom.storage;

import io.github.qcowloom.os.FileSeek;
import io.github.qcowloom.os.NativeFile;
import java.io.IOException;
import java.nio.file.Path;

/** {@link HoleMap} through lseek SEEK_DATA/SEEK_HOLE on a read-only descriptor of its own. */
final class SeekHoleMap implements HoleMap {
    private final NativeFile file;

    private SeekHoleMap(NativeFile file) {
        this.file = file;
    }

    /** Loaded reflectively by {@link HoleMap#open}. */
    static HoleMap open(Path path) throws IOException {
        return new SeekHoleMap(NativeFile.open(path, false, false));
    }

    @Override
    public long nextData(long offset) throws IOException {
        return FileSeek.data(file.fd(), offset);
    }

    @Override
    public long nextHole(long offset) throws IOException {
        return FileSeek.hole(file.fd(), offset);
    }

    @Override
    public void close() {
        file.close();
    }
}
