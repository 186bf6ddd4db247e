package io.github.qcowloom.cli;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.bitmap.Bitmaps;
import io.github.qcowloom.crypto.EncryptionInfo;
import io.github.qcowloom.crypto.LuksInfo;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.ReferencedFiles;
import io.github.qcowloom.snapshot.Snapshot;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/** What qemu-img info reports about an image, as an ordered map in the JSON field names and order of qemu-img. */
final class ImageInfo {
    private ImageInfo() {
    }

    /** {@code encryption}: what the image's encryption shows, or null when it is not encrypted. */
    static Map<String, Object> qcow2(String filename, Header h, List<Snapshot> snapshots,
            List<BitmapDirectory.Entry> bitmaps, OptionalLong diskUsage, EncryptionInfo encryption) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (h.backingFile() != null) {
            h.backingFormat().ifPresent(f -> m.put("backing-filename-format", f));
        }
        if (!snapshots.isEmpty()) {
            List<Object> list = new ArrayList<>();
            for (Snapshot s : snapshots) {
                Map<String, Object> sm = new LinkedHashMap<>();
                if (s.icount() != -1) {
                    sm.put("icount", s.icount());
                }
                sm.put("vm-clock-nsec", s.vmClockNsec() % 1_000_000_000L);
                sm.put("name", s.name());
                sm.put("date-sec", s.dateSec());
                sm.put("date-nsec", s.dateNsec());
                sm.put("vm-clock-sec", s.vmClockNsec() / 1_000_000_000L);
                sm.put("id", s.id());
                sm.put("vm-state-size", s.vmStateSize());
                list.add(sm);
            }
            m.put("snapshots", list);
        }
        m.put("virtual-size", h.diskSize()); // as qemu-img: whole sectors
        m.put("filename", filename);
        m.put("cluster-size", h.clusterSize());
        m.put("format", "qcow2");
        diskUsage.ifPresent(u -> m.put("actual-size", u));
        Map<String, Object> data = new LinkedHashMap<>();
        data.put("compat", h.version() == 3 ? "1.1" : "0.10");
        data.put("compression-type", h.compressionType() == 1 ? "zstd" : "zlib");
        if (h.version() == 3) {
            data.put("lazy-refcounts", h.lazyRefcounts());
        }
        if (!bitmaps.isEmpty()) {
            data.put("bitmaps", bitmapList(bitmaps));
        }
        data.put("refcount-bits", h.refcountBits());
        if (encryption != null) {
            data.put("encrypt", encryption instanceof LuksInfo luks ? encrypt(luks) : Map.of("format",
                    encryption.format()));
        }
        if (h.version() == 3) {
            h.dataFile().ifPresent(d -> data.put("data-file", d));
            if (h.hasDataFile()) {
                data.put("data-file-raw", h.dataFileRaw());
            }
            data.put("corrupt", h.corrupt());
            data.put("extended-l2", h.extendedL2());
        }
        Map<String, Object> specific = new LinkedHashMap<>();
        specific.put("type", "qcow2");
        specific.put("data", data);
        m.put("format-specific", specific);
        if (h.backingFile() != null) {
            m.put("full-backing-filename", ReferencedFiles.qemuName(filename, h.backingFile()));
            m.put("backing-filename", h.backingFile());
        }
        if (encryption != null) {
            m.put("encrypted", true);
        }
        m.put("dirty-flag", h.dirty());
        return m;
    }

    /** QCryptoBlockInfoQCow2's LUKS fields, in the order qemu-img 7.2 prints them. */
    private static Map<String, Object> encrypt(LuksInfo luks) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("ivgen-alg", luks.ivgenAlg().qemuName());
        e.put("hash-alg", luks.hashAlg().qemuName());
        e.put("cipher-alg", luks.cipherAlg().qemuName());
        e.put("uuid", luks.uuid());
        luks.ivgenHashAlg().ifPresent(hash -> e.put("ivgen-hash-alg", hash.qemuName()));
        e.put("format", luks.format());
        e.put("cipher-mode", luks.cipherMode().qemuName());
        List<Object> slots = new ArrayList<>();
        for (LuksInfo.Slot slot : luks.slots()) {
            Map<String, Object> sm = new LinkedHashMap<>();
            sm.put("active", slot.active());
            slot.iters().ifPresent(n -> sm.put("iters", n));
            sm.put("key-offset", slot.keyOffset());
            slot.stripes().ifPresent(n -> sm.put("stripes", n));
            slots.add(sm);
        }
        e.put("slots", slots);
        e.put("payload-offset", luks.payloadOffset());
        e.put("master-key-iters", luks.masterKeyIters());
        return e;
    }

    /**
     * The image's persistent dirty bitmaps; a directory QEMU would not load, or the table of a bitmap not in use that
     * it would not load (QEMU loads them as it opens the image), fails as qemu-img's open fails on it ("Could not
     * open 'F': ...", img_open's context around qcow2's words).
     */
    static List<BitmapDirectory.Entry> persistentBitmaps(Qcow2Image img, String filename) throws IOException {
        try {
            return Bitmaps.loaded(img);
        } catch (CorruptImageException e) {
            throw new CorruptImageException("Could not open '" + filename + "': " + e.getMessage(), e);
        }
    }

    /** qcow2_get_bitmap_info_list: each bitmap's flags (in-use, auto), name and granularity. */
    private static List<Object> bitmapList(List<BitmapDirectory.Entry> bitmaps) {
        List<Object> list = new ArrayList<>();
        for (BitmapDirectory.Entry b : bitmaps) {
            List<Object> flags = new ArrayList<>();
            if (b.inUse()) {
                flags.add("in-use");
            }
            if (b.auto()) {
                flags.add("auto");
            }
            Map<String, Object> bm = new LinkedHashMap<>();
            bm.put("flags", flags);
            bm.put("name", b.name());
            bm.put("granularity", 1L << b.granularityBits());
            list.add(bm);
        }
        return list;
    }

    static Map<String, Object> raw(String filename, long size, OptionalLong diskUsage) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("virtual-size", size);
        m.put("filename", filename);
        m.put("format", "raw");
        diskUsage.ifPresent(u -> m.put("actual-size", u));
        m.put("dirty-flag", false);
        return m;
    }

    /** The human-readable form qemu-img info prints. */
    @SuppressWarnings("unchecked")
    static String human(Map<String, Object> m) {
        StringBuilder sb = new StringBuilder();
        long size = (Long) m.get("virtual-size");
        sb.append("image: ").append(m.get("filename")).append('\n');
        sb.append("file format: ").append(m.get("format")).append('\n');
        sb.append("virtual size: ").append(Sizes.human(size)).append(" (").append(size).append(" bytes)\n");
        sb.append("disk size: ").append(m.containsKey("actual-size") ? Sizes.human((Long) m.get("actual-size"))
                : "unavailable").append('\n');
        if (m.containsKey("encrypted")) {
            sb.append("encrypted: yes\n");
        }
        if (m.containsKey("cluster-size")) {
            sb.append("cluster_size: ").append(m.get("cluster-size")).append('\n');
        }
        if (m.containsKey("backing-filename")) {
            sb.append("backing file: ").append(m.get("backing-filename"));
            if (!m.get("backing-filename").equals(m.get("full-backing-filename"))) {
                sb.append(" (actual path: ").append(m.get("full-backing-filename")).append(')');
            }
            sb.append('\n');
            if (m.containsKey("backing-filename-format")) {
                sb.append("backing file format: ").append(m.get("backing-filename-format")).append('\n');
            }
        }
        if (m.containsKey("snapshots")) {
            sb.append("Snapshot list:\n").append(SnapshotListing.header());
            for (Object o : (List<Object>) m.get("snapshots")) {
                Map<String, Object> s = (Map<String, Object>) o;
                sb.append(SnapshotListing.line((String) s.get("id"), (String) s.get("name"),
                        (Long) s.get("vm-state-size"), (Long) s.get("date-sec"),
                        (Long) s.get("vm-clock-sec") * 1_000_000_000L + (Long) s.get("vm-clock-nsec"),
                        (Long) s.get("icount")));
            }
        }
        if (m.containsKey("format-specific")) {
            Map<String, Object> data = (Map<String, Object>) ((Map<String, Object>) m.get("format-specific"))
                    .get("data");
            sb.append("Format specific information:\n");
            dump(sb, 1, data);
        }
        return sb.toString();
    }

    /**
     * QEMU's dump_qobject, as info prints the format-specific data: a key (dashes as spaces) or a list index per
     * line, four spaces an indent, a map or list under its own line one indent deeper.
     */
    @SuppressWarnings("unchecked")
    private static void dump(StringBuilder sb, int indent, Object value) {
        String pad = " ".repeat(4 * indent);
        if (value instanceof Map<?, ?> map) {
            for (Map.Entry<String, Object> e : ((Map<String, Object>) map).entrySet()) {
                line(sb, pad + e.getKey().replace('-', ' '), indent, e.getValue());
            }
        } else if (value instanceof List<?> list) {
            for (int i = 0; i < list.size(); i++) {
                line(sb, pad + "[" + i + "]", indent, list.get(i));
            }
        }
    }

    private static void line(StringBuilder sb, String label, int indent, Object value) {
        if (value instanceof Map<?, ?> || value instanceof List<?>) {
            sb.append(label).append(":\n");
            dump(sb, indent + 1, value);
        } else {
            sb.append(label).append(": ").append(value).append('\n');
        }
    }
}
