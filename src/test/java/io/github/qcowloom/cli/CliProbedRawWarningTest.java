package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.sameRunAsQemuImg;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A command that opens a raw image read-write without being told its format warns as qemu-img's raw driver does
 * ("probing guessed raw", the first sector then guarded); read-only opens and a format given stay quiet. Each run
 * compared with qemu-img's output, errors and exit status on the same file.
 */
class CliProbedRawWarningTest {
    @TempDir
    Path dir;

    @Test
    void writableOpensOfAProbedRawImageWarnAsQemuImgDoes() {
        Qemu.assume();
        Path raw = dir.resolve("disk.img");
        Qemu.img("create", "-q", "-f", "raw", raw.toString(), "1M");
        String[][] warned = {{"resize", raw.toString(), "2M"}, {"resize", "file:" + raw, "1M"},
            {"amend", "-o", "size=3M", raw.toString()}, {"rebase", "-u", "-b", "", raw.toString()},
            {"commit", raw.toString()}, {"snapshot", "-c", "s", raw.toString()},
            {"check", "-r", "all", raw.toString()},
            {"resize", "--image-opts", "file.filename=" + raw, "2M"}};
        for (String[] args : warned) {
            String err = sameAsQemuImgErr(args);
            assertTrue(err.startsWith("WARNING: Image format was not specified for '" + raw + "' and probing"
                    + " guessed raw.\n"), String.join(" ", args) + ": " + err);
        }
        // The same warning, then the refusal (qemu-img names the image by its node, "#block123")
        String bitmap = Cli.ours("bitmap", "--add", raw.toString(), "b").err();
        assertTrue(bitmap.startsWith("WARNING: Image format was not specified for '" + raw + "'"), bitmap);
        String[][] quiet = {{"resize", "-f", "raw", raw.toString(), "3M"}, {"snapshot", "-l", raw.toString()},
            {"check", raw.toString()}, {"map", raw.toString()}, {"compare", raw.toString(), raw.toString()}};
        for (String[] args : quiet) {
            assertFalse(sameAsQemuImgErr(args).contains("WARNING"), String.join(" ", args));
        }
    }

    /** Our error text of {@code args}, run as {@link Cli#sameRunAsQemuImg} (qemu-img's the same). */
    private static String sameAsQemuImgErr(String... args) {
        return sameRunAsQemuImg(args[0], (Object[]) Arrays.copyOfRange(args, 1, args.length)).err();
    }
}
