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

    private static final String[] NAMES = {
        null, "CONNECTING", "CONNECTED", "PUBLISHING", "DISCONNECTED", "RECONNECTING", "RECONNECTED", "STALLED",
        "FAILOVER", "KEYFRAME_NEEDED", "FAILED", "STOPPED",
    };

    public static String name(int kind) {
        return kind > 0 && kind < NAMES.length ? NAMES[kind] : "UNKNOWN_" + kind;
    }
}
