package io.github.qcowloom.cli;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;

/** Sizes as qemu-img reads and prints them: "1.5G" in (qemu_strtosz), "1.46 GiB" out (size_to_str). */
final class Sizes {
    private Sizes() {
    }

    private static final String SUFFIXES = "BKMGTPE";

    /** Parses a byte count with an optional binary suffix (k, M, G, T, P, E) and optional fraction. */
    static long parse(String text) {
        String s = text.trim();
        if (s.isEmpty()) {
            throw new IllegalArgumentException("empty size");
        }
        int shift = 0;
        char last = Character.toUpperCase(s.charAt(s.length() - 1));
        int idx = SUFFIXES.indexOf(last);
        if (idx >= 0) {
            shift = idx * 10;
            s = s.substring(0, s.length() - 1);
        }
        BigDecimal value;
        try {
            value = new BigDecimal(s);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("Invalid size '" + text + "'");
        }
        BigDecimal bytes = value.multiply(BigDecimal.valueOf(2).pow(shift));
        if (bytes.signum() < 0 || bytes.compareTo(BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
            throw new IllegalArgumentException("Invalid size '" + text + "': must be between 0 and 8 EiB");
        }
        if (shift == 0 && bytes.stripTrailingZeros().scale() > 0) {
            throw new IllegalArgumentException("Invalid size '" + text + "': fractional bytes");
        }
        return bytes.setScale(0, RoundingMode.DOWN).longValueExact();
    }

    /** QEMU's size_to_str: three significant digits in the largest unit below 1000 of it. */
    static String human(long bytes) {
        String[] units = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
        int exp = bytes == 0 ? 0 : Math.getExponent(bytes / (1000.0 / 1024.0)) + 1;
        int i = Math.max(0, (exp - 1) / 10);
        BigDecimal v = new BigDecimal(bytes).divide(BigDecimal.valueOf(2).pow(i * 10));
        BigDecimal rounded = v.round(new MathContext(3, RoundingMode.HALF_EVEN)).stripTrailingZeros();
        return rounded.toPlainString() + " " + units[i] + "B";
    }
}
