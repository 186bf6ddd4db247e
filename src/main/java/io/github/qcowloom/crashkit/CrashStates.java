package io.github.qcowloom.crashkit;

import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * Enumerates the crash states of a recorded log: every prefix at an operation boundary, then subsets of each
 * epoch's operations applied in order on the durable state, without duplicates (SHA-256 of the non-zero bytes). A
 * subset always holds the writes that a ranged flush completed before the crash covered.
 */
final class CrashStates {
    /**
     * Operations between two completed flushes; {@code end} is the log index of the closing flush or the log's end.
     * {@code ops} are the log indices of the changes, {@code rangeFlushes} those of the ranged flushes among them.
     */
    private record Epoch(int number, List<Integer> ops, List<Integer> rangeFlushes, int end) {
    }

    /** Block size of the dedup hash, which skips all-zero blocks. */
    private static final int KEY_BLOCK = 4096;
    private static final byte[] ZERO_BLOCK = new byte[KEY_BLOCK];

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
            Epoch all = new Epoch(0, changes(0, log.size()), List.of(), log.size());
            return Stream.of(state("process kill after all " + log.size() + " ops", initial, all,
                    new Cut(all.ops().size(), log.size()), full(all.ops().size()), 0));
        }
        // A stream pulled through its iterator hands over all of a flatMap's elements for one input at once: those
        // are recipes here, which are cheap, and each image is built only when its turn comes.
        Iterator<Supplier<CrashState>> recipes = recipes().iterator();
        return StreamSupport.stream(Spliterators.spliteratorUnknownSize(recipes, Spliterator.ORDERED), false)
                .map(Supplier::get).filter(s -> seen.add(key(s)));
    }

    /** How to build each crash state, epoch by epoch: every prefix, then the subsets. */
    private Stream<Supplier<CrashState>> recipes() {
        List<Epoch> epochs = epochs();
        boolean torn = torn();
        byte[][] base = {initial};
        return epochs.stream().flatMap(epoch -> {
            byte[] durable = base[0];
            int m = epoch.ops().size();
            byte[] all = materialize(durable, epoch, m, full(m), null);
            base[0] = all;
            Stream<Supplier<CrashState>> prefixes = IntStream.rangeClosed(0, m).mapToObj(j -> () -> {
                String description = "crash before log op " + (j == m ? epoch.end() : epoch.ops().get(j)) + " (epoch "
                        + epoch.number() + ", its first " + j + " of " + m + " ops)";
                // The first prefix is the durable image, and the last (unless dropped writes leave garbage) the one
                // just built: no need to build them again.
                byte[] built = j == 0 ? durable : j == m && !torn ? all : null;
                return built != null ? new CrashState(description, built, flushesBefore[crashPoint(epoch, j)])
                        : state(description, durable, epoch, new Cut(j, crashPoint(epoch, j)), full(j), j);
            });
            boolean subsets = options.everyEpoch() || epoch.number() == epochs.size() - 1;
            return subsets ? Stream.concat(prefixes, subsets(durable, epoch)) : prefixes;
        });
    }

    /**
     * A point where a crash may keep any subset of what was issued: the epoch's first {@code issued} changes were
     * issued and the log's operations before index {@code at} completed. One is the epoch's closing flush; each
     * ranged flush is another, since a crash during it finds none of the writes it covers forced yet.
     */
    private record Cut(int issued, int at) {
    }

    private List<Cut> cuts(Epoch epoch) {
        List<Cut> cuts = new ArrayList<>();
        int issued = 0;
        for (int f : epoch.rangeFlushes()) {
            while (issued < epoch.ops().size() && epoch.ops().get(issued) < f) {
                issued++;
            }
            cuts.add(new Cut(issued, f));
        }
        cuts.add(new Cut(epoch.ops().size(), epoch.end()));
        return cuts;
    }

    private Stream<Supplier<CrashState>> subsets(byte[] durable, Epoch epoch) {
        List<Cut> cuts = cuts(epoch);
        return IntStream.range(0, cuts.size()).boxed().flatMap(c -> subsets(durable, epoch, cuts.get(c), c));
    }

    /**
     * The subsets of a cut: drawn over the changes free to be lost (not forced by a ranged flush completed before the
     * cut), the forced ones added to each.
     */
    private Stream<Supplier<CrashState>> subsets(byte[] durable, Epoch epoch, Cut cut, int cutNumber) {
        BitSet forced = rangeFlushed(epoch, cut);
        int[] free = IntStream.range(0, cut.issued()).filter(k -> !forced.get(k)).toArray();
        int m = free.length;
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
            Random random = new Random((options.seed() * 31 + epoch.number()) * 31 + cutNumber);
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
        // Unless dropped writes leave garbage, a subset that is a prefix gives the image of that prefix's crash
        // state, which the caller has produced already: skip it before it is built.
        String during = cut.at() == epoch.end() ? "its flush" : "the ranged flush at log op " + cut.at();
        String where = "epoch " + epoch.number() + " (ops " + opRange(epoch) + "), crash during " + during;
        return chosen.stream().map(c -> {
            BitSet kept = (BitSet) forced.clone();
            c.stream().forEach(i -> kept.set(free[i]));
            return kept;
        }).distinct().filter(kept -> torn() || !isPrefix(kept))
                .map(kept -> () -> state(where + ", subset " + positions(kept, epoch) + " survives", durable, epoch,
                        cut, kept, kept.hashCode()));
    }

    /** The changes issued before the cut that a ranged flush completed before it covers: they reached the disk. */
    private BitSet rangeFlushed(Epoch epoch, Cut cut) {
        BitSet forced = new BitSet();
        for (int k = 0; k < cut.issued(); k++) {
            int change = epoch.ops().get(k);
            for (int f : epoch.rangeFlushes()) {
                if (f > change && f < cut.at() && ((LoggedOp.RangeFlush) log.get(f)).covers(log.get(change))) {
                    forced.set(k);
                    break;
                }
            }
        }
        return forced;
    }

    /** True where dropped writes leave garbage. */
    private boolean torn() {
        return options.mode() == CrashMode.TORN || options.mode() == CrashMode.TORN_APPENDS;
    }

    private CrashState state(String description, byte[] durable, Epoch epoch, Cut cut, BitSet kept, long salt) {
        long garbageSeed = options.seed() ^ (epoch.number() * 1_000_003L + salt * 7919 + cut.at());
        Garbage garbage = switch (options.mode()) {
            case TORN -> new Garbage(new Random(garbageSeed), 0, true);
            // Appended space: past the file's end as of the epoch's start, the last completed flush.
            case TORN_APPENDS -> new Garbage(new Random(garbageSeed), durable.length, false);
            case SECTOR_ATOMIC, PROCESS_KILL -> null;
        };
        byte[] image = materialize(durable, epoch, cut.issued(), kept, garbage);
        return new CrashState(description, image, flushesBefore[cut.at()]);
    }

    /** The log index the crash falls before when the epoch's first {@code issued} operations were issued. */
    private static int crashPoint(Epoch epoch, int issued) {
        return issued == epoch.ops().size() ? epoch.end() : epoch.ops().get(issued);
    }

    private byte[] materialize(byte[] durable, Epoch epoch, int issued, BitSet kept, Garbage garbage) {
        // The largest size the file reaches, so that the bytes are copied once.
        long size = durable.length;
        long capacity = size;
        for (int k = 0; k < issued; k++) {
            boolean applied = kept.get(k);
            if (applied || garbage != null) {
                size = log.get(epoch.ops().get(k)).sizeAfter(size, applied);
                capacity = Math.max(capacity, size);
            }
        }
        StateImage s = new StateImage(durable, capacity);
        for (int k = 0; k < issued; k++) {
            LoggedOp op = log.get(epoch.ops().get(k));
            if (kept.get(k)) {
                op.apply(s, garbage);
            } else if (garbage != null) {
                op.tear(s, garbage);
            }
        }
        return s.toArray();
    }

    private List<Epoch> epochs() {
        List<Epoch> epochs = new ArrayList<>();
        if (!options.flushesOrder()) {
            epochs.add(new Epoch(0, changes(0, log.size()), List.of(), log.size()));
            return epochs;
        }
        int start = 0;
        for (int i = 0; i <= log.size(); i++) {
            if (i == log.size() || log.get(i) instanceof LoggedOp.Flush) {
                List<Integer> rangeFlushes = IntStream.range(start, i)
                        .filter(k -> log.get(k) instanceof LoggedOp.RangeFlush).boxed().toList();
                epochs.add(new Epoch(epochs.size(), changes(start, i), rangeFlushes, i));
                start = i + 1;
            }
        }
        return epochs;
    }

    /** The log indices of the operations that change bytes or the size: no flush of either kind. */
    private List<Integer> changes(int from, int to) {
        return IntStream.range(from, to)
                .filter(i -> !(log.get(i) instanceof LoggedOp.Ordering))
                .boxed().toList();
    }

    private static String opRange(Epoch epoch) {
        return epoch.ops().isEmpty() ? "none" : epoch.ops().get(0) + ".." + epoch.ops().get(epoch.ops().size() - 1);
    }

    /** The kept operations as log indices. */
    private static String positions(BitSet kept, Epoch epoch) {
        return kept.stream().mapToObj(k -> String.valueOf(epoch.ops().get(k)))
                .collect(Collectors.joining(",", "{", "}"));
    }

    /** True if {@code kept} is the first k operations for some k. */
    private static boolean isPrefix(BitSet kept) {
        return kept.nextClearBit(0) == kept.cardinality();
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

    /**
     * SHA-256 of the image's length and of its non-zero 4 KiB blocks with their positions, with the durable flush
     * count: images are mostly zeroes (a pool's clusters, unwritten space), and skipping those keeps hashing cheap.
     */
    private static String key(CrashState s) {
        byte[] image = s.image();
        try {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            ByteBuffer position = ByteBuffer.allocate(8);
            for (int off = 0; off < image.length; off += KEY_BLOCK) {
                int len = Math.min(KEY_BLOCK, image.length - off);
                if (Arrays.mismatch(image, off, off + len, ZERO_BLOCK, 0, len) >= 0) {
                    digest.update(position.putLong(0, off).array());
                    digest.update(image, off, len);
                }
            }
            digest.update(position.putLong(0, image.length).array());
            return HexFormat.of().formatHex(digest.digest()) + "/" + s.durableFlushes();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JDK", e);
        }
    }
}
