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

    /** qemu-img's commands this tool lacks are refused by name, as a feature not done, not as unknown words. */
    @Test
    void qemuImgCommandsNotImplementedSaySo() {
        for (String command : new String[] {"bitmap"}) {
            Cli.Run r = Cli.ours(command, "x.qcow2");
            assertEquals(1, r.code(), command);
            assertEquals("qcow2-loom: Unsupported feature: qemu-img " + command + " (the commands here: amend, create, "
                    + "info, check, commit, convert, dd, compare, map, measure, rebase, resize, snapshot, bench, serve, "
                    + "demo)\n", r.err(), command);
        }
    }
}
