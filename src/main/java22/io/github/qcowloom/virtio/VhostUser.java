package io.github.qcowloom.virtio;

/** Numbers of the vhost-user protocol (QEMU docs/interop/vhost-user.rst). */
final class VhostUser {
    private VhostUser() {
    }

    static final int HEADER_BYTES = 12;
    /** The largest payload accepted: a memory table of 8 regions is 264 bytes, a config space message 12 + 256. */
    static final int MAX_PAYLOAD = 4096;
    static final int MAX_CONFIG = 256;
    static final int MAX_REGIONS = 8;

    static final int VERSION = 0x1;
    static final int FLAG_REPLY = 0x4;
    static final int FLAG_NEED_REPLY = 0x8;

    static final int GET_FEATURES = 1;
    static final int SET_FEATURES = 2;
    static final int SET_OWNER = 3;
    static final int RESET_OWNER = 4;
    static final int SET_MEM_TABLE = 5;
    static final int SET_LOG_BASE = 6;
    static final int SET_LOG_FD = 7;
    static final int SET_VRING_NUM = 8;
    static final int SET_VRING_ADDR = 9;
    static final int SET_VRING_BASE = 10;
    static final int GET_VRING_BASE = 11;
    static final int SET_VRING_KICK = 12;
    static final int SET_VRING_CALL = 13;
    static final int SET_VRING_ERR = 14;
    static final int GET_PROTOCOL_FEATURES = 15;
    static final int SET_PROTOCOL_FEATURES = 16;
    static final int GET_QUEUE_NUM = 17;
    static final int SET_VRING_ENABLE = 18;
    static final int SET_BACKEND_REQ_FD = 21;
    static final int GET_CONFIG = 24;
    static final int SET_CONFIG = 25;
    static final int GET_MAX_MEM_SLOTS = 36;

    /** Feature bit 30: the back end speaks protocol features (not a virtio feature, never shown to the guest). */
    static final long F_PROTOCOL_FEATURES = 1L << 30;

    static final int PROTOCOL_F_MQ = 0;
    static final int PROTOCOL_F_REPLY_ACK = 3;
    static final int PROTOCOL_F_CONFIG = 9;

    static final long PROTOCOL_FEATURES = (1L << PROTOCOL_F_MQ) | (1L << PROTOCOL_F_REPLY_ACK)
            | (1L << PROTOCOL_F_CONFIG);

    /** In SET_VRING_KICK/CALL/ERR: the ring index, and the flag saying no descriptor came. */
    static final long VRING_INDEX_MASK = 0xff;
    static final long VRING_NOFD = 0x100;

    static String name(int request) {
        return switch (request) {
            case GET_FEATURES -> "GET_FEATURES";
            case SET_FEATURES -> "SET_FEATURES";
            case SET_OWNER -> "SET_OWNER";
            case RESET_OWNER -> "RESET_OWNER";
            case SET_MEM_TABLE -> "SET_MEM_TABLE";
            case SET_LOG_BASE -> "SET_LOG_BASE";
            case SET_LOG_FD -> "SET_LOG_FD";
            case SET_VRING_NUM -> "SET_VRING_NUM";
            case SET_VRING_ADDR -> "SET_VRING_ADDR";
            case SET_VRING_BASE -> "SET_VRING_BASE";
            case GET_VRING_BASE -> "GET_VRING_BASE";
            case SET_VRING_KICK -> "SET_VRING_KICK";
            case SET_VRING_CALL -> "SET_VRING_CALL";
            case SET_VRING_ERR -> "SET_VRING_ERR";
            case GET_PROTOCOL_FEATURES -> "GET_PROTOCOL_FEATURES";
            case SET_PROTOCOL_FEATURES -> "SET_PROTOCOL_FEATURES";
            case GET_QUEUE_NUM -> "GET_QUEUE_NUM";
            case SET_VRING_ENABLE -> "SET_VRING_ENABLE";
            case SET_BACKEND_REQ_FD -> "SET_BACKEND_REQ_FD";
            case GET_CONFIG -> "GET_CONFIG";
            case SET_CONFIG -> "SET_CONFIG";
            case GET_MAX_MEM_SLOTS -> "GET_MAX_MEM_SLOTS";
            default -> "request " + request;
        };
    }
}
