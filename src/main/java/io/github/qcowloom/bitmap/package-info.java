/**
 * Persistent dirty bitmaps (QEMU's qcow2-bitmap.c, as qemu-img bitmap drives it): add, remove, clear, enable,
 * disable and merge, stored in QEMU's crash-safe order.
 */
package io.github.qcowloom.bitmap;
