package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * base:allocation answered from metadata: nbdinfo --map (many extents per reply) and qemu-img map over NBD (one
 * extent per request, NBD_CMD_FLAG_REQ_ONE) see the same extents from our server as from qemu-nbd on the same image.
 */
class NbdBlockStatusTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needTools() {
        Qemu.assumeTool("nbdinfo", "libnbd-bin");
        Qemu.assumeTool("qemu-nbd", "qemu-utils");
    }

    private Path qcow2(String name, String... createArgs) {
        Path img = dir.resolve(name);
        List<String> args = new java.util.ArrayList<>(List.of("create", "-q", "-f", "qcow2"));
        args.addAll(List.of(createArgs));
        args.add(img.toString());
        args.add("8M");
        Qemu.img(args.toArray(String[]::new));
        return img;
    }

    @Test
    void dataZeroAndUnallocatedClusters() throws IOException {
        Path img = qcow2("part.qcow2");
        Qemu.io(img, "write -P 1 0 64k", "write -P 4 2M 256k", "write -z 2176k 64k", "write -z -u 2048k 64k",
                "write -z 4M 128k", "write -P 5 6M 8k", "discard 6M 64k", "write -P 6 7M 1M");
        assertSameExtentsAsQemuNbd(img);
    }

    @Test
    void extendedL2OverABackingChain() throws IOException {
        Path base = qcow2("base.qcow2", "-o", "extended_l2=on");
        Qemu.io(base, "write -P 1 0 4k", "write -P 2 8k 2k", "write -z 16k 2k", "write -P 3 64k 64k",
                "write -P 6 2M 64k", "write -z 2M 4k");
        Path top = qcow2("top.qcow2", "-o", "extended_l2=on", "-b", base.toString(), "-F", "qcow2");
        Qemu.io(top, "write -P 7 6k 4k", "write -P 8 2M 2k", "write -z 3M 32k", "write -P 9 5M 64k");
        assertSameExtentsAsQemuNbd(top);
    }

    @Test
    void compressedClusters() throws IOException {
        Path raw = dir.resolve("src.raw");
        byte[] data = new byte[8 << 20];
        for (int i = 0; i < (3 << 20); i++) {
            data[i] = (byte) (i % 251 < 100 ? i / 4096 : 0);
        }
        Files.write(raw, data);
        Path img = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", raw.toString(), img.toString());
        Qemu.io(img, "write -P 9 512k 64k", "write -z 1M 64k");
        assertSameExtentsAsQemuNbd(img);
    }

    /** qemu-nbd reports the holes under a metadata-preallocated image's data clusters as zeroes that are data. */
    @Test
    void metadataPreallocatedImage() throws IOException {
        Path img = qcow2("p.qcow2", "-o", "preallocation=metadata");
        Qemu.io(img, "write -P 1 1M 64k", "write -P 2 3M 6k", "write -z 5M 64k");
        assertSameExtentsAsQemuNbd(img);
    }

    private void assertSameExtentsAsQemuNbd(Path img) throws IOException {
        String nbdinfo = Qemu.run(List.of("nbdinfo", "--map", "--", "[", "qemu-nbd", "-r", "-f", "qcow2",
                img.toString(), "]"));
        String qemuImgMap = qemuImgMapThroughQemuNbd(img);
        try (Served s = Served.start(img, dir.resolve("ours.sock"), true, ExecutionModel.VIRTUAL)) {
            assertEquals(nbdinfo, Qemu.run(List.of("nbdinfo", "--map", s.uri())));
            assertEquals(qemuImgMap, Qemu.img("map", "--output=json", "-f", "raw", s.uri()));
        }
    }

    /** qemu-img map of the image served by qemu-nbd, which exits when its one client has gone. */
    private String qemuImgMapThroughQemuNbd(Path img) throws IOException {
        Path sock = dir.resolve("qemu-nbd.sock");
        Path pid = dir.resolve("qemu-nbd.pid");
        Qemu.run(List.of("qemu-nbd", "--fork", "--pid-file", pid.toString(), "-r", "-f", "qcow2", "-k",
                sock.toString(), img.toString()));
        try {
            return Qemu.img("map", "--output=json", "-f", "raw", "nbd+unix:///?socket=" + sock);
        } finally {
            // Normally gone already; never leave it behind if the map failed.
            ProcessHandle.of(Long.parseLong(Files.readString(pid).trim())).ifPresent(ProcessHandle::destroy);
        }
    }
}
