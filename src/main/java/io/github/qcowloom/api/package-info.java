/** The public surface: BlockDevice, options and the typed exceptions. */
package io.github.qcowloom.api;
