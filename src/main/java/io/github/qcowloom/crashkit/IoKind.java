package io.github.qcowloom.crashkit;

/** The kinds of storage operation a {@link FaultStorage} counts and fails. */
public enum IoKind {
    /** {@code read}. */
    READ,
    /** {@code write}, {@code writeZeroes}, {@code punchHole} and {@code setLength}. */
    WRITE,
    /** {@code flush}. */
    FLUSH
}
