/**
 * The virtio-blk device (virtio 1.2, sections 2.7 and 5.2) over guest memory, embeddable by a Java hypervisor
 * ({@link io.github.qcowloom.virtio.VirtioBlkDevice} over a {@link io.github.qcowloom.virtio.GuestMemory}), and the
 * door to the vhost-user-blk back end that QEMU attaches ({@link io.github.qcowloom.virtio.VhostUserBlk}), whose
 * protocol and native calls live in the jar's Java 22+ layer.
 */
package io.github.qcowloom.virtio;
