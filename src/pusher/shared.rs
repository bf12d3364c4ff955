//! State shared by the API calls and the worker threads.

use super::event::{Event, EventKind, PusherState};
use super::input::InputQueue;
use super::stats::DestinationStats;
use super::timeline::Timeline;
use super::PusherConfig;
use crate::core::media::{Codec, MediaPacket, Track};
use crate::core::send_queue::{PushOutcome, SendQueue};
use crate::core::url::DestUrl;
use crate::error::{Error, ResultCode};
use crate::io::transport::Waker;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Counters of the whole pusher (input and encoding).
#[derive(Default)]
pub struct Counters {
    pub video_frames_in: AtomicU64,
    pub audio_frames_in: AtomicU64,
    pub video_frames_encoded: AtomicU64,
    pub audio_frames_encoded: AtomicU64,
    pub video_frames_dropped_encoder: AtomicU64,
    pub frames_rejected: AtomicU64,
    /// Wall time spent in the video encoder, and encoded pictures, for the per-second mean.
    pub encode_ns: AtomicU64,
    pub video_frames_skipped_abr: AtomicU64,
    /// CPU time of the SDK's threads, each stored by the thread itself.
    pub encode_cpu_ns: AtomicU64,
    pub monitor_cpu_ns: AtomicU64,
}

/// Counters of one destination (output).
#[derive(Default)]
pub struct DestCounters {
    pub video_frames_sent: AtomicU64,
    pub audio_frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub video_bytes_sent: AtomicU64,
    pub audio_bytes_sent: AtomicU64,
    pub video_bitrate_kbps: AtomicU32,
    pub audio_bitrate_kbps: AtomicU32,
    pub frames_dropped_network: AtomicU64,
    pub reconnects: AtomicU64,
    pub outage_ms_total: AtomicU64,
    pub url_index: AtomicU32,
    /// Bytes the kernel has sent (written minus what the socket still holds), over all sessions.
    pub bytes_delivered: AtomicU64,
    pub throughput_kbps: AtomicU32,
    pub rtt_ms: AtomicU32,
    /// The transport's own bandwidth estimate (WebRTC), kbit/s; 0 = none.
    pub bandwidth_estimate_kbps: AtomicU32,
    /// Keyframes the receiver asked for (WebRTC PLI/FIR) and was given.
    pub keyframe_requests: AtomicU32,
    /// The audio loss the peer reports (WebRTC), percent; read by the encode worker.
    pub audio_loss_percent: AtomicU32,
    pub video_dropped_congestion: AtomicU64,
    pub audio_dropped_congestion: AtomicU64,
    pub audio_gaps: AtomicU64,
    pub target_video_kbps: AtomicU32,
    pub cpu_ns: AtomicU64,
    /// SRT's repair and drop counts over all sessions, and its send buffer now.
    pub packets_retransmitted: AtomicU64,
    pub packets_lost: AtomicU64,
    pub packets_dropped_late: AtomicU64,
    pub send_buffer_ms: AtomicU32,
    pub latency_ms: AtomicU32,
    /// Media lost to outages (no connection), apart from congestion drops; and the outages'
    /// media kept and lost, in ms of stream time (see SendQueue::on_resume).
    pub video_lost_outage: AtomicU64,
    pub audio_lost_outage: AtomicU64,
    pub outage_media_kept_ms: AtomicU64,
    pub outage_media_lost_ms: AtomicU64,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent between statements; a panic elsewhere must
    // not turn every later call into a second panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One output: its URLs, send queue, state and counters. Its network worker owns the socket.
pub struct Destination {
    pub index: u32,
    /// Primary first, then backups; the URL refresh callback may replace one.
    pub urls: Mutex<Vec<DestUrl>>,
    pub queue: Mutex<SendQueue>,
    /// Wakes this destination's network worker (media queued, stop requested).
    pub waker: Waker,
    pub state: Mutex<PusherState>,
    pub failure: Mutex<Option<Error>>,
    pub counters: DestCounters,
    /// Media packets still queued when stop()'s deadline ended the worker.
    pub unsent_at_stop: AtomicU64,
    /// How many times the app reported a network change (see `Pusher::network_changed`).
    pub route_changes: AtomicU64,
    /// The audio codecs its URLs carry (both when a primary and a backup differ): audio units
    /// of another codec are not queued to it (so they are neither sent nor dropped nor counted
    /// there); of a mixed queue, each link sends what it `carries`.
    pub audio_codecs: super::config::AudioCodecs,
}

impl Destination {
    pub fn state(&self) -> PusherState {
        *lock(&self.state)
    }

    pub fn set_state(&self, s: PusherState) {
        *lock(&self.state) = s;
    }

    pub fn stats(&self) -> DestinationStats {
        let c = &self.counters;
        // A destination that has ended sends nothing more: what still waits in its queue is lost.
        let ended = matches!(self.state(), PusherState::KP_STATE_STOPPED | PusherState::KP_STATE_FAILED);
        let (queue_ms, queue_bytes, congestion, messages, catch_up_ms, catching_up) = {
            let q = lock(&self.queue);
            let lost = if ended { q.messages_waiting() } else { 0 };
            (
                q.latency_ms() as u32,
                q.bytes() as u64,
                q.congestion(),
                (q.messages().sent(), q.messages().dropped() + lost),
                q.last_catch_up_ms(),
                q.is_catching_up(),
            )
        };
        DestinationStats {
            state: Some(self.state()),
            url_index: c.url_index.load(Relaxed),
            video_frames_sent: c.video_frames_sent.load(Relaxed),
            audio_frames_sent: c.audio_frames_sent.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            frames_dropped_network: c.frames_dropped_network.load(Relaxed),
            video_bitrate_kbps: c.video_bitrate_kbps.load(Relaxed),
            audio_bitrate_kbps: c.audio_bitrate_kbps.load(Relaxed),
            queue_ms,
            queue_bytes,
            reconnects: c.reconnects.load(Relaxed),
            outage_ms_total: c.outage_ms_total.load(Relaxed),
            throughput_kbps: c.throughput_kbps.load(Relaxed),
            congestion,
            rtt_ms: c.rtt_ms.load(Relaxed),
            target_video_kbps: c.target_video_kbps.load(Relaxed),
            video_frames_dropped_congestion: c.video_dropped_congestion.load(Relaxed),
            audio_frames_dropped_congestion: c.audio_dropped_congestion.load(Relaxed),
            audio_gaps: c.audio_gaps.load(Relaxed),
            packets_retransmitted: c.packets_retransmitted.load(Relaxed),
            packets_lost: c.packets_lost.load(Relaxed),
            packets_dropped_late: c.packets_dropped_late.load(Relaxed),
            send_buffer_ms: c.send_buffer_ms.load(Relaxed),
            latency_ms: c.latency_ms.load(Relaxed),
            video_frames_lost_outage: c.video_lost_outage.load(Relaxed),
            audio_frames_lost_outage: c.audio_lost_outage.load(Relaxed),
            outage_media_kept_ms: c.outage_media_kept_ms.load(Relaxed),
            outage_media_lost_ms: c.outage_media_lost_ms.load(Relaxed),
            last_catch_up_ms: catch_up_ms.map_or(0, |ms| ms.min(u32::MAX as u64) as u32),
            catching_up,
            messages_sent: messages.0,
            messages_dropped: messages.1,
            bandwidth_estimate_kbps: c.bandwidth_estimate_kbps.load(Relaxed),
            keyframe_requests: c.keyframe_requests.load(Relaxed),
        }
    }
}

/// Asked for a fresh URL before a reconnect: (destination, URL index) → new URL or None.
pub type UrlRefresh = Box<dyn FnMut(u32, u32) -> Option<String> + Send>;

/// What the callback thread delivers.
pub enum Callback {
    Event(Event),
    Stats(Box<super::Stats>),
}

/// Per-second figures computed by the monitor.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rates {
    pub input_fps: f32,
    pub encoded_fps: f32,
    pub sent_fps: f32,
    pub encode_ms: f32,
}

pub struct Shared {
    pub config: PusherConfig,
    pub created: Instant,
    /// The pusher's own lifecycle; while it is CONNECTING or PUBLISHING the reported state is
    /// derived from the destinations (see `Pusher::state`).
    pub state: Mutex<PusherState>,
    pub failure: Mutex<Option<Error>>,
    pub counters: Counters,
    pub timeline: Mutex<Timeline>,
    pub input: InputQueue,
    /// The heap cells of video slots given back, reused by the next ones (no allocation per frame).
    /// Boxed on purpose: a slot's address is what the C ABI hands out, so the cell must not move.
    #[allow(clippy::vec_box)]
    pub slot_cells: Mutex<Vec<Box<super::video_slot::SlotCell>>>,
    pub destinations: Vec<Destination>,
    pub events: Mutex<Option<Sender<Option<Callback>>>>,
    /// The stats callback and its interval, taken by the callback thread at its first delivery.
    pub stats_handler: std::sync::Arc<Mutex<Option<super::StatsHandler>>>,
    pub stats_interval: Mutex<Option<Duration>>,
    pub rates: Mutex<Rates>,
    /// The video encoder's target (kbit/s) and frame-rate divisor, set by the monitor's ABR and
    /// applied by the encode worker before its next picture.
    pub video_target_kbps: AtomicU32,
    pub fps_divisor: AtomicU32,
    pub url_refresh: std::sync::Arc<Mutex<Option<UrlRefresh>>>,
    pub stop_requested: AtomicBool,
    /// Set by stop(): the network workers give up sending what is queued at this time.
    pub stop_deadline: Mutex<Option<Instant>>,
    /// The encode worker has flushed its encoders: nothing more will be queued.
    pub encode_finished: AtomicBool,
    /// The encoder should make the next picture an IDR (a destination restarts or dropped up to
    /// a keyframe).
    pub keyframe_wanted: AtomicBool,
    /// The local recording tap (see `recording`).
    pub recording: Mutex<super::recording::RecordingTap>,
    /// Pause, bitrate and mute, as the app last set them.
    pub control: super::control::Control,
    /// App messages waiting for the next video unit, and the capture-time clock.
    pub messages: super::messages::MessageStore,
    /// The encode ladder's current rung and counters (see `ladder_driver`).
    pub ladder: super::ladder_driver::LadderShared,
}

impl Shared {
    pub fn emit_full(
        &self,
        kind: EventKind,
        code: ResultCode,
        message: impl Into<String>,
        destination: u32,
        value: i64,
        value2: i64,
    ) {
        self.emit_values(kind, code, message, destination, [value, value2, 0, 0]);
    }

    /// An event with all four figures.
    pub fn emit_values(
        &self,
        kind: EventKind,
        code: ResultCode,
        message: impl Into<String>,
        destination: u32,
        [value, value2, value3, value4]: [i64; 4],
    ) {
        let ev = Event {
            kind,
            code,
            message: message.into(),
            timestamp_ms: self.created.elapsed().as_millis() as u64,
            destination,
            value,
            value2,
            value3,
            value4,
        };
        log::debug!(
            "event {:?} dest {} {:?} {} ({}, {}, {}, {})",
            ev.kind,
            destination,
            ev.code,
            ev.message,
            ev.value,
            ev.value2,
            ev.value3,
            ev.value4
        );
        if let Some(tx) = lock(&self.events).as_ref() {
            let _ = tx.send(Some(Callback::Event(ev)));
        }
    }

    pub fn emit(&self, kind: EventKind, code: ResultCode, message: impl Into<String>, value: i64) {
        self.emit_full(kind, code, message, 0, value, 0);
    }

    pub fn state(&self) -> PusherState {
        *lock(&self.state)
    }

    pub fn set_state(&self, s: PusherState) {
        *lock(&self.state) = s;
    }

    /// The whole pusher fails (an encoder error, or every destination gave up). The caller
    /// reports the FAILED event, after this returns.
    pub fn fail(&self, e: Error) {
        log::warn!("pusher failed: {e}");
        {
            let mut st = lock(&self.state);
            if matches!(*st, PusherState::KP_STATE_STOPPED | PusherState::KP_STATE_FAILED) {
                return;
            }
            *st = PusherState::KP_STATE_FAILED;
        }
        *lock(&self.failure) = Some(e);
        // Nothing will consume raw input any more.
        self.input.close();
        self.input.clear();
        for d in &self.destinations {
            d.waker.wake();
        }
    }

    /// One destination gave up; the pusher fails when none is left.
    pub fn fail_destination(&self, d: &Destination, e: Error) {
        log::warn!("destination {} failed: {e}", d.index);
        d.set_state(PusherState::KP_STATE_FAILED);
        *lock(&d.failure) = Some(e.clone());
        // States first, event last: an app reacting to FAILED reads the state it announces.
        if self.destinations.iter().all(|d| d.state() == PusherState::KP_STATE_FAILED) {
            self.fail(e.clone());
        }
        self.emit_full(EventKind::KP_EVENT_FAILED, e.code(), e.to_string(), d.index, 0, 0);
    }

    /// Queue a packet for every destination still alive.
    pub fn queue_media(&self, p: MediaPacket) {
        lock(&self.recording).on_packet(self, &p);
        for d in &self.destinations {
            if d.state() == PusherState::KP_STATE_FAILED || (p.track == Track::Audio && !d.audio_codecs.has(p.codec)) {
                continue;
            }
            let out = {
                let mut q = lock(&d.queue);
                q.set_clock(self.created.elapsed().as_millis() as u64);
                q.push(p.clone())
            };
            self.account_drops(d, out);
            d.waker.wake();
        }
    }

    /// Queue what the packetizer made of one access unit: a new header first, then the frame.
    pub fn queue_avc(&self, codec: Codec, tags: super::encode_worker::AvcTags, ts: u64) {
        if let Some(h) = tags.header {
            self.queue_media(MediaPacket::video(codec, ts, 0, true, true, h));
        }
        match tags.frame {
            Some(data) => {
                self.counters.video_frames_encoded.fetch_add(1, Relaxed);
                let pts = ts.saturating_add_signed(tags.cts_ms.into());
                let (data, messages) = self.messages.attach(codec, data, tags.keyframe, pts);
                let p = MediaPacket::video(codec, ts, tags.cts_ms, tags.keyframe, false, data);
                self.queue_media(MediaPacket { messages, ..p });
            }
            None if tags.no_picture => {}
            // Nothing decodable yet (no parameter sets): the frame is lost, and counted. Only
            // pre-encoded video gets here (an encoder's first unit carries them): its app is asked
            // for a keyframe (KEYFRAME_NEEDED) rather than left to its next scheduled IDR.
            None => {
                self.counters.video_frames_dropped_encoder.fetch_add(1, Relaxed);
                self.want_keyframe(0);
            }
        }
    }

    pub fn account_drops(&self, d: &Destination, out: PushOutcome) {
        let dropped = out.dropped_video + out.dropped_audio;
        if dropped > 0 {
            let c = &d.counters;
            c.frames_dropped_network.fetch_add(dropped, Relaxed);
            let (video, audio) = if out.outage {
                (&c.video_lost_outage, &c.audio_lost_outage)
            } else {
                (&c.video_dropped_congestion, &c.audio_dropped_congestion)
            };
            video.fetch_add(out.dropped_video, Relaxed);
            audio.fetch_add(out.dropped_audio, Relaxed);
        }
        // An outage is one gap of its own, reported by RECONNECTED, not one per frame it drops.
        if out.audio_gap && !out.outage {
            d.counters.audio_gaps.fetch_add(1, Relaxed);
        }
        if out.keyframe_wanted {
            self.want_keyframe(d.index);
        }
    }

    /// Ask the encoder for an IDR, or the app when it encodes video itself.
    pub fn want_keyframe(&self, destination: u32) {
        let passthrough = self.config.video.as_ref().is_some_and(|v| v.encoder.is_pre_encoded());
        if passthrough {
            if !self.keyframe_wanted.swap(true, Relaxed) {
                self.emit_full(
                    EventKind::KP_EVENT_KEYFRAME_NEEDED,
                    ResultCode::KP_OK,
                    "keyframe needed",
                    destination,
                    0,
                    0,
                );
            }
        } else {
            self.keyframe_wanted.store(true, Relaxed);
        }
    }

    /// Nothing more will be queued: let the send queues release what they hold back for
    /// interleaving, and tell the network workers.
    pub fn finish_input(&self) {
        self.messages.discard();
        for d in &self.destinations {
            lock(&d.queue).finish();
        }
        self.encode_finished.store(true, Relaxed);
        for d in &self.destinations {
            d.waker.wake();
        }
    }

    /// The onMetaData every session (and every local recording) starts with.
    pub fn stream_metadata(&self) -> crate::core::metadata::StreamMetadata {
        use crate::core::metadata::{AudioMeta, StreamMetadata, VideoCodec, VideoMeta};
        let c = &self.config;
        StreamMetadata {
            video: c.video.as_ref().map(|v| VideoMeta {
                codec: match v.encoder {
                    super::VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC => VideoCodec::Hevc,
                    _ => VideoCodec::H264,
                },
                width: v.width,
                height: v.height,
                framerate: v.fps as f64,
                bitrate_kbps: v.bitrate_kbps,
            }),
            audio: c.audio.as_ref().map(|a| AudioMeta {
                sample_rate: a.sample_rate,
                channels: a.channels,
                bitrate_kbps: a.bitrate_kbps,
            }),
            encoder: format!("kitepush {}", crate::VERSION),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop_requested.load(Relaxed)
    }

    pub fn stop_deadline_passed(&self, now: Instant) -> bool {
        lock(&self.stop_deadline).is_some_and(|d| now >= d)
    }

    /// Microseconds on the SDK's clock, for apps that pass a negative timestamp.
    pub fn clock_us(&self) -> i64 {
        self.created.elapsed().as_micros().min(i64::MAX as u128) as i64
    }

    pub fn uptime(&self) -> Duration {
        self.created.elapsed()
    }
}

/// CPU time the calling thread has used, in nanoseconds (0 where the clock is missing).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
