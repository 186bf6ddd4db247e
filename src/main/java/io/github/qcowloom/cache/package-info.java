/** Metadata table cache: L2 and refcount-block slices, LRU. */
package io.github.qcowloom.cache;
