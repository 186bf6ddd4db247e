/** Internal snapshots (QEMU's qcow2-snapshot.c): list, create, apply and delete, each in QEMU's crash-safe order. */
package io.github.qcowloom.snapshot;
