/** qcow2-loom: a qcow2 driver whose requests run as straight-line code on virtual threads. */
module io.github.qcowloom {
    requires info.picocli;
    requires com.github.luben.zstd_jni;
    requires org.slf4j;
    requires me.tongfei.progressbar;
    requires jdk.unsupported;
    // bench --report's charts. XChart's jar names no module: its automatic module name comes from the file name.
    requires xchart;
    requires java.desktop;

    // What users program against (README "Library"): the API, the image entry points, snapshots, bitmaps, check, the
    // crash kit, the interleaving explorer, NBD, execution models, virtio, LUKS encryption, and the storage a crash
    // kit or a simulation wraps. format, cache, compress and alloc are the driver's insides: public for use across
    // its packages, not exported.
    exports io.github.qcowloom.api;
    exports io.github.qcowloom.storage;
    exports io.github.qcowloom.exec;
    exports io.github.qcowloom.image;
    exports io.github.qcowloom.snapshot;
    exports io.github.qcowloom.bitmap;
    exports io.github.qcowloom.check;
    exports io.github.qcowloom.crashkit;
    exports io.github.qcowloom.nbd;
    exports io.github.qcowloom.simulation;
    exports io.github.qcowloom.virtio;
    exports io.github.qcowloom.crypto;

    opens io.github.qcowloom.cli to info.picocli;
}
