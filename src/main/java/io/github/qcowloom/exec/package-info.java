/**
 * Execution models: a virtual thread per request (on the JDK's scheduler or on io_uring event loops), or a fixed
 * pool of platform threads.
 */
package io.github.qcowloom.exec;
