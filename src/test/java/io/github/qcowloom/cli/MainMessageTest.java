package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import org.junit.jupiter.api.Test;

/** The one line a failed command prints: the file and the reason, as qemu-img prints them. */
class MainMessageTest {
    @Test
    void aFileTheUserMayNotOpenSaysSo() {
        // The JDK's message for it is the bare file name.
        assertEquals("Could not open 'ro.qcow2': Permission denied",
                Main.message(new AccessDeniedException("ro.qcow2")));
        assertEquals("x: some reason", Main.message(new AccessDeniedException("x", null, "some reason")));
        assertEquals("Could not open 'gone.qcow2': No such file or directory",
                Main.message(new NoSuchFileException("gone.qcow2")));
    }
}
