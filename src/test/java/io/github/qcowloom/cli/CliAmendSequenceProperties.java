package io.github.qcowloom.cli;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Assume;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Sequences of amends side by side with qemu-img amend 7.2, where {@link CliAmendTest} runs one: an image qemu-img
 * made (cluster size, version, refcount width, lazy refcounts, compression type drawn) with drawn writes, zeroings,
 * compressed writes and discards, then two or three amends drawn from upgrades, downgrades, refcount widths, lazy
 * refcounts and sizes, each made by both tools on their own copy. After each: the same exit code and message, the
 * same first cluster byte for byte, the same map with host offsets, the same contents, and ours clean under
 * qemu-img check. A failing sequence shrinks and replays by its seed. Eight tries keep it to about 40 s of the
 * default suite on a slow day (twelve took 54-66 s); 150 passed on 2026-12-06.
 */
class CliAmendSequenceProperties {
    private static final List<String> AMENDS = List.of("compat=0.10", "compat=1.1", "refcount_bits=1",
            "refcount_bits=2", "refcount_bits=8", "refcount_bits=16", "refcount_bits=64", "lazy_refcounts=on",
            "lazy_refcounts=off", "size=2M", "compat=0.10,refcount_bits=16", "compat=1.1,refcount_bits=4");

    @Property(tries = 8)
    void amendSequencesMatchQemuImg(@ForAll("images") String create, @ForAll("writes") List<String> writes,
            @ForAll("amends") List<String> amends) throws IOException {
        Assume.that(Qemu.available());
        Path dir = Files.createTempDirectory("amend-seq");
        try {
            Path theirs = Files.createDirectories(dir.resolve("qemu")).resolve("a.qcow2");
            Path ours = Files.createDirectories(dir.resolve("ours")).resolve("a.qcow2");
            Qemu.img("create", "-q", "-f", "qcow2", "-o", create, theirs.toString(), "1M");
            for (String w : writes) {
                // A write qemu-io refuses (a compressed cluster a 1-bit refcount cannot share) is simply not made.
                Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", w, theirs.toString()));
            }
            Files.copy(theirs, ours);
            boolean compareMap = true;
            for (String amend : amends) {
                compareMap = CliAmendTest.sameStep(theirs, ours, amend, compareMap,
                        create + " " + writes + " " + amends + ", at ");
            }
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    @Provide
    Arbitrary<String> images() {
        Arbitrary<Integer> clusters = Arbitraries.of(512, 4096, 65536);
        Arbitrary<String> v3 = Combinators.combine(clusters, Arbitraries.of(1, 2, 4, 8, 16, 32, 64),
                Arbitraries.of("on", "off"), Arbitraries.of("zlib", "zstd"))
                .as((c, bits, lazy, type) -> "compat=1.1,cluster_size=" + c + ",refcount_bits=" + bits
                        + ",lazy_refcounts=" + lazy + ",compression_type=" + type);
        Arbitrary<String> v2 = clusters.map(c -> "compat=0.10,cluster_size=" + c);
        return Arbitraries.oneOf(v3, v3, v2);
    }

    @Provide
    Arbitrary<List<String>> writes() {
        Arbitrary<Integer> slot = Arbitraries.integers().between(0, 15); // 64 KiB slots of the 1 MiB disk
        Arbitrary<String> write = Combinators.combine(slot, Arbitraries.of("4k", "64k"), Arbitraries.integers()
                .between(1, 255)).as((s, len, p) -> "write -P " + p + " " + s * 65536 + " " + len);
        Arbitrary<String> zero = Combinators.combine(slot, Arbitraries.of("4k", "64k"), Arbitraries.of("", "-u "))
                .as((s, len, unmap) -> "write -z " + unmap + s * 65536 + " " + len);
        Arbitrary<String> compressed = slot.map(s -> "write -c -P 9 " + s * 65536 + " 64k");
        Arbitrary<String> discard = slot.map(s -> "discard " + s * 65536 + " 64k");
        return Arbitraries.oneOf(write, write, zero, zero, compressed, discard).list().ofMinSize(1).ofMaxSize(8);
    }

    @Provide
    Arbitrary<List<String>> amends() {
        return Arbitraries.of(AMENDS).list().ofMinSize(2).ofMaxSize(3);
    }
}
