package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.testing.BitmapFiles;
import io.github.qcowloom.testing.EncryptedImages;
import io.github.qcowloom.testing.ForwardingBlockDevice;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * NBD_CMD_CACHE (QEMU's copy-on-read prefetch), FAST_ZERO and the command flags as qemu-nbd serves them: the same
 * requests, sent by hand to qemu-nbd and to our server over copies of one overlay, get the same errors and leave
 * images that map alike (which clusters the overlay holds, zero or data), read alike, mark their persistent bitmap
 * alike and check clean.
 */
class NbdCacheAndFastZeroTest {
    private static final int K = 1024;
    private static final int M = 1024 * 1024;

    @TempDir
    Path dir;

    /** One request: command, flags, range. */
    private record Req(int type, int flags, long offset, long length) {
        @Override
        public String toString() {
            return "type " + type + " flags 0x" + Integer.toHexString(flags) + " " + offset + "+" + length;
        }
    }

    /** How the servers and qemu-img open the images: as qcow2, or encrypted by the tests' secret. */
    private enum Access {
        PLAIN, ENCRYPTED;

        /** What names {@code image} to qemu-img and qemu-nbd, after the command. */
        List<String> args(Path image) {
            return this == PLAIN ? List.of("-f", "qcow2", image.toString())
                    : List.of("--object", EncryptedImages.SECRET, "--image-opts", EncryptedImages.imageOpts(image));
        }

        OpenOptions ours() {
            return keyed(OpenOptions.readWriteDefaults());
        }

        OpenOptions readOnly() {
            return keyed(OpenOptions.readOnlyDefaults());
        }

        private OpenOptions keyed(OpenOptions options) {
            return this == PLAIN ? options : options.withEncryptionKey(EncryptedImages.KEY);
        }
    }

    @BeforeEach
    void needQemuNbd() {
        Qemu.assumeTool("qemu-nbd", "qemu-utils");
    }

    /**
     * An overlay of 64 MiB with 64 KiB clusters over a base holding data in its first 2 MiB, a zero cluster at 3 MiB
     * and data at 4 MiB; the overlay holds data at 512 KiB, and an empty persistent bitmap.
     */
    private Path overlay() {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "64M");
        Qemu.io(base, "write -P 0x55 0 2M", "write -z 3M 64k", "write -P 0x66 4M 64k");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString(), "64M");
        Qemu.io(top, "write -P 7 512k 64k");
        Qemu.img("bitmap", "--add", top.toString(), "b");
        return top;
    }

    @Test
    void cacheCopiesWhatTheOverlayDoesNotHoldAsQemuNbdDoes() throws Exception {
        int fua = Protocol.CMD_FLAG_FUA;
        assertSameAsQemuNbd(overlay(), List.of(
                new Req(Protocol.CMD_CACHE, 0, 1040384, 200000), // four clusters of backing data, partly asked for
                new Req(Protocol.CMD_CACHE, 0, 3000000, 10), // nothing below: a zero cluster
                new Req(Protocol.CMD_CACHE, 0, 3 * M, 64 * K), // a zero cluster below
                new Req(Protocol.CMD_CACHE, fua, 4 * M + 100, 4 * K),
                new Req(Protocol.CMD_CACHE, 0, 512 * K, 64 * K), // held by the overlay: nothing copied
                new Req(Protocol.CMD_CACHE, 0, 64 * M - 4, 4),
                new Req(Protocol.CMD_CACHE, 0, 0, 32 * M + 1), // longer than qemu-nbd takes
                new Req(Protocol.CMD_CACHE, 0, 64 * M - 4, 8))); // past the end
    }

    @Test
    void fastZeroFailsWhereZeroesWouldBeWrittenAsQemuNbdDoes() throws Exception {
        int fast = Protocol.CMD_FLAG_FAST_ZERO;
        Counted counted = new Counted();
        AtomicInteger flushesByRequests = new AtomicInteger();
        assertSameAsQemuNbd(overlay(), counted, socket -> {
            List<String> errors = send(socket, List.of(
                    new Req(Protocol.CMD_WRITE_ZEROES, fast, 0, 64 * K), // a whole cluster: a zero flag
                    new Req(Protocol.CMD_WRITE_ZEROES, fast, 64 * K + 4 * K, 4 * K), // part of one over backing data
                    new Req(Protocol.CMD_WRITE_ZEROES, fast, 2 * M + 4 * K, 4 * K), // part of one reading zeroes
                    new Req(Protocol.CMD_WRITE_ZEROES, fast, 512 * K + 512, 512), // part of one the overlay holds
                    new Req(Protocol.CMD_WRITE_ZEROES, fast | Protocol.CMD_FLAG_NO_HOLE, 5 * M, 128 * K),
                    new Req(Protocol.CMD_WRITE_ZEROES, fast, 6 * M + 100, M), // partial ends reading zeroes
                    new Req(Protocol.CMD_WRITE_ZEROES, fast, M, 68 * K), // a cluster zeroed, then the refused tail
                    new Req(Protocol.CMD_WRITE_ZEROES, 1 << 10, 7 * M, 64 * K), // a flag no command has
                    new Req(Protocol.CMD_READ, Protocol.CMD_FLAG_DF, 0, 512), // DF without structured replies
                    new Req(Protocol.CMD_READ, Protocol.CMD_FLAG_FUA, 0, 512),
                    new Req(Protocol.CMD_WRITE_ZEROES, 0, 64 * M - 4 * K, 8 * K), // past the end: EINVAL, writes too
                    new Req(Protocol.CMD_FLUSH, Protocol.CMD_FLAG_NO_HOLE, 0, 0)));
            flushesByRequests.set(counted.flushes.get()); // on qemu-nbd's turn, 0: the device is ours
            return errors;
        });
        assertEquals(4, counted.fastZeroes.get());
        assertEquals(1, flushesByRequests.get(), "the READ with FUA flushes first");
    }

    /**
     * An encrypted image zeroes whole clusters by their flags as an unencrypted one does, and refuses a fast zero
     * write not on whole 512-byte sectors before changing anything, as QEMU refuses one that it would pad.
     */
    @Test
    void encryptedFastZeroesAsQemuNbdAnswersThem() throws Exception {
        int fast = Protocol.CMD_FLAG_FAST_ZERO;
        Path image = dir.resolve("encrypted.qcow2");
        EncryptedImages.create(image, 8 * M, "");
        EncryptedImages.io(image, "write -P 0x5a 0 256k");
        Qemu.img("bitmap", "--object", EncryptedImages.SECRET, "--image-opts", "--add",
                EncryptedImages.imageOpts(image), "b");
        Counted counted = new Counted();
        assertSameAsQemuNbd(image, Access.ENCRYPTED, counted, requests(List.of(
                new Req(Protocol.CMD_WRITE_ZEROES, fast, 64 * K - 100, 64 * K + 200), // partial sectors: refused
                new Req(Protocol.CMD_WRITE_ZEROES, fast, 64 * K, 64 * K), // a whole cluster of data
                new Req(Protocol.CMD_WRITE_ZEROES, fast, 128 * K, 512), // part of one that holds data
                new Req(Protocol.CMD_WRITE_ZEROES, fast, 640 * K, 512), // part of an unallocated one
                new Req(Protocol.CMD_WRITE_ZEROES, fast, 768 * K, 128 * K),
                new Req(Protocol.CMD_WRITE_ZEROES, fast, 960 * K, 100000), // ends inside a sector: refused
                new Req(Protocol.CMD_WRITE_ZEROES, 0, M + 100, 1000)))); // padded, without the flag
        assertEquals(3, counted.fastZeroes.get());
    }

    /**
     * On a read-only export CACHE is taken and copies nothing; qemu-nbd 7.2 fails it with EPERM there, its
     * copy-on-read finding the image read-only (and reports a failed flush at exit).
     */
    @Test
    void cacheOnAReadOnlyExportCopiesNothing() throws Exception {
        Path top = overlay();
        List<String> before = map(top);
        // The image opened for writing, so that the export alone is read-only.
        BlockDevice device = ImageFormat.open(top, "qcow2", OpenOptions.readWriteDefaults());
        try (Served s = Served.serve(top, device, true, dir.resolve("ours.sock"))) {
            assertEquals(List.of("type 5 flags 0x0 0+67108864: 22", "type 5 flags 0x0 0+2097152: 0"),
                    send(dir.resolve("ours.sock"), List.of(new Req(Protocol.CMD_CACHE, 0, 0, 64 * M),
                            new Req(Protocol.CMD_CACHE, 0, 0, 2 * M))));
        }
        assertEquals(before, map(top));
    }

    /**
     * QEMU's own NBD client sends FAST_ZERO for a zero write that must not fall back (qemu-io's {@code write -z -n},
     * BDRV_REQ_NO_FALLBACK): it gets the same answers from both servers, and ours zeroes fast where qemu-nbd does.
     */
    @Test
    void qemuIoFastZeroWritesAsQemuNbdAnswersThem() throws Exception {
        Counted counted = new Counted();
        assertSameAsQemuNbd(overlay(), counted, socket -> {
            Qemu.Result r = Qemu.exec(List.of("qemu-io", "-f", "raw", "-c", "write -z -n 0 64k",
                    "-c", "write -z -n 68k 4k", "-c", "write -z -n -u 128k 64k", "-c", "write -z -n 2M 4k",
                    "nbd+unix:///?socket=" + socket));
            List<String> seen = new ArrayList<>(List.of("exit " + r.exitCode(), r.stderr()));
            r.stdout().lines().filter(l -> !l.contains(" ops; ")).forEach(seen::add); // timings aside
            return seen;
        });
        assertEquals(3, counted.fastZeroes.get());
    }

    /** Our device wrapped to count the fast zero writes that zeroed and the flushes. */
    private static final class Counted implements UnaryOperator<BlockDevice> {
        final AtomicInteger fastZeroes = new AtomicInteger();
        final AtomicInteger flushes = new AtomicInteger();

        @Override
        public BlockDevice apply(BlockDevice device) {
            return new ForwardingBlockDevice(device) {
                @Override
                public boolean writeZeroesFast(long offset, long length, boolean mayUnmap) throws IOException {
                    boolean zeroed = super.writeZeroesFast(offset, length, mayUnmap);
                    if (zeroed) {
                        fastZeroes.incrementAndGet();
                    }
                    return zeroed;
                }

                @Override
                public void flush() throws IOException {
                    flushes.incrementAndGet();
                    super.flush();
                }
            };
        }
    }

    /** What a test does to a server at {@code socket}; returns what it saw, to compare. */
    private interface Client {
        List<String> run(Path socket) throws Exception;
    }

    /** A client that sends {@code requests} on one connection and returns each one's error. */
    private static Client requests(List<Req> requests) {
        return socket -> send(socket, requests);
    }

    /** {@link #assertSameAsQemuNbd(Path, Access, UnaryOperator, Client)} of {@code requests} on a plain image. */
    private void assertSameAsQemuNbd(Path image, List<Req> requests) throws Exception {
        assertSameAsQemuNbd(image, Access.PLAIN, UnaryOperator.identity(), requests(requests));
    }

    /** {@link #assertSameAsQemuNbd(Path, Access, UnaryOperator, Client)} on a plain image. */
    private void assertSameAsQemuNbd(Path image, UnaryOperator<BlockDevice> wrap, Client client) throws Exception {
        assertSameAsQemuNbd(image, Access.PLAIN, wrap, client);
    }

    /**
     * Runs {@code client} against qemu-nbd and against our server (its device wrapped by {@code wrap}), each over its
     * own copy of {@code image}, opened by {@code access}, and compares what it saw, the maps, the persistent
     * bitmaps and the contents afterwards.
     */
    private void assertSameAsQemuNbd(Path image, Access access, UnaryOperator<BlockDevice> wrap, Client client)
            throws Exception {
        Path theirs = dir.resolve("theirs.qcow2");
        Path ours = dir.resolve("ours.qcow2");
        Files.copy(image, theirs, StandardCopyOption.REPLACE_EXISTING);
        Files.copy(image, ours, StandardCopyOption.REPLACE_EXISTING);

        Path theirSocket = dir.resolve("theirs.sock");
        List<String> command = new ArrayList<>(List.of("qemu-nbd", "-k", theirSocket.toString()));
        command.addAll(access.args(theirs));
        Process qemuNbd = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(dir.resolve("qemu-nbd.log").toFile()).start();
        List<String> theirErrors;
        try {
            awaitSocket(theirSocket, qemuNbd);
            theirErrors = client.run(theirSocket);
        } finally {
            // It ends once its one client has gone (and kill it if the test failed first).
            if (!qemuNbd.waitFor(20, TimeUnit.SECONDS)) {
                qemuNbd.destroyForcibly();
            }
        }
        List<String> ourErrors;
        BlockDevice device = wrap.apply(ImageFormat.open(ours, "qcow2", access.ours()));
        try (Served s = Served.serve(access.args(ours), device, false, dir.resolve("ours.sock"))) { // checks it
            ourErrors = client.run(dir.resolve("ours.sock"));
        }
        assertEquals(theirErrors, ourErrors);
        assertEquals(map(access, theirs), map(access, ours));
        assertEquals(BitmapFiles.dirtyRuns(theirs, access.readOnly()), BitmapFiles.dirtyRuns(ours, access.readOnly()),
                "what the persistent bitmaps mark");
        List<String> compare = new ArrayList<>(List.of("compare"));
        compare.addAll(access.args(theirs));
        compare.add(access.args(ours).getLast());
        assertEquals("Images are identical.\n", Qemu.img(compare.toArray(String[]::new)));
    }

    /** Each request's error, in order, on one connection. */
    private static List<String> send(Path socket, List<Req> requests) throws IOException {
        List<String> errors = new ArrayList<>();
        try (RawClient c = new RawClient(UnixDomainSocketAddress.of(socket)).go()) {
            long cookie = 1;
            for (Req r : requests) {
                c.request(r.type(), r.flags(), cookie, r.offset(), r.length(), null);
                int error = c.reply(cookie++);
                if (error == 0 && r.type() == Protocol.CMD_READ) {
                    c.read((int) r.length());
                }
                errors.add(r + ": " + error);
            }
            c.request(Protocol.CMD_DISC, 0, 0, 0, 0, null);
        }
        return errors;
    }

    /** The overlay's own map: which ranges it holds, as zeroes or data (where in the file aside). */
    private static List<String> map(Path image) {
        return map(Access.PLAIN, image);
    }

    private static List<String> map(Access access, Path image) {
        List<String> command = new ArrayList<>(List.of("map", "--output=json"));
        command.addAll(access.args(image));
        return Qemu.guestMap(Qemu.img(command.toArray(String[]::new)));
    }

    private static void awaitSocket(Path socket, Process server) throws InterruptedException {
        for (int i = 0; i < 200 && !Files.exists(socket); i++) {
            if (!server.isAlive()) {
                throw new AssertionError("qemu-nbd exited " + server.exitValue());
            }
            Thread.sleep(50);
        }
    }
}
