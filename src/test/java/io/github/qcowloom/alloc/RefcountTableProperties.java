package io.github.qcowloom.alloc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/** Random allocate/update sequences on an in-memory image against a model map of refcounts. */
class RefcountTableProperties {
    private static final Map<Integer, byte[]> IMAGES = new HashMap<>();

    /** A fresh 512-byte-cluster image with {@code bits}-bit refcounts, made once per width. */
    private static byte[] image(int bits) throws IOException {
        byte[] cached = IMAGES.get(bits);
        if (cached == null) {
            Path dir = Files.createTempDirectory("refcount-props");
            Path p = dir.resolve("i.qcow2");
            TestImages.create(p, 1L << 30, 512, bits);
            cached = Files.readAllBytes(p);
            Files.delete(p);
            Files.delete(dir);
            IMAGES.put(bits, cached);
        }
        return cached;
    }

    @Provide
    Arbitrary<Integer> widths() {
        return Arbitraries.of(1, 2, 4, 8, 16, 32, 64);
    }

    /** An op: kind 0 allocates 1 + arg % 80 clusters, kind 1 increments, kind 2 decrements a known cluster. */
    @Provide
    Arbitrary<List<int[]>> ops() {
        return Arbitraries.integers().between(0, 2).flatMap(kind -> Arbitraries.integers().between(0, 10_000)
                .map(arg -> new int[] {kind, arg})).list().ofMinSize(1).ofMaxSize(60);
    }

    @Property(tries = 10)
    void refcountsFollowTheModel(@ForAll("widths") int bits, @ForAll("ops") List<int[]> ops) throws IOException {
        MemoryStorage storage = new MemoryStorage(image(bits).clone());
        Header h = TestImages.header(storage);
        RefcountTable rt = new RefcountTable(storage, h, new TableCache(storage, 512, 1024));
        long max = bits == 64 ? Long.MAX_VALUE : (1L << bits) - 1;
        Map<Long, Long> model = new HashMap<>();
        List<Long> known = new ArrayList<>();
        for (int[] op : ops) {
            switch (op[0]) {
                case 0 -> {
                    int n = 1 + op[1] % 80;
                    long first = rt.allocate(n).bytes() / h.clusterSize();
                    assertTrue(first > 0);
                    for (long c = first; c < first + n; c++) {
                        assertFalse(model.getOrDefault(c, 0L) != 0, "cluster " + c + " handed out twice");
                        long tableFirst = rt.tableOffset() / h.clusterSize();
                        assertFalse(c >= tableFirst && c < tableFirst + rt.tableClusters(), "overlaps the reftable");
                        model.put(c, 1L);
                        known.add(c);
                    }
                }
                case 1, 2 -> {
                    if (known.isEmpty()) {
                        continue;
                    }
                    long c = known.get(op[1] % known.size());
                    long v = model.get(c);
                    long delta = op[0] == 1 ? 1 : -1;
                    if (v + delta < 0 || v + delta > max) {
                        continue;
                    }
                    rt.update(new HostCluster(c), delta);
                    model.put(c, v + delta);
                }
                default -> throw new AssertionError();
            }
        }
        for (Map.Entry<Long, Long> e : model.entrySet()) {
            assertEquals(e.getValue(), rt.get(new HostCluster(e.getKey())), "cluster " + e.getKey());
        }
        // The header, the reftable and every refblock the reftable names are counted.
        assertEquals(1, rt.get(new HostCluster(0)));
        long tableFirst = rt.tableOffset() / h.clusterSize();
        for (long c = tableFirst; c < tableFirst + rt.tableClusters(); c++) {
            assertEquals(1, rt.get(new HostCluster(c)), "reftable cluster " + c);
        }
        // Reopened from what reached the storage plus the written-back cache, the picture is the same.
        TableCache cache = new TableCache(storage, 512, 1024);
        RefcountTable again = new RefcountTable(storage, TestImages.header(storage), cache);
        assertEquals(rt.tableOffset(), again.tableOffset());
        assertEquals(rt.tableClusters(), again.tableClusters());
    }
}
