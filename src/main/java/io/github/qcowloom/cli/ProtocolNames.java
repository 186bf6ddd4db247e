package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.util.Set;

/**
 * File names on the command line as QEMU reads them (block.c's path_has_protocol): a ':' before any '/' makes what
 * precedes it a protocol, which QEMU looks up among its block drivers (bdrv_find_protocol). Only local files named
 * without a protocol are opened here; a name with one is refused before anything is opened, in qemu-img's words
 * where QEMU knows no such protocol ("Unknown protocol 'a'"), else naming the protocol as not supported here. A file
 * whose own name has such a ':' is named as in QEMU, with a '/' before it: {@code ./a:b.qcow2}.
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
     * Refuses {@code name} if it names a protocol, its message {@code context} followed by the reason.
     *
     * @throws UnsupportedFeatureException for a protocol QEMU has (nbd://, file:, json:, ...)
     * @throws ImageException for one it does not have, in its words
     */
    static void refuseProtocol(String name, String context) throws ImageException {
        int stop = 0;
        while (stop < name.length() && name.charAt(stop) != ':' && name.charAt(stop) != '/') {
            stop++;
        }
        if (stop == name.length() || name.charAt(stop) != ':') {
            return;
        }
        String protocol = name.substring(0, stop);
        if (!QEMU_PROTOCOLS.contains(protocol)) {
            throw new ImageException(context + "Unknown protocol '" + protocol + "'");
        }
        throw new UnsupportedFeatureException("protocol " + protocol, context + "the protocol '" + protocol
                + "' is not supported (only local files, named without a protocol)");
    }
}
