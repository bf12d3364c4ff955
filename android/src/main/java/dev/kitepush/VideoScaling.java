package dev.kitepush;

/** kp_video_scaling: what pushVideo does with a raw frame larger than the configured size. */
public enum VideoScaling {
    /** Scaled down to fill the configured size; a different aspect ratio is cropped at the middle (the default). */
    FILL(0),
    /** Scaled to exactly the configured size; a different aspect ratio is distorted. */
    STRETCH(1),
    /** Refused with {@link ResultCode#BAD_DIMENSIONS}. */
    OFF(2);

    final int value;

    VideoScaling(int value) {
        this.value = value;
    }
}
