package io.github.qcowloom.cli;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/** A CLI test that compares with QEMU's tools (skipped where they are missing), in a fresh folder per test. */
abstract class QemuFolderTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** The path of {@code name} in the test's folder, as a command line takes it. */
    String path(String name) {
        return dir.resolve(name).toString();
    }
}
