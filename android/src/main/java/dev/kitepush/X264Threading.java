package dev.kitepush;

/** kp_x264_threading: how x264's threads share the work ({@link LivePusherConfig.Builder#x264Threading}). */
public enum X264Threading {
    /** What the tune says ({@code zerolatency}: sliced threads). */
    DEFAULT(0),
    /** One frame per thread: best compression, a frame of latency per thread. */
    FRAME(1),
    /** Slices of one frame in parallel: no added latency. */
    SLICED(2);

    final int value;

    X264Threading(int value) {
        this.value = value;
    }
}
