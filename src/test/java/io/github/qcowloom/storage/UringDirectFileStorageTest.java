package io.github.qcowloom.storage;

import io.github.qcowloom.api.StorageBackend;

/** The file contract through io_uring, with O_DIRECT. */
class UringDirectFileStorageTest extends FileStorageContract {
    @Override
    protected boolean direct() {
        return true;
    }

    @Override
    protected StorageBackend backend() {
        return StorageBackend.IO_URING;
    }
}
