import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassHierarchyResolver;
import java.lang.classfile.ClassModel;
import java.lang.classfile.ClassTransform;
import java.lang.classfile.CodeTransform;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import java.util.zip.ZipOutputStream;

/**
 * A build step, run as a source-file program by the toolchain JDK (24+, for java.lang.classfile) between the shade
 * and the AOT training: rewrites the classes of the shaded jar older than Java 6 (class version under 50, which the
 * JDK's AOT cache cannot hold: they need the old verifier) to version 52, with the stack maps the new verifier
 * reads. Picocli ships such classes, and they are most of what a short command loads; kept out of the cache, they
 * cost info and check about a quarter of their start-up. The bytecode is otherwise unchanged, and each class
 * upgraded must pass the JDK's verifier (the class-file API's port of it) or the build fails.
 *
 * <p>Usage: {@code java src/build/ClassVersionUpgrade.java JAR}; the jar is replaced when all its classes are done.
 */
public final class ClassVersionUpgrade {
    private static final int OLD_VERIFIER_BELOW = 50;
    private static final int UPGRADED = 52;

    private ClassVersionUpgrade() {
    }

    public static void main(String[] args) throws IOException {
        Path jar = Path.of(args[0]);
        Map<String, byte[]> entries = new LinkedHashMap<>(); // the jar's order: the manifest stays first
        Map<String, Long> times = new LinkedHashMap<>(); // kept, so that the jar is the same for the same sources
        try (ZipInputStream in = new ZipInputStream(Files.newInputStream(jar))) {
            for (ZipEntry e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                entries.put(e.getName(), in.readAllBytes());
                times.put(e.getName(), e.getTime());
            }
        }
        // Stack maps need the common superclass of two types: the jar's own classes, then the JDK's.
        ClassHierarchyResolver resolver = ClassHierarchyResolver
                .ofResourceParsing(desc -> stream(entries, desc.descriptorString()))
                .orElse(ClassHierarchyResolver.defaultResolver());
        ClassFile classFile = ClassFile.of(ClassFile.ClassHierarchyResolverOption.of(resolver),
                ClassFile.StackMapsOption.GENERATE_STACK_MAPS);
        // Passing every instruction through rebuilds each method's code, and with it the stack maps.
        ClassTransform upgrade = ClassTransform.transformingMethodBodies(CodeTransform.ACCEPT_ALL)
                .andThen(ClassTransform.endHandler(b -> b.withVersion(UPGRADED, 0)));
        int upgraded = 0;
        Path out = jar.resolveSibling(jar.getFileName() + ".upgrading");
        try (ZipOutputStream zip = new ZipOutputStream(Files.newOutputStream(out))) {
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                byte[] bytes = e.getValue();
                if (e.getKey().endsWith(".class") && !e.getKey().endsWith("module-info.class")) {
                    ClassModel model = classFile.parse(bytes);
                    if (model.majorVersion() < OLD_VERIFIER_BELOW) {
                        bytes = classFile.transformClass(model, upgrade);
                        List<VerifyError> errors = classFile.verify(bytes);
                        if (!errors.isEmpty()) {
                            throw new IllegalStateException(e.getKey() + " does not verify once upgraded: " + errors);
                        }
                        upgraded++;
                    }
                }
                ZipEntry entry = new ZipEntry(e.getKey());
                entry.setTime(times.get(e.getKey()));
                zip.putNextEntry(entry);
                zip.write(bytes);
                zip.closeEntry();
            }
        }
        Files.move(out, jar, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.println("ClassVersionUpgrade: " + upgraded + " classes of " + jar.getFileName() + " to version "
                + UPGRADED);
    }

    /** The class file of a type descriptor ("Lpicocli/CommandLine;") from the jar, or null if not in it. */
    private static InputStream stream(Map<String, byte[]> entries, String descriptor) {
        byte[] bytes = entries.get(descriptor.substring(1, descriptor.length() - 1) + ".class");
        return bytes == null ? null : new ByteArrayInputStream(bytes);
    }
}
