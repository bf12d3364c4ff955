package dev.kitepush;

/** kp_pixel_format: the layouts {@link LivePusher#pushVideo} takes. */
public enum PixelFormat {
    /** Planes Y, U, V. */
    I420(0),
    /** Plane Y, then interleaved UV (MediaCodec COLOR_FormatYUV420SemiPlanar, YUV_420_888 with pixel stride 2). */
    NV12(1),
    /** Plane Y, then interleaved VU (the legacy Camera API's preview format). */
    NV21(2),
    /** One packed 4:2:2 plane, bytes Y0 U Y1 V (USB cameras). */
    YUY2(3),
    /** One packed 4:2:2 plane, bytes U Y0 V Y1. */
    UYVY(4),
    /** One plane of R, G, B, A bytes (GPU read-backs); alpha is ignored. */
    RGBA(5),
    /** One plane of B, G, R, A bytes; alpha is ignored. */
    BGRA(6);

    final int value;

    PixelFormat(int value) {
        this.value = value;
    }
}
