package io.github.qcowloom.api;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/**
 * Named configuration profiles: {@code props/NAME.properties} shipped in the jar, or any properties file given
 * by path. Keys: {@code direct} (O_DIRECT), {@code l2-cache-size} and {@code refblock-cache-size} (bytes; L2 0 =
 * QEMU's default), {@code pool} (true/false), {@code pool-low}, {@code pool-high}, {@code pool-max} (clusters), {@code exec} ({@code auto},
 * {@code virtual}, {@code loop:N} or {@code pool:N}), {@code recount-memory} (bytes the recount of a dirty image's repair may use; 0 = a quarter of
 * the heap), {@code storage} ({@code auto}, {@code io_uring} or {@code filechannel}).
 */
public final class Profiles {
    private Profiles() {
    }

    /** Loads a profile by name ("default", "direct") or by file path (anything ending in .properties). */
    public static Properties load(String nameOrPath) throws IOException {
        Properties p = new Properties();
        if (nameOrPath.endsWith(".properties")) {
            try (Reader r = Files.newBufferedReader(Path.of(nameOrPath))) {
                p.load(r);
            }
            return p;
        }
        if (!nameOrPath.matches("[A-Za-z0-9_-]+")) {
            throw new IllegalArgumentException("profile name '" + nameOrPath + "': letters, digits, - and _ only");
        }
        try (InputStream in = Profiles.class.getResourceAsStream("/props/" + nameOrPath + ".properties")) {
            if (in == null) {
                throw new IllegalArgumentException("no profile named '" + nameOrPath + "'");
            }
            p.load(in);
        }
        return p;
    }

    /** Applies a profile's keys to open options; unknown keys are errors so that typos do not pass silently. */
    public static OpenOptions apply(Properties p, OpenOptions base) {
        OpenOptions o = base;
        ImageOptions t = base.tuning();
        int low = t.poolLow();
        int high = t.poolHigh();
        int max = t.poolMax();
        for (String key : p.stringPropertyNames()) {
            String v = p.getProperty(key).trim();
            switch (key) {
                case "direct" -> o = o.withDirect(Boolean.parseBoolean(v));
                case "l2-cache-size" -> t = t.withL2CacheBytes(Long.parseLong(v));
                case "refblock-cache-size" -> t = t.withRefblockCacheBytes(Long.parseLong(v));
                case "pool" -> t = t.withPool(Boolean.parseBoolean(v));
                case "pool-low" -> low = Integer.parseInt(v);
                case "pool-high" -> high = Integer.parseInt(v);
                case "pool-max" -> max = Integer.parseInt(v);
                case "exec" -> t = t.withExecution(v);
                case "recount-memory" -> t = t.withRecountMemoryBytes(Long.parseLong(v));
                case "storage" -> t = t.withStorage(StorageBackend.parse(v));
                default -> throw new IllegalArgumentException("unknown profile key '" + key + "'");
            }
        }
        return o.withTuning(t.withPoolThresholds(low, high, max));
    }
}
