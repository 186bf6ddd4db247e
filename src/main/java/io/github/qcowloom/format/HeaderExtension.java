package io.github.qcowloom.format;

import java.util.Arrays;

/** One header extension {type, data}; unknown types are kept and rewritten verbatim. */
public record HeaderExtension(int type, byte[] data) {
    public static final int END = 0;
    public static final int BACKING_FORMAT = 0xe2792aca;
    public static final int FEATURE_TABLE = 0x6803f857;
    public static final int BITMAPS = 0x23852875;
    public static final int FDE_POINTER = 0x0537be77;
    public static final int DATA_FILE = 0x44415441;

    public HeaderExtension {
        data = data.clone();
    }

    @Override
    public byte[] data() {
        return data.clone();
    }

    /** Bytes this extension takes on disk: 8-byte header plus data padded to 8. */
    public int encodedLength() {
        return 8 + (int) Bytes.alignUp(data.length, 8);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof HeaderExtension e && e.type == type && Arrays.equals(e.data, data);
    }

    @Override
    public int hashCode() {
        return 31 * type + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
        return String.format("HeaderExtension[0x%08x, %d bytes]", type, data.length);
    }
}
