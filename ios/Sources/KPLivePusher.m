// See KPLivePusher.h. Each method is one kp_* call; the only code of its own is the mapping of
// VideoToolbox's length-prefixed H.264 to the Annex-B form the C ABI takes (pushH264AVCC), and the
// plumbing that keeps the native pusher alive while calls and callbacks use it.

#import "KPLivePusher.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if __has_feature(objc_arc)
#define KP_RELEASE(x) ((void)0)
#define KP_SUPER_DEALLOC() ((void)0)
#define KP_AUTORELEASE(x) (x)
#else
#define KP_RELEASE(x) [(x) release]
#define KP_SUPER_DEALLOC() [super dealloc]
#define KP_AUTORELEASE(x) [(x) autorelease]
#endif

NSString *const KPLivePusherErrorDomain = @"dev.kitepush.LivePusher";

static NSString *KPString(const char *s) {
    NSString *str = s ? [NSString stringWithUTF8String:s] : nil;
    return str ? str : @"";
}

static NSError *KPErrorWithReason(kp_result code, NSString *reason) {
    NSDictionary *info = @{
        NSLocalizedDescriptionKey : KPString(kp_result_str(code)),
        NSLocalizedFailureReasonErrorKey : reason,
    };
    return [NSError errorWithDomain:KPLivePusherErrorDomain code:code userInfo:info];
}

/// YES for KP_OK; otherwise fills *error (when given) from the calling thread's last error.
static BOOL KPCheck(kp_result result, NSError **error) {
    if (result == KP_OK) {
        return YES;
    }
    if (error) {
        *error = KPErrorWithReason(result, KPString(kp_last_error_message()));
    }
    return NO;
}

// MARK: - Configuration

@interface KPLivePusherConfiguration ()
- (kp_config *)kp_config;
- (int64_t)statisticsIntervalMs;
@end

@implementation KPLivePusherConfiguration

- (instancetype)init {
    self = [super init];
    if (self) {
        _config = kp_config_new();
        _statisticsIntervalMs = -1;
        if (!_config) {
            KP_RELEASE(self);
            return nil;
        }
    }
    return self;
}

- (void)dealloc {
    kp_config_free(_config);
    KP_SUPER_DEALLOC();
}

- (kp_config *)kp_config {
    return _config;
}

- (int64_t)statisticsIntervalMs {
    return _statisticsIntervalMs;
}

- (BOOL)setURL:(NSString *)url error:(NSError **)error {
    return KPCheck(kp_config_set_url(_config, url.UTF8String), error);
}

- (BOOL)addBackupURL:(NSString *)url error:(NSError **)error {
    return KPCheck(kp_config_add_backup_url(_config, url.UTF8String), error);
}

- (BOOL)addDestinationURL:(NSString *)url index:(uint32_t *)index error:(NSError **)error {
    uint32_t i = 0;
    if (!KPCheck(kp_config_add_destination(_config, url.UTF8String, &i), error)) {
        return NO;
    }
    if (index) {
        *index = i;
    }
    return YES;
}

- (BOOL)addBackupURL:(NSString *)url forDestination:(uint32_t)destination error:(NSError **)error {
    return KPCheck(kp_config_add_destination_backup_url(_config, destination, url.UTF8String), error);
}

- (BOOL)setVideoWidth:(uint32_t)width
               height:(uint32_t)height
                  fps:(double)fps
          bitrateKbps:(uint32_t)bitrateKbps
     keyframeInterval:(uint32_t)keyframeInterval
                error:(NSError **)error {
    return KPCheck(kp_config_set_video(_config, width, height, fps, bitrateKbps, keyframeInterval), error);
}

- (BOOL)setVideoSource:(KPVideoSource)source error:(NSError **)error {
    return KPCheck(kp_config_set_video_encoder(_config, (kp_video_encoder)source), error);
}

- (BOOL)setVideoThreads:(uint32_t)threads error:(NSError **)error {
    return KPCheck(kp_config_set_video_threads(_config, threads), error);
}

- (BOOL)disableVideo:(NSError **)error {
    return KPCheck(kp_config_disable_video(_config), error);
}

- (BOOL)setAudioSampleRate:(uint32_t)sampleRate
                  channels:(uint32_t)channels
               bitrateKbps:(uint32_t)bitrateKbps
                     error:(NSError **)error {
    return KPCheck(kp_config_set_audio(_config, sampleRate, channels, bitrateKbps), error);
}

- (BOOL)setAudioSource:(KPAudioSource)source error:(NSError **)error {
    return KPCheck(kp_config_set_audio_encoder(_config, (kp_audio_encoder)source), error);
}

- (BOOL)disableAudio:(NSError **)error {
    return KPCheck(kp_config_disable_audio(_config), error);
}

- (BOOL)setConnectTimeoutMs:(uint32_t)connectMs stallTimeoutMs:(uint32_t)stallMs error:(NSError **)error {
    return KPCheck(kp_config_set_timeouts(_config, connectMs, stallMs), error);
}

- (BOOL)setReconnectFirstDelayMs:(uint32_t)firstDelayMs
                      multiplier:(double)multiplier
                      maxDelayMs:(uint32_t)maxDelayMs
                     maxAttempts:(uint32_t)maxAttempts
                   failoverAfter:(uint32_t)failoverAfter
                           error:(NSError **)error {
    return KPCheck(kp_config_set_reconnect(_config, firstDelayMs, multiplier, maxDelayMs, maxAttempts, failoverAfter),
                   error);
}

- (BOOL)setRefusedRetryEnabled:(BOOL)enabled intervalMs:(uint32_t)intervalMs windowMs:(uint32_t)windowMs error:(NSError **)error {
    return KPCheck(kp_config_set_refused_retry(_config, enabled ? true : false, intervalMs, windowMs), error);
}

- (BOOL)setPrimaryRetryIntervalMs:(uint32_t)intervalMs error:(NSError **)error {
    return KPCheck(kp_config_set_primary_retry_interval(_config, intervalMs), error);
}

- (BOOL)setVideoScaling:(KPVideoScaling)mode error:(NSError **)error {
    return KPCheck(kp_config_set_video_scaling(_config, (kp_video_scaling)mode), error);
}

- (BOOL)setPauseFps:(double)fps error:(NSError **)error {
    return KPCheck(kp_config_set_pause_fps(_config, fps), error);
}

- (BOOL)setLatencyBudgetMs:(uint32_t)budgetMs error:(NSError **)error {
    return KPCheck(kp_config_set_latency_budget(_config, budgetMs), error);
}

- (BOOL)setAdaptiveBitrateEnabled:(BOOL)enabled
                          minKbps:(uint32_t)minKbps
                          maxKbps:(uint32_t)maxKbps
                allowFpsReduction:(BOOL)allowFpsReduction
                            error:(NSError **)error {
    return KPCheck(kp_config_set_abr(_config, enabled ? true : false, minKbps, maxKbps, allowFpsReduction ? true : false),
                   error);
}

- (BOOL)setEncodeLadderEnabled:(BOOL)enabled
                  lowestHeight:(uint32_t)lowestHeight
                     lowestFps:(float)lowestFps
                         error:(NSError **)error {
    return KPCheck(kp_config_set_encode_ladder(_config, enabled ? true : false, lowestHeight, lowestFps), error);
}

- (BOOL)addEncodeRungWidth:(uint32_t)width
                    height:(uint32_t)height
                       fps:(float)fps
                complexity:(kp_encode_complexity)complexity
                     error:(NSError **)error {
    return KPCheck(kp_config_add_encode_rung(_config, width, height, fps, complexity), error);
}

- (BOOL)setAlertNetBusyCongestion:(float)netBusyCongestion
                        netBusyMs:(uint32_t)netBusyMs
                      lowFpsRatio:(float)lowFpsRatio
                         lowFpsMs:(uint32_t)lowFpsMs
                encoderOverloadMs:(uint32_t)encoderOverloadMs
                            error:(NSError **)error {
    return KPCheck(kp_config_set_alert_thresholds(_config, netBusyCongestion, netBusyMs, lowFpsRatio, lowFpsMs,
                                                  encoderOverloadMs),
                   error);
}

- (BOOL)setSrtLatencyMs:(uint32_t)latencyMs
             passphrase:(NSString *)passphrase
               pbkeylen:(uint32_t)pbkeylen
                  error:(NSError **)error {
    return KPCheck(kp_config_set_srt(_config, latencyMs, passphrase.UTF8String, pbkeylen), error);
}

- (BOOL)setMessageUUID:(NSData *)uuid error:(NSError **)error {
    if (uuid != nil && uuid.length != 16) {
        // The C call reads 16 bytes: a shorter buffer must not reach it.
        if (error) {
            *error = KPErrorWithReason(KP_ERR_INVALID_ARGUMENT,
                                       [NSString stringWithFormat:@"a message UUID has 16 bytes, not %lu",
                                                                  (unsigned long)uuid.length]);
        }
        return NO;
    }
    return KPCheck(kp_config_set_message_uuid(_config, (const uint8_t *)uuid.bytes), error);
}

- (BOOL)setMessageAmfName:(NSString *)name error:(NSError **)error {
    return KPCheck(kp_config_set_message_amf_name(_config, name.UTF8String), error);
}

- (BOOL)setCaptureTimestamps:(kp_capture_timestamps)mode error:(NSError **)error {
    return KPCheck(kp_config_set_capture_timestamps(_config, mode), error);
}

- (BOOL)setSrtStreamIdPreset:(KPSrtStreamIdPreset)preset resource:(NSString *)resource error:(NSError **)error {
    return KPCheck(kp_config_set_srt_stream_id(_config, (kp_srt_stream_id_preset)preset, resource.UTF8String), error);
}

- (BOOL)setWhipBearerToken:(NSString *)token error:(NSError **)error {
    return KPCheck(kp_config_set_whip_bearer_token(_config, token.UTF8String), error);
}

- (BOOL)setX264Preset:(NSString *)preset tune:(NSString *)tune profile:(NSString *)profile error:(NSError **)error {
    return KPCheck(kp_config_set_x264_preset(_config, preset.UTF8String, tune.UTF8String, profile.UTF8String), error);
}

- (BOOL)setX264VbvMaxrateKbps:(uint32_t)maxrateKbps bufsizeKbit:(uint32_t)bufsizeKbit error:(NSError **)error {
    return KPCheck(kp_config_set_x264_vbv(_config, maxrateKbps, bufsizeKbit), error);
}

- (BOOL)setX264Threading:(KPX264Threading)threading error:(NSError **)error {
    return KPCheck(kp_config_set_x264_threading(_config, (kp_x264_threading)threading), error);
}

- (BOOL)setX264Bframes:(uint32_t)bframes error:(NSError **)error {
    return KPCheck(kp_config_set_x264_bframes(_config, bframes), error);
}

- (BOOL)addCAPEM:(NSData *)pem error:(NSError **)error {
    return KPCheck(kp_config_add_ca_pem(_config, (const char *)pem.bytes, pem.length), error);
}

- (BOOL)setTLSPlatformRootsEnabled:(BOOL)enabled error:(NSError **)error {
    return KPCheck(kp_config_set_tls_platform_roots(_config, enabled ? true : false), error);
}

- (BOOL)setTLSDangerAcceptInvalidCerts:(BOOL)accept error:(NSError **)error {
    return KPCheck(kp_config_set_tls_danger_accept_invalid_certs(_config, accept ? true : false), error);
}

// The callback's userdata is each pusher's own sink, so the C call that installs it is made by
// -[KPLivePusher initWithConfiguration:...]; here the interval is checked (the C ABI's answer for
// a NULL callback) and remembered.
- (BOOL)setStatisticsIntervalMs:(uint32_t)intervalMs error:(NSError **)error {
    if (!KPCheck(kp_config_set_stats_callback(_config, intervalMs, NULL, NULL), error)) {
        return NO;
    }
    _statisticsIntervalMs = intervalMs;
    return YES;
}

@end

// MARK: - Event

@implementation KPLivePusherEvent

@synthesize kind = _kind, code = _code, message = _message, timestampMs = _timestampMs,
            destination = _destination, value = _value, value2 = _value2,
            value3 = _value3, value4 = _value4;

- (instancetype)initWithEvent:(const kp_event *)ev {
    self = [super init];
    if (self) {
        _kind = ev->kind;
        _code = ev->code;
        _message = [KPString(ev->message) copy];
        _timestampMs = ev->timestamp_ms;
        _destination = ev->destination;
        _value = ev->value;
        _value2 = ev->value2;
        _value3 = ev->value3;
        _value4 = ev->value4;
    }
    return self;
}

#if !__has_feature(objc_arc)
- (void)dealloc {
    [_message release];
    [super dealloc];
}
#endif

- (NSString *)description {
    return [NSString stringWithFormat:@"<KPLivePusherEvent kind=%d code=%d dest=%u value=%lld value2=%lld t=%llums %@>",
                                      (int)_kind, (int)_code, (unsigned)_destination, (long long)_value,
                                      (long long)_value2, (unsigned long long)_timestampMs, _message];
}

@end

// MARK: - Pusher plumbing

/// The C callback's userdata. It refers to the pusher weakly (on ARC), so an event racing the
/// pusher's dealloc finds nil instead of resurrecting it; the pusher keeps the sink alive until
/// kp_pusher_free has returned.
@interface KPEventSink : NSObject {
  @public
    KP_WEAK_IVAR KPLivePusher *_owner;
}
@end

@implementation KPEventSink
@end

/// The sink whose event this thread is delivering right now (NULL outside callbacks).
static __thread void *kpDeliveringSink;

static void KPOnEvent(void *userdata, const kp_event *ev) {
    kpDeliveringSink = userdata;
    @autoreleasepool {
        KPEventSink *sink = (__bridge KPEventSink *)userdata;
        // ARC: a strong reference for the duration of the call (nil once the pusher is going).
        // Manual counting: the pusher's dealloc waits in kp_pusher_free for this call to return.
        KPLivePusher *owner = sink->_owner;
        id<KPLivePusherDelegate> delegate = owner.delegate;
        if (owner && delegate) {
            KPLivePusherEvent *event = KP_AUTORELEASE([[KPLivePusherEvent alloc] initWithEvent:ev]);
            [delegate livePusher:owner didReceiveEvent:event];
        }
    }
    // Cleared only after the pool and the strong reference are gone: if that was the last
    // reference, the pusher's dealloc ran on this thread and saw it is inside its own callback.
    kpDeliveringSink = NULL;
}

/// The stats callback: same sink, same thread and the same rules as KPOnEvent.
static void KPOnStats(void *userdata, const kp_stats *stats) {
    kpDeliveringSink = userdata;
    @autoreleasepool {
        KPEventSink *sink = (__bridge KPEventSink *)userdata;
        KPLivePusher *owner = sink->_owner;
        id<KPLivePusherDelegate> delegate = owner.delegate;
        if (owner && [delegate respondsToSelector:@selector(livePusher:didUpdateStatistics:)]) {
            [delegate livePusher:owner didUpdateStatistics:stats];
        }
    }
    kpDeliveringSink = NULL;
}

struct KPHandoff {
    kp_pusher *pusher;
    void *sink; // retained
};

static void *KPFreeOnOwnThread(void *arg) {
    struct KPHandoff *h = arg;
    kp_pusher_free(h->pusher);
#if __has_feature(objc_arc)
    (void)(__bridge_transfer id)h->sink;
#else
    [(id)h->sink release];
#endif
    free(h);
    return NULL;
}

/// kp_pusher_free, except from the pusher's own callback: the C ABI then hands the release to a
/// helper thread and returns while callbacks may still run, so the sink they use must outlive
/// them — the whole release moves to a thread that holds the sink until the free is done.
static void KPReleasePusher(kp_pusher *pusher, KPEventSink *sink) {
    if (kpDeliveringSink != (__bridge void *)sink) {
        kp_pusher_free(pusher);
        return;
    }
    struct KPHandoff *h = malloc(sizeof *h);
    if (!h) {
        return; // leaks the pusher rather than freeing it under a running callback
    }
    h->pusher = pusher;
#if __has_feature(objc_arc)
    h->sink = (__bridge_retained void *)sink;
#else
    h->sink = [sink retain];
#endif
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, KPFreeOnOwnThread, h) != 0) {
        // Same choice as above: a leak, never a free under a callback.
    }
    pthread_attr_destroy(&attr);
}

/// The handle guard: calls count themselves in while they use the native pusher; -close stops new
/// calls, waits for those in flight, and only then frees it.
struct KPGuard {
    pthread_mutex_t mutex;
    pthread_cond_t idle;
    unsigned inFlight;
    int closing;
};

// MARK: - Pusher

@implementation KPLivePusher

@synthesize delegate = _delegate;

+ (NSString *)version {
    return KPString(kp_version());
}

- (instancetype)initWithConfiguration:(KPLivePusherConfiguration *)configuration
                             delegate:(id<KPLivePusherDelegate>)delegate
                                error:(NSError **)error {
    self = [super init];
    if (!self) {
        return nil;
    }
    struct KPGuard *guard = calloc(1, sizeof *guard);
    if (!guard) {
        KP_RELEASE(self);
        return nil;
    }
    pthread_mutex_init(&guard->mutex, NULL);
    pthread_cond_init(&guard->idle, NULL);
    _guard = guard;
    KPEventSink *sink = [[KPEventSink alloc] init];
    sink->_owner = self;
    _sink = sink;
    _delegate = delegate;
    kp_config *cfg = configuration.kp_config;
    int64_t statsInterval = configuration.statisticsIntervalMs;
    kp_result rc = kp_config_set_event_callback(cfg, KPOnEvent, (__bridge void *)sink);
    if (rc == KP_OK && statsInterval >= 0) {
        rc = kp_config_set_stats_callback(cfg, (uint32_t)statsInterval, KPOnStats, (__bridge void *)sink);
    }
    if (rc == KP_OK) {
        rc = kp_pusher_new(cfg, &_pusher);
    }
    NSError *failure = rc == KP_OK ? nil : KPErrorWithReason(rc, KPString(kp_last_error_message()));
    // The configuration must not keep a pointer to this pusher's sink.
    kp_config_set_event_callback(cfg, NULL, NULL);
    if (statsInterval >= 0) {
        kp_config_set_stats_callback(cfg, (uint32_t)statsInterval, NULL, NULL);
    }
    if (failure) {
        if (error) {
            *error = failure;
        }
        KP_RELEASE(self);
        return nil;
    }
    return self;
}

- (void)dealloc {
    KPEventSink *sink = _sink;
    if (sink) {
        sink->_owner = nil;
    }
    if (_pusher) {
        KPReleasePusher(_pusher, sink);
    }
    struct KPGuard *guard = _guard;
    if (guard) {
        pthread_cond_destroy(&guard->idle);
        pthread_mutex_destroy(&guard->mutex);
        free(guard);
    }
    KP_RELEASE(_sink);
    KP_SUPER_DEALLOC();
}

/// The native pusher for one call (NULL after -close: the C ABI then answers
/// KP_ERR_INVALID_ARGUMENT); pair with -leave.
- (kp_pusher *)enter {
    struct KPGuard *guard = _guard;
    pthread_mutex_lock(&guard->mutex);
    kp_pusher *p = guard->closing ? NULL : _pusher;
    guard->inFlight++;
    pthread_mutex_unlock(&guard->mutex);
    return p;
}

- (void)leave {
    struct KPGuard *guard = _guard;
    pthread_mutex_lock(&guard->mutex);
    if (--guard->inFlight == 0 && guard->closing) {
        pthread_cond_broadcast(&guard->idle);
    }
    pthread_mutex_unlock(&guard->mutex);
}

- (void)close {
    struct KPGuard *guard = _guard;
    pthread_mutex_lock(&guard->mutex);
    guard->closing = 1;
    while (guard->inFlight > 0) {
        pthread_cond_wait(&guard->idle, &guard->mutex);
    }
    kp_pusher *p = _pusher;
    _pusher = NULL;
    pthread_mutex_unlock(&guard->mutex);
    if (p) {
        KPReleasePusher(p, _sink);
    }
}

- (BOOL)start:(NSError **)error {
    kp_result rc = kp_pusher_start([self enter]);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)stopWithTimeout:(uint32_t)timeoutMs error:(NSError **)error {
    kp_result rc = kp_pusher_stop([self enter], timeoutMs);
    [self leave];
    return KPCheck(rc, error);
}

- (kp_state)state {
    kp_state s = kp_pusher_get_state([self enter]);
    [self leave];
    return s;
}

- (BOOL)getStatistics:(kp_stats *)statistics error:(NSError **)error {
    if (statistics) {
        statistics->struct_size = sizeof *statistics;
    }
    kp_result rc = kp_pusher_get_stats([self enter], statistics);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)getStatistics:(kp_destination_stats *)statistics
       forDestination:(uint32_t)destination
                error:(NSError **)error {
    if (statistics) {
        statistics->struct_size = sizeof *statistics;
    }
    kp_result rc = kp_pusher_get_destination_stats([self enter], destination, statistics);
    [self leave];
    return KPCheck(rc, error);
}

static kp_video_frame KPFrame(KPPixelFormat format, uint32_t width, uint32_t height, NSUInteger planeCount,
                              const uint8_t *const *planes, const uint32_t *strides, const size_t *planeSizes) {
    kp_video_frame frame;
    memset(&frame, 0, sizeof frame);
    frame.format = (kp_pixel_format)format;
    frame.width = width;
    frame.height = height;
    // Missing arrays leave every plane empty (NULL, size 0): the C ABI answers KP_ERR_BAD_FRAME_SIZE.
    for (NSUInteger i = 0; i < planeCount && i < 3 && planes && strides && planeSizes; i++) {
        frame.planes[i] = planes[i];
        frame.strides[i] = strides[i];
        frame.plane_sizes[i] = planeSizes[i];
    }
    return frame;
}

- (BOOL)pushVideoWithFormat:(KPPixelFormat)format
                      width:(uint32_t)width
                     height:(uint32_t)height
                 planeCount:(NSUInteger)planeCount
                     planes:(const uint8_t *const *)planes
                    strides:(const uint32_t *)strides
                 planeSizes:(const size_t *)planeSizes
                      ptsUs:(int64_t)ptsUs
                      error:(NSError **)error {
    kp_video_frame frame = KPFrame(format, width, height, planeCount, planes, strides, planeSizes);
    kp_result rc = kp_pusher_push_video([self enter], &frame, ptsUs);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)setPauseImageWithFormat:(KPPixelFormat)format
                          width:(uint32_t)width
                         height:(uint32_t)height
                     planeCount:(NSUInteger)planeCount
                         planes:(const uint8_t *const *)planes
                        strides:(const uint32_t *)strides
                     planeSizes:(const size_t *)planeSizes
                          error:(NSError **)error {
    kp_video_frame frame = KPFrame(format, width, height, planeCount, planes, strides, planeSizes);
    kp_result rc = kp_pusher_set_pause_image([self enter], &frame);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)pushHEVCAnnexB:(const uint8_t *)data length:(size_t)length ptsUs:(int64_t)ptsUs dtsUs:(int64_t)dtsUs error:(NSError **)error {
    kp_result rc = kp_pusher_push_hevc([self enter], data, length, ptsUs, dtsUs);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)pauseWithMode:(KPPauseMode)mode error:(NSError **)error {
    kp_result rc = kp_pusher_pause([self enter], (kp_pause_mode)mode);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)resumeWithError:(NSError **)error {
    kp_result rc = kp_pusher_resume([self enter]);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)setVideoBitrateKbps:(uint32_t)kbps error:(NSError **)error {
    kp_result rc = kp_pusher_set_video_bitrate([self enter], kbps);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)networkDidChangeWithError:(NSError **)error {
    kp_result rc = kp_pusher_network_changed([self enter]);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)sendMessage:(NSData *)message error:(NSError **)error {
    return [self sendMessage:message flags:0 error:error];
}

- (BOOL)sendMessage:(NSData *)message flags:(kp_message_flags)flags error:(NSError **)error {
    kp_result rc = kp_pusher_send_message([self enter], (const uint8_t *)message.bytes, message.length, flags);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)requestKeyframeWithError:(NSError **)error {
    kp_result rc = kp_pusher_request_keyframe([self enter]);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)setAudioMuted:(BOOL)muted error:(NSError **)error {
    kp_result rc = kp_pusher_set_audio_muted([self enter], muted ? true : false);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)startRecordingToPath:(NSString *)path error:(NSError **)error {
    kp_result rc = kp_pusher_start_recording([self enter], path.UTF8String);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)stopRecordingWithError:(NSError **)error {
    kp_result rc = kp_pusher_stop_recording([self enter]);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)pushPCM:(const int16_t *)samples framesPerChannel:(size_t)framesPerChannel ptsUs:(int64_t)ptsUs error:(NSError **)error {
    kp_result rc = kp_pusher_push_audio([self enter], samples, framesPerChannel, ptsUs);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)pushH264AnnexB:(const uint8_t *)data length:(size_t)length ptsUs:(int64_t)ptsUs dtsUs:(int64_t)dtsUs error:(NSError **)error {
    kp_result rc = kp_pusher_push_h264([self enter], data, length, ptsUs, dtsUs);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)pushH264AVCC:(const uint8_t *)data
              length:(size_t)length
       nalLengthSize:(NSUInteger)nalLengthSize
       parameterSets:(NSArray<NSData *> *)parameterSets
               ptsUs:(int64_t)ptsUs
               dtsUs:(int64_t)dtsUs
               error:(NSError **)error {
    if (!data) {
        return [self pushH264AnnexB:NULL length:length ptsUs:ptsUs dtsUs:dtsUs error:error];
    }
    if (nalLengthSize != 1 && nalLengthSize != 2 && nalLengthSize != 4) {
        if (error) {
            *error = KPErrorWithReason(KP_ERR_BAD_BITSTREAM,
                                       [NSString stringWithFormat:@"NAL length size %lu is not 1, 2 or 4",
                                                                  (unsigned long)nalLengthSize]);
        }
        return NO;
    }
    static const uint8_t startCode[4] = {0, 0, 0, 1};
    NSMutableData *annexB = [NSMutableData dataWithCapacity:length + 64];
    for (NSData *set in parameterSets) {
        [annexB appendBytes:startCode length:4];
        [annexB appendData:set];
    }
    size_t pos = 0;
    while (pos < length) {
        if (length - pos < nalLengthSize) {
            break;
        }
        size_t nalLength = 0;
        for (NSUInteger i = 0; i < nalLengthSize; i++) {
            nalLength = (nalLength << 8) | data[pos + i];
        }
        pos += nalLengthSize;
        if (nalLength > length - pos) {
            pos = length + 1; // marks the overrun
            break;
        }
        [annexB appendBytes:startCode length:4];
        [annexB appendBytes:data + pos length:nalLength];
        pos += nalLength;
    }
    if (pos != length) {
        if (error) {
            *error = KPErrorWithReason(KP_ERR_BAD_BITSTREAM, @"a NAL unit length runs past the end of the data");
        }
        return NO;
    }
    return [self pushH264AnnexB:annexB.bytes length:annexB.length ptsUs:ptsUs dtsUs:dtsUs error:error];
}

- (kp_video_slot *)acquireVideoSlotWithLayout:(kp_video_slot_layout *)layout error:(NSError **)error {
    kp_video_slot *slot = NULL;
    if (layout) {
        layout->struct_size = sizeof *layout;
    }
    kp_result rc = kp_pusher_acquire_video_slot([self enter], &slot, layout);
    [self leave];
    return KPCheck(rc, error) ? slot : NULL;
}

- (BOOL)submitVideoSlot:(kp_video_slot *)slot ptsUs:(int64_t)ptsUs error:(NSError **)error {
    kp_result rc = kp_pusher_submit_video_slot([self enter], slot, ptsUs);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)pushAAC:(const uint8_t *)data length:(size_t)length ptsUs:(int64_t)ptsUs error:(NSError **)error {
    kp_result rc = kp_pusher_push_aac([self enter], data, length, ptsUs);
    [self leave];
    return KPCheck(rc, error);
}

- (BOOL)pushOpus:(const uint8_t *)data length:(size_t)length ptsUs:(int64_t)ptsUs error:(NSError **)error {
    kp_result rc = kp_pusher_push_opus([self enter], data, length, ptsUs);
    [self leave];
    return KPCheck(rc, error);
}

#ifdef KP_HAVE_COREMEDIA
static int64_t KPMicroseconds(CMTime t) {
    return CMTIME_IS_VALID(t) ? CMTimeConvertScale(t, 1000000, kCMTimeRoundingMethod_RoundHalfAwayFromZero).value : -1;
}

- (BOOL)pushPixelBuffer:(CVPixelBufferRef)pixelBuffer ptsUs:(int64_t)ptsUs error:(NSError **)error {
    OSType type = CVPixelBufferGetPixelFormatType(pixelBuffer);
    KPPixelFormat format;
    if (type == kCVPixelFormatType_420YpCbCr8BiPlanarFullRange || type == kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange) {
        format = KPPixelFormatNV12;
    } else if (type == kCVPixelFormatType_420YpCbCr8Planar || type == kCVPixelFormatType_420YpCbCr8PlanarFullRange) {
        format = KPPixelFormatI420;
    } else {
        if (error) {
            *error = KPErrorWithReason(KP_ERR_BAD_PIXEL_FORMAT,
                                       [NSString stringWithFormat:@"CVPixelBuffer format 0x%08x is not NV12 or I420", (unsigned)type]);
        }
        return NO;
    }
    if (CVPixelBufferLockBaseAddress(pixelBuffer, kCVPixelBufferLock_ReadOnly) != kCVReturnSuccess) {
        if (error) {
            *error = KPErrorWithReason(KP_ERR_INVALID_ARGUMENT, @"CVPixelBufferLockBaseAddress failed");
        }
        return NO;
    }
    size_t count = CVPixelBufferGetPlaneCount(pixelBuffer);
    const uint8_t *planes[3] = {NULL, NULL, NULL};
    uint32_t strides[3] = {0, 0, 0};
    size_t sizes[3] = {0, 0, 0};
    for (size_t i = 0; i < count && i < 3; i++) {
        planes[i] = CVPixelBufferGetBaseAddressOfPlane(pixelBuffer, i);
        strides[i] = (uint32_t)CVPixelBufferGetBytesPerRowOfPlane(pixelBuffer, i);
        sizes[i] = CVPixelBufferGetBytesPerRowOfPlane(pixelBuffer, i) * CVPixelBufferGetHeightOfPlane(pixelBuffer, i);
    }
    BOOL ok = [self pushVideoWithFormat:format
                                  width:(uint32_t)CVPixelBufferGetWidth(pixelBuffer)
                                 height:(uint32_t)CVPixelBufferGetHeight(pixelBuffer)
                             planeCount:count
                                 planes:planes
                                strides:strides
                             planeSizes:sizes
                                  ptsUs:ptsUs
                                  error:error];
    CVPixelBufferUnlockBaseAddress(pixelBuffer, kCVPixelBufferLock_ReadOnly);
    return ok;
}

- (BOOL)pushVideoToolboxSampleBuffer:(CMSampleBufferRef)sampleBuffer error:(NSError **)error {
    CMBlockBufferRef block = CMSampleBufferGetDataBuffer(sampleBuffer);
    CMFormatDescriptionRef format = CMSampleBufferGetFormatDescription(sampleBuffer);
    if (!block || !format) {
        if (error) {
            *error = KPErrorWithReason(KP_ERR_BAD_BITSTREAM, @"the sample has no data or no format description");
        }
        return NO;
    }
    // Keyframe: no NotSync attachment.
    BOOL keyframe = YES;
    CFArrayRef attachments = CMSampleBufferGetSampleAttachmentsArray(sampleBuffer, false);
    if (attachments && CFArrayGetCount(attachments) > 0) {
        CFDictionaryRef a = CFArrayGetValueAtIndex(attachments, 0);
        keyframe = !CFDictionaryContainsKey(a, kCMSampleAttachmentKey_NotSync);
    }
    size_t setCount = 0;
    int nalLengthSize = 4;
    CMVideoFormatDescriptionGetH264ParameterSetAtIndex(format, 0, NULL, NULL, &setCount, &nalLengthSize);
    NSMutableArray<NSData *> *sets = nil;
    if (keyframe) {
        sets = [NSMutableArray arrayWithCapacity:setCount];
        for (size_t i = 0; i < setCount; i++) {
            const uint8_t *p = NULL;
            size_t n = 0;
            if (CMVideoFormatDescriptionGetH264ParameterSetAtIndex(format, i, &p, &n, NULL, NULL) == noErr) {
                [sets addObject:[NSData dataWithBytes:p length:n]];
            }
        }
    }
    size_t length = CMBlockBufferGetDataLength(block);
    char *bytes = NULL;
    size_t contiguous = 0;
    NSMutableData *copy = nil;
    if (CMBlockBufferGetDataPointer(block, 0, &contiguous, NULL, &bytes) != kCMBlockBufferNoErr || contiguous < length) {
        copy = [NSMutableData dataWithLength:length];
        CMBlockBufferCopyDataBytes(block, 0, length, copy.mutableBytes);
        bytes = copy.mutableBytes;
    }
    int64_t pts = KPMicroseconds(CMSampleBufferGetPresentationTimeStamp(sampleBuffer));
    int64_t dts = KPMicroseconds(CMSampleBufferGetDecodeTimeStamp(sampleBuffer));
    return [self pushH264AVCC:(const uint8_t *)bytes
                       length:length
                nalLengthSize:(NSUInteger)nalLengthSize
                parameterSets:sets
                        ptsUs:pts
                        dtsUs:dts < 0 ? pts : dts
                        error:error];
}
#endif

@end
