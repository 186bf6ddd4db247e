package io.github.qcowloom.cli;

import java.math.BigDecimal;
import java.math.BigInteger;

/** Sizes as qemu-img reads and prints them: "1.5G" in (qemu_strtosz), "1.46 GiB" out (size_to_str). */
final class Sizes {
    private Sizes() {
    }

    /**
     * Why a size did not parse, as qemu_strtosz tells the two apart: not a size at all (EINVAL), or a size that
     * does not fit in 64 bits (ERANGE). Each command words it as qemu-img does ({@link #cvtnum}, {@link #option}).
     */
    static final class SizeException extends IllegalArgumentException {
        final boolean outOfRange;

        SizeException(String text, boolean outOfRange) {
            super("Invalid size '" + text + "'");
            this.outOfRange = outOfRange;
        }
    }

    /**
     * QEMU 7.2's qemu_strtosz: leading white space, decimal digits, then either a fraction ('.' and digits, no
     * exponent) or, after "0x", hex digits; then at most one suffix (B, k, M, G, T, P, E, either case; binary); and
     * nothing after it. A fraction needs a suffix other than B and is rounded half up. The result is an unsigned
     * 64-bit count (a long whose sign bit may be set); callers bound it.
     */
    static long parse(String text) {
        int at = 0;
        int n = text.length();
        while (at < n && isCSpace(text.charAt(at))) {
            at++;
        }
        int signAt = at;
        if (at < n && (text.charAt(at) == '+' || text.charAt(at) == '-')) {
            at++;
        }
        int digitsAt = at;
        while (at < n && isDigit(text.charAt(at))) {
            at++;
        }
        if (at == digitsAt || text.charAt(signAt) == '-') {
            throw new SizeException(text, false);
        }
        BigInteger value = new BigInteger(text.substring(digitsAt, at));
        if (value.bitLength() > 64) {
            throw new SizeException(text, at == n); // strtoull's ERANGE, unless something follows
        }
        BigInteger fraction = BigInteger.ZERO; // in 1/2^64ths, as QEMU's 64.64 fixed point
        if (value.signum() == 0 && at < n && (text.charAt(at) == 'x' || text.charAt(at) == 'X')
                && at == digitsAt + 1) {
            int hexAt = at + 1;
            at = hexAt;
            while (at < n && (isDigit(text.charAt(at)) || "abcdefABCDEF".indexOf(text.charAt(at)) >= 0)) {
                at++;
            }
            if (at == hexAt) {
                throw new SizeException(text, false); // "0x": strtoull takes the 0 and stops at the x
            }
            value = new BigInteger(text.substring(hexAt, at), 16);
            if (value.bitLength() > 64 || at < n && text.charAt(at) == '.') {
                throw new SizeException(text, value.bitLength() > 64 && at == n);
            }
        } else if (at < n && text.charAt(at) == '.') {
            int fractionAt = at + 1;
            int end = fractionAt;
            while (end < n && isDigit(text.charAt(end))) {
                end++;
            }
            if (end == fractionAt) {
                at++; // strtod took nothing: QEMU steps over the point alone ("1.M" is 1 MiB)
            } else {
                if (end < n && (text.charAt(end) == 'e' || text.charAt(end) == 'E') && hasExponentDigits(text, end)) {
                    throw new SizeException(text, false); // an exponent makes the whole size invalid
                }
                // (uint64_t)(strtod(".ddd") * 2^64): the double's exact value, truncated.
                double d = Double.parseDouble("0" + text.substring(at, end));
                fraction = new BigDecimal(d).multiply(new BigDecimal(TWO_TO_64)).toBigInteger();
                if (fraction.bitLength() > 64) {
                    fraction = BigInteger.ZERO; // ".99999999999999999999" is 1.0: x86's conversion of 2^64 gives 0
                }
                at = end;
            }
        }
        int shift = 0;
        if (at < n) {
            int idx = SUFFIXES.indexOf(Character.toUpperCase(text.charAt(at)));
            if (idx >= 0) {
                shift = idx * 10;
                at++;
            }
        }
        if (at != n || shift == 0 && fraction.signum() != 0) {
            throw new SizeException(text, false);
        }
        // value * 2^shift plus the fraction's share, rounding the fraction's remainder half up.
        BigInteger scaledFraction = fraction.shiftLeft(shift);
        BigInteger result = value.shiftLeft(shift).add(scaledFraction.shiftRight(64))
                .add(scaledFraction.testBit(63) ? BigInteger.ONE : BigInteger.ZERO);
        if (result.bitLength() > 64) {
            throw new SizeException(text, true);
        }
        return result.longValue();
    }

    /**
     * qemu-img's cvtnum: a size for a command-line argument named {@code name} ("image size", "offset"), between 0
     * and 2^63 - 1, refused in qemu-img's two kinds of words. The two-line message names the program on its second
     * line, as qemu-img's two error_report calls do.
     */
    static long cvtnum(String name, String text) {
        return cvtnum(name, text, Long.MAX_VALUE);
    }

    /** {@link #cvtnum} bounded by {@code max}, as qemu-img's cvtnum_full (bench's sizes: at most INT_MAX). */
    static long cvtnum(String name, String text, long max) {
        return cvtnum(name, text, 0, max);
    }

    /** {@link #cvtnum} between {@code min} and {@code max}, as qemu-img's cvtnum_full (dd's bs: from 1). */
    static long cvtnum(String name, String text, long min, long max) {
        long v;
        try {
            v = parse(text);
        } catch (SizeException e) {
            if (!e.outOfRange) {
                throw new IllegalArgumentException("Invalid " + name + " specified. You may use k, M, G, T, P or E "
                        + "suffixes for\nqcow2-loom: kilobytes, megabytes, gigabytes, terabytes, petabytes and "
                        + "exabytes.", e);
            }
            v = -1;
        }
        if (v < min || v > max) {
            throw new IllegalArgumentException("Invalid " + name + " specified. Must be between " + min + " and "
                    + max + ".");
        }
        return v;
    }

    /**
     * QemuOpts' size option ({@code -o size=}, {@code -o cluster_size=}, resize's size): an unsigned 64-bit count,
     * refused in parse_option_size's words.
     */
    static long option(String name, String text) {
        try {
            return parse(text);
        } catch (SizeException e) {
            if (e.outOfRange) {
                throw new IllegalArgumentException("Value '" + text + "' is out of range for parameter '" + name
                        + "'", e);
            }
            throw new IllegalArgumentException("Parameter '" + name + "' expects a non-negative number below 2^64"
                    + "\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, "
                    + "respectively.", e);
        }
    }

    private static final String SUFFIXES = "BKMGTPE";
    private static final BigInteger TWO_TO_64 = BigInteger.ONE.shiftLeft(64);

    /** C's isspace in the C locale. */
    private static boolean isCSpace(char c) {
        return c == ' ' || c >= '\t' && c <= '\r';
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    /** strtod takes an exponent only when digits follow the 'e' (after an optional sign). */
    private static boolean hasExponentDigits(String text, int e) {
        int at = e + 1;
        if (at < text.length() && (text.charAt(at) == '+' || text.charAt(at) == '-')) {
            at++;
        }
        return at < text.length() && isDigit(text.charAt(at));
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
