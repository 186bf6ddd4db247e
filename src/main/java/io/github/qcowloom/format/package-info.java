/** Pure codecs and validation of the qcow2 on-disk format; no I/O. */
package io.github.qcowloom.format;
