package io.github.qcowloom.image;

import io.github.qcowloom.storage.Storage;

/**
 * Where the read and write paths take guest data from and put it: the storage for a run of it whose first byte lies
 * at {@code host} in the file and at {@code guest} in the guest (a run is contiguous in both), addressed by host
 * offset. Plain and LUKS-encrypted data are one storage for every run; AES numbers its sector IVs by guest offset,
 * so it is a view made for each run ({@link EncryptedData}).
 */
@FunctionalInterface
interface GuestData {
    Storage at(long host, long guest);

    /** Unencrypted data: {@code data} itself (null when the data file was not opened). */
    static GuestData plain(Storage data) {
        return (host, guest) -> data;
    }
}
