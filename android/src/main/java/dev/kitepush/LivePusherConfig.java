package dev.kitepush;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Pusher settings, made with {@link #builder(String)}. Each builder call is one {@code kp_config_*}
 * call of the C ABI, replayed in the same order onto a fresh native config when
 * {@link LivePusher#create} runs: defaults, checks and error codes are the C ABI's (see
 * include/kitepush.h). Immutable and reusable for any number of pushers.
 *
 * <p>The C ABI takes unsigned 32-bit values, which Java lacks: negative arguments are refused
 * at once with {@link IllegalArgumentException}; 0 keeps the SDK's default where the C ABI says so.
 */
public final class LivePusherConfig {
    interface Op {
        int apply(long cfg);
    }

    final List<Op> ops;
    /**
     * kp_config_set_stats_callback's interval, or -1 for none. Not an {@link Op}: the callback's
     * userdata is the listener's bridge, which only exists in {@link LivePusher#create}.
     */
    final int statsIntervalMs;

    private LivePusherConfig(List<Op> ops, int statsIntervalMs) {
        this.ops = Collections.unmodifiableList(new ArrayList<Op>(ops));
        this.statsIntervalMs = statsIntervalMs;
    }

    /** A builder with the ingest URL set ({@code rtmp[s]://host[:port]/app[/instance]/key[?query]}). */
    public static Builder builder(String url) {
        return new Builder().url(url);
    }

    /** A builder with nothing set: the C ABI's defaults (kp_config_new). */
    public static Builder builder() {
        return new Builder();
    }

    private static int unsigned(String what, int v) {
        if (v < 0) {
            throw new IllegalArgumentException(what + " must not be negative: " + v);
        }
        return v;
    }

    public static final class Builder {
        private final List<Op> ops = new ArrayList<Op>();
        private int statsIntervalMs = -1;

        private Builder() {}

        private Builder add(Op op) {
            ops.add(op);
            return this;
        }

        /** kp_config_set_url. A null or malformed URL makes create() fail (INVALID_ARGUMENT / INVALID_URL). */
        public Builder url(final String url) {
            return add(cfg -> Native.configSetUrl(cfg, url));
        }

        /** kp_config_add_backup_url: a backup of destination 0. */
        public Builder addBackupUrl(final String url) {
            return add(cfg -> Native.configAddBackupUrl(cfg, url));
        }

        /** kp_config_add_destination: another destination published at the same time (indexes 1, 2, ... in call order). */
        public Builder addDestination(final String url) {
            return add(cfg -> Native.configAddDestination(cfg, url));
        }

        /** kp_config_add_destination_backup_url. */
        public Builder addDestinationBackupUrl(int destination, final String url) {
            final int d = unsigned("destination", destination);
            return add(cfg -> Native.configAddDestinationBackupUrl(cfg, d, url));
        }

        /** kp_config_set_video: enables video; 0 (0.0 for fps) keeps a default. */
        public Builder video(int width, int height, final double fps, int bitrateKbps, int keyframeInterval) {
            final int w = unsigned("width", width);
            final int h = unsigned("height", height);
            final int b = unsigned("bitrateKbps", bitrateKbps);
            final int k = unsigned("keyframeInterval", keyframeInterval);
            return add(cfg -> Native.configSetVideo(cfg, w, h, fps, b, k));
        }

        /** kp_config_set_video_encoder: enables video. */
        public Builder videoEncoder(final VideoEncoder encoder) {
            final int v = encoder.value;
            return add(cfg -> Native.configSetVideoEncoder(cfg, v));
        }

        /** kp_config_set_video_threads: enables video; 0 lets the encoder choose. */
        public Builder videoThreads(int threads) {
            final int t = unsigned("threads", threads);
            return add(cfg -> Native.configSetVideoThreads(cfg, t));
        }

        /** kp_config_disable_video. */
        public Builder disableVideo() {
            return add(Native::configDisableVideo);
        }

        /** kp_config_set_audio: enables audio; 0 keeps a default (44100 Hz, 2 channels, 128 kbit/s). */
        public Builder audio(int sampleRate, int channels, int bitrateKbps) {
            final int r = unsigned("sampleRate", sampleRate);
            final int c = unsigned("channels", channels);
            final int b = unsigned("bitrateKbps", bitrateKbps);
            return add(cfg -> Native.configSetAudio(cfg, r, c, b));
        }

        /** kp_config_set_audio_encoder: enables audio. */
        public Builder audioEncoder(final AudioEncoder encoder) {
            final int v = encoder.value;
            return add(cfg -> Native.configSetAudioEncoder(cfg, v));
        }

        /** kp_config_disable_audio. */
        public Builder disableAudio() {
            return add(Native::configDisableAudio);
        }

        /** kp_config_set_timeouts, in milliseconds; 0 keeps a default. */
        public Builder timeouts(int connectMs, int stallMs) {
            final int c = unsigned("connectMs", connectMs);
            final int s = unsigned("stallMs", stallMs);
            return add(cfg -> Native.configSetTimeouts(cfg, c, s));
        }

        /** kp_config_set_reconnect; 0 (0.0 for multiplier) keeps a default. */
        public Builder reconnect(int firstDelayMs, final double multiplier, int maxDelayMs, int maxAttempts, int failoverAfter) {
            final int f = unsigned("firstDelayMs", firstDelayMs);
            final int m = unsigned("maxDelayMs", maxDelayMs);
            final int a = unsigned("maxAttempts", maxAttempts);
            final int o = unsigned("failoverAfter", failoverAfter);
            return add(cfg -> Native.configSetReconnect(cfg, f, multiplier, m, a, o));
        }

        /**
         * kp_config_set_refused_retry: while a server refuses at once, retry every intervalMs (0 = 250)
         * for the first windowMs (0 = 5000) of an outage instead of backing off.
         */
        public Builder refusedRetry(final boolean enabled, int intervalMs, int windowMs) {
            final int i = unsigned("intervalMs", intervalMs);
            final int w = unsigned("windowMs", windowMs);
            return add(cfg -> Native.configSetRefusedRetry(cfg, enabled, i, w));
        }

        /** kp_config_set_primary_retry_interval; 0 disables the return to the primary URL. */
        public Builder primaryRetryInterval(int intervalMs) {
            final int i = unsigned("intervalMs", intervalMs);
            return add(cfg -> Native.configSetPrimaryRetryInterval(cfg, i));
        }

        /**
         * kp_config_set_video_scaling: what a raw frame larger than the configured size becomes
         * (scaled down, by default; smaller frames are always refused). Enables video.
         */
        public Builder videoScaling(final VideoScaling mode) {
            if (mode == null) {
                throw new NullPointerException("mode");
            }
            return add(cfg -> Native.configSetVideoScaling(cfg, mode.value));
        }

        /** kp_config_set_pause_fps: the still picture's frame rate while paused; 0 keeps the default (5). */
        public Builder pauseFps(final double fps) {
            return add(cfg -> Native.configSetPauseFps(cfg, fps));
        }

        /** kp_config_set_latency_budget, in milliseconds; 0 keeps the default (2000). */
        public Builder latencyBudget(int budgetMs) {
            final int b = unsigned("budgetMs", budgetMs);
            return add(cfg -> Native.configSetLatencyBudget(cfg, b));
        }

        /** kp_config_set_abr: the adaptive bitrate (on by default); 0 keeps a default bound. */
        public Builder abr(final boolean enabled, int minKbps, int maxKbps, final boolean allowFpsReduction) {
            final int lo = unsigned("minKbps", minKbps);
            final int hi = unsigned("maxKbps", maxKbps);
            return add(cfg -> Native.configSetAbr(cfg, enabled, lo, hi, allowFpsReduction));
        }

        /**
         * kp_config_set_encode_ladder: off by default. On, a built-in encoder that cannot keep up
         * steps down (complexity, then frame rate, then size) instead of dropping frames, and
         * climbs back when the CPU has room; each change is an ENCODE_RUNG_CHANGED event. The
         * default rungs go down to lowestHeight (0 = 360) and lowestFps (0 = 15). Forgets the rungs
         * of {@link #addEncodeRung}.
         */
        public Builder encodeLadder(final boolean enabled, int lowestHeight, final float lowestFps) {
            final int h = unsigned("lowestHeight", lowestHeight);
            return add(cfg -> Native.configSetEncodeLadder(cfg, enabled, h, lowestFps));
        }

        /**
         * kp_config_add_encode_rung: one rung of the app's own ladder, below the configured video
         * (the first rung), each cheaper than the one before. Call {@link #encodeLadder} first.
         */
        public Builder addEncodeRung(int width, int height, final float fps, final EncodeComplexity complexity) {
            final int w = unsigned("width", width);
            final int h = unsigned("height", height);
            if (complexity == null) {
                throw new IllegalArgumentException("complexity is null");
            }
            return add(cfg -> Native.configAddEncodeRung(cfg, w, h, fps, complexity.value));
        }

        /** kp_config_set_alert_thresholds: when NET_BUSY, LOW_FPS and ENCODER_OVERLOADED fire; 0 keeps a default. */
        public Builder alertThresholds(final float netBusyCongestion, int netBusyMs, final float lowFpsRatio, int lowFpsMs,
                int encoderOverloadMs) {
            final int nb = unsigned("netBusyMs", netBusyMs);
            final int lf = unsigned("lowFpsMs", lowFpsMs);
            final int eo = unsigned("encoderOverloadMs", encoderOverloadMs);
            return add(cfg -> Native.configSetAlertThresholds(cfg, netBusyCongestion, nb, lowFpsRatio, lf, eo));
        }

        /**
         * kp_config_set_srt: settings of srt:// URLs that do not give their own. latencyMs 0 = 120
         * (the time lost packets have to be repaired in: about 4 x the round trip); passphrase null or
         * "" = unencrypted (10 to 79 characters); pbkeylen 16, 24 or 32 (0 = 16). create() checks them.
         */
        public Builder srt(int latencyMs, final String passphrase, int pbkeylen) {
            final int l = unsigned("latencyMs", latencyMs);
            final int k = unsigned("pbkeylen", pbkeylen);
            return add(cfg -> Native.configSetSrt(cfg, l, passphrase, k));
        }

        /**
         * kp_config_set_message_uuid: the 16-byte UUID of {@link LivePusher#sendMessage} SEIs; null
         * restores the default (the ASCII bytes of "kitepush-message").
         */
        public Builder messageUuid(byte[] uuid) {
            if (uuid != null && uuid.length != 16) {
                throw new IllegalArgumentException("a message UUID has 16 bytes, not " + uuid.length);
            }
            final byte[] u = uuid == null ? null : uuid.clone();
            return add(cfg -> Native.configSetMessageUuid(cfg, u));
        }

        /**
         * kp_config_set_message_amf_name: the AMF data message name of {@link LivePusher#MESSAGE_AMF}
         * messages; null or "" restores "onTextData".
         */
        public Builder messageAmfName(final String name) {
            return add(cfg -> Native.configSetMessageAmfName(cfg, name));
        }

        /**
         * kp_config_set_capture_timestamps: 0 off (default), 1 on every keyframe, 2 on every frame: an
         * SEI (UUID "kitepush-capture") with the capture wall-clock time in UTC microseconds and the
         * frame's stream pts in microseconds (both u64 big-endian). create() checks the value.
         */
        public Builder captureTimestamps(final int mode) {
            return add(cfg -> Native.configSetCaptureTimestamps(cfg, mode));
        }

        /**
         * kp_config_set_srt_stream_id: the stream id srt:// URLs without {@code streamid=} send, in the
         * form the server expects (SRS/ZLMediaKit {@code app/stream}, MediaMTX {@code path}, or raw);
         * null or "" clears it.
         */
        public Builder srtStreamId(final SrtStreamIdPreset preset, final String resource) {
            if (preset == null) {
                throw new NullPointerException("preset");
            }
            return add(cfg -> Native.configSetSrtStreamId(cfg, preset.value, resource));
        }

        /**
         * kp_config_set_whip_bearer_token: the token whip+http(s):// destinations send as
         * {@code Authorization: Bearer}; null or "" clears it. Never logged.
         */
        public Builder whipBearerToken(final String token) {
            return add(cfg -> Native.configSetWhipBearerToken(cfg, token));
        }

        /**
         * kp_config_set_x264_preset (x264 builds only, {@link VideoEncoder#X264}): null keeps a
         * default (veryfast, zerolatency, high); create() checks the names.
         */
        public Builder x264Preset(final String preset, final String tune, final String profile) {
            return add(cfg -> Native.configSetX264Preset(cfg, preset, tune, profile));
        }

        /** kp_config_set_x264_vbv; 0 keeps a default (maxrate = bitrate, one-second buffer). */
        public Builder x264Vbv(int maxrateKbps, int bufsizeKbit) {
            final int m = unsigned("maxrateKbps", maxrateKbps);
            final int b = unsigned("bufsizeKbit", bufsizeKbit);
            return add(cfg -> Native.configSetX264Vbv(cfg, m, b));
        }

        /** kp_config_set_x264_threading. */
        public Builder x264Threading(X264Threading threading) {
            final int t = threading.value;
            return add(cfg -> Native.configSetX264Threading(cfg, t));
        }

        /** kp_config_set_x264_bframes: 0..16 (create() checks). */
        public Builder x264Bframes(int bframes) {
            final int b = unsigned("bframes", bframes);
            return add(cfg -> Native.configSetX264Bframes(cfg, b));
        }

        /**
         * kp_config_add_ca_pem: trusts the CA certificates in this PEM text (one or more CERTIFICATE
         * blocks) for rtmps:// URLs, besides the bundled roots. Copied here; checked by create().
         */
        public Builder addCaPem(byte[] pem) {
            final byte[] copy = pem == null ? null : pem.clone();
            return add(cfg -> Native.configAddCaPem(cfg, copy));
        }

        /** kp_config_set_tls_platform_roots: also trust the system's roots (UNSUPPORTED without the native-roots feature). */
        public Builder tlsPlatformRoots(final boolean enable) {
            return add(cfg -> Native.configSetTlsPlatformRoots(cfg, enable));
        }

        /**
         * kp_config_set_tls_danger_accept_invalid_certs: DANGER, lab use only — any server
         * certificate is accepted, so anyone on the path can pose as the ingest and read the key.
         */
        public Builder tlsDangerAcceptInvalidCerts(final boolean accept) {
            return add(cfg -> Native.configSetTlsDangerAcceptInvalidCerts(cfg, accept));
        }

        /**
         * kp_config_set_stats_callback: {@link LivePusher.Listener#onStats} every {@code intervalMs}
         * (0 = every second; 1..99 makes create() fail with INVALID_ARGUMENT) on the listener's
         * thread. Without a listener only the interval is checked.
         */
        public Builder statsInterval(int intervalMs) {
            statsIntervalMs = unsigned("intervalMs", intervalMs);
            return this;
        }

        public LivePusherConfig build() {
            return new LivePusherConfig(ops, statsIntervalMs);
        }
    }
}
