package io.github.qcowloom.image;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.function.BiPredicate;

/**
 * The format QEMU's probe picks for a file from its first 512 bytes and its name (block.c's bdrv_probe_all over
 * the format drivers of QEMU 7.2, all in Debian's build): the highest score wins, the first in QEMU's driver list
 * on a tie; raw, which scores 1, where nothing scores more. QEMU reads a file shorter than 512 bytes as followed by
 * zeroes, and takes a file of no bytes for raw unread.
 */
final class FormatProbe {
    /** BLOCK_PROBE_BUF_SIZE. */
    static final int BYTES = 512;
    private static final String CLOOP = "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660"
            + " /dev/cloop $1\n";

    /** A driver's probe: its format, its score when it matches, and the match on (first bytes, file name). */
    private record Probe(String format, int score, BiPredicate<ByteBuffer, String> matches) {
    }

    /** QEMU's driver list, in its order (the reverse of registration), raw at its place. */
    private static final List<Probe> PROBES = List.of(
            new Probe("parallels", 100, (b, n) -> (text(b, 0, "WithoutFreeSpace") || text(b, 0, "WithouFreSpacExt"))
                    && le32(b, 16) == 2),
            new Probe("qed", 100, (b, n) -> le32(b, 0) == 0x00444551),
            new Probe("dmg", 2, (b, n) -> n != null && n.length() > 4 && n.endsWith(".dmg")),
            new Probe("bochs", 100, (b, n) -> cString(b, 0, "Bochs Virtual HD Image") && cString(b, 32, "Redolog")
                    && cString(b, 48, "Growing") && (le32(b, 64) == 0x00020000 || le32(b, 64) == 0x00010000)),
            new Probe("cloop", 2, (b, n) -> text(b, 0, CLOOP)),
            new Probe("vdi", 100, (b, n) -> le32(b, 64) == 0xbeda107f),
            new Probe("qcow", 100, (b, n) -> be32(b, 0) == 0x514649fb && be32(b, 4) == 1),
            new Probe("vpc", 100, (b, n) -> text(b, 0, "conectix")),
            new Probe("vmdk", 100, (b, n) -> text(b, 0, "COWD") || text(b, 0, "KDMV") || vmdkDescriptor(b)),
            new Probe("vhdx", 100, (b, n) -> text(b, 0, "vhdxfile")),
            new Probe("raw", 1, (b, n) -> true),
            new Probe("qcow2", 100, (b, n) -> be32(b, 0) == 0x514649fb && Integer.compareUnsigned(be32(b, 4), 2) >= 0),
            new Probe("luks", 100, (b, n) -> text(b, 0, "LUKS\u00ba\u00be") && (b.getShort(6) & 0xffff) == 1));

    private FormatProbe() {
    }

    /**
     * The format of a file whose first bytes are {@code head} (at most {@link #BYTES}; zeroes after them), named
     * {@code name} as it was given to the open (null: no name, as QEMU's guard of a probed raw image's first sector
     * asks).
     */
    static String formatOf(byte[] head, String name) {
        ByteBuffer b = ByteBuffer.wrap(Arrays.copyOf(head, BYTES)).order(ByteOrder.BIG_ENDIAN);
        Probe best = null;
        for (Probe p : PROBES) {
            if ((best == null || p.score() > best.score()) && p.matches().test(b, name)) {
                best = p;
            }
        }
        return best.format();
    }

    /**
     * vmdk_probe's text descriptor: comment lines and lines of spaces skipped (an empty line is not), then a line
     * {@code version=1}, 2 or 3, ended by "\n" or "\r\n".
     */
    private static boolean vmdkDescriptor(ByteBuffer b) {
        int p = 0;
        int end = b.limit();
        while (p < end) {
            if (b.get(p) == '#') {
                while (p < end && b.get(p) != '\n') {
                    p++;
                }
                p++;
                continue;
            }
            if (b.get(p) == ' ') {
                while (p < end && b.get(p) == ' ') {
                    p++;
                }
                if (p < end && b.get(p) == '\r') {
                    p++;
                }
                if (p == end || b.get(p) != '\n') {
                    return false;
                }
                p++;
                continue;
            }
            for (String version : List.of("version=1", "version=2", "version=3")) {
                if (text(b, p, version + "\n") || text(b, p, version + "\r\n")) {
                    return true;
                }
            }
            return false;
        }
        return false;
    }

    /** The bytes at {@code at} are {@code s} (as ISO-8859-1, a byte a character), within the buffer. */
    private static boolean text(ByteBuffer b, int at, String s) {
        byte[] expected = s.getBytes(StandardCharsets.ISO_8859_1);
        if (at + expected.length > b.limit()) {
            return false;
        }
        for (int i = 0; i < expected.length; i++) {
            if (b.get(at + i) != expected[i]) {
                return false;
            }
        }
        return true;
    }

    /** The C string at {@code at} is {@code s}: its bytes, then a NUL (strcmp). */
    private static boolean cString(ByteBuffer b, int at, String s) {
        return text(b, at, s + "\0");
    }

    private static int be32(ByteBuffer b, int at) {
        return b.getInt(at);
    }

    private static int le32(ByteBuffer b, int at) {
        return Integer.reverseBytes(b.getInt(at));
    }
}
