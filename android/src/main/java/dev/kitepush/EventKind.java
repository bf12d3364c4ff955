package dev.kitepush;

/**
 * The C ABI's kp_event_kind values ({@link LivePusher.Event#kind}); see include/kitepush.h for
 * what {@code code}, {@code value} and {@code value2} mean for each. New kinds may be added:
 * ignore the ones you do not know.
 */
public final class EventKind {
    private EventKind() {}

    public static final int CONNECTING = 1;
    public static final int CONNECTED = 2;
    public static final int PUBLISHING = 3;
    public static final int DISCONNECTED = 4;
    public static final int RECONNECTING = 5;
    public static final int RECONNECTED = 6;
    public static final int STALLED = 7;
    public static final int FAILOVER = 8;
    public static final int KEYFRAME_NEEDED = 9;
    public static final int FAILED = 10;
    public static final int STOPPED = 11;
    public static final int NET_BUSY = 12;
    public static final int NET_RECOVERED = 13;
    public static final int LOW_FPS = 14;
    public static final int ENCODER_OVERLOADED = 15;
    public static final int BITRATE_CHANGED = 16;
    public static final int BITRATE_SUGGESTED = 17;
    public static final int PAUSED = 20;
    public static final int RESUMED = 21;
    public static final int RECORDING_STARTED = 24;
    public static final int RECORDING_STOPPED = 25;
    public static final int RECORDING_FAILED = 26;
    /** The encode ladder changed rung: value = width, value2 = height, value3 = fps in thousandths, value4 = rung. */
    public static final int ENCODE_RUNG_CHANGED = 27;

    private static final String[] NAMES = {
        null, "CONNECTING", "CONNECTED", "PUBLISHING", "DISCONNECTED", "RECONNECTING", "RECONNECTED", "STALLED",
        "FAILOVER", "KEYFRAME_NEEDED", "FAILED", "STOPPED", "NET_BUSY", "NET_RECOVERED", "LOW_FPS",
        "ENCODER_OVERLOADED", "BITRATE_CHANGED", "BITRATE_SUGGESTED", null, null, "PAUSED", "RESUMED", null, null,
        "RECORDING_STARTED", "RECORDING_STOPPED", "RECORDING_FAILED", "ENCODE_RUNG_CHANGED",
    };

    public static String name(int kind) {
        return kind > 0 && kind < NAMES.length && NAMES[kind] != null ? NAMES[kind] : "UNKNOWN_" + kind;
    }
}
