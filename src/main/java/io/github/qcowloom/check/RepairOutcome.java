package io.github.qcowloom.check;

import java.util.List;

/**
 * What qemu-img check -r ends with: the result to print, or a failed check (QEMU's "Check failed").
 *
 * @param result what the check after the repair found, with the -fixed counts; null if the check failed
 * @param messages the lines printed on stderr before the result or the failure
 */
public record RepairOutcome(CheckResult result, List<String> messages) {
    public RepairOutcome {
        messages = List.copyOf(messages);
    }

    /** True if the check failed, as when the refcount structures would need a rebuild. */
    public boolean failed() {
        return result == null;
    }
}
