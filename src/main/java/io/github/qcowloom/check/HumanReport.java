package io.github.qcowloom.check;

import java.math.BigDecimal;
import java.math.RoundingMode;

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
            sb.append(r.allocatedClusters()).append('/').append(r.totalClusters()).append(" = ")
                    .append(twoDecimals(r.allocatedClusters() * 100.0 / r.totalClusters())).append("% allocated, ")
                    .append(twoDecimals(r.fragmentedClusters() * 100.0 / r.allocatedClusters()))
                    .append("% fragmented, ")
                    .append(twoDecimals(r.compressedClusters() * 100.0 / r.allocatedClusters()))
                    .append("% compressed clusters\n");
        }
        if (r.imageEndOffset() != 0) {
            sb.append("Image end offset: ").append(r.imageEndOffset()).append('\n');
        }
        return sb.toString();
    }

    /**
     * C's {@code %0.2f}: the double's exact binary value rounded half to even, so 1/32 of the clusters (3.125
     * exactly) is "3.12", as qemu-img prints it. Java's {@code %.2f} rounds the shortest decimal half up ("3.13").
     */
    static String twoDecimals(double x) {
        return new BigDecimal(x).setScale(2, RoundingMode.HALF_EVEN).toPlainString();
    }

    /** The lines qemu-img prints before its second check when a repair fixed something. */
    public static String repaired(CheckResult r) {
        return "The following inconsistencies were found and repaired:\n\n    " + r.leaksFixed()
                + " leaked clusters\n    " + r.corruptionsFixed() + " corruptions\n\n"
                + "Double checking the fixed image now...\n";
    }
}
