/** Host files: positional I/O on a FileChannel (buffered or O_DIRECT) or in memory. */
package io.github.qcowloom.storage;
