package io.github.qcowloom.soak;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What each block of the soak image may hold after a kill, from the child's journal ({@link SoakChild}): the last
 * operation on the block acknowledged before the start of the last flush that completed is durable; the block
 * holds it or an operation on the block that came after it (logged, or a write still in flight, which the
 * block's records name). Anything older, anything of another block, or a mix is a lost or torn write.
 */
final class SoakModel {
    /** A block's content: the id of the write it holds, or {@link #ZERO}. */
    static final long ZERO = -1;

    private record Op(long id, boolean zero, int line) {
    }

    private final List<List<Op>> history;
    private final long[] durableBefore;
    /** The first id the child gave: no write of an earlier child may appear unless it was durable. */
    private final long firstId;
    private int lastCompletedFlushStart = -1;
    private final Map<Long, Integer> flushStarts = new HashMap<>();
    private int lines;
    int writes;
    int zeroes;
    int flushes;
    int snapshots;
    int snapshotDeletes;
    final List<String> errors = new ArrayList<>();

    /** {@code durable[blk]}: what the block held durably when the child started (id or {@link #ZERO}). */
    SoakModel(long[] durable, long firstId) {
        this.durableBefore = durable.clone();
        this.firstId = firstId;
        this.history = new ArrayList<>(durable.length);
        for (int i = 0; i < durable.length; i++) {
            history.add(new ArrayList<>());
        }
    }

    void accept(String line) {
        int at = lines++;
        String[] f = line.split(" ");
        switch (f[0]) {
            case "A" -> {
                long id = Long.parseLong(f[1]);
                int blk = Integer.parseInt(f[2]);
                if (f[f.length - 1].equals("W")) {
                    history.get(blk).add(new Op(id, false, at));
                    writes++;
                } else {
                    int n = Integer.parseInt(f[3]);
                    for (int i = 0; i < n; i++) {
                        history.get(blk + i).add(new Op(id, true, at));
                    }
                    zeroes++;
                }
            }
            case "I" -> {
                // Not yet acknowledged: may or may not have taken effect. Recorded as a possibility only.
                int blk = Integer.parseInt(f[2]);
                int n = Integer.parseInt(f[3]);
                for (int i = 0; i < n; i++) {
                    history.get(blk + i).add(new Op(Long.parseLong(f[1]), true, Integer.MAX_VALUE));
                }
            }
            case "F" -> flushStarts.put(Long.parseLong(f[1]), at);
            case "f" -> {
                lastCompletedFlushStart = flushStarts.get(Long.parseLong(f[1]));
                flushes++;
            }
            case "S" -> snapshots++;
            case "s" -> snapshotDeletes++;
            case "E" -> errors.add(line);
            default -> {
                if (!line.equals("ready")) {
                    errors.add("unexpected line: " + line);
                }
            }
        }
    }

    /**
     * Null if block {@code blk} may hold {@code content} (an id or {@link #ZERO}; {@code torn} if its records
     * disagree or name another block), else why not.
     */
    String check(int blk, long content, boolean torn) {
        if (torn) {
            return "block " + blk + " holds a torn or misdirected write";
        }
        boolean durableZero = durableBefore[blk] == ZERO;
        long durableId = durableZero ? firstId - 1 : durableBefore[blk];
        boolean laterZero = false;
        for (Op op : history.get(blk)) {
            if (op.line() < lastCompletedFlushStart) {
                durableId = op.id();
                durableZero = op.zero();
                laterZero = false;
            } else if (op.zero()) {
                laterZero = true;
            }
        }
        if (content == ZERO) {
            return durableZero || laterZero ? null
                    : "block " + blk + " reads zeroes, but write " + durableId + " was flushed and nothing zeroed it";
        }
        if (content == durableId && !durableZero || content > durableId && content >= firstId) {
            return null;
        }
        return "block " + blk + " holds write " + content + ", older than " + (durableZero ? "the zeroing " : "write ")
                + durableId + " acknowledged before a completed flush";
    }
}
