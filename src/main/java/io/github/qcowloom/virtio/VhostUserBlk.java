package io.github.qcowloom.virtio;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.storage.Java22Method;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;

/**
 * The door to the vhost-user-blk back end (QEMU's docs/interop/vhost-user.rst), which lives in the jar's Java 22+
 * layer because it passes descriptors over the socket, maps the guest's memory and waits on eventfds, which Java
 * can only do through the FFM API. On Java 21 {@link #serve} refuses with a clear message.
 */
public final class VhostUserBlk {
    private static final Java22Method START = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.virtio.VhostUserBlkServer", "start", MethodType.methodType(Server.class, Path.class,
                    BlockDevice.class, VirtioBlkConfig.class, ExecutionModel.class),
            "vhost-user-blk (file descriptors passed over the socket, guest memory mapped through the FFM API)");

    /** A running back end: it serves one front end at a time until closed. */
    public interface Server extends AutoCloseable {
        /** The socket front ends connect to. */
        Path socket();

        /** Stops accepting, disconnects the front end (finishing its requests), removes the socket. */
        @Override
        void close();
    }

    private VhostUserBlk() {
    }

    /** Why the back end cannot run here, or null if it can. */
    public static String unavailableReason() {
        return START.missing();
    }

    /**
     * Listens on {@code socket} (which must not exist) and serves {@code disk} as a virtio-blk device to the
     * vhost-user front ends that connect, one at a time. The disk stays open when the server closes.
     */
    public static Server serve(Path socket, BlockDevice disk, VirtioBlkConfig config, ExecutionModel model)
            throws IOException {
        if (START.handle() == null) {
            throw new UnsupportedFeatureException(START.missing());
        }
        try {
            return (Server) START.handle().invokeExact(socket, disk, config, model);
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
