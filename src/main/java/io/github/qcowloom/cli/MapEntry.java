package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.format.Bytes;

/**
 * One line of {@code map}: qemu-img's MapEntry, its merge rule (entry_mergeable) and its two layouts
 * (dump_map_entry), with the {@code compressed} field of QEMU 8.2 and later.
 *
 * @param filename the file holding the bytes, set only where the offset is (as qemu-img does)
 */
record MapEntry(long start, long length, int depth, boolean present, boolean zero, boolean data, boolean compressed,
        boolean hasOffset, long offset, String filename) {

    /** qemu-img's starting entry: empty, all flags false; printed only when the range to map is empty. */
    static MapEntry empty(long start) {
        return new MapEntry(start, 0, 0, false, false, false, false, false, 0, null);
    }

    static MapEntry of(long start, BlockStatus s, String filename) {
        BlockStatus.Host host = s.host();
        return new MapEntry(start, s.length(), s.depth(), s.present(), s.zero(), s.data(), s.compressed(),
                host != null, host == null ? 0 : host.offset(), host == null ? null : filename);
    }

    long end() {
        return start + length;
    }

    /**
     * qemu-img's entry_mergeable: {@code next} continues this entry when every flag, the depth and the file agree
     * and, where there is an offset, the host bytes follow on.
     */
    boolean mergeable(MapEntry next) {
        if (length == 0) {
            return false;
        }
        if (zero != next.zero || data != next.data || compressed != next.compressed || depth != next.depth
                || present != next.present || (filename == null) != (next.filename == null)
                || hasOffset != next.hasOffset) {
            return false;
        }
        if (filename != null && !filename.equals(next.filename)) {
            return false;
        }
        return !hasOffset || offset + length == next.offset;
    }

    MapEntry extendedBy(long bytes) {
        return new MapEntry(start, length + bytes, depth, present, zero, data, compressed, hasOffset, offset,
                filename);
    }

    /** The JSON object, without separator; the field order and spacing are qemu-img's. */
    String json() {
        StringBuilder sb = new StringBuilder().append("{ \"start\": ").append(start).append(", \"length\": ")
                .append(length).append(", \"depth\": ").append(depth).append(", \"present\": ").append(present)
                .append(", \"zero\": ").append(zero).append(", \"data\": ").append(data)
                .append(", \"compressed\": ").append(compressed);
        if (hasOffset) {
            sb.append(", \"offset\": ").append(offset);
        }
        return sb.append('}').toString();
    }

    /**
     * The human table's line: only data that is not zero is listed, so this is empty otherwise. Data without an
     * offset cannot be shown there, and qemu-img stops with an error (its exit code 1).
     */
    String human() throws ImageException {
        if (data && !hasOffset) {
            throw new ImageException("File contains external, encrypted or compressed clusters.");
        }
        if (!data || zero) {
            return "";
        }
        return column(Bytes.cHex(start)) + column(Bytes.cHex(length)) + column(Bytes.cHex(offset))
                + (filename == null ? "" : filename)
                + "\n";
    }

    static String humanHeader() {
        return column("Offset") + column("Length") + column("Mapped to") + "File\n";
    }

    private static String column(String s) {
        return String.format("%-16s", s);
    }
}
