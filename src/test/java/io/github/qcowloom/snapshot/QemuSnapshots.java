package io.github.qcowloom.snapshot;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What qemu-img says about an image's snapshots: the list of qemu-img info, and a snapshot's guest contents. */
final class QemuSnapshots {
    private QemuSnapshots() {
    }

    /**
     * The "snapshots" array of {@code qemu-img info --output=json}: one map per snapshot of its string and number
     * fields (numbers as Long), in table order; empty when the image has none.
     */
    static List<Map<String, Object>> info(Path image) {
        String json = Qemu.img("info", "--output=json", image.toString());
        List<Map<String, Object>> out = new ArrayList<>();
        int start = json.indexOf("\"snapshots\": [");
        if (start < 0) {
            return out;
        }
        int i = json.indexOf('[', start) + 1;
        while (true) {
            i = skipSpace(json, i);
            if (json.charAt(i) == ']') {
                return out;
            }
            if (json.charAt(i) == ',') {
                i++;
                continue;
            }
            // One flat object: "key": "string" | number, ...
            Map<String, Object> fields = new LinkedHashMap<>();
            i = skipSpace(json, i + 1);
            while (json.charAt(i) != '}') {
                StringBuilder key = new StringBuilder();
                i = readString(json, i, key);
                i = skipSpace(json, json.indexOf(':', i) + 1);
                if (json.charAt(i) == '"') {
                    StringBuilder value = new StringBuilder();
                    i = readString(json, i, value);
                    fields.put(key.toString(), value.toString());
                } else {
                    int end = i;
                    while ("-0123456789".indexOf(json.charAt(end)) >= 0) {
                        end++;
                    }
                    fields.put(key.toString(), Long.parseLong(json.substring(i, end)));
                    i = end;
                }
                i = skipSpace(json, i);
                if (json.charAt(i) == ',') {
                    i = skipSpace(json, i + 1);
                }
            }
            out.add(fields);
            i++;
        }
    }

    private static int skipSpace(String s, int i) {
        while (Character.isWhitespace(s.charAt(i))) {
            i++;
        }
        return i;
    }

    /** Reads the JSON string starting at the quote at {@code i} into {@code into}; returns the index after it. */
    private static int readString(String s, int i, StringBuilder into) {
        for (i++; s.charAt(i) != '"'; i++) {
            char c = s.charAt(i);
            if (c == '\\') {
                char e = s.charAt(++i);
                if (e == 'u') {
                    into.append((char) Integer.parseInt(s.substring(i + 1, i + 5), 16));
                    i += 4;
                } else {
                    into.append(switch (e) {
                        case 'n' -> '\n';
                        case 't' -> '\t';
                        case 'r' -> '\r';
                        case 'b' -> '\b';
                        case 'f' -> '\f';
                        default -> e;
                    });
                }
            } else {
                into.append(c);
            }
        }
        return i + 1;
    }

    /** The guest contents of snapshot {@code id} as qemu-img reads it (convert -l, which does not apply it). */
    static byte[] read(Path image, int id, Path scratchDir) throws IOException {
        Path raw = Files.createTempFile(scratchDir, "snapshot", ".raw");
        Qemu.img("convert", "-l", "snapshot.id=" + id, "-O", "raw", image.toString(), raw.toString());
        byte[] data = Files.readAllBytes(raw);
        Files.delete(raw);
        return data;
    }
}
