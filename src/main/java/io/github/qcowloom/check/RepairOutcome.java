package io.github.qcowloom.check;

import java.util.List;

/**
 * What qemu-img check -r ends with (a repair that cannot finish throws {@link CheckFailedException} instead).
 *
 * @param result what the check after the repair found, with the -fixed counts
 * @param messages the lines printed on stderr before the result
 */
public record RepairOutcome(CheckResult result, List<String> messages) {
    public RepairOutcome {
        messages = List.copyOf(messages);
    }
}
