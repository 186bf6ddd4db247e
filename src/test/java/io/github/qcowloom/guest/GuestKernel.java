package io.github.qcowloom.guest;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A host kernel the guest boots: {@code /boot/vmlinuz-VERSION} with its modules in
 * {@code /lib/modules/VERSION} (Debian's linux-image-amd64). {@code -Dguest.kernel=/boot/vmlinuz-X} picks one;
 * otherwise the newest version that has both is taken.
 */
record GuestKernel(String version, Path image, Path moduleDirectory) {

    /** The kernel to boot, or empty when none is installed. */
    static Optional<GuestKernel> find() {
        String chosen = System.getProperty("guest.kernel");
        if (chosen != null && !chosen.isBlank()) {
            return of(Path.of(chosen));
        }
        Path boot = Path.of("/boot");
        if (!Files.isDirectory(boot)) {
            return Optional.empty();
        }
        try (Stream<Path> s = Files.list(boot)) {
            return s.filter(p -> p.getFileName().toString().startsWith("vmlinuz-"))
                    .map(GuestKernel::of).flatMap(Optional::stream)
                    .max(Comparator.comparing(GuestKernel::version, GuestKernel::compareVersions));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Optional<GuestKernel> of(Path vmlinuz) {
        String version = vmlinuz.getFileName().toString().replaceFirst("^vmlinuz-", "");
        Path modules = Path.of("/lib/modules", version);
        if (!Files.isReadable(vmlinuz) || !Files.isRegularFile(modules.resolve("modules.dep"))) {
            return Optional.empty();
        }
        return Optional.of(new GuestKernel(version, vmlinuz, modules));
    }

    /**
     * The module files (relative to {@link #moduleDirectory()}) to load for {@code names}, each after the
     * modules it depends on, per modules.dep; names built into the kernel (modules.builtin) are left out.
     */
    List<String> modulesInLoadOrder(List<String> names) {
        Map<String, String> fileByName = new HashMap<>();
        Map<String, List<String>> depends = new HashMap<>();
        Set<String> builtin = new HashSet<>();
        try {
            for (String line : Files.readAllLines(moduleDirectory.resolve("modules.dep"))) {
                int colon = line.indexOf(':');
                if (colon < 0) {
                    continue;
                }
                String file = line.substring(0, colon).trim();
                String rest = line.substring(colon + 1).trim();
                fileByName.put(moduleName(file), file);
                depends.put(file, rest.isEmpty() ? List.of() : List.of(rest.split("\\s+")));
            }
            Path builtinList = moduleDirectory.resolve("modules.builtin");
            if (Files.isRegularFile(builtinList)) {
                for (String line : Files.readAllLines(builtinList)) {
                    builtin.add(moduleName(line.trim()));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the module lists of " + moduleDirectory, e);
        }
        LinkedHashSet<String> order = new LinkedHashSet<>();
        for (String name : names) {
            String key = name.replace('-', '_');
            String file = fileByName.get(key);
            if (file == null) {
                if (builtin.contains(key)) {
                    continue;
                }
                throw new IllegalStateException("kernel " + version + " has no module " + name
                        + " (neither in modules.dep nor built in)");
            }
            addWithDependencies(file, depends, order, new HashSet<>());
        }
        return new ArrayList<>(order);
    }

    private static void addWithDependencies(String file, Map<String, List<String>> depends, Set<String> order,
            Set<String> visiting) {
        if (order.contains(file) || !visiting.add(file)) {
            return;
        }
        for (String dep : depends.getOrDefault(file, List.of())) {
            addWithDependencies(dep, depends, order, visiting);
        }
        order.add(file);
    }

    /** "kernel/drivers/block/virtio_blk.ko.xz" -> "virtio_blk" ('-' and '_' are the same in module names). */
    static String moduleName(String file) {
        String base = file.substring(file.lastIndexOf('/') + 1);
        int ko = base.indexOf(".ko");
        return (ko >= 0 ? base.substring(0, ko) : base).replace('-', '_');
    }

    /** Compares "6.1.0-57-amd64" and the like number by number. */
    static int compareVersions(String a, String b) {
        String[] x = a.split("[.-]");
        String[] y = b.split("[.-]");
        for (int i = 0; i < Math.min(x.length, y.length); i++) {
            int c = x[i].matches("\\d+") && y[i].matches("\\d+")
                    ? Long.compare(Long.parseLong(x[i]), Long.parseLong(y[i])) : x[i].compareTo(y[i]);
            if (c != 0) {
                return c;
            }
        }
        return Integer.compare(x.length, y.length);
    }
}
