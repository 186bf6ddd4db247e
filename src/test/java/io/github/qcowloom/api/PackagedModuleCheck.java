package io.github.qcowloom.api;

import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * Run by the build after packaging (the pom's packaged-module-check, in the verify phase), since tests run before the
 * jar exists: the library jar must carry its module descriptor, so that on a user's module path it is the module
 * {@code io.github.qcowloom} exporting what {@link ModuleSurfaceTest} lists, not an automatic module that exports
 * every package. Exits 1, saying why, otherwise.
 */
public final class PackagedModuleCheck {
    private PackagedModuleCheck() {
    }

    public static void main(String[] args) {
        Path jar = Path.of(args[0]);
        ModuleDescriptor module = ModuleFinder.of(jar).findAll().iterator().next().descriptor();
        Set<String> exported = module.exports().stream().map(e -> e.source().substring(module.name().length() + 1))
                .collect(Collectors.toCollection(TreeSet::new));
        String problem = module.isAutomatic() ? "has no module descriptor (an automatic module exports everything)"
                : !module.name().equals(ModuleSurfaceTest.MODULE) ? "is the module " + module.name()
                : !exported.equals(new TreeSet<>(ModuleSurfaceTest.EXPORTED)) ? "exports " + exported
                : null;
        if (problem != null) {
            System.err.println("packaged-module-check: " + jar + " " + problem);
            System.exit(1);
        }
        System.out.println("packaged-module-check: " + jar + " is the module " + module.name() + ", exporting "
                + exported);
    }
}
