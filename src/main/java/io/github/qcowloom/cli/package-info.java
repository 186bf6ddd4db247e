/** The qemu-img-like command line. */
package io.github.qcowloom.cli;
