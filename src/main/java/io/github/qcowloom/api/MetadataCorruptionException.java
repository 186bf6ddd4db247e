package io.github.qcowloom.api;

/**
 * Metadata met during I/O contradicts itself (a misaligned table, an overlap of data with metadata, an invalid
 * entry): QEMU's qcow2_signal_corruption. A writable image is marked corrupt and refuses further requests.
 */
public class MetadataCorruptionException extends CorruptImageException {
    public MetadataCorruptionException(String message) {
        super(message);
    }

    public MetadataCorruptionException(String message, Throwable cause) {
        super(message, cause);
    }

    @Override
    public MetadataCorruptionException withContext(String context) {
        return new MetadataCorruptionException(context + getMessage(), this);
    }
}
