//! The pusher: owns the threads (encode worker → send queue → network worker → socket, plus the
//! callback thread) and the public Rust API.

mod audio_clock;
pub mod config;
mod control;
mod encode_worker;
pub mod event;
mod input;
mod ladder_driver;
mod link;
pub mod messages;
mod monitor;
mod network;
mod recording;
mod shared;
pub mod stats;
mod timeline;
pub mod video_slot;

pub use crate::core::alerts::AlertThresholds;
pub use config::{AbrSettings, AudioConfig, AudioEncoderKind, PusherConfig, VideoConfig, VideoEncoderKind};
pub use config::{LadderSettings, SrtSettings, TlsConfig};
pub use config::{VideoScaling, X264Options, X264Threading};
pub use control::PauseMode;
pub use encode_worker::{AvcPacketizer, HevcPacketizer};
pub use event::{Event, EventKind, PusherState};
pub use messages::{CaptureTimestamps, MessageFlag, MessageSettings};
pub use shared::UrlRefresh;
pub use stats::{DestinationStats, Stats};
pub use video_slot::VideoSlot;

use crate::core::adts;
use crate::core::body_pool::BodyPool;
use crate::core::media::{Codec, MediaPacket};
use crate::core::send_queue::SendQueue;
use crate::core::url::DestUrl;
use crate::encode::{AudioEncoder, I420Buffer, VideoEncoder, VideoFrame};
use crate::error::{Error, Result, ResultCode};
use bytes::Bytes;
use input::{Input, InputQueue};
use shared::{lock, Callback, Counters, DestCounters, Destination, Shared};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};
use timeline::{Timeline, TimelineTrack};

/// Called on the SDK's callback thread, one event at a time, never under an internal lock.
pub type EventHandler = Box<dyn FnMut(&Event) + Send>;

/// Called on the SDK's callback thread every stats interval with a snapshot, never under an
/// internal lock, never at the same time as the event handler.
pub type StatsHandler = Box<dyn FnMut(&Stats) + Send>;

/// The stats interval when the app passes zero.
const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(1);

/// How long a lone track's media waits for the other track before it is sent out of order.
const INTERLEAVE_WINDOW_MS: u64 = 500;
/// Raw audio chunks waiting for the encoder (at 10 ms chunks, 1 s).
const AUDIO_INPUT_CHUNKS: usize = 100;

struct Threads {
    encode: Option<JoinHandle<()>>,
    network: Vec<JoinHandle<()>>,
    monitor: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// Pieces that live until `start` moves them into the workers.
struct Pending {
    video: Option<Box<dyn VideoEncoder>>,
    audio: Option<Box<dyn AudioEncoder>>,
    /// Opus from the same PCM, for the destinations that take it.
    opus: Option<Box<dyn AudioEncoder>>,
    /// One per destination.
    wakes: Vec<crate::io::transport::WakeReceiver>,
}

/// A live-stream publisher. All methods take `&self` and may be called from any thread.
pub struct Pusher {
    shared: Arc<Shared>,
    pending: Mutex<Option<Pending>>,
    threads: Mutex<Threads>,
    callback: Mutex<Option<JoinHandle<()>>>,
    callback_thread: Option<ThreadId>,
    /// Pre-encoded H.264 (or HEVC) turns into tags on the caller's thread: no encoder in between.
    avc: Mutex<(AvcPacketizer, HevcPacketizer)>,
    aac_header_sent: Mutex<Option<[u8; 2]>>,
    /// Bodies of pre-encoded AAC frames (push_aac) or Opus packets (push_opus), reused.
    aac_bodies: Mutex<BodyPool>,
    started: AtomicBool,
    /// Pre-encoded video after a resume: inter frames are dropped until the app's next IDR.
    passthrough_needs_key: AtomicBool,
    /// The video encoder reads NV12/NV21 itself: such frames are copied, not de-interleaved.
    semi_planar_ok: bool,
    /// Pre-encoded AAC and a destination that takes Opus, or pre-encoded Opus and one that takes
    /// AAC: push_audio's PCM is encoded to the codec the app does not give.
    pcm_beside: bool,
    /// Weights and buffers for frames larger than the configured size; locked only for those.
    downscaler: Mutex<crate::encode::pixel::Downscaler>,
}

impl Pusher {
    /// Validates the configuration (URL, sizes, rates) and creates the encoders, so a bad
    /// configuration or a codec missing from this build fails here. Nothing connects until
    /// [`Pusher::start`].
    pub fn new(mut config: PusherConfig, events: Option<EventHandler>) -> Result<Pusher> {
        config.validate()?;
        let video = match &config.video {
            Some(v) => make_video_encoder(v)?,
            None => None,
        };
        let semi_planar_ok = video.as_ref().is_some_and(|v| v.takes_semi_planar());
        let codecs = config::audio_codecs(&config);
        let audio = match &config.audio {
            // Pre-encoded Opus: AAC from the PCM beside it, only for destinations that take AAC.
            Some(a) if a.encoder == AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS && !codecs.aac => None,
            // Pre-encoded AAC still goes through here (it makes no encoder).
            Some(a) if codecs.aac || !codecs.opus => make_audio_encoder(a)?,
            _ => None,
        };
        let pre_encoded_audio = config.audio.as_ref().is_some_and(|a| a.encoder.is_pre_encoded());
        let opus = match &config.audio {
            Some(a) if codecs.opus => match make_opus_encoder(a) {
                Ok(enc) => Some(enc),
                // Beside pre-encoded AAC (whose configured rate and channels may be ones Opus
                // cannot take, e.g. 5.1) the Opus is an extra: WebRTC still gets the video.
                Err(e) if pre_encoded_audio => {
                    log::warn!("no Opus for WebRTC destinations from PCM beside the AAC: {e}");
                    None
                }
                Err(e) => return Err(e),
            },
            _ => None,
        };
        let pcm_beside = pre_encoded_audio && (opus.is_some() || audio.is_some());
        let mut destinations = Vec::new();
        let mut wakes = Vec::new();
        for (i, urls) in config.destinations().into_iter().enumerate() {
            let urls = urls.iter().map(|u| DestUrl::parse(u)).collect::<Result<Vec<_>>>()?;
            let audio_codecs = config::AudioCodecs::carried_by(&urls);
            let (waker, wake) = crate::io::transport::wake_pair()?;
            // With pre-encoded AAC (Opus), a destination that takes only Opus (AAC) gets audio
            // only if the app gives PCM beside it: its queue waits for audio once some arrives,
            // not before (else its video would wait the whole interleave window for audio that
            // never comes).
            let expects_audio = match config.audio.as_ref().map(|a| a.encoder) {
                None => false,
                Some(AudioEncoderKind::KP_AUDIO_ENCODER_FDK_AAC) => true,
                Some(AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH) => audio_codecs.aac,
                Some(AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS) => audio_codecs.opus,
            };
            let queue = SendQueue::new(
                config.video.is_some(),
                expects_audio,
                config.send_queue_ms as u64,
                INTERLEAVE_WINDOW_MS,
            );
            destinations.push(Destination {
                index: i as u32,
                urls: Mutex::new(urls),
                queue: Mutex::new(queue),
                waker,
                state: Mutex::new(PusherState::KP_STATE_IDLE),
                failure: Mutex::new(None),
                counters: DestCounters::default(),
                unsent_at_stop: AtomicU64::new(0),
                route_changes: AtomicU64::new(0),
                audio_codecs,
            });
            wakes.push(wake);
        }
        let (tx, rx) = mpsc::channel::<Option<Callback>>();
        let stats_handler: Arc<Mutex<Option<StatsHandler>>> = Arc::new(Mutex::new(None));
        let stats_slot = stats_handler.clone();
        let mut events = events;
        // One thread delivers events and stats, so the app's callbacks never run concurrently.
        let callback = Some(
            std::thread::Builder::new()
                .name("kp-callbacks".into())
                .spawn(move || {
                    let mut on_stats: Option<StatsHandler> = None;
                    while let Ok(Some(msg)) = rx.recv() {
                        // A panicking app callback must not take the SDK down with it.
                        match msg {
                            Callback::Event(ev) => {
                                if let Some(handler) = events.as_mut() {
                                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&ev)));
                                    if r.is_err() {
                                        log::error!("event callback panicked on {:?}", ev.kind);
                                    }
                                }
                            }
                            Callback::Stats(stats) => {
                                if on_stats.is_none() {
                                    on_stats = lock(&stats_slot).take();
                                }
                                if let Some(handler) = on_stats.as_mut() {
                                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&stats)));
                                    if r.is_err() {
                                        log::error!("stats callback panicked");
                                    }
                                }
                            }
                        }
                    }
                })
                .map_err(|e| Error::Internal(format!("spawn callback thread: {e}")))?,
        );
        let config_messages = config.messages.clone();
        let shared = Arc::new(Shared {
            input: InputQueue::new(config.input_queue_frames, AUDIO_INPUT_CHUNKS),
            slot_cells: Mutex::new(Vec::with_capacity(video_slot::MAX_SLOTS_OUT)),
            config,
            created: Instant::now(),
            state: Mutex::new(PusherState::KP_STATE_IDLE),
            failure: Mutex::new(None),
            counters: Counters::default(),
            timeline: Mutex::new(Timeline::default()),
            destinations,
            events: Mutex::new(callback.as_ref().map(|_| tx)),
            stats_handler,
            stats_interval: Mutex::new(None),
            rates: Mutex::new(shared::Rates::default()),
            video_target_kbps: std::sync::atomic::AtomicU32::new(0),
            fps_divisor: std::sync::atomic::AtomicU32::new(1),
            url_refresh: Arc::new(Mutex::new(None)),
            stop_requested: AtomicBool::new(false),
            stop_deadline: Mutex::new(None),
            encode_finished: AtomicBool::new(false),
            keyframe_wanted: AtomicBool::new(false),
            recording: Mutex::new(Default::default()),
            control: control::Control::default(),
            messages: messages::MessageStore::new(config_messages),
            ladder: Default::default(),
        });
        Ok(Pusher {
            callback_thread: callback.as_ref().map(|h| h.thread().id()),
            shared,
            pending: Mutex::new(Some(Pending { video, audio, opus, wakes })),
            threads: Mutex::new(Threads { encode: None, network: Vec::new(), monitor: None }),
            callback: Mutex::new(callback),
            avc: Mutex::new(Default::default()),
            aac_header_sent: Mutex::new(None),
            aac_bodies: Mutex::new(BodyPool::default()),
            started: AtomicBool::new(false),
            passthrough_needs_key: AtomicBool::new(false),
            semi_planar_ok,
            pcm_beside,
            downscaler: Mutex::default(),
        })
    }

    /// Starts the workers and begins connecting. Returns at once; progress is reported by events.
    /// A pusher starts once: a second call, or a call after stop, is `InvalidState`.
    pub fn start(&self) -> Result<()> {
        let Some(p) = lock(&self.pending).take() else {
            return Err(Error::InvalidState("start: the pusher was already started".into()));
        };
        self.shared.set_state(PusherState::KP_STATE_CONNECTING);
        self.started.store(true, Relaxed);
        let mut threads = lock(&self.threads);
        let start_kbps = self.shared.config.video.as_ref().map_or(0, |v| v.bitrate_kbps);
        let (stop_tx, stop_rx) = mpsc::channel();
        let monitor = monitor::Monitor { shared: self.shared.clone(), stop: stop_rx };
        threads.monitor = Some((stop_tx, spawn("kp-monitor", move || monitor.run())?));
        if p.video.is_some() || p.audio.is_some() || p.opus.is_some() {
            let worker = encode_worker::EncodeWorker {
                shared: self.shared.clone(),
                video: p.video,
                audio: p.audio,
                opus: p.opus,
                applied_kbps: start_kbps,
                pictures: 0,
                ladder: self.ladder_driver()?,
            };
            threads.encode = Some(spawn("kp-encode", move || worker.run())?);
        }
        for (dest, wake) in p.wakes.into_iter().enumerate() {
            let worker = network::NetworkWorker {
                shared: self.shared.clone(),
                dest,
                wake,
                routes_seen: Default::default(),
                route_lost: Default::default(),
            };
            threads.network.push(spawn("kp-network", move || worker.run())?);
        }
        Ok(())
    }

    /// The encode ladder for the built-in video encoder, when it is on.
    fn ladder_driver(&self) -> Result<Option<ladder_driver::LadderDriver>> {
        let cfg = &self.shared.config;
        let Some(v) = cfg.video.as_ref().filter(|v| cfg.ladder.enabled && !v.encoder.is_pre_encoded()) else {
            return Ok(None);
        };
        let ladder = cfg.ladder.ladder_config(v)?;
        Ok(Some(ladder_driver::LadderDriver::new(ladder, &self.shared, Instant::now())))
    }

    /// Sets the callback asked for a fresh URL before each reconnect (signed URLs expire):
    /// `(destination, url_index) -> Some(new URL)` or None to keep the current one. It runs on
    /// an SDK thread and may block up to `url_refresh_timeout`, after which the old URL is used.
    /// When a destination would give up (e.g. `KP_ERR_AUTH`), a new URL from it revives it.
    /// Only before `start`. A call that overran its timeout may still be running after the pusher
    /// is dropped (the closure is owned by that call until it returns).
    pub fn set_url_refresh(&self, f: UrlRefresh) -> Result<()> {
        if lock(&self.pending).is_none() {
            return Err(Error::InvalidState("set_url_refresh: the pusher was already started".into()));
        }
        *lock(&self.shared.url_refresh) = Some(f);
        Ok(())
    }

    /// Sets the function that receives a stats snapshot every `interval` (zero: every second;
    /// at least 100 ms), on the SDK's callback thread. Only before `start`.
    pub fn set_stats_handler(&self, interval: Duration, h: StatsHandler) -> Result<()> {
        if lock(&self.pending).is_none() {
            return Err(Error::InvalidState("set_stats_handler: the pusher was already started".into()));
        }
        let interval = if interval.is_zero() { DEFAULT_STATS_INTERVAL } else { interval };
        if interval < Duration::from_millis(100) {
            return Err(Error::InvalidArgument(format!("stats interval {} ms is under 100 ms", interval.as_millis())));
        }
        *lock(&self.shared.stats_handler) = Some(h);
        *lock(&self.shared.stats_interval) = Some(interval);
        Ok(())
    }

    /// Checks that media may be pushed now.
    fn accepting(&self) -> Result<()> {
        match self.shared.state() {
            PusherState::KP_STATE_CONNECTING
            | PusherState::KP_STATE_PUBLISHING
            | PusherState::KP_STATE_RECONNECTING => Ok(()),
            PusherState::KP_STATE_FAILED => {
                let why = lock(&self.shared.failure).as_ref().map_or_else(String::new, |e| e.to_string());
                Err(Error::InvalidState(format!("the pusher failed: {why}")))
            }
            _ => Err(Error::NotStarted),
        }
    }

    fn reject<T>(&self, e: Error) -> Result<T> {
        self.shared.counters.frames_rejected.fetch_add(1, Relaxed);
        Err(e)
    }

    /// The stream time of pre-encoded audio (push_aac, push_opus), with the timeline held: the
    /// caller queues its units before letting it go, as in push_video (a thread that stamps a
    /// later time cannot queue first).
    fn stamp_encoded_audio(&self, pts_us: i64) -> Result<(MutexGuard<'_, Timeline>, u64)> {
        let mut timeline = lock(&self.shared.timeline);
        match timeline.stamp(TimelineTrack::Audio, self.pts(pts_us)) {
            Ok(ts) => Ok((timeline, ts)),
            Err(e) => {
                drop(timeline);
                self.reject(e)
            }
        }
    }

    fn pts(&self, pts_us: i64) -> i64 {
        if pts_us < 0 {
            self.shared.clock_us()
        } else {
            pts_us
        }
    }

    /// Raw picture in the configured size, or larger: scaled down as `VideoConfig::scaling` says
    /// (see [`VideoScaling`]). `pts_us` < 0: stamped by the SDK's clock. Copied (and converted to
    /// I420) before returning; never blocks on the encoder or the network.
    /// When the encoder is behind, the frame is dropped, counted, and `QueueFull` returned.
    pub fn push_video(&self, frame: &VideoFrame<'_>, pts_us: i64) -> Result<()> {
        let v = self.raw_video()?;
        if let Err(e) = crate::encode::pixel::validate_scalable(frame, v.width, v.height, v.scaling) {
            return self.reject(e);
        }
        self.not_paused("push_video")?;
        let Some(pts_us) = self.admit_video(pts_us)? else {
            return Ok(());
        };
        self.copy_and_queue(frame, v, pts_us)
    }

    /// The video configuration, for a raw frame: refused when not started, without video, or
    /// with pre-encoded video.
    fn raw_video(&self) -> Result<&VideoConfig> {
        self.accepting()?;
        let Some(v) = self.shared.config.video.as_ref() else {
            return self.reject(Error::InvalidState("video is disabled in the configuration".into()));
        };
        if v.encoder.is_pre_encoded() {
            return self
                .reject(Error::InvalidState("video is configured as pre-encoded: use push_h264 or push_hevc".into()));
        }
        Ok(v)
    }

    /// A raw frame's time checked (a bad timestamp is the app's error whatever the queue holds:
    /// reported first) and the frame counted in; None when the encode ladder's lower frame rate
    /// skips it (a frame it does not keep costs no copy).
    fn admit_video(&self, pts_us: i64) -> Result<Option<i64>> {
        let pts_us = self.pts(pts_us);
        if let Err(e) = lock(&self.shared.timeline).peek(TimelineTrack::Video, pts_us) {
            return self.reject(e);
        }
        self.shared.counters.video_frames_in.fetch_add(1, Relaxed);
        Ok(self.shared.ladder.keep(pts_us).then_some(pts_us))
    }

    /// Copies (converting and scaling as needed) an admitted frame into a picture of the pool and
    /// queues it.
    fn copy_and_queue(&self, frame: &VideoFrame<'_>, v: &VideoConfig, pts_us: i64) -> Result<()> {
        let Some(mut buf) = self.shared.input.video_buffer() else {
            self.shared.counters.video_frames_dropped_encoder.fetch_add(1, Relaxed);
            self.shared.ladder.queue_full.fetch_add(1, Relaxed);
            return Err(Error::QueueFull("the encoder is behind; video frame dropped"));
        };
        let started = Instant::now();
        // The encode ladder's rung size, else the configured one.
        let size = self.shared.ladder.size((v.width, v.height));
        let copied = if (frame.width, frame.height) == size {
            crate::encode::pixel::copy_to_picture(frame, &mut buf, self.semi_planar_ok)
        } else {
            let mut scaler = lock(&self.downscaler);
            // Scaling off refuses the app's frames of another size (checked above), not the ladder's rungs.
            let scaling = match v.scaling {
                VideoScaling::KP_VIDEO_SCALING_OFF => VideoScaling::KP_VIDEO_SCALING_FILL,
                s => s,
            };
            crate::encode::pixel::convert_scaled(frame, &mut buf, self.semi_planar_ok, size, scaling, &mut scaler)
        };
        self.shared.ladder.convert_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        if let Err(e) = copied {
            self.shared.input.recycle(Input::Video(buf, 0));
            return self.reject(e);
        }
        self.queue_picture(buf, pts_us)
    }

    /// Stamps a picture ready for the encoder (its time checked with `peek` before it was
    /// filled) and queues it.
    fn queue_picture(&self, buf: I420Buffer, pts_us: i64) -> Result<()> {
        // Checked before; another thread pushing video at the same time can still win the race.
        let mut timeline = lock(&self.shared.timeline);
        let ts = match timeline.stamp(TimelineTrack::Video, pts_us) {
            Ok(ts) => ts,
            Err(e) => {
                drop(timeline);
                self.shared.input.recycle(Input::Video(buf, 0));
                return self.reject(e);
            }
        };
        // Noted before the encoder can see the picture: it attaches the capture time (whose clock
        // offset this sets) as soon as it has encoded it.
        self.shared.messages.note_push(ts, ts);
        // Queued before the timeline is let go: a thread that stamps a later time cannot queue
        // its frame first (the encoder would get times going back).
        let queued = self.shared.input.push(Input::Video(buf, ts));
        drop(timeline);
        if !queued {
            self.shared.counters.video_frames_dropped_encoder.fetch_add(1, Relaxed);
            self.shared.ladder.queue_full.fetch_add(1, Relaxed);
            return Err(Error::QueueFull("the encoder is behind; video frame dropped"));
        }
        Ok(())
    }

    /// Interleaved s16 PCM with the configured channel count (any number of samples). Copied
    /// before returning.
    /// With pre-encoded AAC (`push_aac`), a destination that takes Opus (WHIP) gets its audio from
    /// PCM given here beside the AAC: the same capture, with the same timestamps, at the
    /// configured sample rate and channel count; it is encoded to Opus only. Without such a
    /// destination (or without the `opus` feature) it is refused (`InvalidState`), and without
    /// the PCM such a destination carries the video alone. With pre-encoded Opus (`push_opus`),
    /// the same for the destinations that take AAC (RTMP, SRT, the recording; feature `aac`).
    pub fn push_audio(&self, pcm: &[i16], pts_us: i64) -> Result<()> {
        self.accepting()?;
        let Some(a) = self.shared.config.audio.as_ref() else {
            return self.reject(Error::InvalidState("audio is disabled in the configuration".into()));
        };
        let pre_encoded = a.encoder.is_pre_encoded();
        if pre_encoded && !self.pcm_beside {
            return self.reject(Error::InvalidState(
                if a.encoder == AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH {
                    "audio is configured as pre-encoded AAC: use push_aac (PCM is taken beside it only for destinations that take Opus)"
                } else {
                    "audio is configured as pre-encoded Opus: use push_opus (PCM is taken beside it only for destinations that take AAC)"
                }
                .into(),
            ));
        }
        // Beside pre-encoded AAC the PCM has the same capture times as the AAC frames: its own track.
        let track = if pre_encoded { TimelineTrack::AudioPcm } else { TimelineTrack::Audio };
        if pcm.is_empty() || !pcm.len().is_multiple_of(a.channels as usize) {
            return self.reject(Error::BadFrameSize(format!(
                "{} samples is not a whole number of {}-channel frames",
                pcm.len(),
                a.channels
            )));
        }
        if pcm.len() > a.sample_rate as usize * a.channels as usize {
            return self.reject(Error::BadFrameSize(format!("{} samples is more than one second per call", pcm.len())));
        }
        // Checked first, committed only once the chunk has room: a chunk refused with QueueFull
        // leaves the clock alone, so the app may push it again with the same timestamp.
        let pts_us = self.pts(pts_us);
        if let Err(e) = lock(&self.shared.timeline).peek(track, pts_us) {
            return self.reject(e);
        }
        if !pre_encoded {
            // Beside pre-encoded AAC, audio_frames_in counts the AAC frames.
            self.shared.counters.audio_frames_in.fetch_add(1, Relaxed);
        }
        let Some(mut buf) = self.shared.input.audio_buffer() else {
            return Err(Error::QueueFull("the encoder is behind; audio dropped"));
        };
        buf.clear();
        buf.extend_from_slice(pcm);
        let silent_pause =
            lock(&self.shared.control.pause).is_some_and(|p| p.mode == PauseMode::KP_PAUSE_STILL_IMAGE_SILENT);
        if silent_pause || self.shared.control.audio_muted.load(Relaxed) {
            // Silence with the samples' timing: the track and A/V sync go on.
            buf.fill(0);
        }
        let mut timeline = lock(&self.shared.timeline);
        let ts = match timeline.stamp(track, pts_us) {
            Ok(ts) => ts,
            Err(e) => {
                drop(timeline);
                self.shared.input.recycle(Input::Audio(buf, 0));
                return self.reject(e);
            }
        };
        // Queued before the timeline is let go, as in push_video.
        let queued = self.shared.input.push(Input::Audio(buf, ts));
        drop(timeline);
        if !queued {
            return Err(Error::QueueFull("the encoder is behind; audio dropped"));
        }
        Ok(())
    }

    /// One H.264 access unit in Annex-B form (pre-encoded video), with presentation and decode
    /// times (equal without B-frames). The first access unit must be an IDR with SPS and PPS;
    /// access units before it are dropped and counted. A unit without a picture (parameter sets
    /// only, like MediaCodec's codec-config buffer) sets the next header and takes no frame time.
    /// Converted to AVCC while copying.
    pub fn push_h264(&self, annexb: &[u8], pts_us: i64, dts_us: i64) -> Result<()> {
        self.push_encoded_video(VideoEncoderKind::KP_ENCODER_PASSTHROUGH, annexb, pts_us, dts_us)
    }

    /// One H.265/HEVC access unit in Annex-B form, for a `KP_ENCODER_PASSTHROUGH_HEVC` config,
    /// sent over Enhanced RTMP (FourCC `hvc1`). The first access unit must be a random-access
    /// picture with VPS, SPS and PPS; access units before it are dropped and counted. Times as in
    /// [`Pusher::push_h264`]; converted to length-prefixed NAL units while copying.
    pub fn push_hevc(&self, annexb: &[u8], pts_us: i64, dts_us: i64) -> Result<()> {
        self.push_encoded_video(VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC, annexb, pts_us, dts_us)
    }

    fn push_encoded_video(&self, kind: VideoEncoderKind, annexb: &[u8], pts_us: i64, dts_us: i64) -> Result<()> {
        self.accepting()?;
        if self.shared.config.video.as_ref().map(|v| v.encoder) != Some(kind) {
            return self.reject(Error::InvalidState(format!("video is not configured as pre-encoded ({kind:?})")));
        }
        if annexb.is_empty() {
            return self.reject(Error::BadBitstream("empty access unit".into()));
        }
        self.not_paused("push_h264")?;
        let (pts_us, dts_us) = match (pts_us < 0, dts_us < 0) {
            (true, _) => {
                let now = self.shared.clock_us();
                (now, now)
            }
            (false, true) => (pts_us, pts_us),
            (false, false) => (pts_us, dts_us),
        };
        if pts_us < dts_us {
            return self.reject(Error::InvalidArgument(format!("pts {pts_us} us is before dts {dts_us} us")));
        }
        // Check the timestamp without committing it, so a malformed unit changes nothing.
        let mut avc = lock(&self.avc);
        let mut tl = lock(&self.shared.timeline);
        let ts = match tl.peek(TimelineTrack::Video, dts_us) {
            Ok(ts) => ts,
            Err(e) => return self.reject(e),
        };
        let cts = (tl.map_after(dts_us, pts_us) as i64 - ts as i64) as i32;
        let (codec, tags) = match kind {
            VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC => (Codec::Hevc, avc.1.packetize(annexb, cts)),
            _ => (Codec::H264, avc.0.packetize(annexb, cts)),
        };
        let tags = match tags {
            Ok(t) => t,
            Err(e) => return self.reject(e),
        };
        if tags.no_picture {
            // Parameter sets on their own (MediaCodec's codec-config buffer, often with the first
            // picture's time): the header goes out, and the time stays free for that picture.
            drop(tl);
            self.shared.queue_avc(codec, tags, ts);
            return Ok(());
        }
        if tags.frame.is_some() && !tags.keyframe && self.passthrough_needs_key.load(Relaxed) {
            // After a resume the stream restarts at an IDR: what came before it was not sent.
            self.shared.counters.video_frames_dropped_encoder.fetch_add(1, Relaxed);
            return Ok(());
        }
        tl.stamp(TimelineTrack::Video, dts_us)?;
        drop(tl);
        self.shared.messages.note_push(ts, ts.saturating_add_signed(cts.into()));
        if tags.keyframe {
            self.shared.keyframe_wanted.store(false, Relaxed);
            self.passthrough_needs_key.store(false, Relaxed);
        }
        self.shared.counters.video_frames_in.fetch_add(1, Relaxed);
        self.shared.queue_avc(codec, tags, ts);
        Ok(())
    }

    /// A timed message: copied, it rides with the next video access unit that leaves the encoder
    /// (or the next one the app pushes) as an SEI `user_data_unregistered` NAL unit (the UUID of
    /// `MessageSettings::uuid`) in front of its slices, on every transport and in the recording.
    /// `flags`: [`MessageFlag`] bits (`KP_MESSAGE_AMF`: also an RTMP/FLV data message). At most
    /// [`crate::core::sei::MAX_MESSAGE_LEN`] bytes; at most [`messages::MAX_PENDING`] wait for a
    /// frame at once (`QueueFull` past that). A destination that drops the frame under congestion
    /// sends the message with its next frame. Thread-safe; never blocks on the encoder or the
    /// network.
    pub fn send_message(&self, data: &[u8], flags: u32) -> Result<()> {
        self.accepting()?;
        if self.shared.config.video.is_none() {
            return Err(Error::InvalidState("messages ride in the video, and video is disabled".into()));
        }
        self.shared.messages.send(data, flags)
    }

    /// AAC-LC frames, either ADTS (any number of frames, headers stripped here) or one raw
    /// frame (the configured sample rate and channels describe it). `pts_us` is the first frame's.
    pub fn push_aac(&self, data: &[u8], pts_us: i64) -> Result<()> {
        self.accepting()?;
        let Some(a) =
            self.shared.config.audio.as_ref().filter(|a| a.encoder == AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH)
        else {
            return self.reject(Error::InvalidState(
                "audio is not configured as pre-encoded (KP_AUDIO_ENCODER_PASSTHROUGH)".into(),
            ));
        };
        if data.is_empty() {
            return self.reject(Error::BadBitstream("empty AAC frame".into()));
        }
        // Validate everything before touching the stream, so a bad buffer changes nothing (a
        // first pass, rather than collecting the frames: no allocation per call).
        let is_adts = adts::is_adts(data);
        let first_header = if is_adts {
            match adts::adts_frames(data).try_fold(None, |first, f| f.map(|(h, _)| first.or(Some(h)))) {
                Ok(h) => h,
                Err(e) => return self.reject(e),
            }
        } else {
            None
        };
        let asc = match first_header {
            Some(h) => h.audio_specific_config(),
            None => match adts::sample_rate_index(a.sample_rate) {
                Some(i) => adts::audio_specific_config(2, i, a.channels as u8),
                None => {
                    return self
                        .reject(Error::InvalidArgument(format!("no AAC sample rate index for {}", a.sample_rate)))
                }
            },
        };
        let rate = adts::parse_audio_specific_config(&asc).map(|(r, _)| r).unwrap_or(a.sample_rate) as u64;
        let (_timeline, ts) = self.stamp_encoded_audio(pts_us)?;
        {
            let mut sent = lock(&self.aac_header_sent);
            if *sent != Some(asc) {
                *sent = Some(asc);
                self.shared.queue_media(MediaPacket::aac(ts, true, Bytes::copy_from_slice(&asc)));
            }
        }
        let mut n = 0u64;
        let mut bodies = lock(&self.aac_bodies);
        let mut queue_frame = |raw: &[u8]| {
            let data = bodies.concat(&[raw]);
            self.shared.counters.audio_frames_in.fetch_add(1, Relaxed);
            self.shared.counters.audio_frames_encoded.fetch_add(1, Relaxed);
            let timestamp_ms = ts + n * 1024 * 1000 / rate;
            n += 1;
            self.shared.queue_media(MediaPacket::aac(timestamp_ms, false, data));
        };
        if is_adts {
            for frame in adts::adts_frames(data) {
                queue_frame(frame?.1); // validated above
            }
        } else {
            queue_frame(data);
        }
        Ok(())
    }

    /// One Opus packet (RFC 6716: a TOC byte and its frames, as an Opus encoder returns it or an
    /// Ogg/WebM demuxer gives it) for a `KP_AUDIO_ENCODER_PASSTHROUGH_OPUS` config, 48 kHz like
    /// every Opus stream, mono or stereo, 2.5 to 120 ms long. The destinations that take Opus
    /// (WebRTC) carry it as it is; the packet is checked against RFC 6716's framing rules first
    /// (`BadBitstream` naming the rule, nothing queued). Copied before returning.
    pub fn push_opus(&self, packet: &[u8], pts_us: i64) -> Result<()> {
        self.accepting()?;
        if !self
            .shared
            .config
            .audio
            .as_ref()
            .is_some_and(|a| a.encoder == AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS)
        {
            return self.reject(Error::InvalidState(
                "audio is not configured as pre-encoded Opus (KP_AUDIO_ENCODER_PASSTHROUGH_OPUS)".into(),
            ));
        }
        if let Err(e) = crate::core::opus_packet::packet_samples(packet) {
            return self.reject(e);
        }
        let (_timeline, ts) = self.stamp_encoded_audio(pts_us)?;
        let data = lock(&self.aac_bodies).concat(&[packet]);
        self.shared.counters.audio_frames_in.fetch_add(1, Relaxed);
        self.shared.counters.audio_frames_encoded.fetch_add(1, Relaxed);
        self.shared.queue_media(MediaPacket::opus(ts, data));
        Ok(())
    }

    fn not_paused(&self, what: &str) -> Result<()> {
        match *lock(&self.shared.control.pause) {
            Some(p) => Err(Error::Paused(format!("{what}: video is paused ({:?}); frame ignored", p.mode))),
            None => Ok(()),
        }
    }

    fn passthrough_video(&self) -> bool {
        self.shared.config.video.as_ref().is_some_and(|v| v.encoder.is_pre_encoded())
    }

    fn passthrough_audio(&self) -> bool {
        self.shared.config.audio.as_ref().is_some_and(|a| a.encoder.is_pre_encoded())
    }

    /// Background mode: keeps the connection and the server's recording alive while the app
    /// cannot capture. Video becomes a still picture repeated at `pause_fps` (the one set with
    /// [`Pusher::set_pause_image`], else the last frame pushed) or stops (audio-only); audio is
    /// what the app keeps pushing, or silence the SDK makes when none comes (always silence in
    /// `KP_PAUSE_STILL_IMAGE_SILENT`). While paused, `push_video`/`push_h264` return `Paused`
    /// and the frame is ignored. Calling it again while paused switches the mode. Emits PAUSED
    /// (`value`: the mode). Still-image modes need the built-in video encoder (`Unsupported`
    /// with pre-encoded video); SDK-made silence needs the built-in audio encoder (with
    /// pre-encoded audio, only what the app pushes is sent). Not before start or after stop.
    pub fn pause(&self, mode: PauseMode) -> Result<()> {
        self.accepting()?;
        if mode.has_video() && self.passthrough_video() {
            return Err(Error::Unsupported(format!(
                "{mode:?}: a still picture needs the built-in video encoder; use KP_PAUSE_AUDIO_ONLY with pre-encoded video"
            )));
        }
        if mode.has_video() && self.shared.config.video.is_none() {
            return Err(Error::InvalidState(format!("{mode:?}: there is no video track")));
        }
        {
            let mut pause = lock(&self.shared.control.pause);
            let tl = lock(&self.shared.timeline);
            *pause = Some(match *pause {
                Some(p) => control::Pause { mode, ..p },
                None => control::Pause { mode, since: Instant::now(), start_ms: tl.latest_ms() },
            });
        }
        self.shared.input.wake();
        self.shared.emit(EventKind::KP_EVENT_PAUSED, ResultCode::KP_OK, format!("paused: {mode:?}"), mode as i64);
        Ok(())
    }

    /// Ends a pause: the app's frames are taken again and the video restarts with an IDR (with
    /// pre-encoded video, KEYFRAME_NEEDED asks the app for one and inter frames are dropped until
    /// it comes). App timestamps must go on after the pause; a capture clock that stood still in
    /// the background is moved, with both tracks, to where the stream is. Emits RESUMED
    /// (`value`: how long the pause lasted, ms). `InvalidState` when not paused.
    pub fn resume(&self) -> Result<()> {
        self.accepting()?;
        let since = {
            let mut pause = lock(&self.shared.control.pause);
            let Some(p) = pause.take() else {
                return Err(Error::InvalidState("resume: the pusher is not paused".into()));
            };
            // The app's first frame after the pause lands at least a frame interval after the
            // last pause frame.
            // Whole milliseconds, rounded up: FLV times are whole milliseconds, and a step of
            // 33 ms at 30 fps would put two frames into one frame slot for a muxer on a 1/30 grid.
            let fps = self.shared.config.video.as_ref().map(|v| f64::from(v.fps));
            let step_ms = fps.map_or(20.0, |f| (1000.0 / f).ceil());
            let grid_us = fps.map_or(0, |f| (1_000_000.0 / f).round() as i64);
            lock(&self.shared.timeline).resume(step_ms as i64 * 1000, grid_us);
            p.since
        };
        if self.passthrough_video() {
            self.passthrough_needs_key.store(true, Relaxed);
            self.shared.keyframe_wanted.store(false, Relaxed);
        }
        self.shared.want_keyframe(0);
        self.shared.input.wake();
        let ms = since.elapsed().as_millis() as i64;
        self.shared.emit(EventKind::KP_EVENT_RESUMED, ResultCode::KP_OK, "resumed", ms);
        Ok(())
    }

    /// The picture pause modes repeat (instead of the last frame pushed), in the configured size
    /// or larger (scaled like `push_video`'s frames); copied before returning. Any time before
    /// stop, also before start.
    pub fn set_pause_image(&self, frame: &VideoFrame<'_>) -> Result<()> {
        self.not_stopped("set_pause_image")?;
        let Some(v) = self.shared.config.video.as_ref().filter(|v| !v.encoder.is_pre_encoded()) else {
            return Err(Error::InvalidState("set_pause_image: needs the built-in video encoder".into()));
        };
        let mut buf = crate::encode::I420Buffer::default();
        let mut scaler = crate::encode::pixel::Downscaler::default();
        crate::encode::pixel::convert_scaled(frame, &mut buf, false, (v.width, v.height), v.scaling, &mut scaler)?;
        let mut image = lock(&self.shared.control.image);
        *image = (image.0 + 1, Some(buf));
        Ok(())
    }

    fn not_stopped(&self, what: &str) -> Result<()> {
        match self.shared.state() {
            PusherState::KP_STATE_STOPPING | PusherState::KP_STATE_STOPPED => {
                Err(Error::InvalidState(format!("{what}: the pusher was stopped")))
            }
            PusherState::KP_STATE_FAILED => Err(Error::InvalidState(format!("{what}: the pusher failed"))),
            _ => Ok(()),
        }
    }

    /// Changes the video encoder's target bitrate from the next frame on (any time before stop,
    /// also before start). kbps in [1, 200000]. `InvalidState` with pre-encoded video (the app's
    /// encoder sets its own rate).
    pub fn set_video_bitrate(&self, kbps: u32) -> Result<()> {
        self.not_stopped("set_video_bitrate")?;
        if self.shared.config.video.is_none() || self.passthrough_video() {
            return Err(Error::InvalidState("set_video_bitrate: no video encoder in this configuration".into()));
        }
        if kbps == 0 || kbps > 200_000 {
            return Err(Error::InvalidArgument(format!("video bitrate {kbps} kbit/s is not in [1, 200000]")));
        }
        self.shared.control.video_bitrate_kbps.store(kbps, Relaxed);
        Ok(())
    }

    /// The next video frame encoded becomes an IDR (with pre-encoded video: KEYFRAME_NEEDED asks
    /// the app for one). While started.
    pub fn request_keyframe(&self) -> Result<()> {
        self.accepting()?;
        if self.shared.config.video.is_none() {
            return Err(Error::InvalidState("request_keyframe: there is no video track".into()));
        }
        if self.passthrough_video() {
            // Asked again even when an earlier request is pending: the app asked for it.
            self.shared.keyframe_wanted.store(false, Relaxed);
        }
        self.shared.want_keyframe(0);
        Ok(())
    }

    /// Tells the pusher that the device's network changed (the OS reported that Wi-Fi gave way
    /// to cellular, or back): every destination drops its connection at once and connects again
    /// on the new route, without waiting for the stall timeout and without the backoff of the
    /// old route's failures. Each affected destination reports DISCONNECTED, then RECONNECTED.
    /// Media goes on queueing meanwhile. Non-blocking; while started.
    pub fn network_changed(&self) -> Result<()> {
        self.accepting()?;
        for d in &self.shared.destinations {
            d.route_changes.fetch_add(1, Relaxed);
            d.waker.wake();
        }
        Ok(())
    }

    /// Muted audio is encoded as silence with the timing of the samples pushed (the track and
    /// its clock go on). Any time before stop, also before start. `InvalidState` with no audio
    /// track or pre-encoded audio (the SDK cannot silence AAC it does not encode).
    pub fn set_audio_muted(&self, muted: bool) -> Result<()> {
        self.not_stopped("set_audio_muted")?;
        if self.shared.config.audio.is_none() || self.passthrough_audio() {
            return Err(Error::InvalidState("set_audio_muted: no audio encoder in this configuration".into()));
        }
        self.shared.control.audio_muted.store(muted, Relaxed);
        Ok(())
    }

    /// Encodes and sends what is queued (until `timeout` passes; a connection being made or remade
    /// is still waited for within it), unpublishes and closes the connection. Blocks until the
    /// workers have ended (at most about `timeout`: a TCP connect in flight is given up when it
    /// passes, while a DNS lookup in flight is still waited for, up to the connect timeout). The STOPPED event follows. `Timeout` when media was left unsent; the pusher is
    /// stopped all the same.
    pub fn stop(&self, timeout: Duration) -> Result<()> {
        if !self.started.load(Relaxed) {
            // As the C header documents: KP_ERR_NOT_STARTED for a pusher never started.
            return Err(Error::NotStarted);
        }
        {
            let mut st = lock(&self.shared.state);
            match *st {
                PusherState::KP_STATE_STOPPING | PusherState::KP_STATE_STOPPED => return Ok(()),
                PusherState::KP_STATE_FAILED => {}
                _ => *st = PusherState::KP_STATE_STOPPING,
            }
        }
        *lock(&self.shared.stop_deadline) = Some(Instant::now() + timeout);
        self.shared.stop_requested.store(true, Relaxed);
        self.shared.input.close();
        let mut threads = lock(&self.threads);
        match threads.encode.take() {
            Some(h) => {
                let _ = h.join();
            }
            None => self.shared.finish_input(),
        }
        for d in &self.shared.destinations {
            d.waker.wake();
        }
        for h in threads.network.drain(..) {
            let _ = h.join();
        }
        // Everything encoded has passed the recording tap: close the file before returning.
        let _ = self.stop_recording();
        if let Some((stop, h)) = threads.monitor.take() {
            drop(stop);
            let _ = h.join();
        }
        // The workers reported their own STOPPED; after a failure none was left to do it.
        let failed = self.shared.state() == PusherState::KP_STATE_FAILED;
        self.shared.set_state(PusherState::KP_STATE_STOPPED);
        if failed {
            self.shared.emit(EventKind::KP_EVENT_STOPPED, ResultCode::KP_OK, "stopped after failure", 0);
        }
        let unsent: u64 = self.shared.destinations.iter().map(|d| d.unsent_at_stop.load(Relaxed)).sum();
        if unsent > 0 {
            return Err(Error::Timeout(format!(
                "{unsent} media packets were still queued when the stop deadline passed"
            )));
        }
        Ok(())
    }

    /// Starts writing the stream to a local FLV file (for replay) alongside the push: from the
    /// next video keyframe (one is requested: for pre-encoded video a KEYFRAME_NEEDED event asks
    /// the app), with onMetaData and the sequence headers first and timestamps starting at 0.
    /// Allowed before `start` (the file then holds the whole stream) and while running; one
    /// recording at a time. The file is created here (truncated if it exists); writing happens on
    /// its own thread and a failure there (disk full, I/O error) ends the recording with
    /// RECORDING_FAILED, never the push. Reconnects do not interrupt it. Errors: `File` (cannot
    /// create the file), `InvalidState` (a recording is in progress, or the pusher stopped or failed).
    pub fn start_recording(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        match self.shared.state() {
            PusherState::KP_STATE_STOPPING | PusherState::KP_STATE_STOPPED | PusherState::KP_STATE_FAILED => {
                return Err(Error::InvalidState("start_recording: the pusher has stopped".into()))
            }
            _ => {}
        }
        {
            let mut tap = lock(&self.shared.recording);
            recording::start(&self.shared, path.as_ref().to_path_buf(), &mut tap)?;
        }
        self.shared.want_keyframe(0);
        Ok(())
    }

    /// Stops the recording: what is queued for the file is written, the file is closed (and
    /// synced), RECORDING_STOPPED follows. Blocks until the writer has finished. `stop` and drop
    /// do this too. Errors: `InvalidState` when no recording is in progress (never started,
    /// already stopped, or it failed: RECORDING_FAILED said so).
    pub fn stop_recording(&self) -> Result<()> {
        let (ending, writer) = recording::take(&mut lock(&self.shared.recording))?;
        recording::finish(ending, writer)
    }

    /// The lifecycle state; while running: PUBLISHING when any destination publishes,
    /// RECONNECTING when none does and one is between connections after an outage, else CONNECTING.
    pub fn state(&self) -> PusherState {
        state_of(&self.shared)
    }

    /// The error that made the pusher fail, if it did.
    pub fn failure(&self) -> Option<Error> {
        lock(&self.shared.failure).clone()
    }

    /// Raw picture buffers the input pool has made so far (each width × height × 1.5 bytes once
    /// filled). The pool keeps them for reuse and grows to the most pictures ever in flight at
    /// once (at most `input_queue_frames` + 2): memory checks (the soak test) subtract it from
    /// the growth they call a leak. Not part of the stable API.
    #[doc(hidden)]
    pub fn raw_video_buffers(&self) -> usize {
        self.shared.input.video_buffers_made()
    }

    pub fn stats(&self) -> Stats {
        stats_of(&self.shared)
    }
}

fn state_of(shared: &Shared) -> PusherState {
    use PusherState::*;
    match shared.state() {
        KP_STATE_CONNECTING | KP_STATE_PUBLISHING => {
            let states: Vec<_> = shared.destinations.iter().map(|d| d.state()).collect();
            if states.contains(&KP_STATE_PUBLISHING) {
                KP_STATE_PUBLISHING
            } else if states.contains(&KP_STATE_RECONNECTING) {
                KP_STATE_RECONNECTING
            } else {
                KP_STATE_CONNECTING
            }
        }
        s => s,
    }
}

/// A snapshot of the counters (also what the stats callback gets).
fn stats_of(shared: &Shared) -> Stats {
    let c = &shared.counters;
    let destinations: Vec<DestinationStats> = shared.destinations.iter().map(|d| d.stats()).collect();
    let sum = |f: fn(&DestinationStats) -> u64| destinations.iter().map(f).sum::<u64>();
    let rates = *lock(&shared.rates);
    let cpu_ns = c.encode_cpu_ns.load(Relaxed)
        + c.monitor_cpu_ns.load(Relaxed)
        + shared.destinations.iter().map(|d| d.counters.cpu_ns.load(Relaxed)).sum::<u64>();
    let video_target = shared.video_target_kbps.load(Relaxed);
    let messages_sent = sum(|d| d.messages_sent);
    let messages_dropped = sum(|d| d.messages_dropped) + shared.messages.unsent.load(Relaxed);
    let rung = shared.ladder.status();
    let configured = shared.config.video.as_ref().map_or((0, 0, 0.0), |v| (v.width, v.height, v.fps));
    Stats {
        video_frames_in: c.video_frames_in.load(Relaxed),
        audio_frames_in: c.audio_frames_in.load(Relaxed),
        video_frames_encoded: c.video_frames_encoded.load(Relaxed),
        audio_frames_encoded: c.audio_frames_encoded.load(Relaxed),
        video_frames_sent: sum(|d| d.video_frames_sent),
        audio_frames_sent: sum(|d| d.audio_frames_sent),
        video_frames_dropped_encoder: c.video_frames_dropped_encoder.load(Relaxed),
        frames_dropped_network: sum(|d| d.frames_dropped_network),
        frames_rejected: c.frames_rejected.load(Relaxed),
        bytes_sent: sum(|d| d.bytes_sent),
        video_bitrate_kbps: sum(|d| d.video_bitrate_kbps as u64) as u32,
        audio_bitrate_kbps: sum(|d| d.audio_bitrate_kbps as u64) as u32,
        queue_ms: destinations.iter().map(|d| d.queue_ms).max().unwrap_or(0),
        queue_bytes: destinations.iter().map(|d| d.queue_bytes).max().unwrap_or(0),
        reconnects: sum(|d| d.reconnects),
        uptime_ms: shared.uptime().as_millis() as u64,
        input_fps: rates.input_fps,
        encoded_fps: rates.encoded_fps,
        sent_fps: rates.sent_fps,
        target_video_kbps: if video_target == 0 {
            shared.config.video.as_ref().map_or(0, |v| v.bitrate_kbps)
        } else {
            video_target
        },
        target_audio_kbps: shared.config.audio.as_ref().map_or(0, |a| a.bitrate_kbps),
        throughput_kbps: sum(|d| d.throughput_kbps as u64) as u32,
        congestion: destinations.iter().map(|d| d.congestion).fold(0.0, f32::max),
        video_frames_dropped_congestion: sum(|d| d.video_frames_dropped_congestion),
        audio_frames_dropped_congestion: sum(|d| d.audio_frames_dropped_congestion),
        audio_gaps: sum(|d| d.audio_gaps),
        video_frames_skipped_abr: c.video_frames_skipped_abr.load(Relaxed),
        rtt_ms: destinations.first().map_or(0, |d| d.rtt_ms),
        cpu_time_ms: cpu_ns / 1_000_000,
        encode_ms: rates.encode_ms,
        fps_divisor: shared.fps_divisor.load(Relaxed).max(1),
        state: Some(state_of(shared)),
        video_frames_lost_outage: sum(|d| d.video_frames_lost_outage),
        audio_frames_lost_outage: sum(|d| d.audio_frames_lost_outage),
        destinations,
        video_timestamps_adjusted: lock(&shared.timeline).video_times_moved(),
        messages_accepted: shared.messages.accepted.load(Relaxed),
        messages_sent,
        messages_dropped,
        encode_rung: rung.map_or(0, |r| r.0),
        encode_width: rung.map_or(configured.0, |r| r.1.width),
        encode_height: rung.map_or(configured.1, |r| r.1.height),
        encode_fps: rung.map_or(configured.2, |r| r.1.fps),
        video_frames_skipped_ladder: shared.ladder.frames_skipped.load(Relaxed),
    }
}

impl Drop for Pusher {
    /// Stops without waiting for queued media, joins every thread; no callback runs afterwards.
    fn drop(&mut self) {
        if self.started.load(Relaxed) {
            let _ = self.stop(Duration::ZERO);
        }
        let _ = self.stop_recording();
        if let Some(h) = lock(&self.shared.recording).take_writer() {
            let _ = h.join();
        }
        lock(&self.shared.events).take().map(|tx| tx.send(None));
        if let Some(h) = lock(&self.callback).take() {
            // Dropped from inside a callback: the callback thread ends by itself after this event.
            if Some(std::thread::current().id()) != self.callback_thread {
                let _ = h.join();
            }
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(f).map_err(|e| Error::Internal(format!("spawn {name}: {e}")))
}

fn encoder_config(v: &VideoConfig) -> crate::encode::VideoEncoderConfig {
    crate::encode::VideoEncoderConfig {
        width: v.width,
        height: v.height,
        fps: v.fps,
        bitrate_kbps: v.bitrate_kbps,
        keyframe_interval: v.keyframe_interval,
        threads: v.threads,
    }
}

fn make_video_encoder(v: &VideoConfig) -> Result<Option<Box<dyn VideoEncoder>>> {
    let cfg = encoder_config(v);
    match v.encoder {
        VideoEncoderKind::KP_ENCODER_PASSTHROUGH | VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC => Ok(None),
        #[cfg(feature = "openh264")]
        VideoEncoderKind::KP_ENCODER_OPENH264 => {
            Ok(Some(Box::new(crate::encode::openh264::OpenH264Encoder::new(&cfg)?)))
        }
        #[cfg(not(feature = "openh264"))]
        VideoEncoderKind::KP_ENCODER_OPENH264 => {
            let _ = cfg;
            Err(Error::Unsupported("the OpenH264 encoder is not in this build (cargo feature `openh264`)".into()))
        }
        #[cfg(feature = "x264")]
        VideoEncoderKind::KP_ENCODER_X264 => Ok(Some(Box::new(crate::encode::x264::X264Encoder::new(&cfg, &v.x264)?))),
        #[cfg(not(feature = "x264"))]
        VideoEncoderKind::KP_ENCODER_X264 => Err(Error::Unsupported(
            "the x264 encoder is not in this build (rebuild kitepush with cargo feature `x264`; GPL)".into(),
        )),
    }
}

fn make_opus_encoder(a: &AudioConfig) -> Result<Box<dyn AudioEncoder>> {
    #[cfg(feature = "opus")]
    {
        let cfg = crate::encode::AudioEncoderConfig {
            sample_rate: a.sample_rate,
            channels: a.channels,
            bitrate_kbps: a.bitrate_kbps,
        };
        Ok(Box::new(crate::encode::opus::OpusEncoder::new(&cfg)?))
    }
    #[cfg(not(feature = "opus"))]
    {
        let _ = a;
        Err(Error::Unsupported("the Opus encoder is not in this build (cargo feature `opus`)".into()))
    }
}

fn make_audio_encoder(a: &AudioConfig) -> Result<Option<Box<dyn AudioEncoder>>> {
    let cfg = crate::encode::AudioEncoderConfig {
        sample_rate: a.sample_rate,
        channels: a.channels,
        bitrate_kbps: a.bitrate_kbps,
    };
    match a.encoder {
        AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH => Ok(None),
        // Beside pre-encoded Opus, the AAC is made from the app's PCM.
        #[cfg(feature = "aac")]
        AudioEncoderKind::KP_AUDIO_ENCODER_FDK_AAC | AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS => {
            Ok(Some(Box::new(crate::encode::fdk_aac::FdkAacEncoder::new(&cfg)?)))
        }
        #[cfg(not(feature = "aac"))]
        AudioEncoderKind::KP_AUDIO_ENCODER_FDK_AAC | AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS => {
            let _ = cfg;
            Err(Error::Unsupported("the AAC encoder is not in this build (cargo feature `aac`)".into()))
        }
    }
}
