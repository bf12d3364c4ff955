//! State shared by the API calls and the worker threads.

use super::event::{Event, EventKind, PusherState};
use super::input::InputQueue;
use super::timeline::Timeline;
use super::PusherConfig;
use crate::core::send_queue::{MediaPacket, PushOutcome, SendQueue, Track};
use crate::core::url::RtmpUrl;
use crate::error::{Error, ResultCode};
use crate::io::transport::Waker;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Counters {
    pub video_frames_in: AtomicU64,
    pub audio_frames_in: AtomicU64,
    pub video_frames_encoded: AtomicU64,
    pub audio_frames_encoded: AtomicU64,
    pub video_frames_sent: AtomicU64,
    pub audio_frames_sent: AtomicU64,
    pub video_frames_dropped_encoder: AtomicU64,
    pub frames_dropped_network: AtomicU64,
    pub frames_rejected: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub video_bytes_sent: AtomicU64,
    pub audio_bytes_sent: AtomicU64,
    pub video_bitrate_kbps: AtomicU32,
    pub audio_bitrate_kbps: AtomicU32,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent at every await point; a panic elsewhere must
    // not turn every later call into a second panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Shared {
    pub config: PusherConfig,
    pub url: RtmpUrl,
    pub created: Instant,
    pub state: Mutex<PusherState>,
    pub failure: Mutex<Option<Error>>,
    pub counters: Counters,
    pub timeline: Mutex<Timeline>,
    pub input: InputQueue,
    pub send_queue: Mutex<SendQueue>,
    /// Wakes the network worker when media is queued or a stop is requested.
    pub waker: Waker,
    pub events: Mutex<Option<Sender<Option<Event>>>>,
    pub stop_requested: AtomicBool,
    /// Set by stop(): the network worker gives up sending what is queued at this time.
    pub stop_deadline: Mutex<Option<Instant>>,
    /// The encode worker has flushed its encoders: nothing more will be queued.
    pub encode_finished: AtomicBool,
    /// The encoder should make the next picture an IDR (the send queue dropped up to a keyframe).
    pub keyframe_wanted: AtomicBool,
}

impl Shared {
    pub fn emit(&self, kind: EventKind, code: ResultCode, message: impl Into<String>, value: i64) {
        let ev = Event {
            kind,
            code,
            message: message.into(),
            timestamp_ms: self.created.elapsed().as_millis() as u64,
            destination: 0,
            value,
        };
        log::debug!(
            "event {:?} {:?} {} ({})",
            ev.kind,
            ev.code,
            ev.message,
            ev.value
        );
        if let Some(tx) = lock(&self.events).as_ref() {
            let _ = tx.send(Some(ev));
        }
    }

    pub fn state(&self) -> PusherState {
        *lock(&self.state)
    }

    pub fn set_state(&self, s: PusherState) {
        *lock(&self.state) = s;
    }

    /// Move to FAILED unless a stop already ended the stream, and report it.
    pub fn fail(&self, e: Error) {
        log::warn!("pusher failed: {e}");
        {
            let mut st = lock(&self.state);
            if matches!(*st, PusherState::KP_STATE_STOPPED) {
                return;
            }
            *st = PusherState::KP_STATE_FAILED;
        }
        self.emit(EventKind::KP_EVENT_FAILED, e.code(), e.to_string(), 0);
        *lock(&self.failure) = Some(e);
        // Nothing will consume raw input any more.
        self.input.close();
        self.input.clear();
    }

    pub fn queue_media(&self, p: MediaPacket) {
        let out: PushOutcome = lock(&self.send_queue).push(p);
        self.account_drops(out);
        self.waker.wake();
    }

    /// Queue what the packetizer made of one access unit: a new sequence header first, then the frame.
    pub fn queue_avc(&self, tags: super::encode_worker::AvcTags, ts: u64) {
        let video = |header, keyframe, body| MediaPacket {
            track: Track::Video,
            timestamp_ms: ts,
            keyframe,
            header,
            body,
        };
        if let Some(h) = tags.header {
            self.queue_media(video(true, true, h));
        }
        match tags.frame {
            Some(body) => {
                self.counters.video_frames_encoded.fetch_add(1, Relaxed);
                self.queue_media(video(false, tags.keyframe, body));
            }
            // Nothing decodable yet (no parameter sets): the frame is lost, and counted.
            None => {
                self.counters
                    .video_frames_dropped_encoder
                    .fetch_add(1, Relaxed);
            }
        }
    }

    pub fn account_drops(&self, out: PushOutcome) {
        let dropped = out.dropped_video + out.dropped_audio;
        if dropped > 0 {
            self.counters
                .frames_dropped_network
                .fetch_add(dropped, Relaxed);
        }
        if out.keyframe_wanted {
            self.keyframe_wanted.store(true, Relaxed);
        }
    }

    /// Nothing more will be queued: let the send queue release what it holds back for
    /// interleaving, and tell the network worker.
    pub fn finish_input(&self) {
        lock(&self.send_queue).finish();
        self.encode_finished.store(true, Relaxed);
        self.waker.wake();
    }

    pub fn stopping(&self) -> bool {
        self.stop_requested.load(Relaxed)
    }

    pub fn stop_deadline_passed(&self, now: Instant) -> bool {
        lock(&self.stop_deadline).is_some_and(|d| now >= d)
    }

    /// Milliseconds on the SDK's clock, for apps that pass a negative timestamp.
    pub fn clock_us(&self) -> i64 {
        self.created.elapsed().as_micros().min(i64::MAX as u128) as i64
    }

    pub fn uptime(&self) -> Duration {
        self.created.elapsed()
    }
}
