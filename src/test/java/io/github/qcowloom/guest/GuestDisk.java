package io.github.qcowloom.guest;

import java.nio.file.Path;
import java.util.List;

/**
 * How QEMU attaches one disk to the guest: the command-line arguments, and whether the attachment needs the
 * guest's RAM in shared memory (vhost-user back ends map it; {@link GuestVm} then backs the RAM with a memfd
 * of the VM's size: {@code -object memory-backend-memfd,id=mem,size=M,share=on -numa node,memdev=mem}).
 * Disks appear in the guest as /dev/vda, /dev/vdb... in the order given.
 */
public record GuestDisk(List<String> qemuArgs, boolean sharedMemory) {
    public GuestDisk {
        qemuArgs = List.copyOf(qemuArgs);
    }

    /** An NBD export on a Unix socket as a virtio-blk disk, as a user would attach {@code serve --socket}. */
    public static GuestDisk nbdUnix(Path socket) {
        return new GuestDisk(List.of("-drive", "file=nbd+unix:///?socket=" + socket.toAbsolutePath()
                + ",format=raw,if=virtio,cache=none,discard=unmap"), false);
    }

    /** A vhost-user-blk back end listening on {@code socket}, with {@code queues} virtqueues. */
    public static GuestDisk vhostUserBlk(String id, Path socket, int queues) {
        return new GuestDisk(List.of("-chardev", "socket,id=" + id + ",path=" + socket.toAbsolutePath(),
                "-device", "vhost-user-blk-pci,chardev=" + id + ",num-queues=" + queues), true);
    }

    /** Any other attachment, given as QEMU arguments. */
    public static GuestDisk of(boolean sharedMemory, String... qemuArgs) {
        return new GuestDisk(List.of(qemuArgs), sharedMemory);
    }
}
