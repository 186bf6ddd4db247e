/**
 * The crash-consistency kit: run a workload on a {@link io.github.qcowloom.crashkit.CrashSimStorage}, enumerate
 * the images a power loss could leave, and check each with {@link io.github.qcowloom.crashkit.CrashInvariants};
 * inject I/O errors at named driver events with {@link io.github.qcowloom.crashkit.FaultStorage}.
 *
 * <p>The crash model and invariants are those of reference/crash.md §3: completed flushes close epochs; a crash
 * keeps every closed epoch and any subset of the open one, in order. Internal snapshots a workload creates, applies
 * or deletes are recorded in its {@link io.github.qcowloom.crashkit.GuestHistory} too, and checked (invariant f):
 * every snapshot listed reads exactly as the disk did at its creation, a durably created one is listed, a durably
 * deleted one is not, and an apply cut short leaves the old disk or the snapshot's.
 */
package io.github.qcowloom.crashkit;
