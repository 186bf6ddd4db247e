package io.github.qcowloom.image;

/**
 * What an L2 table holds for one guest cluster: the entry and, with extended L2, its subcluster bitmap (always 0
 * in a standard table). Request paths describe L2 changes as functions from the old words to the new.
 */
record L2Words(long entry, long bitmap) {
}
