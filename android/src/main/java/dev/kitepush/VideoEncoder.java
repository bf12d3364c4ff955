package dev.kitepush;

/** kp_video_encoder: where the video comes from. */
public enum VideoEncoder {
    /** Raw frames ({@link LivePusher#pushVideo}) encoded by the bundled OpenH264. */
    OPENH264(0),
    /** Raw frames encoded by x264 (not in this build: create fails with UNSUPPORTED). */
    X264(1),
    /** H.264 access units from a hardware encoder ({@link LivePusher#pushH264}). */
    PASSTHROUGH(2),
    /** H.265 access units ({@link LivePusher#pushHevc}), sent over Enhanced RTMP (not nginx-rtmp). */
    PASSTHROUGH_HEVC(3);

    final int value;

    VideoEncoder(int value) {
        this.value = value;
    }
}
