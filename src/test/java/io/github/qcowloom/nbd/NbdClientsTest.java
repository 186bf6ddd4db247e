package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

/** The server with real clients: qemu-io, qemu-img, nbdinfo, nbdcopy and fio; the image checks clean after each. */
class NbdClientsTest {
    @TempDir
    Path dir;

    private Path image() {
        Path img = dir.resolve("disk.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "64M");
        return img;
    }

    private Path sock() {
        return dir.resolve("nbd.sock");
    }

    @Test
    void qemuIoWritesReadsFlushesZeroesAndDiscards() throws IOException {
        Qemu.assume();
        Path img = image();
        try (Served s = Served.start(img, sock(), false, ExecutionModel.VIRTUAL)) {
            qemuIo(s.uri(), "write -P 0xab 0 1M", "write -P 0xcd 3M 192k", "flush",
                    "read -P 0xab 0 1M", "write -z 512k 64k", "read -P 0 512k 64k", "discard 3136k 64k",
                    "read -P 0xcd 3M 64k", "read -P 0xcd 3200k 64k", "write -P 0x11 10M 4k", "read -P 0x11 10M 4k");
        }
        Qemu.io(img, "read -P 0xab 0 512k", "read -P 0 512k 64k", "read -P 0xab 576k 448k", "read -P 0xcd 3M 64k",
                "read -P 0xcd 3200k 64k", "read -P 0x11 10M 4k");
    }

    /** qemu-io on an NBD URI, failing on any failed command or pattern mismatch. */
    private static void qemuIo(String uri, String... commands) {
        List<String> cmd = new java.util.ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(uri);
        String out = Qemu.run(cmd);
        assertTrue(!out.contains("failed") && !out.contains("Pattern verification failed"), out);
    }

    @Test
    void qemuImgConvertsAndNbdinfoListsAndMaps() throws IOException {
        Qemu.assumeTool("nbdinfo", "libnbd-bin");
        Path img = image();
        Qemu.io(img, "write -P 0x5a 1M 2M", "write -P 0x77 40M 64k");
        Path out = dir.resolve("out.raw");
        try (Served s = Served.start(img, sock(), true, ExecutionModel.VIRTUAL)) {
            Qemu.img("convert", "-f", "raw", "-O", "raw", s.uri(), out.toString());
            Qemu.img("compare", "-f", "qcow2", "-F", "raw", img.toString(), out.toString());
            String info = Qemu.run(List.of("nbdinfo", s.uri()));
            assertTrue(info.contains("67108864"), info);
            assertTrue(info.contains("is_read_only: true"), info);
            // qemu-nbd -r's flags: cache, no trims nor zero writes (ours, with its default -e 4, adds multi-conn)
            for (String flag : List.of("can_cache: true", "can_fast_zero: false", "can_trim: false",
                    "can_zero: false")) {
                assertTrue(info.contains(flag), flag + " in " + info);
            }
            String list = Qemu.run(List.of("nbdinfo", "--list", s.uri()));
            assertTrue(list.contains("export=\"\":"), list); // qemu-nbd's default name
            String map = Qemu.run(List.of("nbdinfo", "--map", s.uri()));
            assertTrue(map.contains("data") && map.contains("hole,zero"), map);
            assertTrue(map.lines().anyMatch(l -> l.trim().startsWith("1048576") && l.contains("2097152")
                    && l.contains("data")), map);
        }
    }

    @Test
    void nbdcopyIntoAndOutOfTheExport() throws IOException {
        Qemu.assumeTool("nbdcopy", "libnbd-bin");
        Path img = image();
        byte[] data = new byte[64 << 20];
        Random rnd = new Random(7);
        for (int off = 0; off < data.length; off += 1 << 20) {
            if ((off >> 20) % 3 != 1) {
                byte[] chunk = new byte[1 << 20];
                rnd.nextBytes(chunk);
                System.arraycopy(chunk, 0, data, off, chunk.length);
            }
        }
        Path in = dir.resolve("in.raw");
        Files.write(in, data);
        try (Served s = Served.start(img, sock(), false, ExecutionModel.VIRTUAL)) {
            Qemu.run(List.of("nbdcopy", in.toString(), s.uri()));
        }
        Qemu.img("compare", "-f", "qcow2", "-F", "raw", img.toString(), in.toString());
        Path out = dir.resolve("out.raw");
        try (Served s = Served.start(img, sock(), false, ExecutionModel.parse("pool:4"))) {
            Qemu.run(List.of("nbdcopy", s.uri(), out.toString()));
        }
        Qemu.img("compare", "-f", "raw", "-F", "raw", in.toString(), out.toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"virtual", "loop:2"})
    void fioRandomReadWriteVerifies(String model) throws IOException {
        Qemu.assumeTool("fio", "fio");
        Path img = image();
        assertEquals(ExecutionModel.parse(model), ExecutionModel.parse(model).effective(), "the model runs here");
        try (Served s = Served.start(img, sock(), false, ExecutionModel.parse(model))) {
            Qemu.Result r = Qemu.exec(List.of("fio", "--name=nbd", "--ioengine=nbd", "--uri=" + s.uri(),
                    "--rw=randrw", "--bs=4k", "--iodepth=16", "--size=16M", "--runtime=5", "--verify=crc32c"),
                    img.getParent()); // fio leaves its verify state file in the working directory
            assertEquals(0, r.exitCode(), r.stdout() + r.stderr());
        }
    }
}
