package io.github.qcowloom.check;

import java.util.Locale;

/** The stdout text of qemu-img check for a result (QEMU's dump_human_image_check). */
public final class HumanReport {
    private HumanReport() {
    }

    /** The summary qemu-img prints on stdout. */
    public static String of(CheckResult r) {
        StringBuilder sb = new StringBuilder();
        if (r.corruptions() == 0 && r.leaks() == 0 && r.checkErrors() == 0) {
            sb.append("No errors were found on the image.\n");
        } else {
            if (r.corruptions() != 0) {
                sb.append('\n').append(r.corruptions()).append(" errors were found on the image.\n")
                        .append("Data may be corrupted, or further writes to the image may corrupt it.\n");
            }
            if (r.leaks() != 0) {
                sb.append('\n').append(r.leaks()).append(" leaked clusters were found on the image.\n")
                        .append("This means waste of disk space, but no harm to data.\n");
            }
            if (r.checkErrors() != 0) {
                sb.append('\n').append(r.checkErrors()).append(" internal errors have occurred during the check.\n");
            }
        }
        if (r.totalClusters() != 0 && r.allocatedClusters() != 0) {
            sb.append(String.format(Locale.ROOT, "%d/%d = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed"
                    + " clusters\n", r.allocatedClusters(), r.totalClusters(),
                    r.allocatedClusters() * 100.0 / r.totalClusters(),
                    r.fragmentedClusters() * 100.0 / r.allocatedClusters(),
                    r.compressedClusters() * 100.0 / r.allocatedClusters()));
        }
        if (r.imageEndOffset() != 0) {
            sb.append("Image end offset: ").append(r.imageEndOffset()).append('\n');
        }
        return sb.toString();
    }

    /** The lines qemu-img prints before its second check when a repair fixed something. */
    public static String repaired(CheckResult r) {
        return "The following inconsistencies were found and repaired:\n\n    " + r.leaksFixed()
                + " leaked clusters\n    " + r.corruptionsFixed() + " corruptions\n\n"
                + "Double checking the fixed image now...\n";
    }
}
