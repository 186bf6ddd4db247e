package io.github.qcowloom.check;

/** What qemu-img check -r may repair: {@code leaks}, or {@code all} (leaks and corruptions). */
public enum RepairMode {
    LEAKS, ALL;

    /** Parses qemu-img's -r argument. */
    public static RepairMode parse(String s) {
        return switch (s) {
            case "leaks" -> LEAKS;
            case "all" -> ALL;
            default -> throw new IllegalArgumentException("Unknown option value for -r (expecting 'leaks' or 'all'): "
                    + s);
        };
    }
}
