package dev.kitepush;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.FileInputStream;
import java.io.IOException;
import java.lang.ref.WeakReference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * The Java API on the host JVM against the JNI library built for the host. Driven by
 * tests/android.rs, which starts the built-in receiver and nginx-rtmp, passes their URLs as
 * system properties, and checks with ffprobe what they recorded (frame counts asserted there).
 */
class LivePusherTest {
    static final int W = 320;
    static final int H = 240;
    static final int RATE = 44100;
    static final int CHANNELS = 2;
    static final long WAIT_MS = 30_000;

    static String prop(String name) {
        String v = System.getProperty(name);
        assertNotNull(v, "system property " + name + " is not set (run through tests/android.rs)");
        return v;
    }

    /** Records events and the threads they arrive on. */
    static class Recorder implements LivePusher.Listener {
        final List<LivePusher.Event> events = new CopyOnWriteArrayList<>();
        final Set<Thread> threads = Collections.synchronizedSet(new HashSet<>());

        @Override
        public void onEvent(LivePusher.Event event) {
            threads.add(Thread.currentThread());
            synchronized (this) {
                events.add(event);
                notifyAll();
            }
        }

        synchronized LivePusher.Event await(int kind, long timeoutMs) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            while (true) {
                for (LivePusher.Event e : events) {
                    if (e.kind == kind) {
                        return e;
                    }
                }
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                if (left <= 0) {
                    fail("no " + EventKind.name(kind) + " within " + timeoutMs + " ms; events: " + events);
                }
                wait(left);
            }
        }

        List<Integer> kinds() {
            List<Integer> k = new ArrayList<>();
            for (LivePusher.Event e : events) {
                k.add(e.kind);
            }
            return k;
        }
    }

    /** Also records the periodic stats and the threads they arrive on. */
    static class StatsRecorder extends Recorder {
        final List<LivePusher.Stats> stats = new CopyOnWriteArrayList<>();

        @Override
        public void onStats(LivePusher.Stats s) {
            threads.add(Thread.currentThread());
            stats.add(s);
        }
    }

    static int indexOf(Recorder r, int kind) {
        return r.kinds().indexOf(kind);
    }

    static final int[] I420_OFFSETS = {0, W * H, W * H + W * H / 4};
    static final int[] I420_STRIDES = {W, W / 2, W / 2};

    static LivePusherConfig rawConfig(String url) {
        return LivePusherConfig.builder(url).video(W, H, 30, 500, 30).audio(RATE, CHANNELS, 64).build();
    }

    /** A moving test picture, I420. */
    static byte[] i420(int frame) {
        byte[] f = new byte[W * H * 3 / 2];
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                f[y * W + x] = (byte) (x + y + frame * 4);
            }
        }
        for (int i = W * H; i < f.length; i++) {
            f[i] = (byte) (128 + (i + frame) % 32);
        }
        return f;
    }

    static short[] pcm(long firstFrame, int frames) {
        short[] s = new short[frames * CHANNELS];
        for (int i = 0; i < frames; i++) {
            short v = (short) (8000 * Math.sin(2 * Math.PI * 440 * (firstFrame + i) / RATE));
            for (int c = 0; c < CHANNELS; c++) {
                s[i * CHANNELS + c] = v;
            }
        }
        return s;
    }

    static long videoPts(int frame) {
        return frame * 1_000_000L / 30;
    }

    static long audioPts(long sampleFrames) {
        return sampleFrames * 1_000_000L / RATE;
    }

    /** Keeps pushes at the real-time rate, so the encoder never has to drop. */
    static void pace(long startNanos, long ptsUs) throws InterruptedException {
        long ahead = TimeUnit.MICROSECONDS.toNanos(ptsUs) - (System.nanoTime() - startNanos);
        if (ahead > 0) {
            TimeUnit.NANOSECONDS.sleep(ahead);
        }
    }

    /** A push that may be refused with QUEUE_FULL while the (shared, loaded) machine's encoder is behind. */
    interface Push {
        void run();
    }

    /**
     * Retries a push refused with QUEUE_FULL (the frame was not taken, its timestamp not used), as a
     * file source would; a camera would drop it instead. Keeps the recorded frame counts exact.
     */
    static void retrying(Push push) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MS);
        while (true) {
            try {
                push.run();
                return;
            } catch (KitePushException e) {
                if (e.getCode() != ResultCode.QUEUE_FULL || System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(2);
            }
        }
    }

    /** Frame {@code i} as an I420 array (pushVideo), the last 20 of 60 written in place into video slots. */
    static void pushFrame(LivePusher p, int i, byte[] picture, long pts) throws InterruptedException {
        if (i < 40) {
            retrying(() -> p.pushVideo(PixelFormat.I420, W, H, picture, new int[] {0, W * H, W * H + W * H / 4},
                    new int[] {W, W / 2, W / 2}, pts));
            return;
        }
        retrying(() -> {
            try (VideoSlot slot = p.acquireVideoSlot()) {
                assertEquals(W, slot.width);
                assertEquals(W / 2, slot.strideUV);
                assertEquals(W * H, slot.y.capacity());
                slot.y.put(picture, 0, W * H);
                slot.u.put(picture, W * H, W * H / 4);
                slot.v.put(picture, W * H + W * H / 4, W * H / 4);
                p.submitVideoSlot(slot, pts);
                assertThrows(IllegalStateException.class, () -> p.submitVideoSlot(slot, pts));
            }
        });
    }

    static void assertPublishSequence(Recorder r) {
        List<Integer> k = r.kinds();
        assertTrue(k.size() >= 4, "events: " + r.events);
        assertEquals(EventKind.CONNECTING, (int) k.get(0), "events: " + r.events);
        assertEquals(EventKind.CONNECTED, (int) k.get(1), "events: " + r.events);
        assertEquals(EventKind.PUBLISHING, (int) k.get(2), "events: " + r.events);
        assertEquals(EventKind.STOPPED, (int) k.get(k.size() - 1), "events: " + r.events);
        for (int kind : k.subList(3, k.size() - 1)) {
            assertEquals(EventKind.KEYFRAME_NEEDED, kind, "unexpected event in a clean publish: " + r.events);
        }
        long t = 0;
        for (LivePusher.Event e : r.events) {
            assertTrue(e.timestampMs >= t, "timestamps go back: " + r.events);
            t = e.timestampMs;
            assertEquals(0, e.destination);
        }
        // Attached once: every event of a pusher arrives on the same (daemon) Java thread.
        assertEquals(1, r.threads.size(), "callback threads: " + r.threads);
        Thread cb = r.threads.iterator().next();
        assertNotSame(Thread.currentThread(), cb);
        assertTrue(cb.isDaemon(), "the SDK callback thread must not keep the JVM alive");
    }

    @Test
    void rawFramesFromArraysAndSlotsAndPcmReachTheBuiltInReceiver() throws Exception {
        String url = prop("kp.receiver.url");
        String key = url.substring(url.lastIndexOf('/') + 1);
        Recorder r = new Recorder();
        try (LivePusher p = LivePusher.create(rawConfig(url), r)) {
            assertEquals(State.IDLE, p.getState());
            p.start();
            r.await(EventKind.PUBLISHING, WAIT_MS);
            assertFalse(r.events.get(0).message.contains(key), "the stream key leaked: " + r.events.get(0));
            long start = System.nanoTime();
            long audioFrames = 0;
            for (int i = 0; i < 60; i++) {
                pace(start, videoPts(i));
                pushFrame(p, i, i420(i), videoPts(i));
                while (audioPts(audioFrames) < videoPts(i + 1)) {
                    final short[] samples = pcm(audioFrames, 1024);
                    final long apts = audioPts(audioFrames);
                    retrying(() -> p.pushAudio(samples, 1024, apts));
                    audioFrames += 1024;
                }
            }
            LivePusher.Stats live = p.getStats();
            assertTrue(live.videoFramesIn >= 60, "in: " + live.videoFramesIn);
            p.stop(10_000);
            r.await(EventKind.STOPPED, WAIT_MS);
            LivePusher.Stats s = p.getStats();
            assertEquals(State.STOPPED, s.state);
            assertTrue(s.videoFramesIn >= 60, "in: " + s.videoFramesIn);
            assertTrue(s.audioFramesIn >= audioFrames / 1024, "audio in: " + s.audioFramesIn);
            assertEquals(60, s.videoFramesEncoded);
            assertEquals(60, s.videoFramesSent);
            assertTrue(s.audioFramesSent > 0);
            assertTrue(s.bytesSent > 10_000, "bytes sent: " + s.bytesSent);
            assertEquals(0, s.framesRejected);
            assertEquals(1, s.destinationCount);
            assertTrue(s.uptimeMs > 0);
            LivePusher.DestinationStats d = p.getDestinationStats(0);
            assertEquals(s.videoFramesSent, d.videoFramesSent);
            assertEquals(s.bytesSent, d.bytesSent);
            KitePushException e = assertThrows(KitePushException.class, () -> p.getDestinationStats(1));
            assertEquals(ResultCode.INVALID_ARGUMENT, e.getCode());
        }
        assertPublishSequence(r);
    }

    /** WHIP with a bearer token, to the aiortc endpoint tests/android.rs started (which counts what it decoded). */
    @Test
    void rawFramesReachAWhipEndpointWithItsBearerToken() throws Exception {
        String url = prop("kp.whip.url");
        Recorder r = new Recorder();
        LivePusherConfig cfg = LivePusherConfig.builder(url).video(W, H, 30, 500, 30).disableAudio().whipBearerToken(prop("kp.whip.token")).build();
        try (LivePusher p = LivePusher.create(cfg, r)) {
            p.start();
            r.await(EventKind.PUBLISHING, WAIT_MS);
            long start = System.nanoTime();
            for (int i = 0; i < 60; i++) {
                pace(start, videoPts(i));
                pushFrame(p, i, i420(i), videoPts(i));
            }
            p.stop(10_000);
            r.await(EventKind.STOPPED, WAIT_MS);
            LivePusher.Stats s = p.getStats();
            assertEquals(60, s.videoFramesSent);
        }
        assertPublishSequence(r);
    }

    @Test
    void nv12FromDirectBuffersReachesNginx() throws Exception {
        String url = prop("kp.nginx.url.direct");
        Recorder r = new Recorder();
        // Two planes as Camera2's YUV_420_888 hands them: separate direct buffers, Y with a padded
        // stride, the chroma plane (plane 1, pixel stride 2) one byte short of its last row.
        int yStride = W + 64;
        ByteBuffer y = ByteBuffer.allocateDirect(yStride * H);
        ByteBuffer uv = ByteBuffer.allocateDirect(W * H / 2);
        ByteBuffer audio = ByteBuffer.allocateDirect(1024 * CHANNELS * 2).order(ByteOrder.nativeOrder());
        try (LivePusher p = LivePusher.create(rawConfig(url), r)) {
            p.start();
            r.await(EventKind.PUBLISHING, WAIT_MS);
            long start = System.nanoTime();
            long audioFrames = 0;
            for (int i = 0; i < 90; i++) {
                pace(start, videoPts(i));
                byte[] src = i420(i);
                y.clear();
                for (int row = 0; row < H; row++) {
                    y.position(row * yStride);
                    y.put(src, row * W, W);
                }
                y.clear();
                uv.clear();
                uv.put(src, W * H, W * H / 2 - 1);
                uv.flip();
                final long pts = videoPts(i);
                retrying(() -> p.pushVideo(PixelFormat.NV12, W, H, new ByteBuffer[] {y, uv}, new int[] {yStride, W}, pts));
                while (audioPts(audioFrames) < videoPts(i + 1)) {
                    audio.clear();
                    audio.asShortBuffer().put(pcm(audioFrames, 1024));
                    final long apts = audioPts(audioFrames);
                    retrying(() -> p.pushAudio(audio, 1024, apts));
                    audioFrames += 1024;
                }
            }
            p.stop(10_000);
            LivePusher.Stats s = p.getStats();
            assertEquals(90, s.videoFramesSent);
            assertEquals(0, s.framesRejected);
        }
        assertPublishSequence(r);
    }

    static List<byte[]> readAccessUnits(String path) throws IOException {
        List<byte[]> aus = new ArrayList<>();
        try (DataInputStream in = new DataInputStream(new FileInputStream(path))) {
            while (true) {
                int n;
                try {
                    n = in.readInt();
                } catch (EOFException e) {
                    return aus;
                }
                byte[] au = new byte[n];
                in.readFully(au);
                aus.add(au);
            }
        }
    }

    static List<byte[]> adtsFrames(byte[] adts) {
        List<byte[]> frames = new ArrayList<>();
        int pos = 0;
        while (pos + 7 <= adts.length) {
            int len = ((adts[pos + 3] & 3) << 11) | ((adts[pos + 4] & 0xff) << 3) | ((adts[pos + 5] & 0xe0) >> 5);
            assertTrue(len >= 7 && pos + len <= adts.length, "bad ADTS frame at " + pos);
            byte[] f = new byte[len];
            System.arraycopy(adts, pos, f, 0, len);
            frames.add(f);
            pos += len;
        }
        return frames;
    }

    @Test
    void preEncodedH264AndAacFromArraysAndBuffersReachNginx() throws Exception {
        String url = prop("kp.nginx.url.encoded");
        String dir = prop("kp.media.dir");
        List<byte[]> aus = readAccessUnits(dir + "/aus.bin");
        List<byte[]> aac = adtsFrames(Files.readAllBytes(Paths.get(dir, "audio.aac")));
        assertEquals(90, aus.size());
        Recorder r = new Recorder();
        LivePusherConfig cfg = LivePusherConfig.builder(url)
                .video(W, H, 30, 0, 0)
                .videoEncoder(VideoEncoder.PASSTHROUGH)
                .audio(RATE, CHANNELS, 0)
                .audioEncoder(AudioEncoder.PASSTHROUGH)
                .build();
        try (LivePusher p = LivePusher.create(cfg, r)) {
            p.start();
            r.await(EventKind.PUBLISHING, WAIT_MS);
            long start = System.nanoTime();
            int a = 0;
            for (int i = 0; i < aus.size(); i++) {
                pace(start, videoPts(i));
                byte[] au = aus.get(i);
                switch (i % 3) {
                    case 0: // MediaCodec style: a direct buffer with position/limit around the unit
                        ByteBuffer d = ByteBuffer.allocateDirect(au.length + 16);
                        d.position(8);
                        d.put(au);
                        d.position(8).limit(8 + au.length);
                        final long pd = videoPts(i);
                        retrying(() -> p.pushH264(d, pd, pd));
                        break;
                    case 1: // an array slice
                        byte[] padded = new byte[au.length + 5];
                        System.arraycopy(au, 0, padded, 5, au.length);
                        final long pa = videoPts(i);
                        retrying(() -> p.pushH264(padded, 5, au.length, pa, pa));
                        break;
                    default: // a heap buffer
                        final long ph = videoPts(i);
                        retrying(() -> p.pushH264(ByteBuffer.wrap(au), ph, ph));
                }
                while (a < aac.size() && audioPts(a * 1024L) < videoPts(i + 1)) {
                    byte[] f = aac.get(a);
                    if (a % 2 == 0) {
                        ByteBuffer d = ByteBuffer.allocateDirect(f.length);
                        d.put(f).flip();
                        final long pd = audioPts(a * 1024L);
                        retrying(() -> p.pushAac(d, pd));
                    } else {
                        final long pa = audioPts(a * 1024L);
                        retrying(() -> p.pushAac(f, pa));
                    }
                    a++;
                }
            }
            p.stop(10_000);
            LivePusher.Stats s = p.getStats();
            assertEquals(90, s.videoFramesSent, "every access unit is sent");
            assertEquals(a, s.audioFramesSent);
            assertEquals(0, s.framesRejected);
        }
        assertPublishSequence(r);
    }

    static void assertCode(int code, org.junit.jupiter.api.function.Executable call) {
        KitePushException e = assertThrows(KitePushException.class, call);
        assertEquals(code, e.getCode(), e.getMessage());
        assertEquals(ResultCode.name(code), e.getCodeName());
        assertTrue(e.getMessage().startsWith(ResultCode.describe(code)), e.getMessage());
    }

    @Test
    void badArgumentsGiveTheDocumentedExceptions() throws Exception {
        assertTrue(LivePusher.version().matches("\\d+\\.\\d+\\.\\d+"), LivePusher.version());
        // Config checks happen in create(), as kp_pusher_new makes them.
        assertCode(ResultCode.INVALID_ARGUMENT, () -> LivePusher.create(LivePusherConfig.builder(null).build(), null));
        assertCode(ResultCode.INVALID_URL, () -> LivePusher.create(LivePusherConfig.builder("http://x/y").build(), null));
        assertCode(ResultCode.BAD_DIMENSIONS,
                () -> LivePusher.create(LivePusherConfig.builder("rtmp://127.0.0.1:1/live/k").video(321, 240, 30, 0, 0).build(), null));
        assertCode(ResultCode.INVALID_ARGUMENT,
                () -> LivePusher.create(LivePusherConfig.builder("rtmp://127.0.0.1:1/live/k").disableVideo().disableAudio().build(), null));
        assertCode(ResultCode.INVALID_ARGUMENT,
                () -> LivePusher.create(LivePusherConfig.builder("rtmp://127.0.0.1:1/live/k").reconnect(0, 20.0, 0, 0, 0).build(), null));
        KitePushException url = assertThrows(KitePushException.class,
                () -> LivePusher.create(LivePusherConfig.builder("rtmp://host/app/secret-key\u0000").build(), null));
        assertEquals(ResultCode.INVALID_ARGUMENT, url.getCode());
        assertThrows(IllegalArgumentException.class, () -> LivePusherConfig.builder("rtmp://h/a/k").video(-2, 240, 30, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> LivePusherConfig.builder("rtmp://h/a/k").timeouts(-1, 0));
        assertThrows(NullPointerException.class, () -> LivePusherConfig.builder("rtmp://h/a/k").videoEncoder(null));

        // Nothing listens on port 1: the pusher keeps reconnecting and accepts input meanwhile.
        Recorder r = new Recorder();
        LivePusher p = LivePusher.create(rawConfig("rtmp://127.0.0.1:1/live/bad-args"), r);
        byte[] frame = i420(0);
        int[] offsets = {0, W * H, W * H + W * H / 4};
        int[] strides = {W, W / 2, W / 2};
        assertCode(ResultCode.NOT_STARTED, () -> p.pushVideo(PixelFormat.I420, W, H, frame, offsets, strides, 0));
        // Whatever code kp_pusher_stop gives for a pusher never started, the wrapper passes it on.
        assertThrows(KitePushException.class, () -> p.stop(100));
        p.start();
        assertCode(ResultCode.INVALID_STATE, p::start);
        p.pushVideo(PixelFormat.I420, W, H, frame, offsets, strides, 0);
        assertCode(ResultCode.NON_MONOTONIC_TIMESTAMP, () -> p.pushVideo(PixelFormat.I420, W, H, frame, offsets, strides, 0));
        assertCode(ResultCode.BAD_DIMENSIONS, () -> p.pushVideo(PixelFormat.I420, W - 2, H, frame, offsets, strides, 40_000));
        assertCode(ResultCode.BAD_FRAME_SIZE,
                () -> p.pushVideo(PixelFormat.I420, W, H, new byte[W * H], new int[] {0, W * H - 10, W * H - 5}, strides, 40_000));
        // A null array is a frame without planes: the C ABI's answer is BAD_FRAME_SIZE.
        assertCode(ResultCode.BAD_FRAME_SIZE, () -> p.pushVideo(PixelFormat.I420, W, H, (byte[]) null, offsets, strides, 40_000));
        assertThrows(IndexOutOfBoundsException.class,
                () -> p.pushVideo(PixelFormat.I420, W, H, frame, new int[] {0, frame.length + 1, 0}, strides, 40_000));
        assertThrows(IllegalArgumentException.class, () -> p.pushVideo(PixelFormat.I420, W, H, frame, new int[] {0, 1}, strides, 40_000));
        assertThrows(IllegalArgumentException.class,
                () -> p.pushVideo(PixelFormat.NV12, W, H, new ByteBuffer[] {ByteBuffer.allocate(W * H), ByteBuffer.allocate(W * H / 2)},
                        new int[] {W, W}, 40_000));
        assertCode(ResultCode.BAD_FRAME_SIZE,
                () -> p.pushVideo(PixelFormat.NV12, W, H, new ByteBuffer[] {ByteBuffer.allocateDirect(W * H), ByteBuffer.allocateDirect(W * H / 2 - 2)},
                        new int[] {W, W}, 40_000));
        // A frame twice the configured size is scaled down by default; with scaling off it is refused.
        byte[] big = new byte[4 * W * H * 3 / 2];
        int[] bigOffsets = {0, 4 * W * H, 5 * W * H};
        int[] bigStrides = {2 * W, W, W};
        p.pushVideo(PixelFormat.I420, 2 * W, 2 * H, big, bigOffsets, bigStrides, 80_000);
        assertThrows(NullPointerException.class, () -> LivePusherConfig.builder("rtmp://h/a/k").videoScaling(null));
        try (LivePusher off = LivePusher.create(LivePusherConfig.builder("rtmp://127.0.0.1:1/live/no-scaling")
                .video(W, H, 30, 500, 30).videoScaling(VideoScaling.OFF).disableAudio().build(), null)) {
            off.start();
            assertCode(ResultCode.BAD_DIMENSIONS, () -> off.pushVideo(PixelFormat.I420, 2 * W, 2 * H, big, bigOffsets, bigStrides, 0));
            off.pushVideo(PixelFormat.I420, W, H, frame, offsets, strides, 0);
        }
        assertCode(ResultCode.INVALID_STATE, () -> p.pushH264(new byte[] {0, 0, 0, 1, 0x65, 1}, 0, 0));
        assertCode(ResultCode.INVALID_STATE, () -> p.pushAac(new byte[] {1, 2}, 0));
        assertCode(ResultCode.INVALID_STATE, () -> p.pushOpus(new byte[] {(byte) 0xf8, 1}, 0));
        // Pre-encoded Opus (no server needed: pushes are taken while it connects): a 20 ms CELT
        // packet goes through the array and the direct-buffer paths; a code 1 packet of odd length
        // breaks RFC 6716's R3 and is refused with its reason.
        try (LivePusher opus = LivePusher.create(LivePusherConfig.builder("rtmp://127.0.0.1:1/live/opus")
                .video(W, H, 30, 500, 30).audioEncoder(AudioEncoder.PASSTHROUGH_OPUS).build(), null)) {
            opus.start();
            opus.pushOpus(new byte[] {(byte) 0xf8, 1, 2, 3}, 0);
            ByteBuffer packet = ByteBuffer.allocateDirect(8);
            packet.put(new byte[] {0, 0, (byte) 0xf8, 4, 5}).flip().position(2);
            opus.pushOpus(packet, 20_000);
            assertCode(ResultCode.BAD_BITSTREAM, () -> opus.pushOpus(new byte[] {(byte) 0xf9, 1, 2, 3}, 40_000));
            assertThrows(IndexOutOfBoundsException.class, () -> opus.pushOpus(new byte[4], 2, 3, 40_000));
            assertCode(ResultCode.INVALID_STATE, () -> opus.pushAac(new byte[] {1, 2}, 40_000));
            assertEquals(2, opus.getStats().audioFramesIn);
        }
        assertThrows(IndexOutOfBoundsException.class, () -> p.pushH264(new byte[4], 2, 3, 0, 0));
        assertThrows(IndexOutOfBoundsException.class, () -> p.pushAudio(new short[1024 * CHANNELS - 1], 1024, 50_000));
        assertThrows(IndexOutOfBoundsException.class, () -> p.pushAudio(new short[16], -1, 50_000));
        assertCode(ResultCode.INVALID_ARGUMENT, () -> p.pushAudio((short[]) null, 1024, 50_000));
        ByteBuffer odd = ByteBuffer.allocateDirect(4099).order(ByteOrder.nativeOrder());
        odd.position(1);
        assertCode(ResultCode.INVALID_ARGUMENT, () -> p.pushAudio(odd, 1024, 50_000)); // misaligned samples
        assertThrows(IllegalArgumentException.class,
                () -> p.pushAudio(ByteBuffer.allocateDirect(4096).order(ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN
                        ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN), 1024, 50_000));
        p.pushAudio(pcm(0, 1024), 1024, 0);
        assertCode(ResultCode.NON_MONOTONIC_TIMESTAMP, () -> p.pushAudio(pcm(0, 1024), 1024, 0));
        LivePusher.Stats s = p.getStats();
        assertEquals(2, s.videoFramesIn); // the first frame and the scaled-down one
        assertTrue(s.framesRejected >= 5, "rejected: " + s.framesRejected);
        assertEquals(ResultCode.CONNECT, r.await(EventKind.RECONNECTING, WAIT_MS).code, "events: " + r.events);
        p.close();
        p.close(); // idempotent
        // After close every call is the C ABI's NULL-pusher answer.
        assertCode(ResultCode.INVALID_ARGUMENT, p::start);
        assertCode(ResultCode.INVALID_ARGUMENT, p::getStats);
        assertCode(ResultCode.INVALID_ARGUMENT, () -> p.pushAudio(pcm(0, 1024), 1024, 1_000_000));
        assertEquals(State.FAILED, p.getState());
    }

    @Test
    void closeFromAnotherThreadWhilePushing() throws Exception {
        String base = prop("kp.nginx.url.close");
        for (int round = 0; round < 3; round++) {
            Recorder r = new Recorder();
            LivePusher p = LivePusher.create(rawConfig(base + "-" + round), r);
            p.start();
            r.await(EventKind.PUBLISHING, WAIT_MS);
            AtomicInteger videoOk = new AtomicInteger();
            AtomicReference<Throwable> unexpected = new AtomicReference<>();
            List<Integer> endCodes = new CopyOnWriteArrayList<>();
            Runnable video = () -> {
                int[] offsets = {0, W * H, W * H + W * H / 4};
                int[] strides = {W, W / 2, W / 2};
                for (int i = 0; ; i++) {
                    try {
                        p.pushVideo(PixelFormat.I420, W, H, i420(i), offsets, strides, videoPts(i));
                        videoOk.incrementAndGet();
                    } catch (KitePushException e) {
                        if (e.getCode() == ResultCode.QUEUE_FULL) {
                            continue;
                        }
                        endCodes.add(e.getCode());
                        return;
                    } catch (Throwable t) {
                        unexpected.set(t);
                        return;
                    }
                }
            };
            Runnable audio = () -> {
                for (long n = 0; ; n += 1024) {
                    try {
                        p.pushAudio(pcm(n, 1024), 1024, audioPts(n));
                    } catch (KitePushException e) {
                        if (e.getCode() == ResultCode.QUEUE_FULL) {
                            continue;
                        }
                        endCodes.add(e.getCode());
                        return;
                    } catch (Throwable t) {
                        unexpected.set(t);
                        return;
                    }
                }
            };
            Thread tv = new Thread(video, "video");
            Thread ta = new Thread(audio, "audio");
            tv.start();
            ta.start();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MS);
            while (videoOk.get() < 30) {
                assertTrue(System.nanoTime() < deadline, "pushing stalled");
                Thread.sleep(5);
            }
            p.close();
            int eventsAtClose = r.events.size();
            tv.join(WAIT_MS);
            ta.join(WAIT_MS);
            assertFalse(tv.isAlive() || ta.isAlive(), "pushing threads did not see the close");
            assertNull(unexpected.get());
            assertEquals(List.of(ResultCode.INVALID_ARGUMENT, ResultCode.INVALID_ARGUMENT), endCodes);
            assertEquals(eventsAtClose, r.events.size(), "an event after close returned: " + r.events);
        }
    }

    /** Throws on every event: the SDK thread must go on, and the next events still arrive. */
    @Test
    void aThrowingListenerDoesNotStopEvents() throws Exception {
        List<Integer> seen = new CopyOnWriteArrayList<>();
        LivePusher.Listener throwing = e -> {
            synchronized (seen) {
                seen.add(e.kind);
                seen.notifyAll();
            }
            throw new IllegalStateException("listener failure " + e.kind + " (expected by the test)");
        };
        try (LivePusher p = LivePusher.create(
                LivePusherConfig.builder("rtmp://127.0.0.1:1/live/throwing").reconnect(50, 1.0, 50, 0, 0).build(), throwing)) {
            p.start();
            long deadline = System.currentTimeMillis() + WAIT_MS;
            synchronized (seen) {
                while (seen.size() < 4) {
                    long left = deadline - System.currentTimeMillis();
                    assertTrue(left > 0, "events: " + seen);
                    seen.wait(left);
                }
            }
        }
        assertEquals(EventKind.CONNECTING, (int) seen.get(0));
        assertEquals(EventKind.RECONNECTING, (int) seen.get(1));
    }

    /**
     * close() from the listener (documented as not to be done): the C ABI hands the release to a
     * helper thread, and the glue must keep the listener's references until that thread has
     * freed the pusher. Ends with the references gone and the pusher unusable, without a crash.
     */
    @Test
    void closeFromTheListenerReleasesOnAnotherThread() throws Exception {
        long base = Native.liveGlobalRefs();
        AtomicReference<LivePusher> self = new AtomicReference<>();
        CountDownLatch closed = new CountDownLatch(1);
        Recorder r = new Recorder() {
            @Override
            public void onEvent(LivePusher.Event event) {
                super.onEvent(event);
                if (event.kind == EventKind.RECONNECTING && closed.getCount() > 0) {
                    self.get().close();
                    closed.countDown();
                }
            }
        };
        LivePusher p = LivePusher.create(
                LivePusherConfig.builder("rtmp://127.0.0.1:1/live/close-in-listener").reconnect(20, 1.0, 20, 0, 0).build(), r);
        self.set(p);
        p.start();
        r.await(EventKind.RECONNECTING, WAIT_MS);
        // The event is recorded before the listener closes: wait for the close itself.
        assertTrue(closed.await(WAIT_MS, TimeUnit.MILLISECONDS), "the listener did not close the pusher");
        assertCode(ResultCode.INVALID_ARGUMENT, p::start);
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (Native.liveGlobalRefs() != base) {
            assertTrue(System.currentTimeMillis() < deadline, "the listener's references were never released");
            Thread.sleep(20);
        }
        p.close(); // already closed: returns at once
    }

    static int threadCount() {
        return Thread.getAllStackTraces().size();
    }

    @Test
    void globalRefsAndThreadsDoNotLeakOver1000CreateCloseCycles() throws Exception {
        LivePusherConfig cfg = LivePusherConfig.builder("rtmp://127.0.0.1:1/live/leak").build();
        LivePusherConfig statsCfg = LivePusherConfig.builder("rtmp://127.0.0.1:1/live/leak").statsInterval(100).build();
        long base = Native.liveGlobalRefs();
        for (int i = 0; i < 1000; i++) {
            LivePusher p = LivePusher.create(cfg, new Recorder());
            // The counter can fail: each listener costs its global references while the pusher lives.
            assertEquals(base + 2, Native.liveGlobalRefs());
            p.close();
            assertEquals(base, Native.liveGlobalRefs());
            // A listener with stats costs one more reference (the Stats class), released as well.
            LivePusher withStats = LivePusher.create(statsCfg, new StatsRecorder());
            assertEquals(base + 3, Native.liveGlobalRefs());
            withStats.close();
            assertEquals(base, Native.liveGlobalRefs());
            LivePusher q = LivePusher.create(cfg, null);
            assertEquals(base, Native.liveGlobalRefs());
            q.close();
        }
        // Started pushers: their callback threads attach to the JVM and must detach when they exit.
        int threads = threadCount();
        for (int i = 0; i < 50; i++) {
            Recorder r = i % 2 == 0 ? new Recorder() : new StatsRecorder();
            try (LivePusher p = LivePusher.create(i % 2 == 0 ? cfg : statsCfg, r)) {
                p.start();
                r.await(EventKind.CONNECTING, WAIT_MS);
            }
        }
        assertEquals(base, Native.liveGlobalRefs());
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (threadCount() > threads) {
            assertTrue(System.currentTimeMillis() < deadline, "threads: " + threads + " before, " + threadCount() + " after");
            Thread.sleep(20);
        }
        // The JVM's own view: once closed, nothing native holds the listener any more.
        Recorder listener = new Recorder();
        WeakReference<Recorder> weak = new WeakReference<>(listener);
        LivePusher p = LivePusher.create(cfg, listener);
        p.start();
        listener.await(EventKind.CONNECTING, WAIT_MS);
        p.close();
        listener = null;
        deadline = System.currentTimeMillis() + WAIT_MS;
        while (weak.get() != null) {
            assertTrue(System.currentTimeMillis() < deadline, "the listener is still referenced after close");
            System.gc();
            Thread.sleep(20);
        }
    }

    /**
     * Background mode on a real push: 1 s of frames, 2.5 s paused with the still picture set
     * before start (the app keeps pushing audio, its video is refused with PAUSED), then 1 s
     * again. The stats callback runs all along. tests/android.rs checks nginx's recording covers
     * the pause.
     */
    @Test
    void pauseThenResumeKeepsTheStreamGoingAndStatsArrive() throws Exception {
        String url = prop("kp.nginx.url.pause");
        StatsRecorder r = new StatsRecorder();
        LivePusherConfig cfg = LivePusherConfig.builder(url).video(W, H, 30, 500, 30).audio(RATE, CHANNELS, 64)
                .pauseFps(10).statsInterval(200).build();
        try (LivePusher p = LivePusher.create(cfg, r)) {
            p.setPauseImage(PixelFormat.I420, W, H, i420(500), I420_OFFSETS, I420_STRIDES);
            p.start();
            r.await(EventKind.PUBLISHING, WAIT_MS);
            long start = System.nanoTime();
            long audioFrames = 0;
            int frame = 0;
            long pauseAtUs = 1_000_000;
            long resumeAtUs = 3_500_000;
            long endUs = 4_500_000;
            boolean paused = false;
            boolean resumed = false;
            // The capture clock runs on through the pause, as a camera's would.
            while (videoPts(frame) < endUs) {
                long pts = videoPts(frame);
                pace(start, pts);
                if (!paused && pts >= pauseAtUs) {
                    p.pause(PauseMode.STILL_IMAGE);
                    paused = true;
                }
                if (!resumed && pts >= resumeAtUs) {
                    p.resume();
                    resumed = true;
                }
                final byte[] picture = i420(frame);
                if (paused && !resumed) {
                    assertCode(ResultCode.PAUSED, () -> p.pushVideo(PixelFormat.I420, W, H, picture, I420_OFFSETS, I420_STRIDES, pts));
                } else {
                    retrying(() -> p.pushVideo(PixelFormat.I420, W, H, picture, I420_OFFSETS, I420_STRIDES, pts));
                }
                while (audioPts(audioFrames) < videoPts(frame + 1)) {
                    final short[] samples = pcm(audioFrames, 1024);
                    final long apts = audioPts(audioFrames);
                    retrying(() -> p.pushAudio(samples, 1024, apts));
                    audioFrames += 1024;
                }
                frame++;
            }
            LivePusher.Event resumedEvent = r.await(EventKind.RESUMED, WAIT_MS);
            assertTrue(resumedEvent.value >= 2000, "pause lasted " + resumedEvent.value + " ms: " + r.events);
            assertEquals(PauseMode.STILL_IMAGE.value, r.await(EventKind.PAUSED, WAIT_MS).value);
            assertTrue(indexOf(r, EventKind.PAUSED) < indexOf(r, EventKind.RESUMED), "events: " + r.events);
            LivePusher.Stats beforeStop = p.getStats();
            p.stop(10_000);
            r.await(EventKind.STOPPED, WAIT_MS);
            LivePusher.Stats s = p.getStats();
            // 30 frames before the pause and 30 after it, plus the still pictures (10 per second).
            assertTrue(s.videoFramesSent >= 60 + 10, "video sent: " + s.videoFramesSent);
            assertTrue(s.videoFramesSent >= beforeStop.videoFramesSent);
            assertEquals(1, s.fpsDivisor);
            assertEquals(0, s.encodeRung); // no encode ladder: the configured setting
            assertTrue(s.encodeWidth > 0 && s.encodeFps > 0, "encoded at " + s.encodeWidth + " / " + s.encodeFps);
        }
        // Events and stats on one attached SDK thread.
        assertEquals(1, r.threads.size(), "callback threads: " + r.threads);
        // Every 200 ms over some 4.5 s: at least 10 of them, whatever the machine's load.
        List<LivePusher.Stats> st = r.stats;
        assertTrue(st.size() >= 10, "stats callbacks: " + st.size());
        int publishing = 0;
        for (int i = 0; i < st.size(); i++) {
            LivePusher.Stats s = st.get(i);
            if (s.state == State.PUBLISHING) {
                publishing++;
            }
            assertEquals(1, s.destinationCount);
            assertTrue(s.congestion >= 0 && s.congestion <= 1.5f, "congestion " + s.congestion);
            assertTrue(s.inputFps >= 0 && s.inputFps < 1000, "input fps " + s.inputFps);
            if (i > 0) {
                assertTrue(s.bytesSent >= st.get(i - 1).bytesSent, "bytes sent went back: " + st);
                assertTrue(s.uptimeMs >= st.get(i - 1).uptimeMs, "uptime went back: " + st);
            }
        }
        assertTrue(publishing >= 8, "PUBLISHING in " + publishing + " of " + st.size() + " snapshots");
        assertTrue(st.get(st.size() - 1).bytesSent > st.get(0).bytesSent, "bytes sent did not grow: " + st);
        assertTrue(st.get(st.size() - 1).targetVideoKbps > 0, "no video target: " + st.get(st.size() - 1));
    }

    /**
     * Bitrate, keyframe and mute while pushing, and a local recording (checked by tests/android.rs
     * with ffprobe), on nginx.
     */
    @Test
    void liveControlsAndRecordingWhilePushing() throws Exception {
        String url = prop("kp.nginx.url.controls");
        String recording = prop("kp.record.path");
        Recorder r = new Recorder();
        try (LivePusher p = LivePusher.create(rawConfig(url), r)) {
            p.setVideoBitrate(400); // allowed before start
            p.setAudioMuted(false);
            p.start();
            r.await(EventKind.PUBLISHING, WAIT_MS);
            p.startRecording(recording);
            assertCode(ResultCode.INVALID_STATE, () -> p.startRecording(recording + ".second"));
            long start = System.nanoTime();
            long audioFrames = 0;
            for (int i = 0; i < 90; i++) {
                pace(start, videoPts(i));
                if (i == 20) {
                    p.setVideoBitrate(300);
                    assertCode(ResultCode.INVALID_ARGUMENT, () -> p.setVideoBitrate(0));
                    assertCode(ResultCode.INVALID_ARGUMENT, () -> p.setVideoBitrate(200_001));
                    assertThrows(IllegalArgumentException.class, () -> p.setVideoBitrate(-1));
                }
                if (i == 30) {
                    p.requestKeyframe();
                }
                if (i == 40) {
                    p.setAudioMuted(true);
                }
                if (i == 50) {
                    // Rides on this frame as an SEI; the Rust side finds it in nginx's recording. (No
                    // MESSAGE_AMF here: a late onTextData tag in the local recording, which has
                    // audio, makes Debian's ffprobe 5.1 crash under -count_frames.)
                    p.sendMessage("java-msg 1".getBytes(java.nio.charset.StandardCharsets.UTF_8));
                    assertCode(ResultCode.INVALID_ARGUMENT, () -> p.sendMessage(new byte[4097]));
                    assertCode(ResultCode.INVALID_ARGUMENT, () -> p.sendMessage(new byte[0]));
                    assertCode(ResultCode.INVALID_ARGUMENT, () -> p.sendMessage(null));
                    assertCode(ResultCode.INVALID_ARGUMENT, () -> p.sendMessage(new byte[] {1}, 0x40));
                    assertCode(ResultCode.INVALID_ARGUMENT, () -> p.sendMessage(new byte[] {(byte) 0xff}, LivePusher.MESSAGE_AMF));
                }
                if (i == 60) {
                    p.setAudioMuted(false);
                }
                final byte[] picture = i420(i);
                final long pts = videoPts(i);
                retrying(() -> p.pushVideo(PixelFormat.I420, W, H, picture, I420_OFFSETS, I420_STRIDES, pts));
                while (audioPts(audioFrames) < videoPts(i + 1)) {
                    final short[] samples = pcm(audioFrames, 1024);
                    final long apts = audioPts(audioFrames);
                    retrying(() -> p.pushAudio(samples, 1024, apts));
                    audioFrames += 1024;
                }
            }
            LivePusher.Event started = r.await(EventKind.RECORDING_STARTED, WAIT_MS);
            assertEquals(recording, started.message);
            p.stopRecording();
            LivePusher.Event stopped = r.await(EventKind.RECORDING_STOPPED, WAIT_MS);
            assertTrue(stopped.value > 0 && stopped.value2 > 0, "recorded: " + stopped);
            assertCode(ResultCode.INVALID_STATE, p::stopRecording);
            assertCode(ResultCode.INVALID_STATE, p::resume); // not paused
            p.stop(10_000);
            LivePusher.Stats s = p.getStats();
            assertEquals(90, s.videoFramesSent);
            assertEquals(0, s.framesRejected);
            assertEquals(1, s.messagesAccepted);
            assertEquals(1, s.messagesSent);
            assertEquals(0, s.messagesDropped);
            assertCode(ResultCode.NOT_STARTED, () -> p.sendMessage(new byte[] {1}));
            assertCode(ResultCode.NOT_STARTED, p::requestKeyframe);
            assertCode(ResultCode.NOT_STARTED, p::networkChanged);
            LivePusher.DestinationStats d = p.getDestinationStats(0);
            assertEquals(s.bytesSent, d.bytesSent);
            assertEquals(1, d.messagesSent);
            assertTrue(d.congestion >= 0, "congestion " + d.congestion);
        }
        assertFalse(r.kinds().contains(EventKind.RECORDING_FAILED), "events: " + r.events);
    }

    /** The newer calls' refusals, as the C ABI documents them, and pushHevc's on garbage. */
    @Test
    void newerCallsGiveTheDocumentedErrors() throws Exception {
        String nowhere = "rtmp://127.0.0.1:1/live/newer";
        assertCode(ResultCode.INVALID_ARGUMENT,
                () -> LivePusher.create(LivePusherConfig.builder(nowhere).statsInterval(50).build(), new StatsRecorder()));
        assertCode(ResultCode.INVALID_ARGUMENT, () -> LivePusher.create(LivePusherConfig.builder(nowhere).statsInterval(99).build(), null));
        assertCode(ResultCode.INVALID_ARGUMENT, () -> LivePusher.create(LivePusherConfig.builder(nowhere).pauseFps(61).build(), null));
        assertCode(ResultCode.INVALID_ARGUMENT, () -> LivePusher.create(LivePusherConfig.builder(nowhere).latencyBudget(50).build(), null));
        assertCode(ResultCode.INVALID_ARGUMENT,
                () -> LivePusher.create(LivePusherConfig.builder(nowhere).abr(true, 500, 100, false).build(), null));
        LivePusher.create(LivePusherConfig.builder(nowhere).encodeLadder(true, 0, 0)
                .addEncodeRung(640, 360, 15, EncodeComplexity.LOW).build(), null).close();
        assertCode(ResultCode.INVALID_ARGUMENT, () -> LivePusher.create(LivePusherConfig.builder(nowhere).encodeLadder(true, 0, 0)
                .addEncodeRung(2560, 1440, 15, EncodeComplexity.LOW).build(), null));
        assertThrows(IllegalArgumentException.class,
                () -> LivePusherConfig.builder(nowhere).addEncodeRung(640, 360, 15, null));
        assertThrows(IllegalArgumentException.class, () -> LivePusherConfig.builder(nowhere).statsInterval(-1));
        assertThrows(IllegalArgumentException.class, () -> LivePusherConfig.builder(nowhere).latencyBudget(-1));
        LivePusher.create(LivePusherConfig.builder(nowhere).latencyBudget(1000).abr(true, 200, 800, true)
                .alertThresholds(0.6f, 2000, 0.4f, 2000, 2000).pauseFps(2).statsInterval(0).build(), new StatsRecorder()).close();
        assertCode(ResultCode.INVALID_ARGUMENT,
                () -> LivePusher.create(LivePusherConfig.builder(nowhere).addCaPem("not a certificate".getBytes("US-ASCII")).build(), null));
        assertCode(ResultCode.INVALID_ARGUMENT, () -> LivePusher.create(LivePusherConfig.builder(nowhere).addCaPem(null).build(), null));
        assertCode(ResultCode.INVALID_ARGUMENT, () -> LivePusher.create(LivePusherConfig.builder(nowhere).addCaPem(new byte[0]).build(), null));
        // This build has TLS but not the native-roots feature.
        assertCode(ResultCode.UNSUPPORTED, () -> LivePusher.create(LivePusherConfig.builder(nowhere).tlsPlatformRoots(true).build(), null));
        LivePusher.create(LivePusherConfig.builder(nowhere).tlsPlatformRoots(false).tlsDangerAcceptInvalidCerts(true).build(), null).close();
        // x264 settings: ignored by other encoders (this build has none of x264), checked by create().
        LivePusher.create(LivePusherConfig.builder(nowhere).x264Preset("slow", null, "main").x264Vbv(0, 0)
                .x264Threading(X264Threading.SLICED).x264Bframes(2).build(), null).close();
        assertCode(ResultCode.INVALID_ARGUMENT,
                () -> LivePusher.create(LivePusherConfig.builder(nowhere).x264Preset("slow\u0000", null, null).build(), null));
        assertCode(ResultCode.UNSUPPORTED,
                () -> LivePusher.create(LivePusherConfig.builder(nowhere).videoEncoder(VideoEncoder.X264).build(), null));
        // SRT settings: checked by create(); an srt:// URL with FFmpeg's microseconds is refused.
        LivePusher.create(LivePusherConfig.builder("srt://127.0.0.1:9?latency=200").srt(0, "long-enough-secret", 32)
                .srtStreamId(SrtStreamIdPreset.SRS, "live/cam").build(), null).close();
        assertCode(ResultCode.INVALID_ARGUMENT,
                () -> LivePusher.create(LivePusherConfig.builder(nowhere).srt(120, "short", 0).build(), null));
        assertCode(ResultCode.INVALID_ARGUMENT,
                () -> LivePusher.create(LivePusherConfig.builder(nowhere).srt(120, "long-enough-secret", 20).build(), null));
        assertCode(ResultCode.INVALID_URL,
                () -> LivePusher.create(LivePusherConfig.builder("srt://127.0.0.1:9?latency=120000").build(), null));
        assertThrows(NullPointerException.class, () -> LivePusherConfig.builder(nowhere).srtStreamId(null, "x"));
        LivePusher.create(LivePusherConfig.builder(nowhere).refusedRetry(true, 100, 2000).build(), null).close();
        LivePusher.create(LivePusherConfig.builder(nowhere).refusedRetry(false, 0, 0).build(), null).close();
        assertThrows(IllegalArgumentException.class, () -> LivePusherConfig.builder(nowhere).refusedRetry(true, -1, 0));
        assertThrows(IllegalArgumentException.class, () -> LivePusherConfig.builder(nowhere).srt(-1, null, 0));
        assertEquals("PAUSED", EventKind.name(EventKind.PAUSED));
        assertEquals("UNKNOWN_18", EventKind.name(18));
        assertEquals("KP_ERR_PAUSED", ResultCode.name(ResultCode.PAUSED));

        // Pre-encoded HEVC, no audio: the server is never reached (nothing on port 1).
        LivePusherConfig hevc = LivePusherConfig.builder(nowhere).video(W, H, 30, 0, 0)
                .videoEncoder(VideoEncoder.PASSTHROUGH_HEVC).disableAudio().build();
        Recorder r = new Recorder();
        LivePusher p = LivePusher.create(hevc, r);
        byte[] garbage = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
        assertCode(ResultCode.NOT_STARTED, () -> p.pause(PauseMode.AUDIO_ONLY));
        p.start();
        assertCode(ResultCode.BAD_BITSTREAM, () -> p.pushHevc(garbage, 0, 0));
        ByteBuffer direct = ByteBuffer.allocateDirect(garbage.length + 4);
        direct.position(4);
        direct.put(garbage).position(4);
        assertCode(ResultCode.BAD_BITSTREAM, () -> p.pushHevc(direct, 0, 0));
        assertCode(ResultCode.BAD_BITSTREAM, () -> p.pushHevc(ByteBuffer.wrap(garbage), 0, 0));
        assertCode(ResultCode.INVALID_ARGUMENT, () -> p.pushHevc((byte[]) null, 0, 0));
        assertThrows(IndexOutOfBoundsException.class, () -> p.pushHevc(new byte[4], 2, 3, 0, 0));
        assertCode(ResultCode.INVALID_STATE, () -> p.pushH264(new byte[] {0, 0, 0, 1, 0x65, 1}, 0, 0));
        assertCode(ResultCode.UNSUPPORTED, () -> p.pause(PauseMode.STILL_IMAGE));
        assertCode(ResultCode.INVALID_STATE, () -> p.setVideoBitrate(500));
        assertCode(ResultCode.INVALID_STATE, () -> p.setAudioMuted(true));
        assertCode(ResultCode.FILE, () -> p.startRecording("/nonexistent-kitepush-dir/x.flv"));
        assertCode(ResultCode.INVALID_ARGUMENT, () -> p.startRecording(null));
        assertThrows(NullPointerException.class, () -> p.pause(null));
        p.close();
        assertCode(ResultCode.INVALID_ARGUMENT, () -> p.pause(PauseMode.AUDIO_ONLY));
        assertCode(ResultCode.INVALID_ARGUMENT, p::resume);
        assertCode(ResultCode.INVALID_ARGUMENT, p::requestKeyframe);
        assertCode(ResultCode.INVALID_ARGUMENT, p::networkChanged);
        assertCode(ResultCode.INVALID_ARGUMENT, p::stopRecording);

        // The pause picture is checked like a pushed frame.
        try (LivePusher raw = LivePusher.create(rawConfig(nowhere), null)) {
            assertCode(ResultCode.BAD_DIMENSIONS,
                    () -> raw.setPauseImage(PixelFormat.I420, W - 2, H, i420(0), I420_OFFSETS, I420_STRIDES));
            assertCode(ResultCode.BAD_FRAME_SIZE,
                    () -> raw.setPauseImage(PixelFormat.NV12, W, H, new ByteBuffer[] {ByteBuffer.allocateDirect(W * H),
                            ByteBuffer.allocateDirect(W * H / 2 - 2)}, new int[] {W, W}));
            assertThrows(IndexOutOfBoundsException.class,
                    () -> raw.setPauseImage(PixelFormat.I420, W, H, new byte[10], I420_OFFSETS, I420_STRIDES));
            raw.setPauseImage(PixelFormat.NV12, W, H, new ByteBuffer[] {ByteBuffer.allocateDirect(W * H),
                    ByteBuffer.allocateDirect(W * H / 2)}, new int[] {W, W});
            raw.start();
            raw.pause(PauseMode.STILL_IMAGE_SILENT);
            raw.pause(PauseMode.AUDIO_ONLY); // switches the mode
            raw.resume();
        }
    }
}
