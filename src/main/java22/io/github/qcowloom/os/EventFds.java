package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * eventfd(2) counters as virtio notifications use them: {@link #signal} adds 1 (an interrupt, a kick), and
 * {@link #await} blocks until a counter is readable, reads (resets) it, and can be woken by a second "stop"
 * eventfd. Blocking calls pin a virtual thread's carrier: waiters are platform threads.
 */
public final class EventFds {
    private static final int EFD_CLOEXEC = 0x80000;
    private static final short POLLIN = 0x1;
    private static final Linker LINKER = Linker.nativeLinker();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
    private static final MethodHandle EVENTFD = downcall("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle READ = downcall("read",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle WRITE = downcall("write",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle POLL = downcall("poll",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));

    private EventFds() {
    }

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, descriptor, ERRNO);
    }

    /** A new eventfd at 0, close-on-exec. */
    public static int create() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            int fd = (int) EVENTFD.invokeExact(capture, 0, EFD_CLOEXEC);
            if (fd < 0) {
                throw new IOException("eventfd: " + LinuxCalls.strerror(LinuxCalls.errno(capture)));
            }
            return fd;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Adds 1 to the counter (wakes its reader); throws if the descriptor is not writable. */
    public static void signal(int fd) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            MemorySegment one = arena.allocate(JAVA_LONG);
            one.set(JAVA_LONG, 0, 1L);
            long n;
            do {
                n = (long) WRITE.invokeExact(capture, fd, one, 8L);
            } while (n < 0 && LinuxCalls.errno(capture) == LinuxCalls.EINTR);
            if (n != 8) {
                throw new IOException("eventfd write: " + LinuxCalls.strerror(LinuxCalls.errno(capture)));
            }
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Waits until {@code fd} is signalled and reads it (answering true), or until {@code stopFd} is signalled
     * (answering false, leaving stopFd set so that every later call answers false at once).
     */
    public static boolean await(int fd, int stopFd) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            MemorySegment fds = arena.allocate(16, 8);
            while (true) {
                fds.set(JAVA_INT, 0, fd);
                fds.set(JAVA_SHORT, 4, POLLIN);
                fds.set(JAVA_SHORT, 6, (short) 0);
                fds.set(JAVA_INT, 8, stopFd);
                fds.set(JAVA_SHORT, 12, POLLIN);
                fds.set(JAVA_SHORT, 14, (short) 0);
                int r = (int) POLL.invokeExact(capture, fds, 2L, -1);
                if (r < 0 && LinuxCalls.errno(capture) == LinuxCalls.EINTR) {
                    continue;
                }
                if (r < 0) {
                    throw new IOException("poll: " + LinuxCalls.strerror(LinuxCalls.errno(capture)));
                }
                if (fds.get(JAVA_SHORT, 14) != 0) {
                    return false;
                }
                short events = fds.get(JAVA_SHORT, 6);
                if ((events & POLLIN) != 0) {
                    MemorySegment value = arena.allocate(JAVA_LONG);
                    long n = (long) READ.invokeExact(capture, fd, value, 8L);
                    if (n < 0 && LinuxCalls.errno(capture) != LinuxCalls.EAGAIN
                            && LinuxCalls.errno(capture) != LinuxCalls.EINTR) {
                        throw new IOException("eventfd read: " + LinuxCalls.strerror(LinuxCalls.errno(capture)));
                    }
                    return true;
                }
                if (events != 0) {
                    throw new IOException("kick descriptor " + fd + " failed (poll events 0x"
                            + Integer.toHexString(events) + ")");
                }
            }
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Reads (resets) the counter if it is signalled within {@code millis}; answers whether it was. */
    public static boolean readWithin(int fd, int millis) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            MemorySegment pfd = arena.allocate(8, 8);
            pfd.set(JAVA_INT, 0, fd);
            pfd.set(JAVA_SHORT, 4, POLLIN);
            int r;
            do {
                r = (int) POLL.invokeExact(capture, pfd, 1L, millis);
            } while (r < 0 && LinuxCalls.errno(capture) == LinuxCalls.EINTR);
            if (r <= 0 || (pfd.get(JAVA_SHORT, 6) & POLLIN) == 0) {
                return false;
            }
            MemorySegment value = arena.allocate(JAVA_LONG);
            long n = (long) READ.invokeExact(capture, fd, value, 8L);
            return n == 8;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static void close(int fd) {
        LinuxCalls.close(fd);
    }
}
