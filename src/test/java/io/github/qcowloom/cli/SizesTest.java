package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.DoubleRange;
import net.jqwik.api.constraints.LongRange;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Sizes printed as qemu-img's size_to_str prints them ({@code "%0.3g %sB"}). */
class SizesTest {
    /** The expected texts are C's printf, through Python's %-formatting, which rounds as glibc does. */
    @ParameterizedTest
    @CsvSource({
        "0, 0 B",
        "1, 1 B",
        "999, 999 B",
        "1000, 0.977 KiB",
        "1023, 0.999 KiB",
        "1024, 1 KiB",
        "1025, 1 KiB",
        "1152, 1.12 KiB", // 1.125: a tie, to even
        "1153, 1.13 KiB",
        "1536, 1.5 KiB",
        "10239, 10 KiB",
        "102348, 99.9 KiB",
        "102349, 100 KiB",
        "196608, 192 KiB",
        "1022977, 999 KiB",
        "1023999, 1e+03 KiB", // 999.999 rounds to 1000, which %g writes with an exponent
        "1024000, 0.977 MiB",
        "1048575, 1 MiB",
        "123456789, 118 MiB",
        "1048051712, 1e+03 MiB",
        "1124073472, 1.05 GiB",
        "1610612736, 1.5 GiB",
        "1000000000000, 931 GiB",
        "1100585369600, 1 TiB",
        "4611686018427387904, 4 EiB",
        "9223372036854775807, 8 EiB",
        "-9223372036854775808, 8 EiB", // unsigned, as QEMU's uint64_t: 2^63
        "-1, 16 EiB", // 2^64 - 1
    })
    void humanSizesAreQemuImgs(long bytes, String expected) {
        assertEquals(expected, Sizes.human(bytes));
    }

    /** qemu_strtosz's readings (ArgumentsInteropTest checks the same texts against qemu-img itself). */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "1.5M|1572864|",
        "0x10000|65536|",
        "0x1M|1048576|", // a suffix on hex: deprecated, still taken
        "1.M|1048576|", // the point alone is stepped over
        "0.0005k|1|", // 0.512: the fraction's remainder rounds half up
        "0.3k|307|",
        "' 2k'|2048|", // leading white space, as strtoull skips it
        "1.5E|1729382256910270464|",
        "16E|-1|range", // 2^64: out of range
        "18446744073709551615|-1|", // 2^64 - 1, unsigned
        "1e3|-1|invalid", // an exponent, or 'e' (exabytes) followed by more
        "1.5e3M|-1|invalid",
        "'1M '|-1|invalid", // nothing may follow the suffix
        ".5M|-1|invalid",
        "1.5|-1|invalid", // a fraction needs a suffix
        "0x|-1|invalid",
        "0x\u0663|-1|invalid", // an Arabic-Indic 3 is no hex digit for strtoull
        "0x1.0|-1|invalid",
        "-1|-1|invalid",
        "18446744073709551616k|-1|invalid", // out of range, but the suffix after it makes it invalid
    })
    void sizesParseAsQemuStrtosz(String text, long expected, String refusal) {
        if (refusal == null) {
            assertEquals(expected, Sizes.parse(text));
        } else {
            Sizes.SizeException e = org.junit.jupiter.api.Assertions.assertThrows(Sizes.SizeException.class,
                    () -> Sizes.parse(text));
            assertEquals(refusal.equals("range"), e.outOfRange, text);
        }
    }

    @Property(tries = 2000)
    void threeSignificantDigitsRoundTheExactValueHalfToEven(@ForAll @DoubleRange(min = 0.1, max = 1000,
            maxIncluded = false) double x) {
        assertEquals(oracle(x), Sizes.threeSignificant(x), Double.toString(x));
    }

    @Property(tries = 2000)
    void everyByteCountIsWithinHalfAPercentInTheUnitBelow1000(@ForAll @LongRange(min = 1) long bytes) {
        String[] parts = Sizes.human(bytes).split(" ");
        double value = Double.parseDouble(parts[0]);
        int unit = List.of("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB").indexOf(parts[1]);
        assertTrue(value >= 0.977 && value <= 1000, parts[0]);
        double error = Math.abs(value * Math.pow(1024, unit) - bytes) / bytes;
        assertTrue(error <= 0.005, Sizes.human(bytes) + " for " + bytes);
    }

    /** %0.3g through BigDecimal: the exact binary value, three digits, half to even, trailing zeros dropped. */
    private static String oracle(double x) {
        BigDecimal rounded = new BigDecimal(x).round(new MathContext(3, RoundingMode.HALF_EVEN));
        return rounded.compareTo(BigDecimal.valueOf(1000)) >= 0 ? "1e+03"
                : rounded.stripTrailingZeros().toPlainString();
    }
}
