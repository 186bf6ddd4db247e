package io.github.qcowloom.alloc;

/**
 * How many refcount blocks and reftable clusters it takes to count {@code otherClusters} clusters plus the
 * refcount structures themselves: a fixed point, since the structures must count their own clusters too.
 */
public record RefcountCoverage(long refblocks, long reftableClusters) {
    public static RefcountCoverage of(long otherClusters, long entriesPerRefblock, long clusterSize) {
        long blocks = 1;
        long table = 1;
        while (true) {
            long total = otherClusters + blocks + table;
            long needBlocks = (total + entriesPerRefblock - 1) / entriesPerRefblock;
            long needTable = Math.max(1, (needBlocks * 8 + clusterSize - 1) / clusterSize);
            if (needBlocks <= blocks && needTable <= table) {
                return new RefcountCoverage(blocks, table);
            }
            blocks = Math.max(blocks, needBlocks);
            table = Math.max(table, needTable);
        }
    }
}
