package io.github.qcowloom.crashkit;

import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;

/**
 * Enumerates the crash states of a recorded log: every prefix at an operation boundary, then subsets of each
 * epoch's operations applied in order on the durable state, without duplicates (SHA-256 of the bytes).
 */
final class CrashStates {
    /** Operations between two completed flushes; {@code end} is the log index of the closing flush or the log's end. */
    private record Epoch(int number, List<Integer> ops, int end) {
    }

    private final byte[] initial;
    private final List<LoggedOp> log;
    private final CrashOptions options;
    private final int[] flushesBefore;
    private final Set<String> seen = new HashSet<>();

    CrashStates(byte[] initial, List<LoggedOp> log, CrashOptions options) {
        this.initial = initial;
        this.log = log;
        this.options = options;
        this.flushesBefore = new int[log.size() + 1];
        for (int i = 0; i < log.size(); i++) {
            flushesBefore[i + 1] = flushesBefore[i] + (log.get(i) instanceof LoggedOp.Flush ? 1 : 0);
        }
    }

    Stream<CrashState> stream() {
        if (options.mode() == CrashMode.PROCESS_KILL) {
            Epoch all = new Epoch(0, nonFlushOps(0, log.size()), log.size());
            return Stream.of(state("process kill after all " + log.size() + " ops", initial, all, all.ops().size(),
                    full(all.ops().size()), 0));
        }
        List<Epoch> epochs = epochs();
        byte[][] base = {initial};
        return epochs.stream().flatMap(epoch -> {
            byte[] durable = base[0];
            base[0] = materialize(durable, epoch, epoch.ops().size(), full(epoch.ops().size()), null);
            int m = epoch.ops().size();
            Stream<CrashState> prefixes = IntStream.rangeClosed(0, m).mapToObj(j ->
                    state("crash before log op " + (j == m ? epoch.end() : epoch.ops().get(j)) + " (epoch "
                            + epoch.number() + ", its first " + j + " of " + m + " ops)", durable, epoch, j,
                            full(j), j));
            boolean subsets = options.everyEpoch() || epoch.number() == epochs.size() - 1;
            return subsets ? Stream.concat(prefixes, subsets(durable, epoch)) : prefixes;
        }).filter(s -> seen.add(key(s)));
    }

    private Stream<CrashState> subsets(byte[] durable, Epoch epoch) {
        int m = epoch.ops().size();
        List<BitSet> chosen = new ArrayList<>();
        if (m <= options.powersetMax()) {
            for (long mask = 0; mask < 1L << m; mask++) {
                chosen.add(BitSet.valueOf(new long[] {mask}));
            }
        } else {
            chosen.add(new BitSet());
            for (int a = 0; a < m; a++) {
                chosen.add(bits(a));
                for (int b = a + 1; b < m; b++) {
                    BitSet two = bits(a);
                    two.set(b);
                    chosen.add(two);
                }
            }
            Random random = new Random(options.seed() * 31 + epoch.number());
            for (int r = 0; r < options.randomSubsets(); r++) {
                BitSet any = new BitSet();
                for (int k = 0; k < m; k++) {
                    if (random.nextBoolean()) {
                        any.set(k);
                    }
                }
                chosen.add(any);
            }
        }
        return IntStream.range(0, chosen.size()).mapToObj(i -> state("epoch " + epoch.number() + " (ops "
                + opRange(epoch) + "), crash during its flush, subset " + positions(chosen.get(i), epoch)
                + " survives", durable, epoch, m, chosen.get(i), i));
    }

    private CrashState state(String description, byte[] durable, Epoch epoch, int issued, BitSet kept, long salt) {
        long garbageSeed = options.seed() ^ (epoch.number() * 1_000_003L + salt * 7919 + issued);
        Garbage garbage = switch (options.mode()) {
            case TORN -> new Garbage(new Random(garbageSeed), 0, true);
            // Appended space: past the file's end as of the epoch's start, the last completed flush.
            case TORN_APPENDS -> new Garbage(new Random(garbageSeed), durable.length, false);
            case SECTOR_ATOMIC, PROCESS_KILL -> null;
        };
        byte[] image = materialize(durable, epoch, issued, kept, garbage);
        int crashPoint = issued == epoch.ops().size() ? epoch.end() : epoch.ops().get(issued);
        return new CrashState(description, image, flushesBefore[crashPoint]);
    }

    private byte[] materialize(byte[] durable, Epoch epoch, int issued, BitSet kept, Garbage garbage) {
        try {
            MemoryStorage s = new MemoryStorage(durable);
            for (int k = 0; k < issued; k++) {
                LoggedOp op = log.get(epoch.ops().get(k));
                if (kept.get(k)) {
                    op.apply(s, garbage);
                } else if (garbage != null) {
                    op.tear(s, garbage);
                }
            }
            return s.snapshot();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private List<Epoch> epochs() {
        List<Epoch> epochs = new ArrayList<>();
        if (!options.flushesOrder()) {
            epochs.add(new Epoch(0, nonFlushOps(0, log.size()), log.size()));
            return epochs;
        }
        int start = 0;
        for (int i = 0; i <= log.size(); i++) {
            if (i == log.size() || log.get(i) instanceof LoggedOp.Flush) {
                epochs.add(new Epoch(epochs.size(), nonFlushOps(start, i), i));
                start = i + 1;
            }
        }
        return epochs;
    }

    private List<Integer> nonFlushOps(int from, int to) {
        return IntStream.range(from, to).filter(i -> !(log.get(i) instanceof LoggedOp.Flush)).boxed().toList();
    }

    private static String opRange(Epoch epoch) {
        return epoch.ops().isEmpty() ? "none" : epoch.ops().get(0) + ".." + epoch.ops().get(epoch.ops().size() - 1);
    }

    /** The kept operations as log indices. */
    private static String positions(BitSet kept, Epoch epoch) {
        return kept.stream().mapToObj(k -> String.valueOf(epoch.ops().get(k)))
                .collect(Collectors.joining(",", "{", "}"));
    }

    private static BitSet full(int n) {
        BitSet b = new BitSet();
        b.set(0, n);
        return b;
    }

    private static BitSet bits(int k) {
        BitSet b = new BitSet();
        b.set(k);
        return b;
    }

    private static String key(CrashState s) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(s.image());
            return HexFormat.of().formatHex(digest) + "/" + s.durableFlushes();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JDK", e);
        }
    }
}
