package io.github.qcowloom.cli;

import java.util.OptionalLong;

/**
 * Plain numbers as qemu-img reads them (QEMU's qemu_strtoul and qemu_strtou64 with base 0 and no end pointer):
 * leading white space, an optional sign, then decimal, {@code 0x} hexadecimal or {@code 0} octal digits, and nothing
 * after them. So {@code 010} is 8 and {@code 08} is refused, as in qemu-img; a minus negates modulo 2^64, as C's
 * strtoul does (-1 is 2^64 - 1, out of any caller's range here; -18446744073709551615 is 1).
 */
final class QemuNumbers {
    private QemuNumbers() {
    }

    /** The value as an unsigned 64-bit number; empty where qemu_strtoul fails (no digits, trailing text, overflow). */
    static OptionalLong unsigned(String text) {
        try {
            return OptionalLong.of(parse(text));
        } catch (NumberFormatException | ArithmeticException e) {
            return OptionalLong.empty();
        }
    }

    /**
     * The value as an unsigned 64-bit number; NumberFormatException where there are no digits or text follows them,
     * ArithmeticException where they overflow (QEMU's -EINVAL and -ERANGE, which some callers tell apart).
     */
    static long parse(String text) {
        int i = 0;
        int n = text.length();
        while (i < n && " \t\n\u000b\f\r".indexOf(text.charAt(i)) >= 0) {
            i++;
        }
        boolean negative = false;
        if (i < n && (text.charAt(i) == '+' || text.charAt(i) == '-')) {
            negative = text.charAt(i) == '-';
            i++;
        }
        int radix = 10;
        if (i + 1 < n && text.charAt(i) == '0' && (text.charAt(i + 1) == 'x' || text.charAt(i + 1) == 'X')
                && i + 2 < n && digit(text.charAt(i + 2), 16) >= 0) {
            radix = 16;
            i += 2;
        } else if (i < n && text.charAt(i) == '0') {
            radix = 8; // strtoul's "0x" with no hex digit after it is the 0 alone, and the x is trailing text
        }
        int start = i;
        long value = 0;
        for (; i < n; i++) {
            int digit = digit(text.charAt(i), radix);
            if (digit < 0) {
                break;
            }
            if (Long.compareUnsigned(value, Long.divideUnsigned(-1L - digit, radix)) > 0) {
                throw new ArithmeticException(text + " overflows 64 bits");
            }
            value = value * radix + digit;
        }
        if (i == start || i != n) {
            throw new NumberFormatException(text); // no digits, or something after them
        }
        return negative ? -value : value;
    }

    /** The ASCII digit's value in {@code radix}, or -1 (C's strtoul knows no other digits). */
    private static int digit(char c, int radix) {
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : c >= 'A' && c <= 'Z' ? c - 'A' + 10 : -1;
        return d < radix ? d : -1;
    }

    /** The value if qemu_strtoul reads it and it is at most {@code max}; else an error with {@code message}. */
    static long atMost(String text, long max, String message) {
        OptionalLong v = unsigned(text);
        if (v.isEmpty() || Long.compareUnsigned(v.getAsLong(), max) > 0) {
            throw new IllegalArgumentException(message);
        }
        return v.getAsLong();
    }
}
