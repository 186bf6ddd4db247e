package io.github.qcowloom.crashkit;

/**
 * One image a crash could leave on disk.
 *
 * @param description where the crash fell and what survived, for error messages
 *     ("epoch 4 (ops 12..20), subset {3,5}")
 * @param image the bytes of the host file
 * @param durableFlushes how many flushes had completed before the crash: everything written before the last of
 *     them must be in the image
 */
public record CrashState(String description, byte[] image, long durableFlushes) {
    @Override
    public String toString() {
        return description + " (" + image.length + " bytes, " + durableFlushes + " flushes durable)";
    }
}
