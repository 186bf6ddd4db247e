package io.github.qcowloom.guest;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The ext4 workloads the guest tests run on /dev/vda (shell for {@link GuestVm}), and the reading of what they
 * report. Files live in /data of the file system; each one the guest knows durable is reported as a mark
 * {@code file NAME SHA256} (or {@code synced NAME SHA256} while it keeps writing), so that the test can hold the
 * later boots and the host's own reading of the image to the same checksums.
 */
final class Ext4Workload {
    private Ext4Workload() {
    }

    /**
     * Writes and reads back 8 MiB with O_DIRECT in 4 MiB blocks: the user buffer's pages are mostly scattered, so
     * the kernel sends requests of up to max_segments pages each, the longest descriptor chains a Linux driver
     * makes (seg_max + 2 buffers behind one indirect descriptor). Marks {@code segments} (the kernel's max_segments)
     * and {@code direct}.
     */
    static final String DIRECT_WRITE_READ = """
            mark segments $(cat /sys/block/vda/queue/max_segments)
            dd if=/dev/urandom of=/tmp/direct bs=1048576 count=8 2>/dev/null
            dd if=/tmp/direct of=/dev/vda bs=4194304 oflag=direct 2>/dev/null
            dd if=/dev/vda of=/tmp/back bs=4194304 count=2 iflag=direct 2>/dev/null
            cmp /tmp/direct /tmp/back
            mark direct same
            rm /tmp/direct /tmp/back
            """;

    /**
     * Formats the disk, writes {@code files} files of 1 KiB to 2 MiB of random data and one of 8 MiB, rewrites
     * 256 KiB in the middle of that one, deletes a file and one of 24 MiB written and synced before, trims the free
     * space (NBD TRIM reaches the image), syncs and reports every file and the KiB the file system uses (mark
     * {@code used}, from df); then unmounts, drops the caches, runs {@code e2fsck -fn} (mark {@code fsck clean}) and
     * reads every file back against its checksum (mark {@code verified N}).
     */
    static String formatWriteVerify(int files) {
        return """
                wait_for_device /dev/vda
                mkfs.ext4 -q -F /dev/vda
                mount /dev/vda /mnt
                mkdir /mnt/data
                i=1
                while [ $i -le %d ]; do
                  dd if=/dev/urandom of=/mnt/data/f$i bs=1024 count=$(( (i * i * 97) %% 2048 + 1 )) 2>/dev/null
                  i=$((i + 1))
                done
                dd if=/dev/urandom of=/mnt/data/big bs=1048576 count=8 2>/dev/null
                sync
                dd if=/dev/urandom of=/mnt/data/big bs=4096 seek=1000 count=64 conv=notrunc 2>/dev/null
                dd if=/dev/urandom of=/mnt/data/scratch bs=1048576 count=24 2>/dev/null
                sync
                rm /mnt/data/f2 /mnt/data/scratch
                sync
                fstrim /mnt
                mark trimmed
                mark used $(df -k /mnt | tail -1 | awk '{print $3}')
                (cd /mnt/data && sha256sum *) > /tmp/sums
                sync
                while read -r sum name; do mark file "$name" "$sum"; done < /tmp/sums
                umount /mnt
                blockdev --flushbufs /dev/vda
                echo 3 > /proc/sys/vm/drop_caches
                e2fsck -fn /dev/vda
                mark fsck clean
                mount -o ro /dev/vda /mnt
                (cd /mnt/data && sha256sum -c -s /tmp/sums)
                mark verified $(wc -l < /tmp/sums)
                umount /mnt
                """.formatted(files);
    }

    /**
     * Formats the disk and writes files without end: each file {@code sN} is written, checksummed and synced,
     * then reported as {@code synced sN SHA256}; between two syncs an unsynced file {@code uN} is written, and
     * background writeback runs every 50 ms so that writes are in flight whenever the server dies.
     */
    static String writeUntilKilled() {
        return """
                wait_for_device /dev/vda
                mkfs.ext4 -q -F /dev/vda
                mount /dev/vda /mnt
                mkdir /mnt/data
                sync
                echo 5 > /proc/sys/vm/dirty_writeback_centisecs
                echo 5 > /proc/sys/vm/dirty_expire_centisecs
                i=1
                while true; do
                  dd if=/dev/urandom of=/mnt/data/s$i bs=1024 count=$(( (i * 389) % 1500 + 64 )) 2>/dev/null
                  sum=$(sha256sum /mnt/data/s$i | cut -d' ' -f1)
                  sync
                  mark synced "s$i" "$sum"
                  dd if=/dev/urandom of=/mnt/data/u$i bs=1024 count=512 2>/dev/null
                  i=$((i + 1))
                done
                """;
    }

    /**
     * Checks and lists the file system as the previous boot left it: with {@code replayJournal} it first mounts
     * and unmounts read-write (the kernel replays the journal, as after a crash), then {@code e2fsck -fn}
     * (mark {@code fsck clean}) and every file of /data as {@code file NAME SHA256}.
     */
    static String checkAndList(boolean replayJournal) {
        String replay = replayJournal ? """
                mount /dev/vda /mnt
                umount /mnt
                mark replayed
                """ : "";
        return "wait_for_device /dev/vda\n" + replay + """
                e2fsck -fn /dev/vda
                mark fsck clean
                mount -o ro /dev/vda /mnt
                (cd /mnt/data && sha256sum *) > /tmp/sums
                while read -r sum name; do mark file "$name" "$sum"; done < /tmp/sums
                umount /mnt
                """;
    }

    /** "NAME SHA256" mark values as a sorted map from name to checksum. */
    static Map<String, String> checksums(List<String> values) {
        Map<String, String> m = new TreeMap<>();
        for (String v : values) {
            String[] parts = v.trim().split("\\s+");
            if (parts.length != 2) {
                throw new IllegalArgumentException("not 'NAME SHA256': " + v);
            }
            m.put(parts[0], parts[1]);
        }
        return m;
    }
}
