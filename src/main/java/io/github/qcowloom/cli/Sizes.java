package io.github.qcowloom.cli;

import java.math.BigDecimal;
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

    /**
     * QEMU's size_to_str: {@code printf("%0.3g %sB", (double) bytes / 1024^i, suffix)} in the largest unit in
     * which the value is below 1000. {@code bytes} is unsigned, as QEMU's uint64_t (a snapshot's VM state size is
     * read from the image as it is). Done in integers rather than through BigDecimal, whose first use cost a short
     * command (info) a tenth of its start-up.
     */
    static String human(long bytes) {
        String[] units = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
        // The unsigned value as a double, rounded as C converts it: halved with the low bit kept (round to odd),
        // converted, doubled.
        double value = bytes >= 0 ? bytes : (double) ((bytes >>> 1) | (bytes & 1)) * 2.0;
        int exp = bytes == 0 ? 0 : Math.getExponent(value / (1000.0 / 1024.0)) + 1;
        int i = Math.max(0, (exp - 1) / 10);
        return threeSignificant(value / (1L << (i * 10))) + " " + units[i] + "B";
    }

    /**
     * C's {@code %0.3g} of {@code x}, for 0 and for 0.1 &le; x &lt; 1000 (size_to_str passes no other): the exact
     * binary value rounded half to even to three significant digits, with trailing zeros dropped; a value that
     * rounds to 1000 is "1e+03", as printf writes it.
     */
    static String threeSignificant(double x) {
        if (x == 0) {
            return "0";
        }
        if (!(x >= 0.1 && x < 1000)) {
            throw new IllegalArgumentException("outside size_to_str's range: " + x);
        }
        int exponent = x < 1 ? -1 : x < 10 ? 0 : x < 100 ? 1 : 2; // decimal: 10^exponent <= x < 10^(exponent + 1)
        // x = mantissa * 2^binaryExponent exactly; digits = x * 10^(2 - exponent) rounded half to even, which
        // mantissa * 1000 < 2^63 holds exactly.
        long mantissa = (Double.doubleToRawLongBits(x) & ((1L << 52) - 1)) | (1L << 52);
        int shift = 52 - Math.getExponent(x); // x < 1000 < 2^52: a right shift
        long digits = shiftRoundingHalfEven(mantissa * POWERS_OF_TEN[2 - exponent], shift);
        if (digits == 1000) { // rounding carried into a fourth digit: 9.995 is "10"
            digits = 100;
            exponent++;
        }
        if (exponent == 3) {
            return "1e+03";
        }
        String text = Long.toString(digits); // three digits: 100 to 999
        return stripZeros(exponent < 0 ? "0." + text
                : text.substring(0, exponent + 1) + "." + text.substring(exponent + 1));
    }

    private static final long[] POWERS_OF_TEN = {1, 10, 100, 1000};

    /** {@code value / 2^shift}, rounded half to even (value &ge; 0, 1 &le; shift &le; 62). */
    private static long shiftRoundingHalfEven(long value, int shift) {
        long q = value >>> shift;
        long rem = value & ((1L << shift) - 1);
        long half = 1L << (shift - 1);
        return rem > half || rem == half && (q & 1) == 1 ? q + 1 : q;
    }

    /** "1.50" is "1.5", "2.00" is "2", as %g without '#' prints them. */
    private static String stripZeros(String fixed) {
        if (fixed.indexOf('.') < 0) {
            return fixed;
        }
        int end = fixed.length();
        while (fixed.charAt(end - 1) == '0') {
            end--;
        }
        if (fixed.charAt(end - 1) == '.') {
            end--;
        }
        return fixed.substring(0, end);
    }
}
