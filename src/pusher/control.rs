//! Live controls the app sets while pushing (pause, bitrate, mute), held for the encode worker,
//! which polls them once per input or pause tick.

use crate::encode::I420Buffer;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

/// What the stream carries while the app is in the background. Values are stable (they cross the
/// C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum PauseMode {
    /// Video repeats a still picture (the one set with kp_pusher_set_pause_image /
    /// `Pusher::set_pause_image`, else the last frame pushed) at the configured pause frame rate; audio is what the app keeps pushing, or
    /// silence made by the SDK when it pushes none.
    KP_PAUSE_STILL_IMAGE = 0,
    /// As KP_PAUSE_STILL_IMAGE, but the audio is silence (pushed audio is replaced by it,
    /// keeping its timing).
    KP_PAUSE_STILL_IMAGE_SILENT = 1,
    /// No video; audio is what the app keeps pushing, or silence made by the SDK.
    KP_PAUSE_AUDIO_ONLY = 2,
}

impl PauseMode {
    pub fn from_raw(v: i64) -> Option<Self> {
        Some(match v {
            0 => PauseMode::KP_PAUSE_STILL_IMAGE,
            1 => PauseMode::KP_PAUSE_STILL_IMAGE_SILENT,
            2 => PauseMode::KP_PAUSE_AUDIO_ONLY,
            _ => return None,
        })
    }

    pub fn has_video(self) -> bool {
        self != PauseMode::KP_PAUSE_AUDIO_ONLY
    }
}

/// The pause in force.
#[derive(Debug, Clone, Copy)]
pub struct Pause {
    pub mode: PauseMode,
    /// When it began, and the stream time (ms) it began at: the stream advances with the wall
    /// clock from there.
    pub since: Instant,
    pub start_ms: u64,
}

impl Pause {
    pub fn now_ms(&self, now: Instant) -> u64 {
        self.start_ms + now.saturating_duration_since(self.since).as_millis() as u64
    }
}

#[derive(Default)]
pub struct Control {
    /// A bitrate the app asked for and the worker has not applied yet; 0 = none.
    pub video_bitrate_kbps: AtomicU32,
    pub audio_muted: AtomicBool,
    /// Lock order: this before the timeline (pause frames are stamped under both).
    pub pause: Mutex<Option<Pause>>,
    /// The app's still picture for pause modes, with a version so the worker copies it only when
    /// it changed.
    pub image: Mutex<(u64, Option<I420Buffer>)>,
}

impl Control {
    pub fn take_video_bitrate(&self) -> Option<u32> {
        match self.video_bitrate_kbps.swap(0, Relaxed) {
            0 => None,
            k => Some(k),
        }
    }
}
