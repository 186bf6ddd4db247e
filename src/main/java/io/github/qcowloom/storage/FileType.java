package io.github.qcowloom.storage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/** The type of a file, from the type bits of its st_mode (stat(2), links followed). */
public enum FileType {
    REGULAR, DIRECTORY, CHARACTER_DEVICE, BLOCK_DEVICE, FIFO, SOCKET, OTHER;

    private static final int S_IFMT = 0170000;

    /**
     * The type of the file at {@code path}; empty where it is not there, or where the platform shows no POSIX mode
     * (the caller's open then decides).
     */
    public static Optional<FileType> of(Path path) {
        int mode;
        try {
            mode = (Integer) Files.getAttribute(path, "unix:mode");
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return Optional.empty();
        }
        return Optional.of(switch (mode & S_IFMT) {
            case 0100000 -> REGULAR;
            case 0040000 -> DIRECTORY;
            case 0020000 -> CHARACTER_DEVICE;
            case 0060000 -> BLOCK_DEVICE;
            case 0010000 -> FIFO;
            case 0140000 -> SOCKET;
            default -> OTHER;
        });
    }

    /** Whether this is a character or a block device. */
    public boolean device() {
        return this == CHARACTER_DEVICE || this == BLOCK_DEVICE;
    }
}
