/** Cluster compression codecs: zlib raw deflate with QEMU's 4 KiB window, and zstd. */
package io.github.qcowloom.compress;
