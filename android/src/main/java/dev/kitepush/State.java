package dev.kitepush;

/** The C ABI's kp_state values ({@link LivePusher#getState()}). New ones may be added. */
public final class State {
    private State() {}

    public static final int IDLE = 0;
    public static final int CONNECTING = 1;
    public static final int PUBLISHING = 2;
    public static final int STOPPING = 3;
    public static final int STOPPED = 4;
    public static final int FAILED = 5;
    public static final int RECONNECTING = 6;
}
