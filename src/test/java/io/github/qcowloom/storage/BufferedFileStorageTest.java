package io.github.qcowloom.storage;

class BufferedFileStorageTest extends FileStorageContract {
    @Override
    protected boolean direct() {
        return false;
    }
}
