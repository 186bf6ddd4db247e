package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Json reads back what it writes, and refuses malformed text. */
class JsonTest {
    @Test
    void jsonReadsBackWhatItWrites() {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("s", "a \"quoted\"\n\\ line\u0001");
        m.put("l", List.of(1, -2.5, 3e-7, true, false));
        m.put("nan", Double.NaN);
        m.put("empty", Map.of());
        Object back = Json.parse(Json.write(m));
        Map<?, ?> b = (Map<?, ?>) back;
        assertEquals(m.get("s"), b.get("s"));
        assertEquals(List.of(1L, -2.5, 3e-7, true, false), b.get("l"));
        assertTrue(b.containsKey("nan") && b.get("nan") == null);
        assertEquals(Map.of(), b.get("empty"));
        for (String bad : List.of("{", "[1,]", "{\"a\" 1}", "tru", "1 2", "\"\\x\"")) {
            assertThrows(IllegalArgumentException.class, () -> Json.parse(bad), bad);
        }
    }

    /**
     * Strings escaped as QEMU's qjson escapes them: control characters, DEL and everything beyond ASCII as \\uXXXX
     * (a surrogate pair as two), upper-case; a snapshot name with each, in qemu-img info's JSON and ours.
     */
    @Test
    void stringsEscapedAsQemusJson(@TempDir Path dir) {
        Qemu.assume();
        String name = "\u00fc\u007f\ud83d\ude00\u0001\b\f\t/x";
        assertEquals("\"\\u00FC\\u007F\\uD83D\\uDE00\\u0001\\b\\f\\t/x\"", Json.write(name));
        assertEquals(name, Json.parse(Json.write(name)));
        Path img = dir.resolve("s.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "1M");
        Qemu.img("snapshot", "-c", name, img.toString());
        Cli.sameAsQemuImg("info", "--output=json", img);
    }
}
