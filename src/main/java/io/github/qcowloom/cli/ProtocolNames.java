package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.ProtocolPrefix;
import java.util.Set;

/**
 * File names on the command line as QEMU reads them ({@link ProtocolPrefix}): a ':' before any '/' makes what precedes
 * it a protocol, which QEMU looks up among its block drivers (bdrv_find_protocol). A name without one, or with a local
 * file's ({@code file:}, {@code host_device:}, {@code host_cdrom:}), names a local file; any other is refused before
 * anything is opened, in qemu-img's words where QEMU knows no such protocol ("Unknown protocol 'a'"), else naming the
 * protocol as not supported here. A file whose own name has such a ':' is named as in QEMU, with a '/' before it:
 * {@code ./a:b.qcow2}.
 */
final class ProtocolNames {
    /** The protocols of QEMU 7.2's block drivers (Debian's build), and its json: pseudo-protocol. */
    private static final Set<String> QEMU_PROTOCOLS = Set.of("file", "host_device", "host_cdrom", "nbd", "nbd+tcp",
            "nbd+unix", "http", "https", "ftp", "ftps", "ssh", "iscsi", "iser", "rbd", "gluster", "gluster+tcp",
            "gluster+unix", "gluster+rdma", "nfs", "null-co", "null-aio", "nvme", "fat", "blkdebug", "blkverify",
            "json");

    private ProtocolNames() {
    }

    /**
     * Refuses {@code name} if it names a protocol other than a local file's, its message {@code context} followed by
     * the reason.
     *
     * @throws UnsupportedFeatureException for a protocol QEMU has (nbd://, json:, ...)
     * @throws ImageException for one it does not have, in its words
     */
    static void refuseProtocol(String name, String context) throws ImageException {
        String protocol = ProtocolPrefix.of(name);
        if (protocol == null || ProtocolPrefix.local(protocol)) {
            return;
        }
        if (!QEMU_PROTOCOLS.contains(protocol)) {
            throw new ImageException(context + "Unknown protocol '" + protocol + "'");
        }
        throw new UnsupportedFeatureException("protocol " + protocol, context + "the protocol '" + protocol
                + "' is not supported (only local files)");
    }

    /**
     * The local file {@code name} names, refused as {@link #refuseProtocol} refuses it, or in QEMU's words where a
     * local file's protocol has no name after it or names a file of a kind it does not open.
     */
    static String localFile(String name, String context) throws ImageException {
        refuseProtocol(name, context);
        try {
            return ProtocolPrefix.localFile(name);
        } catch (ImageException e) {
            throw new ImageException(context + e.getMessage(), e);
        }
    }

    /**
     * The local file {@code name} names for a new image ({@link #localFile}); a device's protocol is refused, as
     * making an image on a device is not done here.
     */
    static String newFile(String name, String context) throws ImageException {
        String protocol = ProtocolPrefix.of(name);
        if ("file".equals(protocol) && ProtocolPrefix.fileName(name).isEmpty()) {
            throw new ImageException(context + "Could not create '': No such file or directory"); // its create's
        }
        String file = localFile(name, context);
        if (protocol != null && !protocol.equals("file")) {
            throw new UnsupportedFeatureException("image creation through " + protocol, context
                    + "creating an image through the protocol '" + protocol + "' is not supported");
        }
        return file;
    }
}
