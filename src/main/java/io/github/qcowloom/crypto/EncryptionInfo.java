package io.github.qcowloom.crypto;

/** What {@code qemu-img info} shows of an image's encryption under "encrypt": its format, and LUKS's header. */
public sealed interface EncryptionInfo permits LuksInfo, EncryptionInfo.Aes {
    /** The format as QEMU's {@code encrypt.format} names it: "luks" or "aes". */
    String format();

    /** qcow2's AES encryption before LUKS ({@link QcowAes}): nothing to show but its name. */
    record Aes() implements EncryptionInfo {
        @Override
        public String format() {
            return "aes";
        }
    }
}
