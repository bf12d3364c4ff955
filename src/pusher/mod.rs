//! The pusher: owns the threads (encode worker → send queue → network worker) and the public Rust API.

pub mod config;
pub mod event;
pub mod stats;

pub use config::{AudioConfig, AudioEncoderKind, PusherConfig, VideoConfig, VideoEncoderKind};
pub use event::{Event, EventKind, PusherState};
pub use stats::Stats;

use crate::encode::VideoFrame;
use crate::error::{Error, Result};
use std::time::Duration;

/// Called on the SDK's callback thread, one event at a time, never under an internal lock.
pub type EventHandler = Box<dyn FnMut(&Event) + Send>;

/// A live-stream publisher. All methods take `&self` and may be called from any thread.
pub struct Pusher {
    _private: (),
}

impl Pusher {
    /// Validates the configuration (URL, sizes, rates). Nothing connects until [`Pusher::start`].
    pub fn new(config: PusherConfig, events: Option<EventHandler>) -> Result<Pusher> {
        let _ = (config, events);
        Err(Error::Internal("pusher not built yet".into()))
    }

    /// Starts the workers and begins connecting. Returns at once; progress is reported by events.
    pub fn start(&self) -> Result<()> {
        Err(Error::Internal("pusher not built yet".into()))
    }

    /// Raw picture. `pts_us` < 0: stamped by the SDK's clock. Copied before returning.
    pub fn push_video(&self, frame: &VideoFrame<'_>, pts_us: i64) -> Result<()> {
        let _ = (frame, pts_us);
        Err(Error::NotStarted)
    }

    /// Interleaved s16 PCM with the configured channel count. Copied before returning.
    pub fn push_audio(&self, pcm: &[i16], pts_us: i64) -> Result<()> {
        let _ = (pcm, pts_us);
        Err(Error::NotStarted)
    }

    /// One H.264 access unit in Annex-B form (passthrough video). Copied before returning.
    pub fn push_h264(&self, annexb: &[u8], pts_us: i64, dts_us: i64) -> Result<()> {
        let _ = (annexb, pts_us, dts_us);
        Err(Error::NotStarted)
    }

    /// One or more AAC frames, raw (one frame) or ADTS (any number). Copied before returning.
    pub fn push_aac(&self, data: &[u8], pts_us: i64) -> Result<()> {
        let _ = (data, pts_us);
        Err(Error::NotStarted)
    }

    /// Sends what is queued (up to `timeout`), unpublishes and closes. Blocks.
    pub fn stop(&self, timeout: Duration) -> Result<()> {
        let _ = timeout;
        Err(Error::NotStarted)
    }

    pub fn state(&self) -> PusherState {
        PusherState::KP_STATE_IDLE
    }

    pub fn stats(&self) -> Stats {
        Stats::default()
    }
}
