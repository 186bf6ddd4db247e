package io.github.qcowloom.storage;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Method;
import java.util.Arrays;

/**
 * A static method of the jar's Java 22+ layer (FFM code: io_uring, OFD locks, vhost-user), found reflectively so
 * that the base layer never names a class a Java 21 runtime cannot load: the handle, or why there is none.
 *
 * @param handle the method, typed as asked; null when {@code missing} says why
 * @param missing null, or why the layer cannot serve here (the Java version, or the layer absent from the path)
 */
public record Java22Method(MethodHandle handle, String missing) {
    /**
     * Finds {@code className.name} with {@code type} (its return type may be a subtype of the one asked), through
     * {@code lookup}, the caller's own (the method may be package-private to it). {@code what} names the feature in
     * the message a Java 21 runtime gets, e.g. "io_uring".
     */
    public static Java22Method find(MethodHandles.Lookup lookup, String className, String name, MethodType type,
            String what) {
        int feature = Runtime.version().feature();
        if (feature < 22) {
            return new Java22Method(null, what + " needs Java 22 or later (running Java " + feature + ")");
        }
        try {
            Class<?> c = Class.forName(className);
            MethodHandle h = lookup.findStatic(c, name, type.changeReturnType(declaredReturn(c, name, type)));
            return new Java22Method(h.asType(type), null);
        } catch (ReflectiveOperationException | LinkageError e) {
            return new Java22Method(null, "the Java 22+ layer is missing from the class path (" + e + ")");
        }
    }

    /** The declared return type of the method (a factory may declare its own class where the caller asks less). */
    private static Class<?> declaredReturn(Class<?> c, String name, MethodType type) throws NoSuchMethodException {
        for (Method m : c.getDeclaredMethods()) {
            if (m.getName().equals(name) && Arrays.equals(m.getParameterTypes(), type.parameterArray())) {
                return m.getReturnType();
            }
        }
        throw new NoSuchMethodException(c.getName() + "." + name + type);
    }
}
