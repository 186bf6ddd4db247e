package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.EncryptedImages;
import io.github.qcowloom.testing.Qemu;
import io.github.qcowloom.testing.TestPki;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * serve's network options: a non-loopback address is refused without TLS unless --insecure, bad option
 * combinations and credentials exit 1 with one line, and (when the machine has a non-loopback address) the real
 * command serves on it, over TLS to nbdinfo, or in clear with --insecure.
 */
class CliServeTest {
    private static final Pattern URI = Pattern.compile("at (nbd(?:s|\\+unix)?://\\S+)");

    @TempDir
    Path dir;

    private Path image() {
        Path img = dir.resolve("s.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "8M");
        return img;
    }

    @Test
    void nonLoopbackWithoutTlsIsRefusedUnlessInsecure() {
        Qemu.assume();
        Path img = image();
        for (String addr : List.of("0.0.0.0", "::", "192.0.2.1")) {
            Cli.Run r = Cli.ours("serve", "--bind", addr, "--port", "0", img.toString());
            assertEquals(1, r.code(), r.out());
            assertTrue(r.err().contains("without TLS") && r.err().contains("--insecure"), r.err());
        }
        Cli.Run both = Cli.ours("serve", "--socket", dir.resolve("x.sock").toString(), "--bind", "127.0.0.1",
                img.toString());
        assertEquals(1, both.code());
        assertTrue(both.err().contains("--socket excludes"), both.err());
        Cli.Run peer = Cli.ours("serve", "--tls-verify-peer", img.toString());
        assertEquals(1, peer.code());
        assertTrue(peer.err().contains("--tls-verify-peer needs --tls-creds"), peer.err());
        Cli.Run creds = Cli.ours("serve", "--tls-creds", dir.resolve("none").toString(), img.toString());
        assertEquals(1, creds.code());
        assertTrue(creds.err().contains("No TLS credentials with id"), creds.err());
        Cli.Run storage = Cli.ours("serve", "--storage", "aio", img.toString());
        assertEquals(1, storage.code());
        assertTrue(storage.err().contains("storage must be 'auto', 'io_uring' or 'filechannel', not 'aio'"),
                storage.err());
    }

    private static final List<String> MANIFEST_FLAGS = List.of("--enable-native-access=ALL-UNNAMED",
            "--add-opens=java.base/java.lang=ALL-UNNAMED", "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED");

    /**
     * Runs {@code serve ARGS} in its own JVM, with the flags the jar's manifest gives, until it prints the line
     * with its URI; appends that line's URI to {@code uri}, and the lines so far to {@code lineOut} if not null.
     */
    private static Process serve(List<String> args, StringBuilder uri) throws IOException {
        return serve(args, uri, null);
    }

    private static Process serve(List<String> args, StringBuilder uri, StringBuilder lineOut) throws IOException {
        return serve(MANIFEST_FLAGS, args, uri, lineOut);
    }

    /** As above, with {@code jvmFlags} rather than the manifest's; every line up to the URI's goes to lineOut. */
    private static Process serve(List<String> jvmFlags, List<String> args, StringBuilder uri, StringBuilder lineOut)
            throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString()));
        cmd.addAll(jvmFlags);
        // -t: serving on after the test's first client, as its later ones need
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), "serve", "-t"));
        cmd.addAll(args);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        StringBuilder seen = new StringBuilder();
        for (String line = out.readLine(); line != null; line = out.readLine()) {
            seen.append(line).append('\n');
            Matcher m = URI.matcher(line);
            if (m.find()) {
                uri.append(m.group(1));
                if (lineOut != null) {
                    lineOut.append(seen);
                }
                Thread.ofVirtual().start(() -> out.lines().forEach(l -> { }));
                return p;
            }
        }
        throw new AssertionError("serve ended without serving: " + seen);
    }

    private static void stop(Process p, Path img) throws InterruptedException {
        p.destroy(); // SIGTERM: the shutdown hook stops, flushes and closes
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        Qemu.img("check", img.toString());
    }

    /**
     * By default, through the page cache too, NBD is served on an event loop with the image's files read and written
     * through io_uring: short aligned writes on the loop's thread, unaligned and long ones through its ring. With
     * '--storage filechannel' it runs on the JDK's scheduler.
     */
    @Test
    void servesThroughThePageCacheOnALoopByDefault() throws Exception {
        Qemu.assume();
        Path img = image();
        StringBuilder uri = new StringBuilder();
        StringBuilder line = new StringBuilder();
        Process p = serve(List.of("--socket", dir.resolve("s.sock").toString(), img.toString()), uri, line);
        try {
            assertTrue(line.toString().contains("(loop:1)"), line.toString());
            String io = Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "write -P 0x3c 1M 1M", "-c",
                    "write -P 0x5a 0 4k", "-c", "write -P 0x77 8704 512", "-c", "read -P 0x3c 1M 1M", "-c",
                    "read -P 0x5a 0 4k", "-c", "read -P 0x77 8704 512", uri.toString()));
            assertTrue(!io.contains("failed") && !io.contains("Pattern verification failed"), io);
        } finally {
            stop(p, img);
        }
        Qemu.io(img, "read -P 0x3c 1M 1M");
        Qemu.io(img, "read -P 0x5a 0 4k");
        Qemu.io(img, "read -P 0x77 8704 512");
        Qemu.io(img, "read -P 0 8192 512");

        String virtual = linesUntilServing(MANIFEST_FLAGS, List.of("--socket", dir.resolve("t.sock").toString(),
                "--storage", "filechannel", img.toString()), img);
        assertTrue(virtual.contains("(virtual)"), virtual);
    }

    /**
     * {@code -x NAME} and {@code -D TEXT} as qemu-nbd takes them: the export is listed by its name and description
     * (nbdinfo --list), served under that name alone, and another name, the empty one included, is refused in
     * qemu-nbd's words (qemu-io's report of the server's error).
     */
    @Test
    void anExportNameAndDescriptionAreQemuNbds() throws Exception {
        Qemu.assume();
        NbdProcess.assumeNbdinfo();
        Path img = image();
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(img, theirs);
        Path socket = dir.resolve("s.sock");
        StringBuilder uri = new StringBuilder();
        try (NbdProcess qemuNbd = NbdProcess.qemu(dir, "-x", "disk 0", "-D", "my disk", "-f", "qcow2",
                theirs.toString())) {
            Process p = serve(List.of("-x", "disk 0", "-D", "my disk", "--socket", socket.toString(),
                    img.toString()), uri);
            try {
                assertEquals("nbd+unix:///disk%200?socket=" + socket, uri.toString());
                for (String name : List.of("", "other", "disk%200")) {
                    List<String> said = new ArrayList<>();
                    for (Path s : List.of(qemuNbd.socket, socket)) {
                        String u = "nbd+unix:///" + name + "?socket=" + s;
                        String list = Qemu.run(List.of("nbdinfo", "--list", u)).lines()
                                .filter(l -> l.startsWith("export=") || l.contains("description:")
                                        || l.contains("export-size:") || l.contains("uri:"))
                                .collect(Collectors.joining("\n"));
                        Qemu.Result io = Qemu.exec(List.of("qemu-io", "-f", "raw", "-c", "read 0 4k", u));
                        said.add((list + "\n" + io.exitCode() + " " + io.stderr()).replace(s.toString(), "SOCKET"));
                    }
                    assertEquals(said.get(0), said.get(1), name);
                    assertTrue(said.get(1).contains("description: my disk"), said.get(1));
                }
            } finally {
                stop(p, img);
            }
        }
    }

    /**
     * {@code -e N} as qemu-nbd takes it: CAN_MULTI_CONN is advertised unless one client at a time is served, as
     * nbdinfo shows; nbdcopy, which opens several connections where it is, copies the image out either way (with
     * {@code -e 1}, told nothing, it waited forever for its second connection when ours advertised the flag
     * regardless).
     */
    @ParameterizedTest(name = "-e {0}")
    @ValueSource(strings = {"1", "2"})
    void multiConnIsAdvertisedAsQemuNbdAdvertisesIt(String shared) throws Exception {
        Qemu.assume();
        NbdProcess.assumeNbdinfo();
        Qemu.assumeTool("nbdcopy", "libnbd-bin");
        Path img = image();
        Qemu.io(img, "write -P 7 1M 64k");
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(img, theirs);
        try (NbdProcess qemuNbd = NbdProcess.qemu(dir, "-e", shared, "-f", "qcow2", theirs.toString());
                NbdProcess ours = NbdProcess.ours(dir, "-e", shared, img.toString())) {
            List<String> said = new ArrayList<>();
            for (NbdProcess server : List.of(qemuNbd, ours)) {
                said.add(Qemu.run(List.of("nbdinfo", server.uri())).lines()
                        .filter(l -> l.contains("can_multi_conn")).collect(Collectors.joining()));
            }
            assertEquals(said.get(0), said.get(1));
            assertTrue(said.get(1).contains(shared.equals("1") ? "false" : "true"), said.get(1));
            Path copy = dir.resolve("copy.raw");
            // With the flag nbdcopy opens up to 4 connections (one a core): no more than -e 2 serves.
            List<String> nbdcopy = new ArrayList<>(List.of("timeout", "60", "nbdcopy"));
            if (!shared.equals("1")) {
                nbdcopy.add("--connections=" + shared);
            }
            nbdcopy.addAll(List.of(ours.uri(), copy.toString()));
            Qemu.run(nbdcopy);
            Qemu.img("compare", "-f", "raw", "-F", "raw", qemuNbd.uri(), copy.toString());
        }
    }

    /**
     * {@code -l} as qemu-nbd takes it: an internal snapshot exported read-only, by name, by id or by both keys, with
     * the snapshot's contents and not the active image's; a snapshot not found, or keys QEMU does not know, refused
     * in qemu-nbd's words.
     */
    @Test
    void anInternalSnapshotIsExportedReadOnlyAsQemuNbdExportsIt() throws Exception {
        Qemu.assume();
        NbdProcess.assumeNbdinfo();
        Path img = dir.resolve("snap.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "4M");
        Qemu.io(img, "write -P 1 0 1M");
        Qemu.img("snapshot", "-c", "s1", img.toString());
        Qemu.io(img, "write -P 2 0 64k");
        try (NbdProcess qemuNbd = NbdProcess.qemu(dir, "-l", "s1", "-f", "qcow2", img.toString())) {
            String theirs = qemuNbd.uri();
            for (String param : List.of("s1", "1", "snapshot.name=s1", "snapshot.id=1,snapshot.name=s1")) {
                Path socket = dir.resolve("s.sock");
                StringBuilder uri = new StringBuilder();
                Process p = serve(List.of("-l", param, "--socket", socket.toString(), img.toString()), uri);
                try {
                    Qemu.img("compare", "-f", "raw", "-F", "raw", theirs, uri.toString());
                    assertTrue(Qemu.run(List.of("nbdinfo", uri.toString())).contains("is_read_only: true"), param);
                    Qemu.Result active = Qemu.exec(List.of("qemu-img", "compare", "-f", "qcow2", "-F", "raw",
                            img.toString(), uri.toString()));
                    assertEquals(1, active.exitCode(), param + ": the snapshot's contents, not the active image's");
                } finally {
                    p.destroy();
                    assertTrue(p.waitFor(30, TimeUnit.SECONDS));
                }
            }
        }
        for (String param : List.of("missing", "snapshot.foo=1", "snapshot.id=1,snapshot.name=zz")) {
            NbdProcess.refusedAlike(List.of("-k", dir.resolve("q.sock").toString(), "-l", param, "-f", "qcow2",
                    img.toString()), List.of("-l", param, "--socket", dir.resolve("o.sock").toString(),
                    img.toString()));
        }
    }

    /**
     * {@code -A} as qemu-nbd takes it: the qemu:allocation-depth context, listed and mapped as qemu-nbd maps it over
     * a chain whose base is shorter than its top (zeroes past the base's end count as the base's, as QEMU's
     * bdrv_is_allocated_above counts them), by nbdinfo and by QEMU's NBD client told to read it
     * ({@code x-dirty-bitmap=qemu:allocation-depth}); base:allocation as before.
     */
    @Test
    void allocationDepthIsQemuNbds() throws Exception {
        Qemu.assume();
        NbdProcess.assumeNbdinfo();
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "4M");
        Qemu.io(base, "write -P 1 0 1M", "write -P 2 2M 512k", "write -z 3M 64k");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString(), "6M");
        Qemu.io(top, "write -P 3 512k 1M", "write -z 2304k 64k", "write -P 4 5M 64k", "write -c -P 5 128k 64k");
        StringBuilder uri = new StringBuilder();
        try (NbdProcess qemuNbd = NbdProcess.qemu(dir, "-r", "-A", "-f", "qcow2", top.toString())) {
            Process p = serve(List.of("-A", "--read-only", "-U", "--socket", dir.resolve("s.sock").toString(),
                    top.toString()), uri);
            try {
                checkDepths(qemuNbd, uri.toString());
            } finally {
                p.destroy();
                assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            }
        }
    }

    /** Our export at {@code uri} maps as qemu-nbd's does, its allocation depth and base:allocation alike. */
    private static void checkDepths(NbdProcess qemuNbd, String uri) {
        for (List<String> command : List.of(List.of("nbdinfo", "--map=qemu:allocation-depth"),
                List.of("nbdinfo", "--map"), List.of("qemu-img", "map", "--output=json", "-f", "raw"))) {
            List<String> q = new ArrayList<>(command);
            q.add(qemuNbd.uri());
            List<String> o = new ArrayList<>(command);
            o.add(uri);
            assertEquals(Qemu.run(q), Qemu.run(o), command.toString());
        }
        List<String> maps = new ArrayList<>();
        String ours = uri.substring(uri.indexOf("socket=") + "socket=".length());
        for (String s : List.of(qemuNbd.socket.toString(), ours)) {
            maps.add(Qemu.run(List.of("qemu-img", "map", "--output=json", "--image-opts", "driver=nbd,"
                    + "server.type=unix,server.path=" + s + ",x-dirty-bitmap=qemu:allocation-depth")));
        }
        assertEquals(maps.get(0), maps.get(1));
        String contexts = Qemu.run(List.of("nbdinfo", "--list", uri));
        assertTrue(contexts.contains("\t\tbase:allocation\n\t\tqemu:allocation-depth\n"), contexts);
        String depths = Qemu.run(List.of("nbdinfo", "--map=qemu:allocation-depth", uri));
        assertTrue(depths.lines().anyMatch(l -> l.trim().startsWith("4194304 ") && l.endsWith("backing depth 2")),
                "past the base's end, the base's: " + depths);
    }

    /**
     * An encrypted image is served by its options and a secret, as qemu-nbd serves it ({@code --object secret,...
     * --image-opts ...,encrypt.key-secret=ID}); {@code read-only=on} among them exports it read-only.
     */
    @Test
    void servesAnEncryptedImageByItsOptions() throws Exception {
        Qemu.assume();
        Path img = dir.resolve("enc.qcow2");
        EncryptedImages.create(img, 8 << 20, "");
        List<String> secret = List.of("--object", "secret,id=sec0,data=" + EncryptedImages.PASSPHRASE,
                "--image-opts");
        StringBuilder uri = new StringBuilder();
        List<String> args = new ArrayList<>(List.of("--socket", dir.resolve("e.sock").toString()));
        args.addAll(secret);
        args.add(EncryptedImages.imageOpts(img));
        Process p = serve(args, uri);
        try {
            String io = Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "write -P 0x3c 1M 70k", "-c",
                    "write -P 0x5a 1000 3", "-c", "read -P 0x3c 1M 70k", "-c", "read -P 0x5a 1000 3", uri.toString()));
            assertTrue(!io.contains("failed") && !io.contains("Pattern verification failed"), io);
        } finally {
            p.destroy();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        }
        EncryptedImages.io(img, "read -P 0x3c 1M 70k", "read -P 0x5a 1000 3", "read -P 0 0 1000");
        assertEquals(0, EncryptedImages.check(img).exitCode());

        StringBuilder readOnlyUri = new StringBuilder();
        args.set(args.size() - 1, EncryptedImages.imageOpts(img) + ",read-only=on");
        args.set(1, dir.resolve("r.sock").toString());
        Process r = serve(args, readOnlyUri);
        try {
            Qemu.Result write = Qemu.exec(List.of("qemu-io", "-f", "raw", "-c", "write 0 512",
                    readOnlyUri.toString()));
            assertTrue((write.stdout() + write.stderr()).contains("ermission denied")
                    || (write.stdout() + write.stderr()).contains("read-only"), write.stdout() + write.stderr());
            String read = Qemu.run(List.of("qemu-io", "-f", "raw", "-r", "-c", "read -P 0x3c 1M 70k",
                    readOnlyUri.toString()));
            assertFalse(read.contains("Pattern verification failed"), read);
        } finally {
            r.destroy();
            assertTrue(r.waitFor(30, TimeUnit.SECONDS));
        }
    }

    /**
     * Where loops cannot run (a plain {@code java -cp}, without the manifest's --add-opens), the default serves on
     * the JDK's scheduler and says nothing of loops nobody asked for; asked for, it warns.
     */
    @Test
    void theDefaultFallsBackQuietlyWhereLoopsCannotRun() throws Exception {
        Qemu.assume();
        Path img = image();
        List<String> plain = List.of("--enable-native-access=ALL-UNNAMED");
        String lines = linesUntilServing(plain, List.of("--socket", dir.resolve("q.sock").toString(),
                img.toString()), img);
        assertTrue(lines.contains("(virtual)"), lines);
        assertFalse(lines.contains("event loops are not available"), lines);
        String asked = linesUntilServing(plain, List.of("--socket", dir.resolve("r.sock").toString(), "--exec",
                "loop:1", img.toString()), img);
        assertTrue(asked.contains("event loops are not available"), asked);
    }

    /** What {@code serve ARGS} prints up to its serving line, in a JVM with {@code jvmFlags}; it is then stopped. */
    private static String linesUntilServing(List<String> jvmFlags, List<String> args, Path img) throws Exception {
        StringBuilder lines = new StringBuilder();
        Process p = serve(jvmFlags, args, new StringBuilder(), lines);
        stop(p, img);
        return lines.toString();
    }

    /**
     * qemu-nbd's way of naming TLS credentials: {@code --object tls-creds-x509,id=ID,dir=DIR,endpoint=server} and
     * {@code --tls-creds ID}, verify-peer on unless the object says off; names and objects it refuses, in its words.
     */
    @Test
    void tlsCredentialsByObjectAsQemuNbdNamesThem() throws Exception {
        Qemu.assume();
        NbdProcess.assumeNbdinfo();
        TestPki pki = TestPki.make(dir.resolve("pki"));
        Path img = image();
        String server = "tls-creds-x509,id=tls0,dir=" + pki.server + ",endpoint=server";
        for (List<String> args : List.of(List.of("--tls-creds", "nope"),
                List.of("--object", "secret,id=s0,data=x", "--tls-creds", "s0"),
                List.of("--object", "tls-creds-x509,id=c0,dir=" + pki.client + ",endpoint=client", "--tls-creds", "c0"),
                List.of("--object", "tls-creds-x509,id=t0,dir=" + dir.resolve("none") + ",endpoint=server",
                        "--tls-creds", "t0"),
                List.of("--object", "tls-creds-x509,id=t0,endpoint=server", "--tls-creds", "t0"),
                List.of("--object", server + ",verify-peer=perhaps", "--tls-creds", "tls0"),
                List.of("--object", server + ",bogus=1", "--tls-creds", "tls0"),
                List.of("--object", server, "--object", server, "--tls-creds", "tls0"))) {
            List<String> qemu = new ArrayList<>(List.of("-b", "127.0.0.1", "-p", "10799"));
            List<String> ours = new ArrayList<>(List.of("-b", "127.0.0.1", "-p", "10798"));
            for (List<String> both : List.of(qemu, ours)) {
                both.addAll(args);
                both.add(img.toString());
            }
            NbdProcess.refusedAlike(qemu, ours);
        }
        for (String verify : List.of("", ",verify-peer=off")) {
            StringBuilder uri = new StringBuilder();
            Process p = serve(List.of("--object", server + verify, "--tls-creds", "tls0", "--bind", "127.0.0.1",
                    "--port", "0", img.toString()), uri);
            try {
                String withCert = Qemu.run(List.of("nbdinfo", uri + "/?tls-certificates=" + pki.clientWithCert));
                assertTrue(withCert.contains("with TLS") && withCert.contains("8388608"), withCert);
                Qemu.Result without = Qemu.exec(List.of("nbdinfo", uri + "/?tls-certificates=" + pki.client));
                assertEquals(verify.isEmpty(), without.exitCode() != 0, verify + ": " + without.stderr());
            } finally {
                stop(p, img);
            }
        }
    }

    @Test
    void servesOnANonLoopbackAddressOverTlsOrWithInsecure() throws Exception {
        Qemu.assume();
        String ip = TestPki.nonLoopbackAddress().orElse(null);
        Assumptions.assumeTrue(ip != null, "this machine has no non-loopback IPv4 address");
        TestPki pki = TestPki.make(dir.resolve("pki"), ip);
        Path img = image();
        Qemu.io(img, "write -P 0x7e 0 1M");

        StringBuilder uri = new StringBuilder();
        Process tls = serve(List.of("--bind", ip, "--port", "0", "--tls-creds", pki.server.toString(), img.toString()),
                uri);
        try {
            assertTrue(uri.toString().startsWith("nbds://" + ip + ":"), uri.toString());
            String info = Qemu.run(List.of("nbdinfo", uri + "/?tls-certificates=" + pki.client));
            assertTrue(info.contains("with TLS") && info.contains("8388608"), info);
            Qemu.Result plain = Qemu.exec(List.of("nbdinfo", uri.toString().replace("nbds://", "nbd://")));
            assertTrue(plain.exitCode() != 0 && !plain.stdout().contains("8388608"), plain.stdout());
        } finally {
            stop(tls, img);
        }

        uri.setLength(0);
        Process insecure = serve(List.of("--bind", ip, "--port", "0", "--insecure", img.toString()), uri);
        try {
            assertTrue(uri.toString().startsWith("nbd://" + ip + ":"), uri.toString());
            String io = Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "read -P 0x7e 0 1M", uri.toString()));
            assertTrue(!io.contains("failed") && !io.contains("Pattern verification failed"), io);
        } finally {
            stop(insecure, img);
        }
    }
}
