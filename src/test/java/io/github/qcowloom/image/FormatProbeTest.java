package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.ProbedRawHeaderException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Formats probed as QEMU probes them: each of QEMU's other formats that qemu-img makes is named as qemu-img info
 * names it, and refused as not done here (before, taken for raw); first sectors made by hand for the rest and for
 * the edges of QEMU's rules (versions, ties, a file name, short files), each against qemu-img info's answer. A probed
 * raw image refuses a write that would make its first sector probe as another format, as QEMU's raw driver does.
 */
class FormatProbeTest {
    @TempDir
    Path dir;

    @Test
    void qemusOtherFormatsAreNamedAndRefused() throws IOException {
        Qemu.assume();
        for (String format : List.of("vmdk", "vdi", "vpc", "qed", "vhdx", "parallels", "qcow")) {
            Path file = dir.resolve("t." + format);
            Qemu.img("create", "-q", "-f", format, file.toString(), "1M");
            assertEquals(qemuFormat(file), format);
            UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                    () -> ImageFormat.probe(file), format);
            assertEquals("Could not open '" + file + "': Image format '" + format + "' is not supported (qcow2 and"
                    + " raw are)", e.getMessage());
            assertThrows(UnsupportedFeatureException.class,
                    () -> ImageFormat.open(file, null, OpenOptions.readOnlyDefaults()).close());
        }
    }

    @Test
    void firstSectorsMadeByHandProbeAsQemuProbesThem() throws IOException {
        Qemu.assume();
        Map<String, byte[]> heads = new LinkedHashMap<>();
        heads.put("empty", new byte[0]);
        heads.put("qcow2 magic, version 0", bytes("QFI\u00fb"));
        heads.put("qcow2 magic, version 1", concat(bytes("QFI\u00fb"), be32(1)));
        heads.put("qcow2 magic, version 256", concat(bytes("QFI\u00fb"), be32(256)));
        heads.put("qed", bytes("QED\0"));
        heads.put("vmdk descriptor", bytes("# Disk DescriptorFile\n   \r\nversion=1\r\n"));
        heads.put("vmdk descriptor after an empty line", bytes("# Disk\n\nversion=1\n"));
        heads.put("vmdk descriptor, version 4", bytes("version=4\n"));
        heads.put("luks 1", concat(bytes("LUKS\u00ba\u00be"), new byte[] {0, 1}));
        heads.put("luks 2", concat(bytes("LUKS\u00ba\u00be"), new byte[] {0, 2}));
        heads.put("parallels", concat(bytes("WithoutFreeSpace"), le32(2)));
        heads.put("parallels, version 3", concat(bytes("WithouFreSpacExt"), le32(3)));
        heads.put("cloop", bytes("#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop"
                + " $1\n"));
        heads.put("cloop, its first 10 bytes", bytes("#!/bin/sh\n"));
        byte[] bochs = new byte[512];
        put(bochs, 0, bytes("Bochs Virtual HD Image\0"));
        put(bochs, 32, bytes("Redolog\0"));
        put(bochs, 48, bytes("Growing\0"));
        put(bochs, 64, le32(0x00020000));
        heads.put("bochs", bochs);
        byte[] vdiAndQcow2 = new byte[512]; // a tie at 100: vdi comes first in QEMU's list
        put(vdiAndQcow2, 0, concat(bytes("QFI\u00fb"), be32(3)));
        put(vdiAndQcow2, 64, le32(0xbeda107f));
        heads.put("vdi and qcow2 at once", vdiAndQcow2);
        for (Map.Entry<String, byte[]> head : heads.entrySet()) {
            Path file = dir.resolve("h.img");
            Files.write(file, head.getValue());
            assertEquals(qemuFormat(file), FormatProbe.formatOf(head.getValue(), file.toString()), head.getKey());
        }
        Path dmg = dir.resolve("x.dmg"); // by its name alone, and only where the probe has one
        Files.write(dmg, new byte[512]);
        assertEquals(qemuFormat(dmg), FormatProbe.formatOf(new byte[512], dmg.toString()));
        assertEquals("raw", FormatProbe.formatOf(new byte[512], null));
    }

    /** A write that would make a probed raw image's first sector another format's header is refused; raw given, not. */
    @Test
    void aProbedRawImageTakesNoOtherFormatsHeader() throws IOException {
        Path raw = dir.resolve("disk.img");
        Files.write(raw, new byte[1 << 20]);
        byte[] header = concat(bytes("QFI\u00fb"), be32(3));
        try (BlockDevice probed = ImageFormat.open(raw, null, OpenOptions.readWriteDefaults())) {
            assertThrows(ProbedRawHeaderException.class, () -> probed.write(0, ByteBuffer.wrap(header)));
            // two writes that make it together: the version first, then the magic
            probed.write(4, ByteBuffer.wrap(be32(3)));
            ProbedRawHeaderException e = assertThrows(ProbedRawHeaderException.class,
                    () -> probed.write(0, ByteBuffer.wrap(bytes("QFI\u00fb"))));
            assertTrue(e.getMessage().contains("qcow2"), e.getMessage());
            probed.write(512, ByteBuffer.wrap(header)); // past the first sector: anything
            probed.write(0, ByteBuffer.wrap(bytes("QFI\u00fa"))); // no format's magic
        }
        assertEquals("raw", ImageFormat.probe(raw));
        try (BlockDevice named = ImageFormat.open(raw, "raw", OpenOptions.readWriteDefaults())) {
            named.write(0, ByteBuffer.wrap(header));
        }
        assertEquals("qcow2", FormatProbe.formatOf(Files.readAllBytes(raw), null));
    }

    /**
     * The format qemu-img info finds: as it prints it, or, where its open of a first sector made by hand fails, the
     * format whose driver's words its error has (raw opens anything, so it is never that).
     */
    private static String qemuFormat(Path file) {
        Qemu.Result r = Qemu.exec(List.of("qemu-img", "info", "--output=json", file.toString()));
        if (r.exitCode() == 0) {
            String json = r.stdout();
            int at = json.indexOf("\"format\": \"") + 11;
            return json.substring(at, json.indexOf('"', at));
        }
        for (Map.Entry<String, String> words : DRIVER_WORDS.entrySet()) {
            if (r.stderr().contains(words.getKey())) {
                return words.getValue();
            }
        }
        return "unknown: " + r.stderr();
    }

    /** Words of each driver's refusal of a first sector made by hand, and the driver's format. */
    private static final Map<String, String> DRIVER_WORDS = Map.of("Image size is too small", "qcow",
            "Unsupported qcow2 version", "qcow2", "QED cluster size", "qed", "invalid VMDK image descriptor", "vmdk",
            "LUKS payload", "luks", "sectors per track", "parallels", "block_size cannot be zero", "cloop",
            "Extent size must be", "bochs", "unsupported VDI image", "vdi", "UDIF trail", "dmg");

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.ISO_8859_1);
    }

    private static byte[] be32(int v) {
        return ByteBuffer.allocate(4).putInt(v).array();
    }

    private static byte[] le32(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = new byte[a.length + b.length];
        System.arraycopy(a, 0, c, 0, a.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    private static void put(byte[] into, int at, byte[] what) {
        System.arraycopy(what, 0, into, at, what.length);
    }
}
