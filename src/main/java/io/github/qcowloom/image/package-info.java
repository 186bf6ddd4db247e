/** Qcow2Image and its request paths. */
package io.github.qcowloom.image;
