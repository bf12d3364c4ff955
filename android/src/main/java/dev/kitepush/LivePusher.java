package dev.kitepush;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A live-stream publisher: the Java face of the C ABI's {@code kp_pusher} (include/kitepush.h),
 * call for call. Raw frames and PCM (encoded by the SDK) or H.264/AAC from MediaCodec go in;
 * FLV over RTMP goes out, reconnecting by itself.
 *
 * <p>Threads: every method may be called from any thread, also concurrently (a camera thread
 * pushing video, an audio thread pushing PCM, the UI reading stats). Pushes copy their input and
 * return at once. {@link #stop} blocks up to its timeout; {@link #close} blocks until in-flight
 * calls on this pusher have returned and the SDK's threads have exited — a close from another
 * thread never frees the native pusher under a running call. After close every call throws
 * {@link KitePushException} with {@link ResultCode#INVALID_ARGUMENT} (the C ABI's answer to a NULL
 * pusher). The listener runs on one SDK thread per pusher; it must not call {@link #stop} (it
 * would wait for itself: INVALID_STATE) or {@link #close}.
 *
 * <p>Errors: a non-zero kp_result throws {@link KitePushException} carrying it; an offset or
 * length outside a Java array or buffer throws {@link IndexOutOfBoundsException}; a negative
 * value where the C ABI takes an unsigned one, or a heap buffer where a direct one is needed,
 * throws {@link IllegalArgumentException}. A refused frame leaves the stream running.
 */
public final class LivePusher implements AutoCloseable {
    /** Receives the pusher's events on the SDK's callback thread, one at a time. */
    public interface Listener {
        /** One event; see {@link EventKind}. Exceptions thrown here are printed and dropped. */
        void onEvent(Event event);

        /**
         * Periodic statistics (kp_config_set_stats_callback), when the config asked for them with
         * {@link LivePusherConfig.Builder#statsInterval}: on the same SDK thread as the events,
         * never at the same time as one. Exceptions thrown here are printed and dropped.
         */
        default void onStats(Stats stats) {}
    }

    /** One event (kp_event): fields as the C ABI documents them for each {@link EventKind}. */
    public static final class Event {
        /** {@link EventKind} value; unknown kinds may come from newer SDKs. */
        public final int kind;
        /** {@link ResultCode}: why, for DISCONNECTED, RECONNECTING and FAILED; OK otherwise. */
        public final int code;
        /** Human-readable detail, never containing the stream key. */
        public final String message;
        /** Milliseconds since the pusher was created. */
        public final long timestampMs;
        /** 0 for the main URL's destination, 1, 2, ... for added ones. */
        public final int destination;
        public final long value;
        public final long value2;
        /** RECONNECTED: ms of the outage's media kept (sent after the resume) and lost. */
        public final long value3;
        public final long value4;

        Event(int kind, int code, String message, long timestampMs, int destination, long value, long value2,
                long value3, long value4) {
            this.kind = kind;
            this.code = code;
            this.message = message;
            this.timestampMs = timestampMs;
            this.destination = destination;
            this.value = value;
            this.value2 = value2;
            this.value3 = value3;
            this.value4 = value4;
        }

        @Override
        public String toString() {
            return EventKind.name(kind) + "(code=" + ResultCode.name(code) + ", dest=" + destination + ", value="
 + value + ", value2=" + value2 + ", value3=" + value3 + ", value4=" + value4 + ", t=" + timestampMs + "ms, " + message + ")";
        }
    }

    /** A snapshot of the counters (kp_stats), field for field. */
    public static final class Stats {
        /** {@link State} value at the time of the snapshot. */
        public final int state;
        public final long videoFramesIn;
        public final long audioFramesIn;
        public final long videoFramesEncoded;
        public final long audioFramesEncoded;
        public final long videoFramesSent;
        public final long audioFramesSent;
        /** Raw frames dropped because the encoder fell behind. */
        public final long videoFramesDroppedEncoder;
        /** Encoded frames dropped because the send queue exceeded its budget. */
        public final long framesDroppedNetwork;
        /** Frames refused at input (bad arguments). */
        public final long framesRejected;
        public final long bytesSent;
        public final long queueBytes;
        public final long uptimeMs;
        public final int videoBitrateKbps;
        public final int audioBitrateKbps;
        public final int queueMs;
        public final long reconnects;
        public final int destinationCount;
        public final int urlIndex;
        /** Over the last second: raw frames pushed, frames encoded, frames sent (busiest destination), per second. */
        public final float inputFps;
        public final float encodedFps;
        public final float sentFps;
        /** 0..1, the most congested destination: its queue latency as a share of the latency budget. */
        public final float congestion;
        /** The video encoder's current target (adaptive bitrate) and the audio's, kbit/s. */
        public final int targetVideoKbps;
        public final int targetAudioKbps;
        /** What the kernel sent over the last second (all destinations), kbit/s. */
        public final int throughputKbps;
        /** Destination 0's RTMP ping round trip in ms; 0 until the server answers a ping. */
        public final int rttMs;
        public final long videoFramesDroppedCongestion;
        public final long audioFramesDroppedCongestion;
        /** Times audio had to be dropped (each a gap in the sound). */
        public final long audioGaps;
        /** Raw frames skipped by the adaptive bitrate's frame-rate step-down. */
        public final long videoFramesSkippedAbr;
        /** CPU time of the SDK's own threads since start, ms. */
        public final long cpuTimeMs;
        /** Mean time to encode a video frame over the last second, ms. */
        public final float encodeMs;
        /** The adaptive bitrate's frame-rate divisor: 1 = every frame, 2 = every other frame. */
        public final int fpsDivisor;
        /** Video frames whose time was moved 1 ms past the previous frame's (pushed less than 1 ms apart). */
        public final long videoTimestampsAdjusted;
        /** Frames lost to outages, over the destinations (see {@link DestinationStats}). */
        public final long videoFramesLostOutage;
        public final long audioFramesLostOutage;
        /** Messages accepted by sendMessage; handed to the connections; given up (all destinations). */
        public final long messagesAccepted;
        public final long messagesSent;
        public final long messagesDropped;
        /**
         * The encode ladder: the rung in use (0 = as configured; 0 without a ladder), the size and
         * frame rate video is encoded at now, and raw frames its lower rates skipped on purpose.
         */
        public final int encodeRung;
        public final int encodeWidth;
        public final int encodeHeight;
        public final float encodeFps;
        public final long videoFramesSkippedLadder;

        static final int FIELDS = 45;

        Stats(long[] v) {
            state = (int) v[0];
            videoFramesIn = v[1];
            audioFramesIn = v[2];
            videoFramesEncoded = v[3];
            audioFramesEncoded = v[4];
            videoFramesSent = v[5];
            audioFramesSent = v[6];
            videoFramesDroppedEncoder = v[7];
            framesDroppedNetwork = v[8];
            framesRejected = v[9];
            bytesSent = v[10];
            queueBytes = v[11];
            uptimeMs = v[12];
            videoBitrateKbps = (int) v[13];
            audioBitrateKbps = (int) v[14];
            queueMs = (int) v[15];
            reconnects = v[16];
            destinationCount = (int) v[17];
            urlIndex = (int) v[18];
            inputFps = Float.intBitsToFloat((int) v[19]);
            encodedFps = Float.intBitsToFloat((int) v[20]);
            sentFps = Float.intBitsToFloat((int) v[21]);
            congestion = Float.intBitsToFloat((int) v[22]);
            targetVideoKbps = (int) v[23];
            targetAudioKbps = (int) v[24];
            throughputKbps = (int) v[25];
            rttMs = (int) v[26];
            videoFramesDroppedCongestion = v[27];
            audioFramesDroppedCongestion = v[28];
            audioGaps = v[29];
            videoFramesSkippedAbr = v[30];
            cpuTimeMs = v[31];
            encodeMs = Float.intBitsToFloat((int) v[32]);
            fpsDivisor = (int) v[33];
            videoTimestampsAdjusted = v[34];
            videoFramesLostOutage = v[35];
            audioFramesLostOutage = v[36];
            messagesAccepted = v[37];
            messagesSent = v[38];
            messagesDropped = v[39];
            encodeRung = (int) v[40];
            encodeWidth = (int) v[41];
            encodeHeight = (int) v[42];
            encodeFps = Float.intBitsToFloat((int) v[43]);
            videoFramesSkippedLadder = v[44];
        }

        @Override
        public String toString() {
            return "Stats(state=" + state + ", in=" + videoFramesIn + "/" + audioFramesIn + ", sent=" + videoFramesSent + "/"
                    + audioFramesSent + ", bytes=" + bytesSent + ", queueMs=" + queueMs + ", congestion=" + congestion
                    + ", targetVideoKbps=" + targetVideoKbps + ", uptimeMs=" + uptimeMs + ")";
        }
    }

    /** One destination's counters (kp_destination_stats), field for field. */
    public static final class DestinationStats {
        public final int state;
        public final int urlIndex;
        public final int videoBitrateKbps;
        public final int audioBitrateKbps;
        public final int queueMs;
        public final long videoFramesSent;
        public final long audioFramesSent;
        public final long bytesSent;
        public final long framesDroppedNetwork;
        public final long queueBytes;
        public final long reconnects;
        public final long outageMsTotal;
        /** What the kernel sent for this destination over the last second, kbit/s. */
        public final int throughputKbps;
        /** RTMP ping round trip in ms; 0 until the server answers a ping. */
        public final int rttMs;
        /** This destination's adaptive-bitrate target for the video, kbit/s. */
        public final int targetVideoKbps;
        /** 0..1: this destination's queue latency as a share of the latency budget. */
        public final float congestion;
        public final long videoFramesDroppedCongestion;
        public final long audioFramesDroppedCongestion;
        public final long audioGaps;
        /** SRT and WHIP (0 on RTMP): packets sent again after the receiver reported them lost (WebRTC: video only). */
        public final long packetsRetransmitted;
        /** SRT and WHIP: packets the receiver reported lost, repaired ones included (SRT NAKs, WebRTC receiver reports). */
        public final long packetsLost;
        /** SRT: packets given up because they were too late to play (dropped unacknowledged, or lost past the receiver's play time). */
        public final long packetsDroppedLate;
        /** SRT: age of the oldest unacknowledged packet in the send buffer, ms. */
        public final int sendBufferMs;
        /** SRT: the receive latency agreed with the listener, ms. */
        public final int latencyMs;
        /**
         * Frames lost to outages (from a lost connection to the next publish: in flight, before the
         * keyframe the next session starts on, or past the latency budget); framesDroppedNetwork
         * counts these and the congestion drops together.
         */
        public final long videoFramesLostOutage;
        public final long audioFramesLostOutage;
        /** Over all outages: ms of their media kept and sent after the resume, and ms lost. */
        public final long outageMediaKeptMs;
        public final long outageMediaLostMs;
        /** How long the last resume took to bring queueMs under 300 ms; 0 before the first one. */
        public final int lastCatchUpMs;
        /** The backlog of the last outage is still draining. */
        public final boolean catchingUp;

        /** Messages handed to this destination's connection, and given up (see kp_destination_stats). */
        public final long messagesSent;
        public final long messagesDropped;

        /** WHIP: WebRTC's bandwidth estimate now, kbit/s (0: none); the ABR keeps the video under 90 % of it. */
        public final int bandwidthEstimateKbps;
        /** WHIP: keyframes the receiver asked for (PLI/FIR) and was given. */
        public final int keyframeRequests;

        static final int FIELDS = 34;

        DestinationStats(long[] v) {
            state = (int) v[0];
            urlIndex = (int) v[1];
            videoBitrateKbps = (int) v[2];
            audioBitrateKbps = (int) v[3];
            queueMs = (int) v[4];
            videoFramesSent = v[5];
            audioFramesSent = v[6];
            bytesSent = v[7];
            framesDroppedNetwork = v[8];
            queueBytes = v[9];
            reconnects = v[10];
            outageMsTotal = v[11];
            throughputKbps = (int) v[12];
            rttMs = (int) v[13];
            targetVideoKbps = (int) v[14];
            congestion = Float.intBitsToFloat((int) v[15]);
            videoFramesDroppedCongestion = v[16];
            audioFramesDroppedCongestion = v[17];
            audioGaps = v[18];
            packetsRetransmitted = v[19];
            packetsLost = v[20];
            packetsDroppedLate = v[21];
            sendBufferMs = (int) v[22];
            latencyMs = (int) v[23];
            videoFramesLostOutage = v[24];
            audioFramesLostOutage = v[25];
            outageMediaKeptMs = v[26];
            outageMediaLostMs = v[27];
            lastCatchUpMs = (int) v[28];
            catchingUp = v[29] != 0;
            messagesSent = v[30];
            messagesDropped = v[31];
            bandwidthEstimateKbps = (int) v[32];
            keyframeRequests = (int) v[33];
        }
    }

    // The handle guard: a call counts itself in while it uses the native handle; close() stops new
    // calls (they get 0, which the C ABI answers with INVALID_ARGUMENT), waits for those in flight
    // and only then frees. New calls never wait: a listener calling in while another thread closes
    // and a third is in stop() (which waits for the listener) cannot deadlock.
    private final Object guard = new Object();
    private long handle;
    private int inFlight;
    private boolean closing;

    private LivePusher(long handle) {
        this.handle = handle;
    }

    /** The library version, "MAJOR.MINOR.PATCH" (kp_version). */
    public static String version() {
        return Native.version();
    }

    /**
     * kp_pusher_new: a pusher from the config, with {@code listener} (may be null) receiving its
     * events until {@link #close} returns. Nothing connects before {@link #start}. Throws
     * {@link KitePushException} for what kp_config_* or kp_pusher_new refuse.
     */
    public static LivePusher create(LivePusherConfig config, Listener listener) {
        long cfg = Native.configNew();
        if (cfg == 0) {
            throw new OutOfMemoryError("kp_config_new");
        }
        try {
            for (LivePusherConfig.Op op : config.ops) {
                Native.check(op.apply(cfg));
            }
            long[] out = new long[1];
            Native.check(Native.pusherNew(cfg, listener, config.statsIntervalMs, out));
            return new LivePusher(out[0]);
        } finally {
            Native.configFree(cfg);
        }
    }

    private long acquire() {
        synchronized (guard) {
            if (closing) {
                return 0;
            }
            inFlight++;
            return handle;
        }
    }

    /** Ends a call; {@code h} is what {@link #acquire()} gave (0: it was not counted in). */
    private void release(long h) {
        if (h == 0) {
            return;
        }
        synchronized (guard) {
            if (--inFlight == 0) {
                guard.notifyAll();
            }
        }
    }

    /** kp_pusher_start: starts connecting; returns at once. */
    public void start() {
        long h = acquire();
        try {
            Native.check(Native.pusherStart(h));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_stop: sends what is queued for up to {@code timeoutMs}, unpublishes, closes; the
     * STOPPED event follows. Blocks. Throws TIMEOUT when media was left unsent.
     */
    public void stop(int timeoutMs) {
        if (timeoutMs < 0) {
            throw new IllegalArgumentException("timeoutMs must not be negative: " + timeoutMs);
        }
        long h = acquire();
        try {
            Native.check(Native.pusherStop(h, timeoutMs));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_get_state: a {@link State} value (FAILED after close). */
    public int getState() {
        long h = acquire();
        try {
            return Native.pusherGetState(h);
        } finally {
            release(h);
        }
    }

    /** kp_pusher_get_stats. */
    public Stats getStats() {
        long[] v = new long[Stats.FIELDS];
        long h = acquire();
        try {
            Native.check(Native.pusherGetStats(h, v));
        } finally {
            release(h);
        }
        return new Stats(v);
    }

    /** kp_pusher_get_destination_stats: 0 is the main URL's destination. */
    public DestinationStats getDestinationStats(int destination) {
        if (destination < 0) {
            throw new IllegalArgumentException("destination must not be negative: " + destination);
        }
        long[] v = new long[DestinationStats.FIELDS];
        long h = acquire();
        try {
            Native.check(Native.pusherGetDestinationStats(h, destination, v));
        } finally {
            release(h);
        }
        return new DestinationStats(v);
    }

    /**
     * kp_pusher_push_video with the planes inside one array (e.g. the legacy camera's NV21
     * preview: offsets {0, w*h}, strides {w, w}). {@code planeOffsets} and {@code strides} have one
     * entry per plane (3 for I420, 2 for NV12/NV21); each plane may read up to the array's end.
     * Read in place, copied by the SDK before it returns. {@code ptsUs} &lt; 0: stamped by the SDK.
     */
    public void pushVideo(PixelFormat format, int width, int height, byte[] data, int[] planeOffsets, int[] strides,
            long ptsUs) {
        int n = planeCount(planeOffsets, strides);
        int[] o = new int[3];
        int[] s = new int[3];
        for (int i = 0; i < n; i++) {
            o[i] = planeOffsets[i];
            s[i] = unsigned("stride", strides[i]);
        }
        long h = acquire();
        try {
            Native.check(Native.pushVideoArray(h, format.value, unsigned("width", width), unsigned("height", height),
                    data, n, o[0], s[0], o[1], s[1], o[2], s[2], ptsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_push_video with each plane a direct buffer (what {@code Image.getPlanes()} and
     * MediaCodec give), from its position to its limit, read in place. One buffer and one stride
     * per plane (3 for I420, 2 for NV12/NV21). Camera2's YUV_420_888 with a chroma pixel stride of
     * 2: plane 0, then plane 1's buffer as NV12 (or plane 2's as NV21), which may end one byte
     * before its last row.
     */
    public void pushVideo(PixelFormat format, int width, int height, ByteBuffer[] planes, int[] strides, long ptsUs) {
        int n = planeCount(planes, strides);
        ByteBuffer[] b = new ByteBuffer[3];
        int[] s = new int[3];
        for (int i = 0; i < n; i++) {
            b[i] = direct(planes[i]);
            s[i] = unsigned("stride", strides[i]);
        }
        long h = acquire();
        try {
            Native.check(Native.pushVideoBuffers(h, format.value, unsigned("width", width), unsigned("height", height),
                    b[0], pos(b[0]), len(b[0]), s[0], b[1], pos(b[1]), len(b[1]), s[1], b[2], pos(b[2]), len(b[2]), s[2],
                    ptsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_push_audio: {@code framesPerChannel} frames of interleaved 16-bit PCM with the
     * configured channel count, from the start of the array. With pre-encoded AAC (MediaCodec's,
     * {@link #pushAac}), the same AudioRecord PCM given here with the same timestamps becomes the
     * Opus of WebRTC (WHIP) destinations, which cannot take AAC.
     */
    public void pushAudio(short[] samples, int framesPerChannel, long ptsUs) {
        long h = acquire();
        try {
            Native.check(Native.pushAudioArray(h, samples, framesPerChannel, ptsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_push_audio from a direct buffer (AudioRecord.read into a direct buffer), 16-bit
     * PCM in native byte order from the buffer's position.
     */
    public void pushAudio(ByteBuffer pcm, int framesPerChannel, long ptsUs) {
        if (pcm != null && pcm.order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("PCM buffers must be in native byte order");
        }
        ByteBuffer b = direct(pcm);
        long h = acquire();
        try {
            Native.check(Native.pushAudioBuffer(h, b, pos(b), len(b), framesPerChannel, ptsUs));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_push_h264: one Annex-B access unit (SPS/PPS before the first IDR). */
    public void pushH264(byte[] accessUnit, long ptsUs, long dtsUs) {
        pushH264(accessUnit, 0, accessUnit == null ? 0 : accessUnit.length, ptsUs, dtsUs);
    }

    /** kp_pusher_push_h264 of {@code length} bytes from {@code offset}. */
    public void pushH264(byte[] data, int offset, int length, long ptsUs, long dtsUs) {
        long h = acquire();
        try {
            Native.check(Native.pushH264Array(h, data, offset, length, ptsUs, dtsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_push_h264 of a buffer's position..limit: MediaCodec's output buffer after
     * {@code position(info.offset).limit(info.offset + info.size)}, the codec-config buffer
     * included (it takes no frame time). Direct buffers are read in place; an array-backed buffer
     * through its array.
     */
    public void pushH264(ByteBuffer accessUnit, long ptsUs, long dtsUs) {
        if (accessUnit != null && !accessUnit.isDirect()) {
            byte[] a = backingArray(accessUnit);
            pushH264(a, accessUnit.arrayOffset() + accessUnit.position(), accessUnit.remaining(), ptsUs, dtsUs);
            return;
        }
        long h = acquire();
        try {
            Native.check(Native.pushH264Buffer(h, accessUnit, pos(accessUnit), len(accessUnit), ptsUs, dtsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_push_hevc: one Annex-B H.265 access unit (VPS/SPS/PPS before the first random-access
     * picture), for a {@link VideoEncoder#PASSTHROUGH_HEVC} config; sent over Enhanced RTMP.
     */
    public void pushHevc(byte[] accessUnit, long ptsUs, long dtsUs) {
        pushHevc(accessUnit, 0, accessUnit == null ? 0 : accessUnit.length, ptsUs, dtsUs);
    }

    /** kp_pusher_push_hevc of {@code length} bytes from {@code offset}. */
    public void pushHevc(byte[] data, int offset, int length, long ptsUs, long dtsUs) {
        long h = acquire();
        try {
            Native.check(Native.pushHevcArray(h, data, offset, length, ptsUs, dtsUs));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_push_hevc of a buffer's position..limit (direct: in place; array-backed: its array). */
    public void pushHevc(ByteBuffer accessUnit, long ptsUs, long dtsUs) {
        if (accessUnit != null && !accessUnit.isDirect()) {
            byte[] a = backingArray(accessUnit);
            pushHevc(a, accessUnit.arrayOffset() + accessUnit.position(), accessUnit.remaining(), ptsUs, dtsUs);
            return;
        }
        long h = acquire();
        try {
            Native.check(Native.pushHevcBuffer(h, accessUnit, pos(accessUnit), len(accessUnit), ptsUs, dtsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_pause: background mode; the connection stays up. While paused pushVideo/pushH264
     * throw {@link ResultCode#PAUSED}; a PAUSED event follows. Calling it again switches the mode.
     */
    public void pause(PauseMode mode) {
        int m = mode.value;
        long h = acquire();
        try {
            Native.check(Native.pusherPause(h, m));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_resume: frames are taken again, the video restarts with an IDR; a RESUMED event follows. */
    public void resume() {
        long h = acquire();
        try {
            Native.check(Native.pusherResume(h));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_set_pause_image: the picture the still-image pause modes repeat, in the configured
     * size, with the planes inside one array as in {@link #pushVideo(PixelFormat, int, int, byte[], int[], int[], long)}.
     * Copied before it returns. Allowed before start.
     */
    public void setPauseImage(PixelFormat format, int width, int height, byte[] data, int[] planeOffsets, int[] strides) {
        int n = planeCount(planeOffsets, strides);
        int[] o = new int[3];
        int[] s = new int[3];
        for (int i = 0; i < n; i++) {
            o[i] = planeOffsets[i];
            s[i] = unsigned("stride", strides[i]);
        }
        long h = acquire();
        try {
            Native.check(Native.setPauseImageArray(h, format.value, unsigned("width", width), unsigned("height", height),
                    data, n, o[0], s[0], o[1], s[1], o[2], s[2]));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_set_pause_image with each plane a direct buffer, as in {@link #pushVideo(PixelFormat, int, int, ByteBuffer[], int[], long)}. */
    public void setPauseImage(PixelFormat format, int width, int height, ByteBuffer[] planes, int[] strides) {
        int n = planeCount(planes, strides);
        ByteBuffer[] b = new ByteBuffer[3];
        int[] s = new int[3];
        for (int i = 0; i < n; i++) {
            b[i] = direct(planes[i]);
            s[i] = unsigned("stride", strides[i]);
        }
        long h = acquire();
        try {
            Native.check(Native.setPauseImageBuffers(h, format.value, unsigned("width", width), unsigned("height", height),
                    b[0], pos(b[0]), len(b[0]), s[0], b[1], pos(b[1]), len(b[1]), s[1], b[2], pos(b[2]), len(b[2]), s[2]));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_set_video_bitrate: the video encoder's target in kbit/s (1..200000), from the next frame. */
    public void setVideoBitrate(int kbps) {
        int k = unsigned("kbps", kbps);
        long h = acquire();
        try {
            Native.check(Native.pusherSetVideoBitrate(h, k));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_network_changed: call it from a ConnectivityManager.NetworkCallback when the default
     * network changes (Wi-Fi to cellular or back): every destination reconnects at once on the new
     * route instead of waiting for the stall timeout.
     */
    public void networkChanged() {
        long h = acquire();
        try {
            Native.check(Native.pusherNetworkChanged(h));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_send_message flag: also an AMF0 data message (onTextData) on RTMP and in recordings. */
    public static final int MESSAGE_AMF = 1;

    /**
     * kp_pusher_send_message: a timed message (1 to 4096 bytes, copied) that rides with the next
     * video frame pushed as an SEI user_data_unregistered NAL unit, on every transport and in the
     * recording. At most 16 wait for a frame ({@link ResultCode#QUEUE_FULL} past that).
     */
    public void sendMessage(byte[] message) {
        sendMessage(message, 0);
    }

    /** kp_pusher_send_message with flags ({@link #MESSAGE_AMF}: also an onTextData data message; UTF-8 text only). */
    public void sendMessage(byte[] message, int flags) {
        long h = acquire();
        try {
            Native.check(Native.pusherSendMessage(h, message, 0, message == null ? 0 : message.length, flags));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_request_keyframe: the next encoded frame is an IDR (pre-encoded: a KEYFRAME_NEEDED event). */
    public void requestKeyframe() {
        long h = acquire();
        try {
            Native.check(Native.pusherRequestKeyframe(h));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_set_audio_muted: muted audio is sent as silence with the pushed samples' timing. */
    public void setAudioMuted(boolean muted) {
        long h = acquire();
        try {
            Native.check(Native.pusherSetAudioMuted(h, muted));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_start_recording: also writes the stream to a local FLV file from the next keyframe
     * (RECORDING_STARTED follows). Creates the file here: {@link ResultCode#FILE} when it cannot.
     */
    public void startRecording(String path) {
        long h = acquire();
        try {
            Native.check(Native.pusherStartRecording(h, path));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_stop_recording: writes what is queued and closes the file; blocks until it is written. */
    public void stopRecording() {
        long h = acquire();
        try {
            Native.check(Native.pusherStopRecording(h));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_push_aac: one raw AAC frame, or any number of ADTS frames. WHIP destinations take
     * Opus from the PCM given beside it ({@link #pushAudio(short[], int, long)}).
     */
    public void pushAac(byte[] data, long ptsUs) {
        pushAac(data, 0, data == null ? 0 : data.length, ptsUs);
    }

    /** kp_pusher_push_aac of {@code length} bytes from {@code offset}. */
    public void pushAac(byte[] data, int offset, int length, long ptsUs) {
        long h = acquire();
        try {
            Native.check(Native.pushAacArray(h, data, offset, length, ptsUs));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_push_aac of a buffer's position..limit (direct: in place; array-backed: its array). */
    public void pushAac(ByteBuffer data, long ptsUs) {
        if (data != null && !data.isDirect()) {
            pushAac(backingArray(data), data.arrayOffset() + data.position(), data.remaining(), ptsUs);
            return;
        }
        long h = acquire();
        try {
            Native.check(Native.pushAacBuffer(h, data, pos(data), len(data), ptsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_acquire_video_slot: a picture of the configured size lent to write the next frame
     * into in place (see {@link VideoSlot}); give it back with {@link #submitVideoSlot} or
     * {@link VideoSlot#close}. At most 2 are out at once. QUEUE_FULL when the encoder is behind.
     */
    public VideoSlot acquireVideoSlot() {
        long h = acquire();
        try {
            long[] out = new long[5];
            ByteBuffer[] planes = new ByteBuffer[3];
            Native.check(Native.acquireVideoSlot(h, out, planes));
            return new VideoSlot(out[0], (int) out[1], (int) out[2], (int) out[3], (int) out[4], planes);
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_submit_video_slot: queues the frame written into {@code slot} for encoding, as
     * {@link #pushVideo} queues its copy. Takes the slot whatever the outcome; its buffers must not be
     * touched afterwards.
     *
     * @throws IllegalStateException if the slot was submitted or closed already
     */
    public void submitVideoSlot(VideoSlot slot, long ptsUs) {
        long s = slot.take();
        if (s == 0) {
            throw new IllegalStateException("the video slot was submitted or closed already");
        }
        long h = acquire();
        try {
            Native.check(Native.submitVideoSlot(h, s, ptsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_push_opus: one Opus packet (RFC 6716) for {@link AudioEncoder#PASSTHROUGH_OPUS};
     * WHIP destinations carry it as it is. RTMP and SRT take AAC from the PCM given beside it
     * ({@link #pushAudio(short[], int, long)}).
     */
    public void pushOpus(byte[] data, long ptsUs) {
        pushOpus(data, 0, data == null ? 0 : data.length, ptsUs);
    }

    /** kp_pusher_push_opus of {@code length} bytes from {@code offset}. */
    public void pushOpus(byte[] data, int offset, int length, long ptsUs) {
        long h = acquire();
        try {
            Native.check(Native.pushOpusArray(h, data, offset, length, ptsUs));
        } finally {
            release(h);
        }
    }

    /** kp_pusher_push_opus of a buffer's position..limit (direct: in place; array-backed: its array). */
    public void pushOpus(ByteBuffer data, long ptsUs) {
        if (data != null && !data.isDirect()) {
            pushOpus(backingArray(data), data.arrayOffset() + data.position(), data.remaining(), ptsUs);
            return;
        }
        long h = acquire();
        try {
            Native.check(Native.pushOpusBuffer(h, data, pos(data), len(data), ptsUs));
        } finally {
            release(h);
        }
    }

    /**
     * kp_pusher_free: stops at once if still running (call {@link #stop} first for a clean end)
     * and releases the pusher. Waits for calls in flight on other threads, then blocks until the
     * SDK's threads have exited: afterwards the listener is never called again. Idempotent.
     */
    @Override
    public void close() {
        long h;
        boolean interrupted = false;
        synchronized (guard) {
            if (closing) {
                return;
            }
            closing = true;
            while (inFlight > 0) {
                try {
                    guard.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            h = handle;
        }
        Native.pusherFree(h);
        synchronized (guard) {
            handle = 0;
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private static int unsigned(String what, int v) {
        if (v < 0) {
            throw new IllegalArgumentException(what + " must not be negative: " + v);
        }
        return v;
    }

    private static int planeCount(Object planes, int[] strides) {
        int n = planes instanceof int[] ? ((int[]) planes).length : planes == null ? -1 : ((Object[]) planes).length;
        if (n < 1 || n > 3 || strides == null || strides.length != n) {
            throw new IllegalArgumentException("one to three planes, with one stride each");
        }
        return n;
    }

    private static ByteBuffer direct(ByteBuffer b) {
        if (b != null && !b.isDirect()) {
            throw new IllegalArgumentException("a direct ByteBuffer is needed here");
        }
        return b;
    }

    private static byte[] backingArray(ByteBuffer b) {
        if (!b.hasArray()) {
            throw new IllegalArgumentException("a direct or writable array-backed ByteBuffer is needed");
        }
        return b.array();
    }

    private static int pos(ByteBuffer b) {
        return b == null ? 0 : b.position();
    }

    private static int len(ByteBuffer b) {
        return b == null ? 0 : b.remaining();
    }
}
