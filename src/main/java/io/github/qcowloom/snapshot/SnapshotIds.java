package io.github.qcowloom.snapshot;

import java.util.List;

/** QEMU's find_new_snapshot_id: one more than the largest id read as a number (strtoul), as an unsigned decimal. */
final class SnapshotIds {
    private SnapshotIds() {
    }

    static String next(List<Snapshot> snapshots) {
        long max = 0;
        for (Snapshot s : snapshots) {
            long id = strtoul(s.id());
            if (Long.compareUnsigned(id, max) > 0) {
                max = id;
            }
        }
        return Long.toUnsignedString(max + 1);
    }

    /**
     * C's strtoul in base 10 on a 64-bit host: leading white space, an optional sign (a minus negates modulo
     * 2^64), then digits; no digits is 0, overflow is ULONG_MAX.
     */
    static long strtoul(String s) {
        int i = 0;
        while (i < s.length() && " \t\n\u000b\f\r".indexOf(s.charAt(i)) >= 0) {
            i++;
        }
        boolean negative = false;
        if (i < s.length() && (s.charAt(i) == '+' || s.charAt(i) == '-')) {
            negative = s.charAt(i) == '-';
            i++;
        }
        long value = 0;
        int start = i;
        while (i < s.length() && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
            int digit = s.charAt(i) - '0';
            // value * 10 + digit overflows 64 unsigned bits when value > (2^64 - 1 - digit) / 10.
            if (Long.compareUnsigned(value, Long.divideUnsigned(-1L - digit, 10)) > 0) {
                return -1L;
            }
            value = value * 10 + digit;
            i++;
        }
        if (i == start) {
            return 0;
        }
        return negative ? -value : value;
    }
}
