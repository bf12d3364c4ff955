package dev.kitepush;

/** kp_pixel_format: the layouts {@link LivePusher#pushVideo} takes. */
public enum PixelFormat {
    /** Planes Y, U, V. */
    I420(0),
    /** Plane Y, then interleaved UV (MediaCodec COLOR_FormatYUV420SemiPlanar, YUV_420_888 with pixel stride 2). */
    NV12(1),
    /** Plane Y, then interleaved VU (the legacy Camera API's preview format). */
    NV21(2);

    final int value;

    PixelFormat(int value) {
        this.value = value;
    }
}
