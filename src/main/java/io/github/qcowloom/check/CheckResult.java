package io.github.qcowloom.check;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What qemu-img check reports (QEMU's ImageCheck), plus the detail lines it prints on stderr.
 *
 * @param messages the findings, one line each, in the order qemu-img prints them
 */
public record CheckResult(String filename, String format, long checkErrors, long imageEndOffset, long corruptions,
        long leaks, long corruptionsFixed, long leaksFixed, long totalClusters, long allocatedClusters,
        long fragmentedClusters, long compressedClusters, List<String> messages) {

    public CheckResult {
        messages = List.copyOf(messages);
    }

    /** This result with the counts a repair fixed, as qemu-img reports them after its second check. */
    public CheckResult withFixed(long corruptionsFixed, long leaksFixed, List<String> repairMessages) {
        return new CheckResult(filename, format, checkErrors, imageEndOffset, corruptions, leaks, corruptionsFixed,
                leaksFixed, totalClusters, allocatedClusters, fragmentedClusters, compressedClusters, repairMessages);
    }

    /** qemu-img check's exit code: 1 check errors, 2 corruptions, 3 leaks only, else 0. */
    public int exitCode() {
        return checkErrors > 0 ? 1 : corruptions > 0 ? 2 : leaks > 0 ? 3 : 0;
    }

    /**
     * The JSON fields qemu-img prints: filename, format and check-errors always, the others only when non-zero.
     * The order is that of QEMU 7.2's QDict buckets, which is what qemu-img --output=json shows.
     */
    public Map<String, Object> fields() {
        Map<String, Object> m = new LinkedHashMap<>();
        optional(m, "image-end-offset", imageEndOffset);
        optional(m, "compressed-clusters", compressedClusters);
        optional(m, "total-clusters", totalClusters);
        optional(m, "corruptions", corruptions);
        optional(m, "corruptions-fixed", corruptionsFixed);
        m.put("check-errors", checkErrors);
        optional(m, "leaks", leaks);
        optional(m, "leaks-fixed", leaksFixed);
        optional(m, "allocated-clusters", allocatedClusters);
        m.put("filename", filename);
        m.put("format", format);
        optional(m, "fragmented-clusters", fragmentedClusters);
        return m;
    }

    private static void optional(Map<String, Object> m, String key, long value) {
        if (value != 0) {
            m.put(key, value);
        }
    }
}
