package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.cli.Main;
import io.github.qcowloom.testing.Qemu;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What every kill test checks once the server under a writing guest is dead, whatever the export: qemu-img check
 * finds leaks at most; our {@code check -r all} repairs; qemu-img check is clean; a new boot over a fresh server
 * replays the journal, passes {@code e2fsck -fn} and finds every file the guest had synced with its checksum.
 */
final class AfterServerKill {
    /** Starts a fresh server on the image, for the checking boot. */
    interface Restart {
        ServeProcess start() throws Exception;
    }

    private AfterServerKill() {
    }

    /** After how many synced files each round kills the server: {@code -Dguest.killAfter=2,5,9} (default 3). */
    static List<Integer> killPoints() {
        return Arrays.stream(System.getProperty("guest.killAfter", "3").split(","))
                .map(String::trim).map(Integer::valueOf).toList();
    }

    /** Runs the checks above; {@code synced} are the guest's "synced" marks before the kill. Prints a summary. */
    static void repairAndVerify(Path image, List<String> synced, Restart restart, GuestDisk disk, String label)
            throws Exception {
        Map<String, String> durable = Ext4Workload.checksums(synced);
        String before = Qemu.exec(List.of("qemu-img", "check", "--output=json", image.toString())).stdout();
        assertFalse(before.contains("\"corruptions\""), "a killed server must leave no corruption: " + before);

        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int repaired = Main.run(new PrintWriter(out), new PrintWriter(err), "check", "-r", "all", image.toString());
        assertEquals(0, repaired, "check -r all: " + out + err);
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, check.exitCode(), "qemu-img check after our repair: " + check.stdout() + check.stderr());
        assertTrue(check.stdout().contains("No errors were found"), check.stdout());

        GuestResult after;
        try (ServeProcess serve = restart.start()) {
            after = serve.boot(() -> GuestVm.boot(disk, Ext4Workload.checkAndList(true)));
            serve.stop();
        }
        assertEquals(List.of("clean"), after.values("fsck"), "e2fsck -fn after journal replay\n" + after.tail(40));
        Map<String, String> found = Ext4Workload.checksums(after.values("file"));
        durable.forEach((name, sum) -> assertEquals(sum, found.get(name),
                name + " was synced before the kill; after it the guest finds " + found));
        Qemu.Result last = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, last.exitCode(), "qemu-img check after the checking boot: " + last.stdout());
        Matcher leaks = Pattern.compile("\"leaks\": (\\d+)").matcher(before);
        System.out.printf("%s: kill after %d synced files: %s leaked clusters before repair, %d files after (%s),"
                + " check boot %d ms%n", label, synced.size(), leaks.find() ? leaks.group(1) : "no", found.size(),
                found.keySet(), after.elapsed().toMillis());
    }
}
