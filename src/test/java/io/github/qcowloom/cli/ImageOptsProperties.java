package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.EncryptionKeyException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * --image-opts strings of drawn options, well made or not: each is taken or refused with an {@link ImageException}
 * (so the command line prints one line and exits 1), never another exception; and what is taken gives back the
 * file name and format it was built from, commas escaped in the name.
 */
class ImageOptsProperties {
    private static final List<String> KEYS = List.of("driver", "file", "file.filename", "file.driver", "file.locking",
            "file.aio", "cache.direct", "cache.no-flush", "read-only", "force-share", "l2-cache-size",
            "refcount-cache-size", "lazy-refcounts", "encrypt.key-secret", "encrypt.format", "backing",
            "backing.encrypt.key-secret", "backing.backing.encrypt.format", "backing.driver", "bogus", "file.bogus",
            "");
    private static final List<String> VALUES = List.of("qcow2", "raw", "on", "off", "auto", "maybe", "64k", "1E",
            "99999999999999999999", "-1", "io_uring", "file", "nbd", "a,,b", "", "=", "x.qcow2");

    @Provide
    Arbitrary<String> specs() {
        Arbitrary<String> option = Arbitraries.oneOf(
                Arbitraries.of(KEYS).flatMap(k -> Arbitraries.of(VALUES).map(v -> k + "=" + v)),
                Arbitraries.of(KEYS),
                Arbitraries.strings().withChars(",=.a-z01 ").ofMaxLength(12));
        return option.list().ofMaxSize(6).map(l -> String.join(",", l));
    }

    @Property(tries = 500)
    void everySpecIsTakenOrRefusedWithAnImageException(@ForAll("specs") String spec) {
        try {
            ImageOpts opts = ImageOpts.parse(spec, new QemuObjects());
            OpenOptions applied = opts.apply(OpenOptions.readOnlyDefaults());
            assertTrue(spec.contains("file.filename"), spec); // a bare file.filename is QemuOpts' file.filename=on
            for (int depth = 0; depth < 3; depth++) {
                try { // a secret named is looked up as an encrypted image's open asks: none is defined here
                    assertEquals(null, applied.encryption().below(depth).passphrase(), spec);
                } catch (EncryptionKeyException e) {
                    assertTrue(e.getMessage().startsWith("No secret with id"), e.getMessage());
                }
            }
        } catch (ImageException e) {
            assertTrue(e.getMessage() != null && !e.getMessage().isEmpty(), spec);
        }
    }

    @Property(tries = 200)
    void aNameComesBackAsGiven(@ForAll("names") String name, @ForAll boolean raw) throws ImageException {
        String escaped = name.replace(",", ",,");
        ImageOpts opts = ImageOpts.parse((raw ? "driver=raw," : "") + "file.filename=" + escaped
                + ",cache.direct=on", new QemuObjects());
        assertEquals(name, opts.fileName());
        assertEquals(raw ? "raw" : null, opts.format());
        assertTrue(opts.apply(OpenOptions.readOnlyDefaults()).direct());
    }

    @Provide
    Arbitrary<String> names() {
        return Arbitraries.strings().withChars("abc,=/._- ").ofMinLength(1).ofMaxLength(20)
                .filter(n -> !n.endsWith(","));
    }
}
