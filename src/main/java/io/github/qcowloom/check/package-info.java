/** qemu-img check for qcow2 images: the counters qemu-img reports, and the -r leaks / -r all repairs. */
package io.github.qcowloom.check;
