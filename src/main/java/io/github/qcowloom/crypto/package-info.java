/**
 * LUKS1 encryption as QEMU's crypto/block-luks.c does it (header, key slots, PBKDF2, AF split, sector ciphers), and
 * the AES of qcow2 images before it, as crypto/block-qcow.c does it ({@link io.github.qcowloom.crypto.QcowAes}).
 */
package io.github.qcowloom.crypto;
