package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** qemu_strtoul in base 0 without qemu-img (ArgumentsInteropTest compares with it). */
class QemuNumbersTest {
    @Test
    void readsAsQemuStrtoulInBaseZero() {
        assertEquals(OptionalLong.of(16), QemuNumbers.unsigned("0x10"));
        assertEquals(OptionalLong.of(16), QemuNumbers.unsigned("0X10"));
        assertEquals(OptionalLong.of(8), QemuNumbers.unsigned("010"));
        assertEquals(OptionalLong.of(0), QemuNumbers.unsigned("0"));
        assertEquals(OptionalLong.of(0), QemuNumbers.unsigned("-0"));
        assertEquals(OptionalLong.of(5), QemuNumbers.unsigned(" \t+5"));
        assertEquals(OptionalLong.of(-1), QemuNumbers.unsigned("-1"));
        assertEquals(OptionalLong.of(-1), QemuNumbers.unsigned("18446744073709551615"));
        assertEquals(OptionalLong.of(255), QemuNumbers.unsigned("0xfF"));
    }

    @Test
    void refusesWhatQemuStrtoulRefuses() {
        for (String text : new String[] {"", " ", "+", "abc", "08", "0x", "0xg", "5 ", "1k", "1.0",
            "18446744073709551616", "0x10000000000000000", "\u0665"}) {
            assertEquals(OptionalLong.empty(), QemuNumbers.unsigned(text), "'" + text + "'");
        }
    }
}
