/**
 * An NBD server over any {@link io.github.qcowloom.api.BlockDevice}: fixed-newstyle handshake, structured replies,
 * {@code base:allocation} block status, requests on the execution model's threads (NetworkBlockDevice/nbd
 * {@code doc/proto.md}).
 */
package io.github.qcowloom.nbd;
