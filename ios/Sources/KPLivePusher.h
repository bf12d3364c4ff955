// KitePush for iOS: an Objective-C (and, through NS_SWIFT_NAME, Swift) face of the C ABI in
// kitepush.h, call for call. Every method maps onto one kp_* function with the same checks,
// defaults and threading; failures come back as NSErrors in KPLivePusherErrorDomain whose code is
// the kp_result (KP_ERR_*), with kp_result_str as the description and kp_last_error_message as
// the failure reason.
//
// Threads: a KPLivePusher may be used from any thread, also concurrently (camera, microphone, UI).
// Pushes copy their input and return at once. -stopWithTimeout:error: blocks up to its timeout;
// -close (and the last release) waits for calls in flight on other threads, then for the SDK's
// threads to exit, after which the delegate is never called again. The delegate is called on the
// SDK's callback thread (one per pusher, one event at a time): hop to the main queue yourself for
// UI work, and do not call -stopWithTimeout:error: or -close from it. Events come after the call
// that caused them returns (STOPPED after -stopWithTimeout:error:): -close delivers those still
// queued before it returns, while a last release without -close drops them, since the delegate
// cannot be handed a pusher that is being deallocated.
//
// Memory: correct under ARC (iOS) and under manual reference counting (the GNUstep host build).

#import <Foundation/Foundation.h>
#include "kitepush.h"

#if __has_include(<CoreVideo/CoreVideo.h>) && __has_include(<CoreMedia/CoreMedia.h>)
#import <CoreMedia/CoreMedia.h>
#import <CoreVideo/CoreVideo.h>
#define KP_HAVE_COREMEDIA 1
#endif

// Older or non-Apple Foundations lack some annotations; clang still understands the attributes.
#ifndef NS_SWIFT_NAME
#define NS_SWIFT_NAME(name) __attribute__((swift_name(#name)))
#endif
#ifndef NS_ASSUME_NONNULL_BEGIN
#define NS_ASSUME_NONNULL_BEGIN _Pragma("clang assume_nonnull begin")
#define NS_ASSUME_NONNULL_END _Pragma("clang assume_nonnull end")
#endif
// A weak delegate where the runtime has weak references (ARC on iOS); plain assign elsewhere.
#if __has_feature(objc_arc_weak)
#define KP_WEAK_PROPERTY weak
#define KP_WEAK_IVAR __weak
#else
#define KP_WEAK_PROPERTY assign
#define KP_WEAK_IVAR __unsafe_unretained
#endif

NS_ASSUME_NONNULL_BEGIN

/// The NSError domain of every KitePush error; the code is the kp_result (KP_ERR_*).
FOUNDATION_EXPORT NSString *const KPLivePusherErrorDomain NS_SWIFT_NAME(LivePusherErrorDomain);

/// kp_pixel_format_values.
typedef NS_ENUM(NSInteger, KPPixelFormat) {
    KPPixelFormatI420 = KP_PIXEL_FORMAT_I420,
    KPPixelFormatNV12 = KP_PIXEL_FORMAT_NV12, ///< kCVPixelFormatType_420YpCbCr8BiPlanar*Range
    KPPixelFormatNV21 = KP_PIXEL_FORMAT_NV21,
    KPPixelFormatYUY2 = KP_PIXEL_FORMAT_YUY2, ///< one packed 4:2:2 plane, Y0 U Y1 V
    KPPixelFormatUYVY = KP_PIXEL_FORMAT_UYVY, ///< one packed 4:2:2 plane, U Y0 V Y1 (kCVPixelFormatType_422YpCbCr8)
    KPPixelFormatRGBA = KP_PIXEL_FORMAT_RGBA, ///< one plane, alpha ignored
    KPPixelFormatBGRA = KP_PIXEL_FORMAT_BGRA, ///< one plane, alpha ignored (kCVPixelFormatType_32BGRA)
} NS_SWIFT_NAME(PixelFormat);

/// kp_video_encoder_values: where the video comes from.
typedef NS_ENUM(NSInteger, KPVideoSource) {
    KPVideoSourceOpenH264 = KP_ENCODER_OPENH264,       ///< raw frames, encoded by the SDK
    KPVideoSourceX264 = KP_ENCODER_X264,               ///< not in this build
    KPVideoSourcePassthrough = KP_ENCODER_PASSTHROUGH, ///< H.264 from VideoToolbox
    KPVideoSourcePassthroughHEVC = KP_ENCODER_PASSTHROUGH_HEVC, ///< H.265 from VideoToolbox, Enhanced RTMP
} NS_SWIFT_NAME(VideoSource);

/// kp_x264_threading_values (x264 builds only).
typedef NS_ENUM(NSInteger, KPX264Threading) {
    KPX264ThreadingDefault = KP_X264_THREADING_DEFAULT, ///< what the tune says
    KPX264ThreadingFrame = KP_X264_THREADING_FRAME,     ///< one frame per thread
    KPX264ThreadingSliced = KP_X264_THREADING_SLICED,   ///< slices of one frame in parallel
} NS_SWIFT_NAME(X264Threading);

/// kp_pause_mode_values: what -pauseWithMode:error: sends while the app cannot capture.
/// kp_video_scaling: what a raw frame larger than the configured size becomes.
typedef NS_ENUM(NSInteger, KPSrtStreamIdPreset) {
    KPSrtStreamIdPresetRaw = KP_SRT_STREAM_ID_RAW,           ///< sent as given
    KPSrtStreamIdPresetSrs = KP_SRT_STREAM_ID_SRS,           ///< SRS, ZLMediaKit: app/stream -> #!::r=app/stream,m=publish
    KPSrtStreamIdPresetMediaMtx = KP_SRT_STREAM_ID_MEDIAMTX, ///< MediaMTX: path -> publish:path
} NS_SWIFT_NAME(SrtStreamIdPreset);

typedef NS_ENUM(NSInteger, KPVideoScaling) {
    KPVideoScalingFill = KP_VIDEO_SCALING_FILL,       ///< scaled down to fill; other aspect ratios cropped at the middle (default)
    KPVideoScalingStretch = KP_VIDEO_SCALING_STRETCH, ///< scaled to exactly the configured size; other aspect ratios distorted
    KPVideoScalingOff = KP_VIDEO_SCALING_OFF,         ///< refused with KP_ERR_BAD_DIMENSIONS
} NS_SWIFT_NAME(VideoScaling);

typedef NS_ENUM(NSInteger, KPPauseMode) {
    KPPauseModeStillImage = KP_PAUSE_STILL_IMAGE,              ///< the pause picture (or last frame) + the app's audio or silence
    KPPauseModeStillImageSilent = KP_PAUSE_STILL_IMAGE_SILENT, ///< the pause picture + silence
    KPPauseModeAudioOnly = KP_PAUSE_AUDIO_ONLY,                ///< no video; the app's audio or silence
} NS_SWIFT_NAME(PauseMode);

/// kp_audio_encoder_values: where the audio comes from.
typedef NS_ENUM(NSInteger, KPAudioSource) {
    KPAudioSourceFdkAac = KP_AUDIO_ENCODER_FDK_AAC,           ///< PCM, encoded by the SDK
    KPAudioSourcePassthrough = KP_AUDIO_ENCODER_PASSTHROUGH,  ///< AAC from AudioToolbox
    /// Opus packets (AudioToolbox's kAudioFormatOpus, or any encoder) for WebRTC; PCM given beside
    /// them becomes the AAC of RTMP, SRT and the recording.
    KPAudioSourcePassthroughOpus = KP_AUDIO_ENCODER_PASSTHROUGH_OPUS,
} NS_SWIFT_NAME(AudioSource);

/// Pusher settings: each method is one kp_config_* call (same defaults, 0 = default). Not
/// thread-safe; a configuration may create any number of pushers.
NS_SWIFT_NAME(LivePusherConfiguration)
@interface KPLivePusherConfiguration : NSObject {
  @private
    kp_config *_config;
    int64_t _statisticsIntervalMs;
}
/// kp_config_new; nil only when memory runs out.
- (nullable instancetype)init;
- (BOOL)setURL:(nullable NSString *)url error:(NSError **)error NS_SWIFT_NAME(setURL(_:));
- (BOOL)addBackupURL:(nullable NSString *)url error:(NSError **)error NS_SWIFT_NAME(addBackupURL(_:));
/// kp_config_add_destination; `index` (may be NULL) receives 1 for the first added, then 2, ...
- (BOOL)addDestinationURL:(nullable NSString *)url
                    index:(nullable uint32_t *)index
                    error:(NSError **)error NS_SWIFT_NAME(addDestinationURL(_:index:));
- (BOOL)addBackupURL:(nullable NSString *)url
      forDestination:(uint32_t)destination
               error:(NSError **)error NS_SWIFT_NAME(addBackupURL(_:forDestination:));
- (BOOL)setVideoWidth:(uint32_t)width
               height:(uint32_t)height
                  fps:(double)fps
          bitrateKbps:(uint32_t)bitrateKbps
     keyframeInterval:(uint32_t)keyframeInterval
                error:(NSError **)error NS_SWIFT_NAME(setVideo(width:height:fps:bitrateKbps:keyframeInterval:));
- (BOOL)setVideoSource:(KPVideoSource)source error:(NSError **)error NS_SWIFT_NAME(setVideoSource(_:));
- (BOOL)setVideoThreads:(uint32_t)threads error:(NSError **)error NS_SWIFT_NAME(setVideoThreads(_:));
- (BOOL)disableVideo:(NSError **)error NS_SWIFT_NAME(disableVideo());
- (BOOL)setAudioSampleRate:(uint32_t)sampleRate
                  channels:(uint32_t)channels
               bitrateKbps:(uint32_t)bitrateKbps
                     error:(NSError **)error NS_SWIFT_NAME(setAudio(sampleRate:channels:bitrateKbps:));
- (BOOL)setAudioSource:(KPAudioSource)source error:(NSError **)error NS_SWIFT_NAME(setAudioSource(_:));
- (BOOL)disableAudio:(NSError **)error NS_SWIFT_NAME(disableAudio());
- (BOOL)setConnectTimeoutMs:(uint32_t)connectMs
             stallTimeoutMs:(uint32_t)stallMs
                      error:(NSError **)error NS_SWIFT_NAME(setTimeouts(connectMs:stallMs:));
- (BOOL)setReconnectFirstDelayMs:(uint32_t)firstDelayMs
                      multiplier:(double)multiplier
                      maxDelayMs:(uint32_t)maxDelayMs
                     maxAttempts:(uint32_t)maxAttempts
                   failoverAfter:(uint32_t)failoverAfter
                           error:(NSError **)error
    NS_SWIFT_NAME(setReconnect(firstDelayMs:multiplier:maxDelayMs:maxAttempts:failoverAfter:));
- (BOOL)setPrimaryRetryIntervalMs:(uint32_t)intervalMs error:(NSError **)error NS_SWIFT_NAME(setPrimaryRetryInterval(ms:));
/// kp_config_set_refused_retry: while a server refuses at once, retry every intervalMs (0 = 250)
/// for the first windowMs (0 = 5000) of an outage instead of backing off.
- (BOOL)setRefusedRetryEnabled:(BOOL)enabled
                    intervalMs:(uint32_t)intervalMs
                      windowMs:(uint32_t)windowMs
                         error:(NSError **)error NS_SWIFT_NAME(setRefusedRetry(enabled:intervalMs:windowMs:));
/// kp_config_set_video_scaling: what a raw frame larger than the configured size becomes (scaled
/// down by default; smaller frames are always refused). Enables video.
- (BOOL)setVideoScaling:(KPVideoScaling)mode error:(NSError **)error NS_SWIFT_NAME(setVideoScaling(_:));
/// kp_config_set_pause_fps: the still picture's frame rate while paused (0 = 5).
- (BOOL)setPauseFps:(double)fps error:(NSError **)error NS_SWIFT_NAME(setPauseFps(_:));
/// kp_config_set_latency_budget, ms (0 = 2000).
- (BOOL)setLatencyBudgetMs:(uint32_t)budgetMs error:(NSError **)error NS_SWIFT_NAME(setLatencyBudget(ms:));
/// kp_config_set_abr: the adaptive bitrate (on by default); 0 keeps a default bound.
- (BOOL)setAdaptiveBitrateEnabled:(BOOL)enabled
                          minKbps:(uint32_t)minKbps
                          maxKbps:(uint32_t)maxKbps
                allowFpsReduction:(BOOL)allowFpsReduction
                            error:(NSError **)error
    NS_SWIFT_NAME(setAdaptiveBitrate(enabled:minKbps:maxKbps:allowFpsReduction:));
/// kp_config_set_encode_ladder: off by default. On, a built-in encoder that cannot keep up steps down
/// (complexity, then frame rate, then size) instead of dropping frames and climbs back when the CPU has
/// room; each change is a KP_EVENT_ENCODE_RUNG_CHANGED event, kp_stats.encode_rung the rung in use. The
/// default rungs go down to lowestHeight (0 = 360) and lowestFps (0 = 15). Forgets added rungs.
- (BOOL)setEncodeLadderEnabled:(BOOL)enabled
                  lowestHeight:(uint32_t)lowestHeight
                     lowestFps:(float)lowestFps
                         error:(NSError **)error NS_SWIFT_NAME(setEncodeLadder(enabled:lowestHeight:lowestFps:));
/// kp_config_add_encode_rung: one rung of the app's own ladder, below the configured video (the first
/// rung), each cheaper than the one before; complexity is one of kp_encode_complexity_values.
- (BOOL)addEncodeRungWidth:(uint32_t)width
                    height:(uint32_t)height
                       fps:(float)fps
                complexity:(kp_encode_complexity)complexity
                     error:(NSError **)error NS_SWIFT_NAME(addEncodeRung(width:height:fps:complexity:));
/// kp_config_set_alert_thresholds: when NET_BUSY, LOW_FPS and ENCODER_OVERLOADED fire; 0 keeps a default.
- (BOOL)setAlertNetBusyCongestion:(float)netBusyCongestion
                        netBusyMs:(uint32_t)netBusyMs
                      lowFpsRatio:(float)lowFpsRatio
                         lowFpsMs:(uint32_t)lowFpsMs
                encoderOverloadMs:(uint32_t)encoderOverloadMs
                            error:(NSError **)error
    NS_SWIFT_NAME(setAlertThresholds(netBusyCongestion:netBusyMs:lowFpsRatio:lowFpsMs:encoderOverloadMs:));
/// kp_config_set_srt: settings of srt:// URLs that do not give their own. latencyMs 0 = 120 (about
/// 4 × the round trip is the rule); passphrase nil or @"" = unencrypted (10 to 79 characters);
/// pbkeylen 16, 24 or 32 (0 = 16). +pusherWithConfiguration checks them.
- (BOOL)setSrtLatencyMs:(uint32_t)latencyMs
             passphrase:(nullable NSString *)passphrase
               pbkeylen:(uint32_t)pbkeylen
                  error:(NSError **)error NS_SWIFT_NAME(setSrt(latencyMs:passphrase:pbkeylen:));
/// kp_config_set_message_uuid: the 16-byte UUID of -sendMessage:error: SEIs (nil: the default,
/// the ASCII bytes of "kitepush-message"). KP_ERR_INVALID_ARGUMENT unless it has 16 bytes.
- (BOOL)setMessageUUID:(nullable NSData *)uuid error:(NSError **)error NS_SWIFT_NAME(setMessageUUID(_:));
/// kp_config_set_message_amf_name: the data message name of KP_MESSAGE_AMF messages (nil or @"":
/// "onTextData").
- (BOOL)setMessageAmfName:(nullable NSString *)name error:(NSError **)error NS_SWIFT_NAME(setMessageAmfName(_:));
/// kp_config_set_capture_timestamps: KP_CAPTURE_TIMESTAMPS_OFF, _KEYFRAMES or _EVERY_FRAME.
- (BOOL)setCaptureTimestamps:(kp_capture_timestamps)mode error:(NSError **)error
    NS_SWIFT_NAME(setCaptureTimestamps(_:));
/// kp_config_set_srt_stream_id: the stream id srt:// URLs without `streamid=` send, in the form the
/// server expects; nil or @"" clears it.
- (BOOL)setSrtStreamIdPreset:(KPSrtStreamIdPreset)preset
                    resource:(nullable NSString *)resource
                       error:(NSError **)error NS_SWIFT_NAME(setSrtStreamId(preset:resource:));
/// kp_config_set_whip_bearer_token: the token whip+http(s):// destinations send as
/// `Authorization: Bearer`; nil or @"" clears it. Never logged.
- (BOOL)setWhipBearerToken:(nullable NSString *)token error:(NSError **)error
    NS_SWIFT_NAME(setWhipBearerToken(_:));
/// kp_config_set_x264_preset (KPVideoSourceX264 only): nil keeps a default; kp_pusher_new checks
/// the names.
- (BOOL)setX264Preset:(nullable NSString *)preset
                 tune:(nullable NSString *)tune
              profile:(nullable NSString *)profile
                error:(NSError **)error NS_SWIFT_NAME(setX264Preset(_:tune:profile:));
/// kp_config_set_x264_vbv; 0 keeps a default.
- (BOOL)setX264VbvMaxrateKbps:(uint32_t)maxrateKbps
                  bufsizeKbit:(uint32_t)bufsizeKbit
                        error:(NSError **)error NS_SWIFT_NAME(setX264Vbv(maxrateKbps:bufsizeKbit:));
/// kp_config_set_x264_threading.
- (BOOL)setX264Threading:(KPX264Threading)threading error:(NSError **)error NS_SWIFT_NAME(setX264Threading(_:));
/// kp_config_set_x264_bframes (0...16, checked by kp_pusher_new).
- (BOOL)setX264Bframes:(uint32_t)bframes error:(NSError **)error NS_SWIFT_NAME(setX264Bframes(_:));
/// kp_config_add_ca_pem: trusts the CA certificates in this PEM text for rtmps:// URLs, besides
/// the bundled roots (KP_ERR_INVALID_ARGUMENT when it holds no valid certificate).
- (BOOL)addCAPEM:(nullable NSData *)pem error:(NSError **)error NS_SWIFT_NAME(addCAPEM(_:));
/// kp_config_set_tls_platform_roots: also trust the system's roots (KP_ERR_UNSUPPORTED without
/// the native-roots feature).
- (BOOL)setTLSPlatformRootsEnabled:(BOOL)enabled error:(NSError **)error NS_SWIFT_NAME(setTLSPlatformRoots(_:));
/// kp_config_set_tls_danger_accept_invalid_certs: DANGER, lab use only — any server certificate
/// is accepted, so anyone on the path can pose as the ingest and read the stream key.
- (BOOL)setTLSDangerAcceptInvalidCerts:(BOOL)accept error:(NSError **)error NS_SWIFT_NAME(setTLSDangerAcceptInvalidCerts(_:));
/// kp_config_set_stats_callback: pushers made from this configuration call their delegate's
/// -livePusher:didUpdateStatistics: every intervalMs (0 = every second; 1..99: KP_ERR_INVALID_ARGUMENT).
- (BOOL)setStatisticsIntervalMs:(uint32_t)intervalMs error:(NSError **)error NS_SWIFT_NAME(setStatisticsInterval(ms:));
@end

/// One event (kp_event), copied out of the callback.
NS_SWIFT_NAME(LivePusherEvent)
@interface KPLivePusherEvent : NSObject {
  @private
    kp_event_kind _kind;
    kp_result _code;
    NSString *_message;
    uint64_t _timestampMs;
    uint32_t _destination;
    int64_t _value;
    int64_t _value2;
    int64_t _value3;
    int64_t _value4;
}
/// kp_event_kind_values (KP_EVENT_*); ignore kinds you do not know.
@property (nonatomic, readonly) kp_event_kind kind;
/// kp_result: why, for DISCONNECTED, RECONNECTING and FAILED; KP_OK otherwise.
@property (nonatomic, readonly) kp_result code;
/// Human-readable detail; never contains the stream key.
@property (nonatomic, readonly, copy) NSString *message;
@property (nonatomic, readonly) uint64_t timestampMs;
@property (nonatomic, readonly) uint32_t destination;
@property (nonatomic, readonly) int64_t value;
@property (nonatomic, readonly) int64_t value2;
/// RECONNECTED: ms of the outage's media kept (sent after the resume) and lost (kp_event).
@property (nonatomic, readonly) int64_t value3;
@property (nonatomic, readonly) int64_t value4;
@end

@class KPLivePusher;

/// Receives a pusher's events on the SDK's callback thread.
NS_SWIFT_NAME(LivePusherDelegate)
@protocol KPLivePusherDelegate <NSObject>
- (void)livePusher:(KPLivePusher *)pusher didReceiveEvent:(KPLivePusherEvent *)event
    NS_SWIFT_NAME(livePusher(_:didReceive:));
@optional
/// Periodic statistics (kp_config_set_stats_callback), when the configuration asked for them
/// with -setStatisticsIntervalMs:error:: on the events' thread, never at the same time as an
/// event. The kp_stats is valid only during the call.
- (void)livePusher:(KPLivePusher *)pusher didUpdateStatistics:(const kp_stats *)statistics
    NS_SWIFT_NAME(livePusher(_:didUpdate:));
@end

/// A live-stream publisher (kp_pusher).
NS_SWIFT_NAME(LivePusher)
@interface KPLivePusher : NSObject {
  @private
    kp_pusher *_pusher;
    id _sink;
    void *_guard;
    KP_WEAK_IVAR id<KPLivePusherDelegate> _delegate;
}

/// The library version (kp_version).
+ (NSString *)version;

/// kp_pusher_new from a copy of the configuration; the delegate receives every event from the
/// first one. Nothing connects before -start:.
- (nullable instancetype)initWithConfiguration:(KPLivePusherConfiguration *)configuration
                                      delegate:(nullable id<KPLivePusherDelegate>)delegate
                                         error:(NSError **)error NS_SWIFT_NAME(init(configuration:delegate:));
- (instancetype)init __attribute__((unavailable("use initWithConfiguration:delegate:error:")));

@property (nonatomic, KP_WEAK_PROPERTY, nullable) id<KPLivePusherDelegate> delegate;

/// kp_pusher_start: connects in the background; returns at once.
- (BOOL)start:(NSError **)error NS_SWIFT_NAME(start());
/// kp_pusher_stop: drains for up to timeoutMs, unpublishes; blocks.
- (BOOL)stopWithTimeout:(uint32_t)timeoutMs error:(NSError **)error NS_SWIFT_NAME(stop(timeoutMs:));
/// kp_pusher_get_state (KP_STATE_FAILED after -close).
@property (nonatomic, readonly) kp_state state;
/// kp_pusher_get_stats into *statistics (struct_size is set here).
- (BOOL)getStatistics:(kp_stats *)statistics error:(NSError **)error NS_SWIFT_NAME(getStatistics(_:));
/// kp_pusher_get_destination_stats.
- (BOOL)getStatistics:(kp_destination_stats *)statistics
       forDestination:(uint32_t)destination
                error:(NSError **)error NS_SWIFT_NAME(getStatistics(_:destination:));

/// kp_pusher_push_video: `planeCount` planes (3 for I420, 2 for NV12/NV21) given as base address,
/// bytes per row and readable bytes — what CVPixelBufferGetBaseAddressOfPlane,
/// ...GetBytesPerRowOfPlane and bytesPerRow * ...GetHeightOfPlane give. Copied before returning.
- (BOOL)pushVideoWithFormat:(KPPixelFormat)format
                      width:(uint32_t)width
                     height:(uint32_t)height
                 planeCount:(NSUInteger)planeCount
                     planes:(const uint8_t *_Nullable const *_Nullable)planes
                    strides:(const uint32_t *_Nullable)strides
                 planeSizes:(const size_t *_Nullable)planeSizes
                      ptsUs:(int64_t)ptsUs
                      error:(NSError **)error
    NS_SWIFT_NAME(pushVideo(format:width:height:planeCount:planes:strides:planeSizes:ptsUs:));
/// kp_pusher_push_audio: interleaved 16-bit PCM, `framesPerChannel` frames of the configured channels.
/// With pre-encoded AAC (-pushAAC:…), the same capture's PCM given here becomes the Opus of WHIP
/// destinations.
- (BOOL)pushPCM:(const int16_t *_Nullable)samples
    framesPerChannel:(size_t)framesPerChannel
               ptsUs:(int64_t)ptsUs
               error:(NSError **)error NS_SWIFT_NAME(pushPCM(_:framesPerChannel:ptsUs:));
/// kp_pusher_push_h264: one Annex-B access unit.
- (BOOL)pushH264AnnexB:(const uint8_t *_Nullable)data
                length:(size_t)length
                 ptsUs:(int64_t)ptsUs
                 dtsUs:(int64_t)dtsUs
                 error:(NSError **)error NS_SWIFT_NAME(pushH264AnnexB(_:length:ptsUs:dtsUs:));
/// One access unit as VideoToolbox gives it: NAL units each prefixed by its big-endian length
/// (`nalLengthSize` bytes: 1, 2 or 4), with the parameter sets (SPS, PPS) kept apart in the
/// format description. The C ABI takes Annex-B only, so the unit is rewritten with start codes
/// here, the parameter sets (if given) in front. Errors: KP_ERR_BAD_BITSTREAM for a length that
/// runs past the data or a bad nalLengthSize, else those of kp_pusher_push_h264.
- (BOOL)pushH264AVCC:(const uint8_t *_Nullable)data
              length:(size_t)length
       nalLengthSize:(NSUInteger)nalLengthSize
       parameterSets:(nullable NSArray<NSData *> *)parameterSets
               ptsUs:(int64_t)ptsUs
               dtsUs:(int64_t)dtsUs
               error:(NSError **)error
    NS_SWIFT_NAME(pushH264AVCC(_:length:nalLengthSize:parameterSets:ptsUs:dtsUs:));
/// kp_pusher_push_hevc: one Annex-B H.265 access unit, for KPVideoSourcePassthroughHEVC.
- (BOOL)pushHEVCAnnexB:(const uint8_t *_Nullable)data
                length:(size_t)length
                 ptsUs:(int64_t)ptsUs
                 dtsUs:(int64_t)dtsUs
                 error:(NSError **)error NS_SWIFT_NAME(pushHEVCAnnexB(_:length:ptsUs:dtsUs:));

/// kp_pusher_pause: background mode, the connection stays up; video pushes fail with
/// KP_ERR_PAUSED until -resumeWithError:. Calling it again switches the mode.
- (BOOL)pauseWithMode:(KPPauseMode)mode error:(NSError **)error NS_SWIFT_NAME(pause(mode:));
/// kp_pusher_resume: the video restarts with an IDR.
- (BOOL)resumeWithError:(NSError **)error NS_SWIFT_NAME(resume());
/// kp_pusher_set_pause_image: the picture the still-image modes repeat, planes as in
/// -pushVideoWithFormat:...; copied before returning. Allowed before -start:.
- (BOOL)setPauseImageWithFormat:(KPPixelFormat)format
                          width:(uint32_t)width
                         height:(uint32_t)height
                     planeCount:(NSUInteger)planeCount
                         planes:(const uint8_t *_Nullable const *_Nullable)planes
                        strides:(const uint32_t *_Nullable)strides
                     planeSizes:(const size_t *_Nullable)planeSizes
                          error:(NSError **)error
    NS_SWIFT_NAME(setPauseImage(format:width:height:planeCount:planes:strides:planeSizes:));
/// kp_pusher_set_video_bitrate, kbit/s (1...200000).
- (BOOL)setVideoBitrateKbps:(uint32_t)kbps error:(NSError **)error NS_SWIFT_NAME(setVideoBitrate(kbps:));
/// kp_pusher_request_keyframe.
- (BOOL)requestKeyframeWithError:(NSError **)error NS_SWIFT_NAME(requestKeyframe());
/// kp_pusher_network_changed: call it from an nw_path_monitor update handler when the path's
/// interface changes (Wi-Fi to cellular or back): every destination reconnects at once on the
/// new route instead of waiting for the stall timeout.
- (BOOL)networkDidChangeWithError:(NSError **)error NS_SWIFT_NAME(networkDidChange());
/// kp_pusher_send_message: a timed message (1 to 4096 bytes, copied) that rides with the next video
/// frame pushed, as an SEI user_data_unregistered NAL unit, on every transport and in the recording.
- (BOOL)sendMessage:(nullable NSData *)message error:(NSError **)error NS_SWIFT_NAME(sendMessage(_:));
/// kp_pusher_send_message with flags (KP_MESSAGE_AMF: also an onTextData data message on RTMP and
/// in recordings; the message must then be UTF-8 text).
- (BOOL)sendMessage:(nullable NSData *)message flags:(kp_message_flags)flags error:(NSError **)error
    NS_SWIFT_NAME(sendMessage(_:flags:));
/// kp_pusher_set_audio_muted: muted audio goes out as silence with the pushed timing.
- (BOOL)setAudioMuted:(BOOL)muted error:(NSError **)error NS_SWIFT_NAME(setAudioMuted(_:));
/// kp_pusher_start_recording: also writes the stream to a local FLV file (KP_ERR_FILE if it
/// cannot be created).
- (BOOL)startRecordingToPath:(nullable NSString *)path error:(NSError **)error NS_SWIFT_NAME(startRecording(path:));
/// kp_pusher_stop_recording: blocks until the file is written and closed.
- (BOOL)stopRecordingWithError:(NSError **)error NS_SWIFT_NAME(stopRecording());

/// kp_pusher_acquire_video_slot: lends a picture of the configured size (I420, unpadded planes,
/// previous content undefined) to write the next frame into in place, for frames made in software
/// (a renderer, a decoder): the copy -pushVideoWithFormat:… makes is saved. Fills *layout (its
/// struct_size is set here) and returns the slot, or NULL with *error set. Give it back with
/// -submitVideoSlot:ptsUs:error: or kp_video_slot_free(); its planes are invalid afterwards. At
/// most 2 are out at once; KP_ERR_QUEUE_FULL when the encoder is behind.
- (nullable kp_video_slot *)acquireVideoSlotWithLayout:(kp_video_slot_layout *)layout
                                                 error:(NSError **)error NS_SWIFT_NAME(acquireVideoSlot(layout:));
/// kp_pusher_submit_video_slot: queues the frame written into `slot` for encoding; takes the slot
/// whatever the outcome.
- (BOOL)submitVideoSlot:(kp_video_slot *)slot
                  ptsUs:(int64_t)ptsUs
                  error:(NSError **)error NS_SWIFT_NAME(submitVideoSlot(_:ptsUs:));

/// kp_pusher_push_aac: one raw AAC packet (AudioConverter output) or ADTS frames. WebRTC (WHIP)
/// destinations take Opus instead, from the PCM the app gives beside it (the same capture, with the
/// same timestamps) through -pushPCM:….
- (BOOL)pushAAC:(const uint8_t *_Nullable)data
         length:(size_t)length
          ptsUs:(int64_t)ptsUs
          error:(NSError **)error NS_SWIFT_NAME(pushAAC(_:length:ptsUs:));
/// kp_pusher_push_opus: one Opus packet (RFC 6716) for KPAudioSourcePassthroughOpus; WebRTC (WHIP)
/// destinations carry it as it is, RTMP and SRT take AAC from the PCM given beside it through
/// -pushPCM:…. A packet breaking RFC 6716's framing rules fails with KP_ERR_BAD_BITSTREAM.
- (BOOL)pushOpus:(const uint8_t *_Nullable)data
          length:(size_t)length
           ptsUs:(int64_t)ptsUs
           error:(NSError **)error NS_SWIFT_NAME(pushOpus(_:length:ptsUs:));

#ifdef KP_HAVE_COREMEDIA
/// A camera frame (420f/420v: NV12; y420: I420), planes mapped onto -pushVideoWithFormat:...
- (BOOL)pushPixelBuffer:(CVPixelBufferRef)pixelBuffer ptsUs:(int64_t)ptsUs error:(NSError **)error
    NS_SWIFT_NAME(push(pixelBuffer:ptsUs:));
/// A VTCompressionSession output sample: AVCC data, parameter sets from its format description
/// on keyframes, times from the sample. Mapped onto -pushH264AVCC:...
- (BOOL)pushVideoToolboxSampleBuffer:(CMSampleBufferRef)sampleBuffer error:(NSError **)error
    NS_SWIFT_NAME(push(videoToolboxSample:));
#endif

/// kp_pusher_free: stops at once if running; waits for calls in flight and the SDK's threads.
/// Afterwards every call fails with KP_ERR_INVALID_ARGUMENT. Idempotent; also done on dealloc.
- (void)close;
@end

NS_ASSUME_NONNULL_END
