package io.github.qcowloom.compress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.zip.Deflater;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Proves with Python's zlib that our deflate streams never reach back further than QEMU's 4 KiB window. */
class ZlibWindowTest {
    @TempDir
    Path dir;

    @Test
    void everyStreamInflatesWithA4KiBWindow() throws Exception {
        List<byte[]> inputs = new ArrayList<>();
        Random random = new Random(12);
        // Long-distance repeats, which a 32 KiB window would use and a 4 KiB one cannot follow.
        for (int period : new int[] {4097, 5000, 6000, 8192, 12345, 30000}) {
            for (int size : new int[] {16384, 65536, 131072}) {
                inputs.add(ClusterData.periodic(random, size, period));
            }
        }
        for (int i = 0; i < 60; i++) {
            inputs.add(ClusterData.compressible(random, 1 << (9 + random.nextInt(8))));
        }
        inputs.add(new byte[65536]);

        List<byte[]> streams = new ArrayList<>();
        for (byte[] input : inputs) {
            byte[] stream = ZlibCodec.INSTANCE.compress(ByteBuffer.wrap(input));
            assertNotNull(stream, "compressible input of " + input.length + " bytes");
            streams.add(stream);
        }
        List<String> results = inflateWithPython(streams, inputs);
        for (int i = 0; i < inputs.size(); i++) {
            String expected = "ok " + sha256(inputs.get(i));
            assertEquals(expected, results.get(i), "case " + i + ", " + inputs.get(i).length + " bytes");
        }
    }

    /** The oracle is strict: it rejects what a plain 32 KiB-window JDK deflater makes of the same data. */
    @Test
    void oracleRejectsA32KiBWindowStream() throws Exception {
        byte[] input = ClusterData.periodic(new Random(13), 65536, 5000);
        Deflater deflater = new Deflater(Deflater.DEFAULT_COMPRESSION, true);
        deflater.setInput(input);
        deflater.finish();
        byte[] out = new byte[input.length];
        int length = deflater.deflate(out);
        deflater.end();
        List<String> results = inflateWithPython(List.of(Arrays.copyOf(out, length)), List.of(input));
        assertEquals("error Error -3 while decompressing data: invalid distance too far back", results.get(0));
    }

    private List<String> inflateWithPython(List<byte[]> streams, List<byte[]> inputs) throws Exception {
        Path python = HostTools.require("python3", "check the 4 KiB window");
        Path cases = dir.resolve("cases.bin");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        for (int i = 0; i < streams.size(); i++) {
            out.writeInt(streams.get(i).length);
            out.write(streams.get(i));
            out.writeInt(inputs.get(i).length);
        }
        Files.write(cases, bytes.toByteArray());

        String output = HostTools.run(python.toString(), "-c", script(), cases.toString());
        List<String> lines = output.lines().toList();
        assertEquals(streams.size(), lines.size(), output);
        return lines;
    }

    private static String script() throws IOException {
        try (InputStream in = ZlibWindowTest.class.getResourceAsStream("inflate_window12.py")) {
            assertNotNull(in, "inflate_window12.py resource");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static String sha256(byte[] data) throws NoSuchAlgorithmException {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    }
}
