package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * AF_UNIX stream sockets as raw descriptors, for protocols that pass descriptors (vhost-user): listen, accept,
 * connect, recvmsg and sendmsg with SCM_RIGHTS, plain reads and writes, shutdown. Every call blocks its thread in
 * the kernel (a downcall pins a virtual thread's carrier): callers use platform threads. {@link #shutdown} from
 * another thread wakes a thread blocked in {@link #accept} or {@link #receive}.
 */
public final class UnixSockets {
    private static final int AF_UNIX = 1;
    private static final int SOCK_STREAM = 1;
    private static final int SOCK_CLOEXEC = 0x80000;
    private static final int SOL_SOCKET = 1;
    private static final int SCM_RIGHTS = 1;
    private static final int MSG_CTRUNC = 0x8;
    private static final int MSG_NOSIGNAL = 0x4000;
    private static final int MSG_CMSG_CLOEXEC = 0x40000000;
    private static final int SUN_PATH = 108;

    /** The most descriptors one message may carry (vhost-user's limit). */
    public static final int MAX_FDS = 8;

    // struct msghdr (LP64): name, namelen (+pad), iov, iovlen, control, controllen, flags (+pad).
    private static final long MSG_NAME = 0;
    private static final long MSG_IOV = 16;
    private static final long MSG_IOVLEN = 24;
    private static final long MSG_CONTROL = 32;
    private static final long MSG_CONTROLLEN = 40;
    private static final long MSG_FLAGS = 48;
    private static final long MSGHDR_BYTES = 56;
    // struct cmsghdr: len (size_t), level, type, then data; CMSG_SPACE(8 ints) = 16 + 32.
    private static final long CMSG_HEADER = 16;
    private static final long CONTROL_BYTES = CMSG_HEADER + 4L * MAX_FDS;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
    private static final MethodHandle SOCKET = downcall("socket",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle BIND = downcall("bind", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle CONNECT = downcall("connect",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle LISTEN = downcall("listen", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle ACCEPT4 = downcall("accept4",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    private static final MethodHandle RECVMSG = downcall("recvmsg",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle SENDMSG = downcall("sendmsg",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle RECV = downcall("recv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));

    private UnixSockets() {
    }

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, descriptor, ERRNO);
    }

    /** Why these calls cannot be made here, or null. */
    public static String unsupportedReason() {
        return LinuxCalls.unsupportedReason();
    }

    private static IOException failure(String what, MemorySegment capture) {
        return new IOException(what + ": " + LinuxCalls.strerror(LinuxCalls.errno(capture)));
    }

    private static boolean interrupted(MemorySegment capture) {
        return LinuxCalls.errno(capture) == LinuxCalls.EINTR;
    }

    private static MemorySegment address(Arena arena, Path path) throws IOException {
        byte[] name = path.toString().getBytes(StandardCharsets.UTF_8);
        if (name.length >= SUN_PATH) {
            throw new IOException(path + ": socket path longer than " + (SUN_PATH - 1) + " bytes");
        }
        MemorySegment sa = arena.allocate(2 + SUN_PATH);
        sa.set(java.lang.foreign.ValueLayout.JAVA_SHORT, 0, (short) AF_UNIX);
        MemorySegment.copy(name, 0, sa, java.lang.foreign.ValueLayout.JAVA_BYTE, 2, name.length);
        return sa;
    }

    private static int socket(MemorySegment capture) throws Throwable {
        int fd = (int) SOCKET.invokeExact(capture, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            throw failure("socket", capture);
        }
        return fd;
    }

    /** A listening socket bound at {@code path} (which must not exist). */
    public static int listen(Path path, int backlog) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            int fd = socket(capture);
            MemorySegment sa = address(arena, path);
            if ((int) BIND.invokeExact(capture, fd, sa, (int) sa.byteSize()) < 0
                    || (int) LISTEN.invokeExact(capture, fd, backlog) < 0) {
                IOException e = failure(path.toString(), capture);
                LinuxCalls.close(fd);
                throw e;
            }
            return fd;
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** A socket connected to {@code path}. */
    public static int connect(Path path) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            int fd = socket(capture);
            MemorySegment sa = address(arena, path);
            int r;
            do {
                r = (int) CONNECT.invokeExact(capture, fd, sa, (int) sa.byteSize());
            } while (r < 0 && interrupted(capture));
            if (r < 0) {
                IOException e = failure(path.toString(), capture);
                LinuxCalls.close(fd);
                throw e;
            }
            return fd;
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The next connection, or -1 once the listening socket was shut down. */
    public static int accept(int listenFd) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            while (true) {
                int fd = (int) ACCEPT4.invokeExact(capture, listenFd, MemorySegment.NULL, MemorySegment.NULL,
                        SOCK_CLOEXEC);
                if (fd >= 0) {
                    return fd;
                }
                if (interrupted(capture)) {
                    continue;
                }
                if (LinuxCalls.errno(capture) == LinuxCalls.EINVAL) {
                    return -1; // shut down
                }
                throw failure("accept", capture);
            }
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** What one {@link #receive} got: the byte count (0 at end of stream) and the descriptors that came with them. */
    public record Received(int bytes, int[] fds) {
    }

    /**
     * Receives up to {@code length} bytes into {@code buffer} with the descriptors sent with them (at most
     * {@link #MAX_FDS}, close-on-exec). A message that carried more descriptors than that throws (the kernel
     * closed the extra ones; those received are closed here). 0 bytes means the peer closed or the socket was
     * shut down.
     */
    public static Received receive(int fd, MemorySegment buffer, int length) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            MemorySegment iov = arena.allocate(16, 8);
            iov.set(ADDRESS, 0, buffer);
            iov.set(JAVA_LONG, 8, length);
            MemorySegment control = arena.allocate(CONTROL_BYTES, 8);
            MemorySegment msg = arena.allocate(MSGHDR_BYTES, 8);
            msg.set(ADDRESS, MSG_NAME, MemorySegment.NULL);
            msg.set(ADDRESS, MSG_IOV, iov);
            msg.set(JAVA_LONG, MSG_IOVLEN, 1);
            msg.set(ADDRESS, MSG_CONTROL, control);
            msg.set(JAVA_LONG, MSG_CONTROLLEN, CONTROL_BYTES);
            long n;
            do {
                n = (long) RECVMSG.invokeExact(capture, fd, msg, MSG_CMSG_CLOEXEC);
            } while (n < 0 && interrupted(capture));
            if (n < 0) {
                throw failure("recvmsg", capture);
            }
            int[] fds = fds(msg, control);
            if ((msg.get(JAVA_INT, MSG_FLAGS) & MSG_CTRUNC) != 0) {
                for (int f : fds) {
                    LinuxCalls.close(f);
                }
                throw new IOException("a message carried more than " + MAX_FDS + " file descriptors");
            }
            return new Received((int) n, fds);
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static int[] fds(MemorySegment msg, MemorySegment control) {
        long controlLength = msg.get(JAVA_LONG, MSG_CONTROLLEN);
        if (controlLength < CMSG_HEADER) {
            return new int[0];
        }
        long cmsgLength = control.get(JAVA_LONG, 0);
        int level = control.get(JAVA_INT, 8);
        int type = control.get(JAVA_INT, 12);
        if (level != SOL_SOCKET || type != SCM_RIGHTS || cmsgLength < CMSG_HEADER
                || cmsgLength > CONTROL_BYTES) {
            return new int[0];
        }
        int count = (int) ((cmsgLength - CMSG_HEADER) / 4);
        int[] fds = new int[count];
        for (int i = 0; i < count; i++) {
            fds[i] = control.get(JAVA_INT, CMSG_HEADER + 4L * i);
        }
        return fds;
    }

    /** Reads exactly {@code length} bytes (no descriptors); throws EOFException at end of stream. */
    public static void readFully(int fd, MemorySegment buffer, int length) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            long done = 0;
            while (done < length) {
                long n = (long) RECV.invokeExact(capture, fd, buffer.asSlice(done), (long) length - done, 0);
                if (n < 0 && interrupted(capture)) {
                    continue;
                }
                if (n < 0) {
                    throw failure("recv", capture);
                }
                if (n == 0) {
                    throw new EOFException("the peer closed the socket after " + done + " of " + length + " bytes");
                }
                done += n;
            }
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Sends all {@code length} bytes of {@code buffer}, with {@code fds} (at most {@link #MAX_FDS}) attached. */
    public static void send(int fd, MemorySegment buffer, int length, int... fds) throws IOException {
        if (fds.length > MAX_FDS) {
            throw new IllegalArgumentException(fds.length + " descriptors");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            long done = 0;
            boolean first = true;
            while (done < length || first) {
                MemorySegment iov = arena.allocate(16, 8);
                iov.set(ADDRESS, 0, buffer.asSlice(done));
                iov.set(JAVA_LONG, 8, length - done);
                MemorySegment msg = arena.allocate(MSGHDR_BYTES, 8);
                msg.set(ADDRESS, MSG_IOV, iov);
                msg.set(JAVA_LONG, MSG_IOVLEN, 1);
                if (first && fds.length > 0) {
                    long cmsgLength = CMSG_HEADER + 4L * fds.length;
                    MemorySegment control = arena.allocate((cmsgLength + 7) & ~7L, 8);
                    control.set(JAVA_LONG, 0, cmsgLength);
                    control.set(JAVA_INT, 8, SOL_SOCKET);
                    control.set(JAVA_INT, 12, SCM_RIGHTS);
                    for (int i = 0; i < fds.length; i++) {
                        control.set(JAVA_INT, CMSG_HEADER + 4L * i, fds[i]);
                    }
                    msg.set(ADDRESS, MSG_CONTROL, control);
                    msg.set(JAVA_LONG, MSG_CONTROLLEN, control.byteSize());
                }
                long n = (long) SENDMSG.invokeExact(capture, fd, msg, MSG_NOSIGNAL);
                if (n < 0 && interrupted(capture)) {
                    continue;
                }
                if (n < 0) {
                    throw failure("sendmsg", capture);
                }
                done += n;
                first = false;
            }
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Shuts both directions down: a thread blocked in accept or receive on {@code fd} returns. */
    public static void shutdown(int fd) {
        LoopSockets.shutdown(fd);
    }

    public static void close(int fd) {
        LinuxCalls.close(fd);
    }
}
