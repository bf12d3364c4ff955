package dev.kitepush;

import java.nio.ByteBuffer;

/**
 * The native methods: each is one C ABI call (see include/kitepush.h) and returns its kp_result,
 * or {@link #OUT_OF_BOUNDS} when an offset or length lies outside the Java array or buffer.
 * Implemented in Rust (src/android/, cargo feature {@code jni}) inside libkitepush.
 */
final class Native {
    static final int OUT_OF_BOUNDS = -1;

    static {
        System.loadLibrary("kitepush");
    }

    private Native() {}

    /** Throws for a non-zero result; must run on the thread that made the failing call. */
    static void check(int result) {
        if (result == 0) {
            return;
        }
        if (result == OUT_OF_BOUNDS) {
            throw new IndexOutOfBoundsException("offset or length outside the array or buffer");
        }
        throw new KitePushException(result, resultStr(result), lastErrorMessage());
    }

    static native String version();
    static native String resultStr(int code);
    static native String lastErrorMessage();
    /** Global references the glue holds now (listeners and their event classes): for tests. */
    static native long liveGlobalRefs();

    static native long configNew();
    static native void configFree(long cfg);
    static native int configSetUrl(long cfg, String url);
    static native int configAddBackupUrl(long cfg, String url);
    static native int configAddDestination(long cfg, String url);
    static native int configAddDestinationBackupUrl(long cfg, int destination, String url);
    static native int configSetVideo(long cfg, int width, int height, double fps, int bitrateKbps, int keyframeInterval);
    static native int configSetVideoEncoder(long cfg, int encoder);
    static native int configSetVideoThreads(long cfg, int threads);
    static native int configDisableVideo(long cfg);
    static native int configSetAudio(long cfg, int sampleRate, int channels, int bitrateKbps);
    static native int configSetAudioEncoder(long cfg, int encoder);
    static native int configDisableAudio(long cfg);
    static native int configSetTimeouts(long cfg, int connectMs, int stallMs);
    static native int configSetReconnect(
            long cfg, int firstDelayMs, double multiplier, int maxDelayMs, int maxAttempts, int failoverAfter);
    static native int configSetPrimaryRetryInterval(long cfg, int intervalMs);

    static native int configSetRefusedRetry(long cfg, boolean enabled, int intervalMs, int windowMs);
    static native int configSetPauseFps(long cfg, double fps);
    static native int configSetVideoScaling(long cfg, int mode);
    static native int configSetLatencyBudget(long cfg, int budgetMs);
    static native int configSetAbr(long cfg, boolean enabled, int minKbps, int maxKbps, boolean allowFpsReduction);

    static native int configSetEncodeLadder(long cfg, boolean enabled, int lowestHeight, float lowestFps);

    static native int configAddEncodeRung(long cfg, int width, int height, float fps, int complexity);
    static native int configSetAlertThresholds(long cfg, float netBusyCongestion, int netBusyMs, float lowFpsRatio,
            int lowFpsMs, int encoderOverloadMs);

    static native int configSetX264Preset(long cfg, String preset, String tune, String profile);

    static native int configSetSrt(long cfg, int latencyMs, String passphrase, int pbkeylen);

    static native int configSetMessageUuid(long cfg, byte[] uuid);

    static native int configSetMessageAmfName(long cfg, String name);

    static native int configSetCaptureTimestamps(long cfg, int mode);

    static native int pusherSendMessage(long handle, byte[] data, int offset, int length, int flags);

    static native int configSetSrtStreamId(long cfg, int preset, String resource);

    static native int configSetWhipBearerToken(long cfg, String token);
    static native int configSetX264Vbv(long cfg, int maxrateKbps, int bufsizeKbit);
    static native int configSetX264Threading(long cfg, int threading);
    static native int configSetX264Bframes(long cfg, int bframes);
    static native int configAddCaPem(long cfg, byte[] pem);
    static native int configSetTlsPlatformRoots(long cfg, boolean enable);
    static native int configSetTlsDangerAcceptInvalidCerts(long cfg, boolean accept);
    /** {@code statsIntervalMs} &lt; 0: no stats callback; else kp_config_set_stats_callback's interval. */
    static native int pusherNew(long cfg, LivePusher.Listener listener, int statsIntervalMs, long[] out);
    static native void pusherFree(long handle);
    static native int pusherStart(long handle);
    static native int pusherStop(long handle, int timeoutMs);
    static native int pusherGetState(long handle);
    static native int pusherGetStats(long handle, long[] out);
    static native int pusherGetDestinationStats(long handle, int destination, long[] out);
    static native int pusherPause(long handle, int mode);
    static native int pusherResume(long handle);
    static native int pusherSetVideoBitrate(long handle, int kbps);
    static native int pusherRequestKeyframe(long handle);

    static native int pusherNetworkChanged(long handle);
    static native int pusherSetAudioMuted(long handle, boolean muted);
    static native int pusherStartRecording(long handle, String path);
    static native int pusherStopRecording(long handle);

    static native int pushH264Array(long handle, byte[] data, int offset, int length, long ptsUs, long dtsUs);
    static native int pushH264Buffer(long handle, ByteBuffer data, int position, int length, long ptsUs, long dtsUs);
    static native int pushHevcArray(long handle, byte[] data, int offset, int length, long ptsUs, long dtsUs);
    static native int pushHevcBuffer(long handle, ByteBuffer data, int position, int length, long ptsUs, long dtsUs);
    static native int pushAacArray(long handle, byte[] data, int offset, int length, long ptsUs);
    static native int pushAacBuffer(long handle, ByteBuffer data, int position, int length, long ptsUs);
    /** out: slot, width, height, Y stride, U/V stride; planes: Y, U, V as direct buffers. */
    static native int acquireVideoSlot(long handle, long[] out, ByteBuffer[] planes);
    static native int submitVideoSlot(long handle, long slot, long ptsUs);
    static native void freeVideoSlot(long slot);
    static native int pushOpusArray(long handle, byte[] data, int offset, int length, long ptsUs);
    static native int pushOpusBuffer(long handle, ByteBuffer data, int position, int length, long ptsUs);
    static native int pushAudioArray(long handle, short[] samples, int framesPerChannel, long ptsUs);
    static native int pushAudioBuffer(long handle, ByteBuffer pcm, int position, int length, int framesPerChannel, long ptsUs);
    static native int pushVideoArray(long handle, int format, int width, int height, byte[] data, int planes,
            int offset0, int stride0, int offset1, int stride1, int offset2, int stride2, long ptsUs);
    static native int pushVideoBuffers(long handle, int format, int width, int height,
            ByteBuffer plane0, int position0, int length0, int stride0,
            ByteBuffer plane1, int position1, int length1, int stride1,
            ByteBuffer plane2, int position2, int length2, int stride2, long ptsUs);
    static native int setPauseImageArray(long handle, int format, int width, int height, byte[] data, int planes,
            int offset0, int stride0, int offset1, int stride1, int offset2, int stride2);
    static native int setPauseImageBuffers(long handle, int format, int width, int height,
            ByteBuffer plane0, int position0, int length0, int stride0,
            ByteBuffer plane1, int position1, int length1, int stride1,
            ByteBuffer plane2, int position2, int length2, int stride2);
}
