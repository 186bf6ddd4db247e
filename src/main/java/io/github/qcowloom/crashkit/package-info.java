/**
 * The crash-consistency kit: run a workload on a {@link io.github.qcowloom.crashkit.CrashSimStorage}, enumerate
 * the images a power loss could leave, and check each with {@link io.github.qcowloom.crashkit.CrashInvariants};
 * inject I/O errors at named driver events with {@link io.github.qcowloom.crashkit.FaultStorage}.
 *
 * <p>The crash model and invariants are those of reference/crash.md §3: completed flushes close epochs; a crash
 * keeps every closed epoch and any subset of the open one, in order.
 */
package io.github.qcowloom.crashkit;
