package io.github.qcowloom.storage;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;
import java.util.OptionalLong;

/**
 * The bytes a host file occupies on its file system (st_blocks × 512: qemu-img's "disk size", QEMU's
 * bdrv_get_allocated_file_size), which Java's file attributes leave out. The jar's Java 22+ layer asks statx(2);
 * on Java 21 there is no answer here. A symbolic link is followed.
 */
public final class AllocatedBytes {
    /** The statx call, or why there is none. */
    public static final Java22Method STATX = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.os.FileBlocks", "allocatedBytes", MethodType.methodType(long.class, Path.class),
            "statx");

    private AllocatedBytes() {
    }

    /** The bytes {@code file} occupies, or nothing where statx cannot be asked or fails. */
    public static OptionalLong of(Path file) {
        if (STATX.handle() != null) {
            try {
                return OptionalLong.of((long) STATX.handle().invokeExact(file));
            } catch (Throwable e) {
                // an IOException (a file system without block counts, no such file), or native access denied
            }
        }
        return OptionalLong.empty();
    }
}
