package io.github.qcowloom.cli;

import io.github.qcowloom.testing.Qemu;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The extents {@code qemu-img map --output=json} reports, to see what a target left unallocated. */
record QemuMap(List<Extent> extents) {
    record Extent(long start, long length, int depth, boolean zero, boolean data) {
    }

    private static final Pattern ENTRY = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+), \"depth\": (\\d+),"
            + ".*?\"zero\": (true|false), \"data\": (true|false)");

    static QemuMap of(String image) {
        List<Extent> list = new ArrayList<>();
        Matcher m = ENTRY.matcher(Qemu.img("map", "--output=json", image));
        while (m.find()) {
            list.add(new Extent(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Integer.parseInt(m.group(3)),
                    Boolean.parseBoolean(m.group(4)), Boolean.parseBoolean(m.group(5))));
        }
        return new QemuMap(list);
    }

    /**
     * The map with neighbours that say the same (depth, zero, data) merged: what the guest and its host see, apart
     * from where qemu-img splits runs (host offsets that do not follow on, a cluster allocated or not).
     */
    QemuMap merged() {
        List<Extent> out = new ArrayList<>();
        for (Extent e : extents) {
            Extent last = out.isEmpty() ? null : out.getLast();
            if (last != null && last.depth() == e.depth() && last.zero() == e.zero() && last.data() == e.data()
                    && last.start() + last.length() == e.start()) {
                out.set(out.size() - 1, new Extent(last.start(), last.length() + e.length(), e.depth(), e.zero(),
                        e.data()));
            } else {
                out.add(e);
            }
        }
        return new QemuMap(out);
    }

    /** The extents that overlap [from, to). */
    List<Extent> overlapping(long from, long to) {
        return extents.stream().filter(e -> e.start() < to && e.start() + e.length() > from).toList();
    }
}
