package io.github.qcowloom.check;

import io.github.qcowloom.api.ImageException;
import java.util.List;

/**
 * qemu-img's "Check failed": the check stopped before it had a result, as when the snapshot table cannot be read
 * or -r leaks meets refcount structures that need a rebuild. qemu-img then prints the lines found so far and the
 * error, and exits 1 with no summary.
 */
public final class CheckFailedException extends ImageException {
    private final transient List<String> messages;
    private final String reason;

    /**
     * @param messages the lines printed on stderr before the failure, in order
     * @param reason the errno text qemu-img gives ("File too large", "Invalid argument", ...)
     */
    public CheckFailedException(List<String> messages, String reason) {
        super("Check failed: " + reason);
        this.messages = List.copyOf(messages);
        this.reason = reason;
    }

    public List<String> messages() {
        return messages;
    }

    public String reason() {
        return reason;
    }
}
