package io.github.qcowloom.nbd;

import io.github.qcowloom.storage.Java22Method;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.channels.SocketChannel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The door to the Java 22+ layer's {@code RingSocketStream}: a plain connection whose thread runs on an io_uring
 * event loop ({@code loop:N}) reads its requests through the loop's ring. Everywhere else (other executors, TLS,
 * Java 21, the JDK's internals not opened to us) it reads through the JDK's channel.
 */
final class RingReads {
    private static final Logger LOG = LoggerFactory.getLogger(RingReads.class);
    private static final Java22Method OPEN = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.nbd.RingSocketStream", "open",
            MethodType.methodType(ByteStream.class, SocketChannel.class), "socket reads on an event loop's ring");

    private RingReads() {
    }

    /** The stream to transmit on for the plain connection {@code ch}, which negotiated on {@code plain}. */
    static ByteStream around(SocketChannel ch, ByteStream plain) {
        if (OPEN.handle() == null) {
            return plain;
        }
        try {
            ByteStream ring = (ByteStream) OPEN.handle().invokeExact(ch);
            return ring != null ? ring : plain;
        } catch (IOException e) { // no descriptor left to duplicate the socket's: the JDK's reads still work
            LOG.debug("NBD connection reads through the JDK: {}", e.toString());
            return plain;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
