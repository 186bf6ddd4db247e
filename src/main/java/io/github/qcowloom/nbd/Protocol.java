package io.github.qcowloom.nbd;

/** The NBD protocol's numbers, as named in NetworkBlockDevice/nbd doc/proto.md, section "Values". */
final class Protocol {
    private Protocol() {
    }

    // Handshake ("Fixed newstyle negotiation").
    static final long NBDMAGIC = 0x4e42444d41474943L;
    static final long IHAVEOPT = 0x49484156454F5054L;
    static final long OPTION_REPLY_MAGIC = 0x3e889045565a9L;

    static final int FLAG_FIXED_NEWSTYLE = 1;
    static final int FLAG_NO_ZEROES = 1 << 1;
    /** Client flags this server knows; any other bit makes it drop the connection. */
    static final int KNOWN_CLIENT_FLAGS = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;

    static final int OPT_EXPORT_NAME = 1;
    static final int OPT_ABORT = 2;
    static final int OPT_LIST = 3;
    static final int OPT_STARTTLS = 5;
    static final int OPT_INFO = 6;
    static final int OPT_GO = 7;
    static final int OPT_STRUCTURED_REPLY = 8;
    static final int OPT_LIST_META_CONTEXT = 9;
    static final int OPT_SET_META_CONTEXT = 10;

    static final int REP_ACK = 1;
    static final int REP_SERVER = 2;
    static final int REP_INFO = 3;
    static final int REP_META_CONTEXT = 4;
    static final int REP_ERR_UNSUP = 0x80000001;
    static final int REP_ERR_POLICY = 0x80000002;
    static final int REP_ERR_INVALID = 0x80000003;
    static final int REP_ERR_TLS_REQD = 0x80000005;
    static final int REP_ERR_UNKNOWN = 0x80000006;

    static final int INFO_EXPORT = 0;
    static final int INFO_NAME = 1;
    static final int INFO_DESCRIPTION = 2;
    static final int INFO_BLOCK_SIZE = 3;

    // Transmission flags ("Transmission flags").
    static final int TF_HAS_FLAGS = 1;
    static final int TF_READ_ONLY = 1 << 1;
    static final int TF_SEND_FLUSH = 1 << 2;
    static final int TF_SEND_FUA = 1 << 3;
    static final int TF_SEND_TRIM = 1 << 5;
    static final int TF_SEND_WRITE_ZEROES = 1 << 6;
    static final int TF_SEND_DF = 1 << 7;
    static final int TF_CAN_MULTI_CONN = 1 << 8;
    static final int TF_SEND_CACHE = 1 << 10;
    static final int TF_SEND_FAST_ZERO = 1 << 11;

    // Requests ("Transmission").
    static final int REQUEST_MAGIC = 0x25609513;
    static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;

    static final int CMD_FLAG_FUA = 1;
    static final int CMD_FLAG_NO_HOLE = 1 << 1;
    static final int CMD_FLAG_DF = 1 << 2;
    static final int CMD_FLAG_REQ_ONE = 1 << 3;
    static final int CMD_FLAG_FAST_ZERO = 1 << 4;

    static final int CMD_READ = 0;
    static final int CMD_WRITE = 1;
    static final int CMD_DISC = 2;
    static final int CMD_FLUSH = 3;
    static final int CMD_TRIM = 4;
    static final int CMD_CACHE = 5;
    static final int CMD_WRITE_ZEROES = 6;
    static final int CMD_BLOCK_STATUS = 7;

    // Structured reply chunks ("Structured reply chunk message types").
    static final int REPLY_FLAG_DONE = 1;
    static final int REPLY_TYPE_NONE = 0;
    static final int REPLY_TYPE_OFFSET_DATA = 1;
    static final int REPLY_TYPE_OFFSET_HOLE = 2;
    static final int REPLY_TYPE_BLOCK_STATUS = 5;
    static final int REPLY_TYPE_ERROR = (1 << 15) + 1;

    // base:allocation ("Metadata contexts").
    static final String BASE_ALLOCATION = "base:allocation";
    static final int BASE_ALLOCATION_ID = 1;
    // QEMU's dirty-bitmap context (docs/interop/nbd.txt): one bit of state, dirty.
    static final String DIRTY_BITMAP_PREFIX = "qemu:dirty-bitmap:";
    static final int DIRTY_BITMAP_ID = 2;
    /** qemu-nbd -A's context: each extent's depth in the backing chain, 1 the top, 0 where no layer holds it. */
    static final String ALLOCATION_DEPTH = "qemu:allocation-depth";
    static final int ALLOCATION_DEPTH_ID = 3;
    static final int STATE_DIRTY = 1;
    static final int STATE_HOLE = 1;
    static final int STATE_ZERO = 2;

    // Errors ("Error values").
    static final int EPERM = 1;
    static final int EIO = 5;
    static final int EINVAL = 22;
    static final int ENOSPC = 28;
    static final int ENOTSUP = 95;

    // Block size constraints: minimum 1, preferred 4096, maximum payload 32 MiB.
    static final int MIN_BLOCK = 1;
    static final int PREFERRED_BLOCK = 4096;
    static final int MAX_PAYLOAD = 32 << 20;
}
