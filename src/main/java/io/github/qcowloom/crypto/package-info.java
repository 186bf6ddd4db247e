/** LUKS1 encryption as QEMU's crypto/block-luks.c does it: header, key slots, PBKDF2, AF split, sector ciphers. */
package io.github.qcowloom.crypto;
