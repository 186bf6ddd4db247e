/** Execution models: a virtual thread per request, or a fixed pool of platform threads. */
package io.github.qcowloom.exec;
