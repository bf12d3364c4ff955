//! Counters the app can read at any time.

/// A snapshot of the pusher's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub video_frames_in: u64,
    pub audio_frames_in: u64,
    pub video_frames_encoded: u64,
    pub audio_frames_encoded: u64,
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
    /// Raw frames dropped because the encoder fell behind.
    pub video_frames_dropped_encoder: u64,
    /// Encoded frames dropped because the send queue exceeded its budget.
    pub frames_dropped_network: u64,
    /// Frames refused at input (bad arguments).
    pub frames_rejected: u64,
    pub bytes_sent: u64,
    /// Over the last second.
    pub video_bitrate_kbps: u32,
    pub audio_bitrate_kbps: u32,
    /// Media waiting for the network, in milliseconds of stream time.
    pub queue_ms: u32,
    pub queue_bytes: u64,
    pub uptime_ms: u64,
}
