package io.github.qcowloom.image;

import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.crypto.LuksFormat;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Encrypts a new, empty qcow2 image with LUKS, as QEMU's qcow2_set_up_encryption does at create: a LUKS header
 * with one key slot for the passphrase, in clusters allocated after the tables (first fit: where QEMU puts them,
 * after the L1 table; with preallocation after the data, as QEMU 7.2 puts them), zero-filled to their
 * end; then the header names them (CRYPTO header extension) and says crypt_method 2. Nothing of the image reads as
 * guest data yet, so no data needs encrypting.
 */
final class LuksSetUp {
    private LuksSetUp() {
    }

    /** {@code headerArea}: the LUKS header and key material, as {@link LuksFormat#create} made them. */
    static void run(Path image, byte[] headerArea) throws IOException {
        long at;
        // References not followed: a backing file need not exist (create -u), nor open without its own key.
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false)
                .withFollowReferences(false))) {
            long clusterSize = img.header().clusterSize();
            at = img.editTables(editor -> {
                long offset = editor.allocate(headerArea.length);
                editor.writeNewTable(offset, Arrays.copyOf(headerArea,
                        (int) Bytes.alignUp(headerArea.length, clusterSize)), "LUKS header");
                editor.flush();
                return offset;
            });
        }
        HeaderRewrite.rewrite(image, ImageLocking.DEFAULT,
                h -> h.withLuksHeader(new Header.CryptoHeaderArea(at, headerArea.length)));
    }
}
