package io.github.qcowloom.storage;

import io.github.qcowloom.api.StorageBackend;

/** The file contract through io_uring, through the page cache. */
class UringBufferedFileStorageTest extends FileStorageContract {
    @Override
    protected boolean direct() {
        return false;
    }

    @Override
    protected StorageBackend backend() {
        return StorageBackend.IO_URING;
    }
}
