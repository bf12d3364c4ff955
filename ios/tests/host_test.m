// Host test of the Objective-C wrapper (GNUstep Foundation, manual reference counting), run by
// tests/ios.rs: pushes raw frames + PCM to the built-in receiver, NV12 planes to nginx-rtmp and
// VideoToolbox-shaped output (AVCC H.264 with parameter sets apart, raw AAC packets) to nginx-rtmp;
// checks delegate events in order, statistics, NSErrors for bad arguments and close from another
// thread; pause/resume with the statistics delegate, live controls and a local recording, and the
// newer calls' NSErrors. tests/ios.rs checks the recordings with ffprobe.
//
// usage: host_test RECEIVER_URL NGINX_RAW_URL NGINX_AVCC_URL NGINX_CLOSE_URL MEDIA_DIR NGINX_PAUSE_URL
//        NGINX_CONTROLS_URL RECORDING_PATH

#import "KPLivePusher.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { W = 320, H = 240, RATE = 44100, CHANNELS = 2 };
static int passed, failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            passed++;                                                      \
        } else {                                                           \
            failed++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pace(double start, int64_t pts_us) {
    double ahead = pts_us / 1e6 - (now_s() - start);
    if (ahead > 0) {
        usleep((useconds_t)(ahead * 1e6));
    }
}

static int64_t video_pts(int frame) { return frame * 1000000LL / 30; }
static int64_t audio_pts(int64_t frames) { return frames * 1000000LL / RATE; }

/// Expects a failed call with this code in the KitePush domain.
#define CHECK_ERROR(call, expected)                                                                          \
    do {                                                                                                     \
        NSError *err_ = nil;                                                                                 \
        BOOL ok_ = (call);                                                                                   \
        CHECK(!ok_ && err_ && [err_.domain isEqualToString:KPLivePusherErrorDomain] && err_.code == (expected), \
              "%s gave %s", #call, err_ ? err_.description.UTF8String : "no error");                         \
        CHECK(!err_ || err_.localizedFailureReason.length > 0, "no failure reason for %s", #call);            \
    } while (0)

/// Retries a push refused with KP_ERR_QUEUE_FULL (the frame was not taken) while the loaded
/// machine's encoder is behind, as a file source would; keeps the recorded frame counts exact.
#define RETRYING(call)                                                                       \
    ({                                                                                       \
        BOOL ok_r;                                                                           \
        double until_r = now_s() + 30;                                                       \
        while (!(ok_r = (call)) && e.code == KP_ERR_QUEUE_FULL && now_s() < until_r) {       \
            usleep(2000);                                                                    \
        }                                                                                    \
        ok_r;                                                                                \
    })

// MARK: - delegate

@interface Recorder : NSObject <KPLivePusherDelegate> {
  @public
    NSMutableArray *events;
    NSCondition *cond;
    pthread_t thread;
    int threads;
}
- (KPLivePusherEvent *)await:(kp_event_kind)kind seconds:(double)seconds;
@end

@implementation Recorder
- (instancetype)init {
    self = [super init];
    events = [[NSMutableArray alloc] init];
    cond = [[NSCondition alloc] init];
    return self;
}
- (void)dealloc {
    [events release];
    [cond release];
    [super dealloc];
}
- (void)livePusher:(KPLivePusher *)pusher didReceiveEvent:(KPLivePusherEvent *)event {
    (void)pusher;
    [cond lock];
    if (threads == 0 || !pthread_equal(thread, pthread_self())) {
        thread = pthread_self();
        threads++;
    }
    [events addObject:event];
    [cond broadcast];
    [cond unlock];
}
- (KPLivePusherEvent *)await:(kp_event_kind)kind seconds:(double)seconds {
    NSDate *deadline = [NSDate dateWithTimeIntervalSinceNow:seconds];
    [cond lock];
    KPLivePusherEvent *found = nil;
    while (!found) {
        for (KPLivePusherEvent *e in events) {
            if (e.kind == kind) {
                found = e;
                break;
            }
        }
        if (!found && ![cond waitUntilDate:deadline]) {
            break;
        }
    }
    [cond unlock];
    CHECK(found != nil, "no event %d within %.0f s: %s", (int)kind, seconds, events.description.UTF8String);
    return found;
}
- (NSArray *)snapshot {
    [cond lock];
    NSArray *copy = [[events copy] autorelease];
    [cond unlock];
    return copy;
}
@end

/// Also counts the statistics delegate calls and checks each against the one before.
@interface StatsRecorder : Recorder {
  @public
    int stats;
    int publishing;
    int regressions;
    uint64_t firstBytes;
    uint64_t lastBytes;
    uint64_t lastUptime;
    uint32_t lastTarget;
    int statsOnOtherThread;
    /// Each statistics call takes this long once set: keeps the callback thread busy.
    useconds_t slowUs;
}
@end

@implementation StatsRecorder
- (void)livePusher:(KPLivePusher *)pusher didUpdateStatistics:(const kp_stats *)s {
    (void)pusher;
    [cond lock];
    if (threads > 0 && !pthread_equal(thread, pthread_self())) {
        statsOnOtherThread++;
    }
    if (stats == 0) {
        firstBytes = s->bytes_sent;
    } else if (s->bytes_sent < lastBytes || s->uptime_ms < lastUptime) {
        regressions++;
    }
    if (s->state == KP_STATE_PUBLISHING) {
        publishing++;
    }
    lastBytes = s->bytes_sent;
    lastUptime = s->uptime_ms;
    lastTarget = s->target_video_kbps;
    stats++;
    useconds_t slow = slowUs;
    [cond broadcast];
    [cond unlock];
    usleep(slow);
}
@end

static NSUInteger index_of(Recorder *r, kp_event_kind kind) {
    NSArray *ev = [r snapshot];
    for (NSUInteger i = 0; i < ev.count; i++) {
        if ([(KPLivePusherEvent *)[ev objectAtIndex:i] kind] == kind) {
            return i;
        }
    }
    return NSNotFound;
}

static void check_publish_sequence(Recorder *r) {
    NSArray *ev = [r snapshot];
    const char *all = ev.description.UTF8String;
    CHECK(ev.count >= 4, "events: %s", all);
    if (ev.count < 4) {
        return;
    }
    CHECK([(KPLivePusherEvent *)[ev objectAtIndex:0] kind] == KP_EVENT_CONNECTING, "events: %s", all);
    CHECK([(KPLivePusherEvent *)[ev objectAtIndex:1] kind] == KP_EVENT_CONNECTED, "events: %s", all);
    CHECK([(KPLivePusherEvent *)[ev objectAtIndex:2] kind] == KP_EVENT_PUBLISHING, "events: %s", all);
    CHECK([(KPLivePusherEvent *)[ev lastObject] kind] == KP_EVENT_STOPPED, "events: %s", all);
    uint64_t t = 0;
    for (NSUInteger i = 0; i < ev.count; i++) {
        KPLivePusherEvent *e = [ev objectAtIndex:i];
        CHECK(e.timestampMs >= t, "timestamps go back: %s", all);
        t = e.timestampMs;
        if (i >= 3 && i + 1 < ev.count) {
            CHECK(e.kind == KP_EVENT_KEYFRAME_NEEDED, "unexpected event in a clean publish: %s", all);
        }
    }
    CHECK(r->threads == 1, "events came on %d threads", r->threads);
    CHECK(!pthread_equal(r->thread, pthread_self()), "events came on the caller's thread");
}

// MARK: - media

static void i420(int frame, uint8_t *f) {
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            f[y * W + x] = (uint8_t)(x + y + frame * 4);
        }
    }
    for (int i = W * H; i < W * H * 3 / 2; i++) {
        f[i] = (uint8_t)(128 + (i + frame) % 32);
    }
}

static void pcm(int64_t first, int frames, int16_t *s) {
    for (int i = 0; i < frames; i++) {
        int16_t v = (int16_t)(8000 * sin(2 * M_PI * 440 * (double)(first + i) / RATE));
        for (int c = 0; c < CHANNELS; c++) {
            s[i * CHANNELS + c] = v;
        }
    }
}

static KPLivePusherConfiguration *raw_config(NSString *url) {
    KPLivePusherConfiguration *c = [[[KPLivePusherConfiguration alloc] init] autorelease];
    NSError *e = nil;
    CHECK([c setURL:url error:&e], "%s", e.description.UTF8String);
    CHECK([c setVideoWidth:W height:H fps:30 bitrateKbps:500 keyframeInterval:30 error:&e], "%s", e.description.UTF8String);
    CHECK([c setAudioSampleRate:RATE channels:CHANNELS bitrateKbps:64 error:&e], "%s", e.description.UTF8String);
    return c;
}

/// One I420 frame written into a video slot the pusher lends (-acquireVideoSlotWithLayout:), then
/// submitted.
static BOOL push_in_place(KPLivePusher *p, const uint8_t *frame, int64_t pts, NSError **e) {
    kp_video_slot_layout layout;
    kp_video_slot *slot = [p acquireVideoSlotWithLayout:&layout error:e];
    if (!slot) {
        return NO;
    }
    CHECK(layout.width == W && layout.height == H && layout.strides[1] == W / 2, "slot layout %ux%u",
          layout.width, layout.height);
    memcpy(layout.planes[0], frame, W * H);
    memcpy(layout.planes[1], frame + W * H, W * H / 4);
    memcpy(layout.planes[2], frame + W * H * 5 / 4, W * H / 4);
    return [p submitVideoSlot:slot ptsUs:pts error:e];
}

/// Pushes `frames` frames of I420 (the last 10 written in place into video slots; or NV12 made
/// from it) with PCM, paced to real time.
static void push_raw(KPLivePusher *p, int frames, BOOL nv12) {
    uint8_t *frame = malloc(W * H * 3 / 2);
    uint8_t *uv = malloc(W * H / 2);
    int16_t samples[1024 * CHANNELS];
    int64_t audio = 0;
    double start = now_s();
    for (int i = 0; i < frames; i++) {
        pace(start, video_pts(i));
        i420(i, frame);
        NSError *e = nil;
        BOOL ok;
        if (nv12) {
            for (int j = 0; j < W * H / 4; j++) {
                uv[2 * j] = frame[W * H + j];
                uv[2 * j + 1] = frame[W * H + W * H / 4 + j];
            }
            const uint8_t *planes[2] = {frame, uv};
            uint32_t strides[2] = {W, W};
            size_t sizes[2] = {W * H, W * H / 2};
            ok = RETRYING([p pushVideoWithFormat:KPPixelFormatNV12 width:W height:H planeCount:2 planes:planes
                                         strides:strides planeSizes:sizes ptsUs:video_pts(i) error:&e]);
        } else if (i >= frames - 10) {
            ok = RETRYING(push_in_place(p, frame, video_pts(i), &e));
        } else {
            const uint8_t *planes[3] = {frame, frame + W * H, frame + W * H * 5 / 4};
            uint32_t strides[3] = {W, W / 2, W / 2};
            size_t sizes[3] = {W * H, W * H / 4, W * H / 4};
            ok = RETRYING([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes
                                         strides:strides planeSizes:sizes ptsUs:video_pts(i) error:&e]);
        }
        CHECK(ok, "push video %d: %s", i, e.description.UTF8String);
        while (audio_pts(audio) < video_pts(i + 1)) {
            pcm(audio, 1024, samples);
            CHECK(RETRYING([p pushPCM:samples framesPerChannel:1024 ptsUs:audio_pts(audio) error:&e]), "%s",
                  e.description.UTF8String);
            audio += 1024;
        }
    }
    free(frame);
    free(uv);
}

static void raw_to(NSString *url, int frames, BOOL nv12) {
    @autoreleasepool {
        Recorder *r = [[[Recorder alloc] init] autorelease];
        NSError *e = nil;
        KPLivePusher *p = [[KPLivePusher alloc] initWithConfiguration:raw_config(url) delegate:r error:&e];
        CHECK(p != nil, "%s", e.description.UTF8String);
        if (!p) {
            return;
        }
        CHECK(p.state == KP_STATE_IDLE, "state %d", (int)p.state);
        CHECK([p start:&e], "%s", e.description.UTF8String);
        [r await:KP_EVENT_PUBLISHING seconds:30];
        NSString *key = url.lastPathComponent;
        CHECK([[(KPLivePusherEvent *)[[r snapshot] objectAtIndex:0] message] rangeOfString:key].location == NSNotFound, "the stream key leaked");
        push_raw(p, frames, nv12);
        CHECK([p stopWithTimeout:10000 error:&e], "%s", e.description.UTF8String);
        [r await:KP_EVENT_STOPPED seconds:30];
        kp_stats s;
        CHECK([p getStatistics:&s error:&e], "%s", e.description.UTF8String);
        CHECK(s.state == KP_STATE_STOPPED, "state %d", (int)s.state);
        CHECK(s.video_frames_in >= (uint64_t)frames, "in %llu", (unsigned long long)s.video_frames_in);
        CHECK(s.video_frames_encoded == (uint64_t)frames, "encoded %llu", (unsigned long long)s.video_frames_encoded);
        CHECK(s.video_frames_sent == (uint64_t)frames, "sent %llu", (unsigned long long)s.video_frames_sent);
        CHECK(s.audio_frames_sent > 0 && s.bytes_sent > 10000 && s.frames_rejected == 0, "stats");
        kp_destination_stats d;
        CHECK([p getStatistics:&d forDestination:0 error:&e], "%s", e.description.UTF8String);
        CHECK(d.video_frames_sent == s.video_frames_sent, "destination stats");
        CHECK_ERROR([p getStatistics:&d forDestination:1 error:&err_], KP_ERR_INVALID_ARGUMENT);
        [p release];
        check_publish_sequence(r);
    }
}

/// 60 raw frames (and PCM, which WHIP skips until Opus is wired) to a WHIP endpoint with its token.
static void whip_to(NSString *url, NSString *token) {
    @autoreleasepool {
        Recorder *r = [[[Recorder alloc] init] autorelease];
        NSError *e = nil;
        KPLivePusherConfiguration *c = raw_config(url);
        CHECK([c setWhipBearerToken:token error:&e], "%s", e.description.UTF8String);
        KPLivePusher *p = [[KPLivePusher alloc] initWithConfiguration:c delegate:r error:&e];
        CHECK(p != nil, "%s", e.description.UTF8String);
        if (!p) {
            return;
        }
        CHECK([p start:&e], "%s", e.description.UTF8String);
        [r await:KP_EVENT_PUBLISHING seconds:30];
        push_raw(p, 60, NO);
        CHECK([p stopWithTimeout:10000 error:&e], "%s", e.description.UTF8String);
        [r await:KP_EVENT_STOPPED seconds:30];
        kp_destination_stats d;
        CHECK([p getStatistics:&d forDestination:0 error:&e], "%s", e.description.UTF8String);
        CHECK(d.video_frames_sent == 60, "sent %llu", (unsigned long long)d.video_frames_sent);
        [p release];
        check_publish_sequence(r);
    }
}

static NSData *read_file(NSString *path) {
    NSData *d = [NSData dataWithContentsOfFile:path];
    CHECK(d != nil, "cannot read %s", path.UTF8String);
    return d;
}

/// Annex-B access unit → (AVCC with 4-byte lengths, parameter sets apart), as VideoToolbox gives.
static NSData *to_avcc(const uint8_t *au, size_t len, NSMutableArray *sets) {
    NSMutableData *out = [NSMutableData data];
    size_t i = 0, start = 0;
    BOOL in_nal = NO;
    while (i <= len) {
        BOOL sc3 = i + 3 <= len && au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1;
        BOOL end = i == len;
        if (sc3 || end) {
            if (in_nal) {
                size_t e = i;
                while (!end && e > start && au[e - 1] == 0) {
                    e--; // a 4-byte start code's leading zero
                }
                uint8_t type = au[start] & 0x1f;
                if (type == 7 || type == 8) {
                    [sets addObject:[NSData dataWithBytes:au + start length:e - start]];
                } else if (type != 9) { // VideoToolbox emits no access unit delimiters
                    uint8_t n[4] = {(uint8_t)((e - start) >> 24), (uint8_t)((e - start) >> 16), (uint8_t)((e - start) >> 8),
                                    (uint8_t)(e - start)};
                    [out appendBytes:n length:4];
                    [out appendBytes:au + start length:e - start];
                }
            }
            if (end) {
                break;
            }
            i += 3;
            start = i;
            in_nal = YES;
            continue;
        }
        i++;
    }
    return out;
}

static void avcc_to(NSString *url, NSString *media) {
    @autoreleasepool {
        NSData *framed = read_file([media stringByAppendingPathComponent:@"aus.bin"]);
        NSData *adts = read_file([media stringByAppendingPathComponent:@"audio.aac"]);
        if (!framed || !adts) {
            return;
        }
        KPLivePusherConfiguration *c = [[[KPLivePusherConfiguration alloc] init] autorelease];
        NSError *e = nil;
        CHECK([c setURL:url error:&e] && [c setVideoWidth:W height:H fps:30 bitrateKbps:0 keyframeInterval:0 error:&e] &&
                  [c setVideoSource:KPVideoSourcePassthrough error:&e] &&
                  [c setAudioSampleRate:RATE channels:CHANNELS bitrateKbps:0 error:&e] &&
                  [c setAudioSource:KPAudioSourcePassthrough error:&e],
              "%s", e.description.UTF8String);
        Recorder *r = [[[Recorder alloc] init] autorelease];
        KPLivePusher *p = [[KPLivePusher alloc] initWithConfiguration:c delegate:r error:&e];
        CHECK(p != nil, "%s", e.description.UTF8String);
        if (!p) {
            return;
        }
        CHECK([p start:&e], "%s", e.description.UTF8String);
        [r await:KP_EVENT_PUBLISHING seconds:30];
        const uint8_t *fb = framed.bytes;
        const uint8_t *ab = adts.bytes;
        size_t fpos = 0, apos = 0;
        int64_t aac_frames = 0;
        int aus = 0;
        double start = now_s();
        while (fpos + 4 <= framed.length) {
            size_t n = ((size_t)fb[fpos] << 24) | ((size_t)fb[fpos + 1] << 16) | ((size_t)fb[fpos + 2] << 8) | fb[fpos + 3];
            fpos += 4;
            pace(start, video_pts(aus));
            NSMutableArray *sets = [NSMutableArray array];
            NSData *avcc = to_avcc(fb + fpos, n, sets);
            fpos += n;
            CHECK(RETRYING([p pushH264AVCC:avcc.bytes length:avcc.length nalLengthSize:4 parameterSets:sets
                                     ptsUs:video_pts(aus) dtsUs:video_pts(aus) error:&e]),
                  "AU %d: %s", aus, e.description.UTF8String);
            aus++;
            // AudioToolbox gives raw AAC packets: the ADTS headers (7 bytes, no CRC) come off.
            while (apos + 7 <= adts.length && audio_pts(aac_frames * 1024) < video_pts(aus)) {
                size_t len = ((size_t)(ab[apos + 3] & 3) << 11) | ((size_t)ab[apos + 4] << 3) | (ab[apos + 5] >> 5);
                CHECK(RETRYING([p pushAAC:ab + apos + 7 length:len - 7 ptsUs:audio_pts(aac_frames * 1024) error:&e]), "%s",
                      e.description.UTF8String);
                apos += len;
                aac_frames++;
            }
        }
        CHECK(aus == 90, "%d access units", aus);
        CHECK([p stopWithTimeout:10000 error:&e], "%s", e.description.UTF8String);
        // STOPPED is delivered on the callback thread after stop returns, and releasing the
        // pusher first would drop it (its delegate gets nothing once it is going).
        [r await:KP_EVENT_STOPPED seconds:30];
        kp_stats s;
        CHECK([p getStatistics:&s error:&e], "%s", e.description.UTF8String);
        CHECK(s.video_frames_sent == 90, "sent %llu", (unsigned long long)s.video_frames_sent);
        CHECK(s.audio_frames_sent == (uint64_t)aac_frames, "aac sent %llu of %lld", (unsigned long long)s.audio_frames_sent,
              (long long)aac_frames);
        [p release];
        check_publish_sequence(r);
    }
}

static void bad_arguments(void) {
    @autoreleasepool {
        CHECK([KPLivePusher version].length >= 5, "version");
        KPLivePusherConfiguration *c = [[[KPLivePusherConfiguration alloc] init] autorelease];
        CHECK_ERROR([c setURL:nil error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([c setVideoSource:(KPVideoSource)42 error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK(![c setURL:nil error:NULL], "a NULL error pointer is allowed");
        CHECK([c setURL:@"http://not-rtmp/x" error:NULL], "set");
        CHECK_ERROR([[KPLivePusher alloc] initWithConfiguration:c delegate:nil error:&err_] != nil, KP_ERR_INVALID_URL);
        KPLivePusherConfiguration *odd = raw_config(@"rtmp://127.0.0.1:1/live/odd");
        CHECK([odd setVideoWidth:321 height:240 fps:30 bitrateKbps:0 keyframeInterval:0 error:NULL], "set");
        CHECK_ERROR([[KPLivePusher alloc] initWithConfiguration:odd delegate:nil error:&err_] != nil, KP_ERR_BAD_DIMENSIONS);

        Recorder *r = [[[Recorder alloc] init] autorelease];
        KPLivePusher *p = [[KPLivePusher alloc] initWithConfiguration:raw_config(@"rtmp://127.0.0.1:1/live/bad") delegate:r
                                                                error:NULL];
        CHECK(p != nil, "create");
        uint8_t *frame = calloc(1, W * H * 3 / 2);
        const uint8_t *planes[3] = {frame, frame + W * H, frame + W * H * 5 / 4};
        uint32_t strides[3] = {W, W / 2, W / 2};
        size_t sizes[3] = {W * H, W * H / 4, W * H / 4};
        size_t small[3] = {W * H, W * H / 4 - 1, W * H / 4};
        CHECK_ERROR([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes strides:strides
                                planeSizes:sizes ptsUs:0 error:&err_],
                    KP_ERR_NOT_STARTED);
        CHECK([p start:NULL], "start");
        CHECK_ERROR([p start:&err_], KP_ERR_INVALID_STATE);
        CHECK([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes strides:strides
                          planeSizes:sizes ptsUs:0 error:NULL],
              "push");
        CHECK_ERROR([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes strides:strides
                                planeSizes:sizes ptsUs:0 error:&err_],
                    KP_ERR_NON_MONOTONIC_TIMESTAMP);
        CHECK_ERROR([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes strides:strides
                                planeSizes:small ptsUs:40000 error:&err_],
                    KP_ERR_BAD_FRAME_SIZE);
        CHECK_ERROR([p pushVideoWithFormat:KPPixelFormatI420 width:W - 2 height:H planeCount:3 planes:planes strides:strides
                                planeSizes:sizes ptsUs:40000 error:&err_],
                    KP_ERR_BAD_DIMENSIONS);
        {
            // A frame twice the configured size is scaled down by default; with scaling off it is refused.
            uint8_t *big = calloc(1, 4 * W * H * 3 / 2);
            const uint8_t *big_planes[3] = {big, big + 4 * W * H, big + 5 * W * H};
            uint32_t big_strides[3] = {2 * W, W, W};
            size_t big_sizes[3] = {4 * W * H, W * H, W * H};
            CHECK([p pushVideoWithFormat:KPPixelFormatI420 width:2 * W height:2 * H planeCount:3 planes:big_planes
                                 strides:big_strides planeSizes:big_sizes ptsUs:20000 error:NULL],
                  "a larger frame is scaled down");
            KPLivePusherConfiguration *off = raw_config(@"rtmp://127.0.0.1:1/live/no-scaling");
            CHECK_ERROR([off setVideoScaling:(KPVideoScaling)7 error:&err_], KP_ERR_INVALID_ARGUMENT);
            CHECK([off setVideoScaling:KPVideoScalingOff error:NULL], "scaling off");
            KPLivePusher *q = [[KPLivePusher alloc] initWithConfiguration:off delegate:nil error:NULL];
            CHECK(q != nil, "create");
            CHECK([q start:NULL], "start");
            CHECK_ERROR([q pushVideoWithFormat:KPPixelFormatI420 width:2 * W height:2 * H planeCount:3 planes:big_planes
                                       strides:big_strides planeSizes:big_sizes ptsUs:0 error:&err_],
                        KP_ERR_BAD_DIMENSIONS);
            [q close];
            [q release];
            free(big);
        }
        CHECK_ERROR([p pushVideoWithFormat:(KPPixelFormat)9 width:W height:H planeCount:3 planes:planes strides:strides
                                planeSizes:sizes ptsUs:40000 error:&err_],
                    KP_ERR_BAD_PIXEL_FORMAT);
        CHECK_ERROR([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:NULL strides:NULL
                                planeSizes:NULL ptsUs:40000 error:&err_],
                    KP_ERR_BAD_FRAME_SIZE);
        const uint8_t *null_planes[3] = {NULL, NULL, NULL};
        CHECK_ERROR([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:null_planes strides:strides
                                planeSizes:sizes ptsUs:40000 error:&err_],
                    KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([p pushPCM:NULL framesPerChannel:1024 ptsUs:0 error:&err_], KP_ERR_INVALID_ARGUMENT);
        const uint8_t idr[] = {0, 0, 0, 1, 0x65, 0x88};
        CHECK_ERROR([p pushH264AnnexB:idr length:sizeof idr ptsUs:0 dtsUs:0 error:&err_], KP_ERR_INVALID_STATE);
        CHECK_ERROR([p pushAAC:idr length:2 ptsUs:0 error:&err_], KP_ERR_INVALID_STATE);
        CHECK_ERROR([p pushOpus:idr length:2 ptsUs:0 error:&err_], KP_ERR_INVALID_STATE);
        {
            // Pre-encoded Opus (no server needed: pushes are taken while it connects): a 20 ms CELT
            // packet is queued; a code 1 packet of odd length breaks RFC 6716's R3.
            KPLivePusherConfiguration *oc = raw_config(@"rtmp://127.0.0.1:1/live/opus");
            CHECK([oc setAudioSource:KPAudioSourcePassthroughOpus error:NULL], "Opus source");
            KPLivePusher *q = [[KPLivePusher alloc] initWithConfiguration:oc delegate:nil error:NULL];
            CHECK(q != nil, "create");
            CHECK([q start:NULL], "start");
            const uint8_t celt[] = {0xf8, 1, 2, 3};
            CHECK([q pushOpus:celt length:sizeof celt ptsUs:0 error:NULL], "an Opus packet");
            const uint8_t odd[] = {0xf9, 1, 2, 3};
            CHECK_ERROR([q pushOpus:odd length:sizeof odd ptsUs:20000 error:&err_], KP_ERR_BAD_BITSTREAM);
            CHECK_ERROR([q pushAAC:idr length:2 ptsUs:20000 error:&err_], KP_ERR_INVALID_STATE);
            kp_stats st;
            CHECK([q getStatistics:&st error:NULL] && st.audio_frames_in == 1, "one Opus packet in");
            [q close];
            [q release];
        }
        // The AVCC conversion's own checks.
        const uint8_t overrun[] = {0, 0, 0, 9, 0x65, 0x88};
        CHECK_ERROR([p pushH264AVCC:overrun length:sizeof overrun nalLengthSize:4 parameterSets:nil ptsUs:0 dtsUs:0
                              error:&err_],
                    KP_ERR_BAD_BITSTREAM);
        CHECK_ERROR([p pushH264AVCC:overrun length:sizeof overrun nalLengthSize:3 parameterSets:nil ptsUs:0 dtsUs:0
                              error:&err_],
                    KP_ERR_BAD_BITSTREAM);
        const uint8_t fine[] = {0, 0, 0, 2, 0x65, 0x88};
        CHECK_ERROR([p pushH264AVCC:fine length:sizeof fine nalLengthSize:4 parameterSets:nil ptsUs:0 dtsUs:0 error:&err_],
                    KP_ERR_INVALID_STATE); // converted fine, then refused by the C ABI for this raw config
        kp_stats s;
        CHECK([p getStatistics:&s error:NULL], "stats");
        CHECK(s.video_frames_in == 2, "video in %llu (the first frame and the scaled-down one)", (unsigned long long)s.video_frames_in);
        kp_stats *volatile none = NULL; // Swift cannot pass NULL; C callers can, and get the C ABI's answer
        CHECK_ERROR([p getStatistics:none error:&err_], KP_ERR_INVALID_ARGUMENT);
        KPLivePusherEvent *ev = [r await:KP_EVENT_RECONNECTING seconds:30];
        CHECK(ev.code == KP_ERR_CONNECT, "reconnecting code %d", (int)ev.code);
        [p close];
        [p close];
        CHECK_ERROR([p start:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([p getStatistics:&s error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK(p.state == KP_STATE_FAILED, "state after close %d", (int)p.state);
        [p release];
        free(frame);
    }
}

// MARK: - close from another thread

struct pusher_thread {
    KPLivePusher *pusher;
    int ok;
    int end_code;
    int done;
};

static void *push_until_closed(void *arg) {
    struct pusher_thread *t = arg;
    uint8_t *frame = malloc(W * H * 3 / 2);
    for (int i = 0;; i++) {
        @autoreleasepool {
            i420(i, frame);
            const uint8_t *planes[3] = {frame, frame + W * H, frame + W * H * 5 / 4};
            uint32_t strides[3] = {W, W / 2, W / 2};
            size_t sizes[3] = {W * H, W * H / 4, W * H / 4};
            NSError *e = nil;
            if ([t->pusher pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes strides:strides
                                    planeSizes:sizes ptsUs:video_pts(i) error:&e]) {
                __atomic_add_fetch(&t->ok, 1, __ATOMIC_SEQ_CST);
            } else if (e.code != KP_ERR_QUEUE_FULL) {
                t->end_code = (int)e.code;
                break;
            }
        }
    }
    free(frame);
    __atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void close_while_pushing(NSString *base) {
    for (int round = 0; round < 3; round++) {
        @autoreleasepool {
            Recorder *r = [[[Recorder alloc] init] autorelease];
            NSString *url = [NSString stringWithFormat:@"%@-%d", base, round];
            KPLivePusher *p = [[KPLivePusher alloc] initWithConfiguration:raw_config(url) delegate:r error:NULL];
            CHECK(p && [p start:NULL], "start");
            [r await:KP_EVENT_PUBLISHING seconds:30];
            struct pusher_thread t = {p, 0, 0, 0};
            pthread_t th;
            pthread_create(&th, NULL, push_until_closed, &t);
            double deadline = now_s() + 30;
            while (__atomic_load_n(&t.ok, __ATOMIC_SEQ_CST) < 30 && now_s() < deadline) {
                usleep(5000);
            }
            [p close];
            NSUInteger at_close = [r snapshot].count;
            pthread_join(th, NULL);
            CHECK(t.end_code == KP_ERR_INVALID_ARGUMENT, "round %d: pushing ended with %d", round, t.end_code);
            CHECK([r snapshot].count == at_close, "an event after close returned");
            [p release];
        }
    }
}

// MARK: - newer calls

/// 1 s of frames, 2.5 s paused (audio goes on, video refused with KP_ERR_PAUSED), 1 s again, with
/// the statistics delegate every 200 ms.
static void pause_resume_with_stats(NSString *url) {
    @autoreleasepool {
        StatsRecorder *r = [[[StatsRecorder alloc] init] autorelease];
        KPLivePusherConfiguration *c = raw_config(url);
        NSError *e = nil;
        CHECK([c setPauseFps:10 error:&e] && [c setStatisticsIntervalMs:200 error:&e], "%s", e.description.UTF8String);
        KPLivePusher *p = [[KPLivePusher alloc] initWithConfiguration:c delegate:r error:&e];
        CHECK(p != nil, "%s", e.description.UTF8String);
        if (!p) {
            return;
        }
        uint8_t *frame = malloc(W * H * 3 / 2);
        const uint8_t *planes[3] = {frame, frame + W * H, frame + W * H * 5 / 4};
        uint32_t strides[3] = {W, W / 2, W / 2};
        size_t sizes[3] = {W * H, W * H / 4, W * H / 4};
        i420(500, frame);
        CHECK([p setPauseImageWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes strides:strides
                              planeSizes:sizes error:&e],
              "%s", e.description.UTF8String);
        CHECK([p start:&e], "%s", e.description.UTF8String);
        [r await:KP_EVENT_PUBLISHING seconds:30];
        int16_t samples[1024 * CHANNELS];
        int64_t audio = 0;
        BOOL paused = NO, resumed = NO;
        double start = now_s();
        for (int i = 0; video_pts(i) < 4500000; i++) {
            @autoreleasepool {
                int64_t pts = video_pts(i);
                pace(start, pts);
                if (!paused && pts >= 1000000) {
                    CHECK([p pauseWithMode:KPPauseModeStillImage error:&e], "%s", e.description.UTF8String);
                    paused = YES;
                }
                if (!resumed && pts >= 3500000) {
                    CHECK([p resumeWithError:&e], "%s", e.description.UTF8String);
                    resumed = YES;
                }
                i420(i, frame);
                if (paused && !resumed) {
                    CHECK_ERROR([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes
                                               strides:strides planeSizes:sizes ptsUs:pts error:&err_],
                                KP_ERR_PAUSED);
                } else {
                    CHECK(RETRYING([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes
                                                  strides:strides planeSizes:sizes ptsUs:pts error:&e]),
                          "push video %d: %s", i, e.description.UTF8String);
                }
                while (audio_pts(audio) < video_pts(i + 1)) {
                    pcm(audio, 1024, samples);
                    CHECK(RETRYING([p pushPCM:samples framesPerChannel:1024 ptsUs:audio_pts(audio) error:&e]), "%s",
                          e.description.UTF8String);
                    audio += 1024;
                }
            }
        }
        KPLivePusherEvent *res = [r await:KP_EVENT_RESUMED seconds:30];
        CHECK(res.value >= 2000, "pause lasted %lld ms", (long long)res.value);
        KPLivePusherEvent *pau = [r await:KP_EVENT_PAUSED seconds:30];
        CHECK(pau.value == KP_PAUSE_STILL_IMAGE, "pause mode %lld", (long long)pau.value);
        CHECK(index_of(r, KP_EVENT_PAUSED) < index_of(r, KP_EVENT_RESUMED), "PAUSED after RESUMED: %s",
              [r snapshot].description.UTF8String);
        // -close delivers the events still queued before it returns (the header's promise): with
        // statistics every 200 ms taking 300 ms each, the callback thread never catches up, so
        // STOPPED is still queued behind them when stop returns and -close is called.
        [r->cond lock];
        r->slowUs = 300000;
        int seen = r->stats;
        while (r->stats == seen && [r->cond waitUntilDate:[NSDate dateWithTimeIntervalSinceNow:30]]) {
        }
        [r->cond unlock];
        CHECK([p stopWithTimeout:10000 error:&e], "%s", e.description.UTF8String);
        kp_stats s;
        CHECK([p getStatistics:&s error:&e], "%s", e.description.UTF8String);
        CHECK(s.video_frames_sent >= 70, "video sent %llu", (unsigned long long)s.video_frames_sent);
        CHECK(s.fps_divisor == 1, "fps divisor %u", s.fps_divisor);
        [p close];
        NSArray *closed = [r snapshot];
        CHECK([(KPLivePusherEvent *)[closed lastObject] kind] == KP_EVENT_STOPPED, "STOPPED not delivered by -close: %s",
              closed.description.UTF8String);
        [p release];
        [r->cond lock];
        CHECK(r->stats >= 10, "%d statistics calls", r->stats);
        CHECK(r->publishing >= 8, "PUBLISHING in %d of %d", r->publishing, r->stats);
        CHECK(r->regressions == 0, "bytes or uptime went back %d times", r->regressions);
        CHECK(r->lastBytes > r->firstBytes, "bytes did not grow: %llu -> %llu", (unsigned long long)r->firstBytes,
              (unsigned long long)r->lastBytes);
        CHECK(r->lastTarget > 0, "no video target");
        CHECK(r->statsOnOtherThread == 0, "statistics on %d calls off the events' thread", r->statsOnOtherThread);
        [r->cond unlock];
        free(frame);
    }
}

/// Bitrate, keyframe and mute while pushing 90 frames, with a local recording of part of it.
static void controls_and_recording(NSString *url, NSString *path) {
    @autoreleasepool {
        Recorder *r = [[[Recorder alloc] init] autorelease];
        NSError *e = nil;
        KPLivePusher *p = [[KPLivePusher alloc] initWithConfiguration:raw_config(url) delegate:r error:&e];
        CHECK(p != nil, "%s", e.description.UTF8String);
        if (!p) {
            return;
        }
        CHECK([p setVideoBitrateKbps:400 error:&e], "%s", e.description.UTF8String); // allowed before start
        CHECK([p start:&e], "%s", e.description.UTF8String);
        [r await:KP_EVENT_PUBLISHING seconds:30];
        CHECK([p startRecordingToPath:path error:&e], "%s", e.description.UTF8String);
        CHECK_ERROR([p startRecordingToPath:[path stringByAppendingString:@".second"] error:&err_], KP_ERR_INVALID_STATE);
        uint8_t *frame = malloc(W * H * 3 / 2);
        const uint8_t *planes[3] = {frame, frame + W * H, frame + W * H * 5 / 4};
        uint32_t strides[3] = {W, W / 2, W / 2};
        size_t sizes[3] = {W * H, W * H / 4, W * H / 4};
        int16_t samples[1024 * CHANNELS];
        int64_t audio = 0;
        double start = now_s();
        for (int i = 0; i < 90; i++) {
            @autoreleasepool {
                pace(start, video_pts(i));
                if (i == 20) {
                    CHECK([p setVideoBitrateKbps:300 error:&e], "%s", e.description.UTF8String);
                    CHECK_ERROR([p setVideoBitrateKbps:0 error:&err_], KP_ERR_INVALID_ARGUMENT);
                    CHECK_ERROR([p setVideoBitrateKbps:200001 error:&err_], KP_ERR_INVALID_ARGUMENT);
                }
                if (i == 30) {
                    CHECK([p requestKeyframeWithError:&e], "%s", e.description.UTF8String);
                }
                if (i == 40 || i == 60) {
                    CHECK([p setAudioMuted:i == 40 error:&e], "%s", e.description.UTF8String);
                }
                if (i == 50) {
                    // Rides on this frame as an SEI; tests/ios.rs finds it in nginx's recording.
                    NSData *m = [@"objc-msg 1" dataUsingEncoding:NSUTF8StringEncoding];
                    CHECK([p sendMessage:m error:&e], "%s", e.description.UTF8String);
                    CHECK_ERROR([p sendMessage:[NSMutableData dataWithLength:4097] error:&err_], KP_ERR_INVALID_ARGUMENT);
                    CHECK_ERROR([p sendMessage:nil error:&err_], KP_ERR_INVALID_ARGUMENT);
                    CHECK_ERROR([p sendMessage:m flags:0x40 error:&err_], KP_ERR_INVALID_ARGUMENT);
                }
                i420(i, frame);
                CHECK(RETRYING([p pushVideoWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes
                                              strides:strides planeSizes:sizes ptsUs:video_pts(i) error:&e]),
                      "push video %d: %s", i, e.description.UTF8String);
                while (audio_pts(audio) < video_pts(i + 1)) {
                    pcm(audio, 1024, samples);
                    CHECK(RETRYING([p pushPCM:samples framesPerChannel:1024 ptsUs:audio_pts(audio) error:&e]), "%s",
                          e.description.UTF8String);
                    audio += 1024;
                }
            }
        }
        KPLivePusherEvent *started = [r await:KP_EVENT_RECORDING_STARTED seconds:30];
        CHECK([started.message isEqualToString:path], "recording started: %s", started.description.UTF8String);
        CHECK([p stopRecordingWithError:&e], "%s", e.description.UTF8String);
        KPLivePusherEvent *stopped = [r await:KP_EVENT_RECORDING_STOPPED seconds:30];
        CHECK(stopped.value > 0 && stopped.value2 > 0, "recorded %s", stopped.description.UTF8String);
        CHECK_ERROR([p stopRecordingWithError:&err_], KP_ERR_INVALID_STATE);
        CHECK_ERROR([p resumeWithError:&err_], KP_ERR_INVALID_STATE); // not paused
        CHECK([p stopWithTimeout:10000 error:&e], "%s", e.description.UTF8String);
        kp_stats s;
        CHECK([p getStatistics:&s error:&e], "%s", e.description.UTF8String);
        CHECK(s.video_frames_sent == 90, "sent %llu", (unsigned long long)s.video_frames_sent);
        CHECK(s.frames_rejected == 0, "rejected %llu", (unsigned long long)s.frames_rejected);
        CHECK(s.messages_accepted == 1 && s.messages_sent == 1 && s.messages_dropped == 0, "messages %llu/%llu/%llu",
              (unsigned long long)s.messages_accepted, (unsigned long long)s.messages_sent,
              (unsigned long long)s.messages_dropped);
        CHECK_ERROR([p sendMessage:[NSData dataWithBytes:"x" length:1] error:&err_], KP_ERR_NOT_STARTED);
        CHECK_ERROR([p requestKeyframeWithError:&err_], KP_ERR_NOT_STARTED);
        CHECK_ERROR([p networkDidChangeWithError:&err_], KP_ERR_NOT_STARTED);
        CHECK(index_of(r, KP_EVENT_RECORDING_FAILED) == NSNotFound, "recording failed: %s", [r snapshot].description.UTF8String);
        [p release];
        free(frame);
    }
}

static void newer_bad_arguments(void) {
    @autoreleasepool {
        NSString *nowhere = @"rtmp://127.0.0.1:1/live/newer";
        KPLivePusherConfiguration *c = raw_config(nowhere);
        CHECK_ERROR([c setStatisticsIntervalMs:50 error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([c setMessageUUID:[NSData dataWithBytes:"abc" length:3] error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([c setCaptureTimestamps:9 error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK([c setMessageUUID:[NSData dataWithBytes:"0123456789abcdef" length:16] error:NULL], "set");
        CHECK([c setMessageUUID:nil error:NULL], "set");
        CHECK([c setMessageAmfName:@"onCue" error:NULL], "set");
        CHECK([c setCaptureTimestamps:KP_CAPTURE_TIMESTAMPS_KEYFRAMES error:NULL], "set");
        CHECK([c setLatencyBudgetMs:50 error:NULL], "set"); // checked by kp_pusher_new
        CHECK_ERROR([[KPLivePusher alloc] initWithConfiguration:c delegate:nil error:&err_] != nil, KP_ERR_INVALID_ARGUMENT);
        c = raw_config(nowhere);
        CHECK([c setAdaptiveBitrateEnabled:YES minKbps:500 maxKbps:100 allowFpsReduction:NO error:NULL], "set");
        CHECK_ERROR([[KPLivePusher alloc] initWithConfiguration:c delegate:nil error:&err_] != nil, KP_ERR_INVALID_ARGUMENT);
        c = raw_config(nowhere);
        CHECK_ERROR([c addCAPEM:[@"not a certificate" dataUsingEncoding:NSASCIIStringEncoding] error:&err_],
                    KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([c addCAPEM:nil error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([c setTLSPlatformRootsEnabled:YES error:&err_], KP_ERR_UNSUPPORTED); // no native-roots feature
        CHECK([c setTLSPlatformRootsEnabled:NO error:NULL] && [c setTLSDangerAcceptInvalidCerts:YES error:NULL], "tls");
        CHECK([c setX264Preset:@"slow" tune:nil profile:@"main" error:NULL] &&
                  [c setX264VbvMaxrateKbps:0 bufsizeKbit:0 error:NULL] &&
                  [c setX264Threading:KPX264ThreadingSliced error:NULL] && [c setX264Bframes:2 error:NULL],
              "x264 settings");
        CHECK_ERROR([c setX264Threading:(KPX264Threading)9 error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK([c setSrtLatencyMs:200 passphrase:@"long-enough-secret" pbkeylen:32 error:NULL] &&
                  [c setSrtStreamIdPreset:KPSrtStreamIdPresetMediaMtx resource:@"cam1" error:NULL],
              "srt settings");
        CHECK_ERROR([c setSrtStreamIdPreset:(KPSrtStreamIdPreset)9 resource:@"x" error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK([c setRefusedRetryEnabled:YES intervalMs:100 windowMs:2000 error:NULL], "refused retry");
        CHECK([c setPauseFps:61 error:NULL], "set");
        CHECK_ERROR([[KPLivePusher alloc] initWithConfiguration:c delegate:nil error:&err_] != nil, KP_ERR_INVALID_ARGUMENT);
        c = raw_config(nowhere);
        CHECK([c setEncodeLadderEnabled:YES lowestHeight:0 lowestFps:0 error:NULL] &&
                  [c addEncodeRungWidth:W height:H fps:15 complexity:KP_ENCODE_COMPLEXITY_LOW error:NULL],
              "encode ladder");
        CHECK_ERROR([c addEncodeRungWidth:W height:H fps:15 complexity:7 error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK([c addEncodeRungWidth:W * 4 height:H fps:15 complexity:KP_ENCODE_COMPLEXITY_LOW error:NULL], "set");
        CHECK_ERROR([[KPLivePusher alloc] initWithConfiguration:c delegate:nil error:&err_] != nil, KP_ERR_INVALID_ARGUMENT);
        c = raw_config(nowhere);
        CHECK([c setSrtLatencyMs:120 passphrase:@"short" pbkeylen:0 error:NULL], "set");
        CHECK_ERROR([[KPLivePusher alloc] initWithConfiguration:c delegate:nil error:&err_] != nil, KP_ERR_INVALID_ARGUMENT);
        c = raw_config(nowhere);
        NSError *e = nil;
        CHECK([c setLatencyBudgetMs:1000 error:&e] &&
                  [c setAdaptiveBitrateEnabled:YES minKbps:200 maxKbps:800 allowFpsReduction:YES error:&e] &&
                  [c setAlertNetBusyCongestion:0.6f netBusyMs:2000 lowFpsRatio:0.4f lowFpsMs:2000 encoderOverloadMs:2000
                                         error:&e] &&
                  [c setStatisticsIntervalMs:0 error:&e],
              "%s", e.description.UTF8String);
        KPLivePusher *ok = [[KPLivePusher alloc] initWithConfiguration:c delegate:nil error:&e];
        CHECK(ok != nil, "%s", e.description.UTF8String);
        [ok release];

        // Pre-encoded HEVC without audio; nothing listens on port 1.
        KPLivePusherConfiguration *hevc = [[[KPLivePusherConfiguration alloc] init] autorelease];
        CHECK([hevc setURL:nowhere error:&e] && [hevc setVideoWidth:W height:H fps:30 bitrateKbps:0 keyframeInterval:0 error:&e] &&
                  [hevc setVideoSource:KPVideoSourcePassthroughHEVC error:&e] && [hevc disableAudio:&e],
              "%s", e.description.UTF8String);
        KPLivePusher *p = [[KPLivePusher alloc] initWithConfiguration:hevc delegate:nil error:&e];
        CHECK(p != nil, "%s", e.description.UTF8String);
        if (!p) {
            return;
        }
        const uint8_t garbage[] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
        CHECK_ERROR([p pauseWithMode:KPPauseModeAudioOnly error:&err_], KP_ERR_NOT_STARTED);
        CHECK([p start:&e], "%s", e.description.UTF8String);
        CHECK_ERROR([p pushHEVCAnnexB:garbage length:sizeof garbage ptsUs:0 dtsUs:0 error:&err_], KP_ERR_BAD_BITSTREAM);
        CHECK_ERROR([p pushHEVCAnnexB:NULL length:4 ptsUs:0 dtsUs:0 error:&err_], KP_ERR_INVALID_ARGUMENT);
        const uint8_t idr[] = {0, 0, 0, 1, 0x65, 0x88};
        CHECK_ERROR([p pushH264AnnexB:idr length:sizeof idr ptsUs:0 dtsUs:0 error:&err_], KP_ERR_INVALID_STATE);
        CHECK_ERROR([p pauseWithMode:KPPauseModeStillImage error:&err_], KP_ERR_UNSUPPORTED);
        CHECK_ERROR([p pauseWithMode:(KPPauseMode)7 error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([p setVideoBitrateKbps:500 error:&err_], KP_ERR_INVALID_STATE);
        CHECK_ERROR([p setAudioMuted:YES error:&err_], KP_ERR_INVALID_STATE);
        CHECK_ERROR([p startRecordingToPath:@"/nonexistent-kitepush-dir/x.flv" error:&err_], KP_ERR_FILE);
        CHECK_ERROR([p startRecordingToPath:nil error:&err_], KP_ERR_INVALID_ARGUMENT);
        [p close];
        CHECK_ERROR([p pauseWithMode:KPPauseModeAudioOnly error:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([p resumeWithError:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([p requestKeyframeWithError:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([p networkDidChangeWithError:&err_], KP_ERR_INVALID_ARGUMENT);
        CHECK_ERROR([p stopRecordingWithError:&err_], KP_ERR_INVALID_ARGUMENT);
        [p release];

        // The pause picture is checked like a pushed frame; the modes switch while paused.
        KPLivePusher *raw = [[KPLivePusher alloc] initWithConfiguration:raw_config(nowhere) delegate:nil error:&e];
        CHECK(raw != nil, "%s", e.description.UTF8String);
        uint8_t *frame = calloc(1, W * H * 3 / 2);
        const uint8_t *planes[3] = {frame, frame + W * H, frame + W * H * 5 / 4};
        uint32_t strides[3] = {W, W / 2, W / 2};
        size_t sizes[3] = {W * H, W * H / 4, W * H / 4};
        CHECK_ERROR([raw setPauseImageWithFormat:KPPixelFormatI420 width:W - 2 height:H planeCount:3 planes:planes
                                         strides:strides planeSizes:sizes error:&err_],
                    KP_ERR_BAD_DIMENSIONS);
        CHECK_ERROR([raw setPauseImageWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:NULL strides:NULL
                                      planeSizes:NULL error:&err_],
                    KP_ERR_BAD_FRAME_SIZE);
        CHECK([raw setPauseImageWithFormat:KPPixelFormatI420 width:W height:H planeCount:3 planes:planes strides:strides
                                planeSizes:sizes error:&e],
              "%s", e.description.UTF8String);
        CHECK([raw start:&e], "%s", e.description.UTF8String);
        CHECK([raw pauseWithMode:KPPauseModeStillImageSilent error:&e], "%s", e.description.UTF8String);
        CHECK([raw pauseWithMode:KPPauseModeAudioOnly error:&e], "%s", e.description.UTF8String);
        CHECK([raw resumeWithError:&e], "%s", e.description.UTF8String);
        [raw release];
        free(frame);
    }
}

int main(int argc, char **argv) {
    if (argc != 11) {
        fprintf(stderr,
                "usage: %s RECEIVER_URL NGINX_RAW_URL NGINX_AVCC_URL NGINX_CLOSE_URL MEDIA_DIR NGINX_PAUSE_URL "
                "NGINX_CONTROLS_URL RECORDING_PATH WHIP_URL WHIP_TOKEN\n",
                argv[0]);
        return 2;
    }
    @autoreleasepool {
        bad_arguments();
        raw_to([NSString stringWithUTF8String:argv[1]], 60, NO);
        raw_to([NSString stringWithUTF8String:argv[2]], 90, YES);
        avcc_to([NSString stringWithUTF8String:argv[3]], [NSString stringWithUTF8String:argv[5]]);
        close_while_pushing([NSString stringWithUTF8String:argv[4]]);
        newer_bad_arguments();
        pause_resume_with_stats([NSString stringWithUTF8String:argv[6]]);
        controls_and_recording([NSString stringWithUTF8String:argv[7]], [NSString stringWithUTF8String:argv[8]]);
        whip_to([NSString stringWithUTF8String:argv[9]], [NSString stringWithUTF8String:argv[10]]);
    }
    printf("objc checks: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
