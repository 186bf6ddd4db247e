package io.github.qcowloom.storage;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;

/** The door to {@link HoleMap}'s implementation in the jar's Java 22+ layer ({@code SeekHoleMap}), found once. */
final class SeekHoleSupport {
    static final Java22Method OPEN = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.storage.SeekHoleMap", "open", MethodType.methodType(HoleMap.class, Path.class),
            "SEEK_DATA/SEEK_HOLE");

    private SeekHoleSupport() {
    }
}
