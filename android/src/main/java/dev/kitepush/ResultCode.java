package dev.kitepush;

/** The C ABI's kp_result values. Stable, never reused; new ones may be added. */
public final class ResultCode {
    private ResultCode() {}

    public static final int OK = 0;
    public static final int INVALID_ARGUMENT = 1;
    public static final int INVALID_STATE = 2;
    public static final int INVALID_URL = 3;
    public static final int UNSUPPORTED = 4;
    public static final int BAD_FRAME_SIZE = 5;
    public static final int BAD_DIMENSIONS = 6;
    public static final int BAD_PIXEL_FORMAT = 7;
    public static final int NON_MONOTONIC_TIMESTAMP = 8;
    public static final int NOT_STARTED = 9;
    public static final int QUEUE_FULL = 10;
    public static final int ENCODER = 11;
    public static final int BAD_BITSTREAM = 12;
    public static final int CONNECT = 13;
    public static final int TIMEOUT = 14;
    public static final int DNS = 15;
    public static final int IO = 16;
    public static final int PROTOCOL = 17;
    public static final int PUBLISH_REJECTED = 18;
    public static final int CONNECT_REJECTED = 19;
    public static final int AUTH = 20;
    public static final int TLS = 21;
    public static final int INTERNAL = 22;
    public static final int FILE = 23;
    public static final int PAUSED = 24;

    private static final String[] NAMES = {
        "KP_OK", "KP_ERR_INVALID_ARGUMENT", "KP_ERR_INVALID_STATE", "KP_ERR_INVALID_URL", "KP_ERR_UNSUPPORTED",
        "KP_ERR_BAD_FRAME_SIZE", "KP_ERR_BAD_DIMENSIONS", "KP_ERR_BAD_PIXEL_FORMAT", "KP_ERR_NON_MONOTONIC_TIMESTAMP",
        "KP_ERR_NOT_STARTED", "KP_ERR_QUEUE_FULL", "KP_ERR_ENCODER", "KP_ERR_BAD_BITSTREAM", "KP_ERR_CONNECT",
        "KP_ERR_TIMEOUT", "KP_ERR_DNS", "KP_ERR_IO", "KP_ERR_PROTOCOL", "KP_ERR_PUBLISH_REJECTED",
        "KP_ERR_CONNECT_REJECTED", "KP_ERR_AUTH", "KP_ERR_TLS", "KP_ERR_INTERNAL",
        "KP_ERR_FILE", "KP_ERR_PAUSED",
    };

    /** The C constant's name for a code. */
    public static String name(int code) {
        return code >= 0 && code < NAMES.length ? NAMES[code] : "KP_UNKNOWN_" + code;
    }

    /** The SDK's static description of a code (kp_result_str). */
    public static String describe(int code) {
        return Native.resultStr(code);
    }
}
