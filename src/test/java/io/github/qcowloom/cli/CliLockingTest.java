package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.testing.LockHolder;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Image locking against real QEMU processes, both ways: each of our commands against a running qemu-nbd, qemu-io
 * and qemu-storage-daemon, and QEMU's tools against an image our library (or our serve) holds. Where QEMU's tools
 * refuse each other, ours must refuse with qemu-img's words; where they share (two readers, -U), ours share.
 */
class CliLockingTest {
    private static final String WRITE_LOCKED = "Failed to get \"write\" lock";
    private static final String SHARED_WRITE_LOCKED = "Failed to get shared \"write\" lock";

    @TempDir
    Path dir;
    Path image;
    String name;

    @BeforeEach
    void setUp() {
        Qemu.assume();
        image = dir.resolve("a.qcow2");
        name = image.toString();
        Qemu.img("create", "-f", "qcow2", name, "4M");
    }

    private LockHolder qemuNbd(boolean readOnly) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("qemu-nbd", "-t", "-k", dir.resolve("nbd.sock").toString(),
                "-f", "qcow2"));
        if (readOnly) {
            cmd.add("-r");
        }
        cmd.add(name);
        List<String> holds = readOnly ? LockHolder.READER : LockHolder.WRITER;
        return LockHolder.start(image, holds, cmd.toArray(String[]::new));
    }

    /** Our command must fail as qemu-img does against this holder: exit 1 and qemu-img's two lines. */
    private static void refused(String expected, String file, String... args) {
        Cli.Run r = Cli.ours(args);
        assertEquals(1, r.code(), List.of(args) + " should be refused: " + r.out() + r.err());
        assertTrue(r.err().contains(expected + "\nIs another process using the image [" + file + "]?"),
                List.of(args) + ": " + r.err());
    }

    @Test
    void ourCommandsAgainstARunningQemuNbdWriter() throws Exception {
        try (LockHolder nbd = qemuNbd(false)) {
            // The same refusals qemu-img gives, word for word but for the program's name.
            Qemu.Result q = Qemu.exec(List.of("qemu-img", "info", name));
            assertEquals(1, q.exitCode());
            Cli.Run ours = Cli.ours("info", name);
            assertEquals(q.stderr().replace("qemu-img: ", "qcow2-loom: "), ours.err());

            refused(SHARED_WRITE_LOCKED, name, "check", name);
            refused(SHARED_WRITE_LOCKED, name, "map", name);
            refused(SHARED_WRITE_LOCKED, name, "snapshot", "-l", name);
            refused(SHARED_WRITE_LOCKED, name, "convert", "-O", "qcow2", name, dir.resolve("o.qcow2").toString());
            refused(SHARED_WRITE_LOCKED, name, "bench", "-c", "1", name);
            refused(WRITE_LOCKED, name, "resize", name, "8M");
            refused(WRITE_LOCKED, name, "snapshot", "-c", "s1", name);
            refused(WRITE_LOCKED, name, "check", "-r", "all", name);
            refused(WRITE_LOCKED, name, "create", "-f", "qcow2", name, "1M");
            // convert builds its target beside it and renames it over: the held target is refused, not replaced.
            String other = dir.resolve("other.qcow2").toString();
            Qemu.img("create", "-q", "-f", "qcow2", other, "1M");
            refused(WRITE_LOCKED, name, "convert", "-O", "qcow2", other, name);
            refused(WRITE_LOCKED, name, "serve", "--socket", dir.resolve("ours.sock").toString(), name);
            refused(SHARED_WRITE_LOCKED, name, "serve", "--read-only", "--socket", dir.resolve("ours.sock").toString(),
                    name);

            // -U shares with the writer, as qemu-img's -U does.
            Cli.succeeding("info", "-U", name);
            Cli.succeeding("check", "-U", name);
            Cli.succeeding("map", "-U", name);
            Cli.succeeding("snapshot", "-l", "-U", name);
            Cli.succeeding("convert", "-U", "-O", "qcow2", name, dir.resolve("o.qcow2").toString());
            assertEquals(1, Cli.ours("check", "-U", "-r", "all", name).code());
        }
        // Nothing was changed while it was refused; once qemu-nbd is gone everything works again.
        Cli.succeeding("resize", name, "8M");
        Qemu.run(List.of("qemu-img", "check", name));
    }

    @Test
    void readersShareWithQemuNbdReadOnlyWritersDoNot() throws Exception {
        try (LockHolder nbd = qemuNbd(true)) {
            Cli.succeeding("info", name);
            Cli.succeeding("check", name);
            Cli.succeeding("map", name);
            Cli.succeeding("snapshot", "-l", name);
            Cli.succeeding("convert", "-O", "qcow2", name, dir.resolve("o.qcow2").toString());
            refused(WRITE_LOCKED, name, "resize", name, "8M");
            refused(WRITE_LOCKED, name, "snapshot", "-c", "s1", name);
            refused(WRITE_LOCKED, name, "check", "-r", "leaks", name);
            refused(WRITE_LOCKED, name, "bench", "-w", "-c", "1", name);
        }
    }

    @Test
    void ourCommandsAgainstQemuIoAndTheStorageDaemon() throws Exception {
        try (LockHolder io = LockHolder.start(image, LockHolder.WRITER, "qemu-io", "-f", "qcow2", name)) {
            refused(WRITE_LOCKED, name, "resize", name, "8M");
            refused(SHARED_WRITE_LOCKED, name, "info", name);
            Cli.succeeding("info", "-U", name);
        }
        try (LockHolder io = LockHolder.start(image, LockHolder.READER, "qemu-io", "-r", "-f", "qcow2", name)) {
            Cli.succeeding("check", name);
            refused(WRITE_LOCKED, name, "resize", name, "8M");
        }
        String blockdev = "driver=qcow2,node-name=disk,file.driver=file,file.filename=" + name;
        try (LockHolder qsd = LockHolder.start(image, LockHolder.WRITER, "qemu-storage-daemon",
                "--blockdev", blockdev,
                "--nbd-server", "addr.type=unix,addr.path=" + dir.resolve("qsd.sock"),
                "--export", "type=nbd,id=e0,node-name=disk,writable=on")) {
            refused(WRITE_LOCKED, name, "resize", name, "8M");
            refused(SHARED_WRITE_LOCKED, name, "check", name);
            Cli.succeeding("check", "-U", name);
        }
    }

    @Test
    void qemuToolsAgainstAnImageOurLibraryHoldsReadWrite() throws Exception {
        try (BlockDevice held = ImageFormat.open(image, "qcow2", OpenOptions.readWriteDefaults())) {
            // The very bytes qemu-nbd holds on a read-write export.
            assertEquals(List.of("OFDLCK READ 100-101", "OFDLCK READ 103-103", "OFDLCK READ 201-201",
                    "OFDLCK READ 203-203"), LockHolder.allLockBytes(image));
            Qemu.Result write = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", "write 0 4k", name));
            assertNotEquals(0, write.exitCode());
            assertEquals("qemu-io: can't open device " + name + ": " + WRITE_LOCKED
                    + "\nIs another process using the image [" + name + "]?\n", write.stderr());
            Qemu.Result resize = Qemu.exec(List.of("qemu-img", "resize", name, "8M"));
            assertTrue(resize.stderr().contains(WRITE_LOCKED), resize.stderr());
            Qemu.Result info = Qemu.exec(List.of("qemu-img", "info", name));
            assertTrue(info.stderr().contains(SHARED_WRITE_LOCKED), info.stderr());
            Qemu.run(List.of("qemu-img", "info", "-U", name));
            Qemu.Result nbd = Qemu.exec(List.of("qemu-nbd", "-r", "-k", dir.resolve("n.sock").toString(), name));
            assertTrue(nbd.stderr().contains(SHARED_WRITE_LOCKED), nbd.stderr());
            // A second open in this process is another open file description: refused too, as QEMU would.
            ImageLockedException again = org.junit.jupiter.api.Assertions.assertThrows(ImageLockedException.class,
                    () -> ImageFormat.open(image, "qcow2", OpenOptions.readOnlyDefaults()).close());
            assertEquals("Could not open '" + name + "': " + SHARED_WRITE_LOCKED
                    + "\nIs another process using the image [" + name + "]?", again.getMessage());
        }
        assertEquals(List.of(), LockHolder.allLockBytes(image));
        assertEquals("4 MiB", Qemu.img("info", name).lines().filter(l -> l.startsWith("virtual size"))
                .findFirst().orElseThrow().replaceAll("virtual size: (\\S+ \\S+).*", "$1"));
    }

    @Test
    void qemuToolsShareAnImageOurLibraryHoldsReadOnly() throws Exception {
        try (BlockDevice held = ImageFormat.open(image, "qcow2", OpenOptions.readOnlyDefaults())) {
            assertEquals(List.of("OFDLCK READ 100-100", "OFDLCK READ 201-201", "OFDLCK READ 203-203"),
                    LockHolder.allLockBytes(image));
            Qemu.run(List.of("qemu-img", "info", name));
            Qemu.run(List.of("qemu-img", "check", name));
            Qemu.run(List.of("qemu-io", "-r", "-f", "qcow2", "-c", "read 0 4k", name));
            Qemu.Result write = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", "write 0 4k", name));
            assertTrue(write.stderr().contains(WRITE_LOCKED), write.stderr());
            // Two readers in this process share, as two qemu-img readers do.
            try (BlockDevice second = ImageFormat.open(image, "qcow2", OpenOptions.readOnlyDefaults())) {
                assertEquals(held.size(), second.size());
            }
        }
    }

    @Test
    void backingAndDataFilesAreHeldAsQemuHoldsThem() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-f", "qcow2", base.toString(), "4M");
        Qemu.img("create", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString());
        try (BlockDevice held = ImageFormat.open(top, "qcow2", OpenOptions.readWriteDefaults())) {
            assertEquals(List.of("OFDLCK READ 100-100", "OFDLCK READ 201-201", "OFDLCK READ 203-203"),
                    LockHolder.allLockBytes(base));
            Qemu.Result commit = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", "write 0 4k", base.toString()));
            assertTrue(commit.stderr().contains(WRITE_LOCKED), commit.stderr());
            Qemu.run(List.of("qemu-img", "check", base.toString()));
        }
        try (LockHolder io = LockHolder.start(base, LockHolder.WRITER, "qemu-io", "-f", "qcow2", base.toString())) {
            Qemu.Result q = Qemu.exec(List.of("qemu-img", "map", top.toString()));
            Cli.Run ours = Cli.ours("map", top.toString());
            assertEquals(1, ours.code());
            assertEquals(q.stderr().replace("qemu-img: ", "qcow2-loom: "), ours.err());
            Cli.succeeding("map", "-U", top.toString());
            // check reads the top image alone but, as qemu-img check opens the chain, holds the base too.
            Qemu.Result qc = Qemu.exec(List.of("qemu-img", "check", top.toString()));
            Cli.Run oursCheck = Cli.ours("check", top.toString());
            assertEquals(qc.exitCode(), oursCheck.code(), oursCheck.err());
            assertEquals(qc.stderr().replace("qemu-img: ", "qcow2-loom: "), oursCheck.err());
            Cli.succeeding("check", "-U", top.toString());
            assertNotEquals(0, Cli.ours("check", "-r", "leaks", top.toString()).code());
            // snapshot reads no backing data, but holds the chain as qemu-img snapshot's open does.
            for (String[] args : new String[][] {{"-l"}, {"-c", "s1"}}) {
                List<String> cmd = new ArrayList<>(List.of("qemu-img", "snapshot"));
                cmd.addAll(List.of(args));
                cmd.add(top.toString());
                Qemu.Result qs = Qemu.exec(cmd);
                List<String> oursArgs = new ArrayList<>(List.of("snapshot"));
                oursArgs.addAll(List.of(args));
                oursArgs.add(top.toString());
                Cli.Run oursSnapshot = Cli.ours(oursArgs.toArray(String[]::new));
                assertEquals(1, oursSnapshot.code(), oursSnapshot.err());
                assertEquals(qs.stderr().replace("qemu-img: ", "qcow2-loom: "), oursSnapshot.err());
            }
        }
        Path withData = dir.resolve("d.qcow2");
        Path data = dir.resolve("d.raw");
        Qemu.img("create", "-f", "qcow2", "-o", "data_file=" + data, withData.toString(), "4M");
        try (BlockDevice held = ImageFormat.open(withData, "qcow2", OpenOptions.readWriteDefaults())) {
            // QEMU shares writes to a data file and refuses only resizes.
            assertEquals(List.of("OFDLCK READ 100-101", "OFDLCK READ 103-103", "OFDLCK READ 203-203"),
                    LockHolder.allLockBytes(data));
            Qemu.Result resize = Qemu.exec(List.of("qemu-img", "resize", "-f", "raw", data.toString(), "8M"));
            assertNotEquals(0, resize.exitCode(), resize.stdout());
        }
        List<String> rawWriter = List.of("OFDLCK READ 100-101");
        try (LockHolder io = LockHolder.start(data, rawWriter, "qemu-io", "-f", "raw", data.toString())) {
            // A writer of the data file: check and map share with it, convert's source does not, in both tools.
            String out = dir.resolve("out.raw").toString();
            for (String command : List.of("check", "map")) {
                Qemu.run(List.of("qemu-img", command, withData.toString()));
                Cli.succeeding(command, withData.toString());
            }
            Qemu.Result q = Qemu.exec(List.of("qemu-img", "convert", "-O", "raw", withData.toString(), out));
            Cli.Run ours = Cli.ours("convert", "-O", "raw", withData.toString(), out);
            assertEquals(1, q.exitCode(), q.stderr());
            assertEquals(1, ours.code(), ours.err());
            assertEquals(q.stderr().replace("qemu-img: ", "qcow2-loom: "), ours.err());
            Cli.succeeding("convert", "-U", "-O", "raw", withData.toString(), out);
        }
        try (BlockDevice src = ImageFormat.open(withData, "qcow2",
                OpenOptions.readOnlyDefaults().withLocking(ImageLocking.STILL_SOURCE))) {
            // As qemu-img convert's source holds it (its /proc/locks): consistent read, no writes or resizes.
            assertEquals(List.of("OFDLCK READ 100-100", "OFDLCK READ 201-201", "OFDLCK READ 203-203"),
                    LockHolder.allLockBytes(data));
        }
    }

    @Test
    void ourTwoProcessesRefuseEachOther() throws Exception {
        String java = ProcessHandle.current().info().command().orElseThrow();
        try (LockHolder serve = LockHolder.start(image, LockHolder.WRITER, java, "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName(), "serve", "--socket",
                dir.resolve("ours.sock").toString(), name)) {
            refused(WRITE_LOCKED, name, "resize", name, "8M");
            refused(SHARED_WRITE_LOCKED, name, "info", name);
            Cli.succeeding("info", "-U", name);
            Qemu.Result io = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", "write 0 4k", name));
            assertTrue(io.stderr().contains(WRITE_LOCKED), io.stderr());
        }
        assertFalse(Files.exists(dir.resolve("o.qcow2")));
        Cli.succeeding("resize", name, "8M");
    }
}
