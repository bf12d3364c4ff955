//! Counters the app can read at any time.

/// One destination's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DestinationStats {
    pub state: Option<super::PusherState>,
    /// Index of the URL in use (0 = primary).
    pub url_index: u32,
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_dropped_network: u64,
    pub video_bitrate_kbps: u32,
    pub audio_bitrate_kbps: u32,
    pub queue_ms: u32,
    pub queue_bytes: u64,
    /// Publishes after the first one.
    pub reconnects: u64,
    /// Sum of outages (loss to new publish), milliseconds.
    pub outage_ms_total: u64,
}

/// A snapshot of the pusher's counters. With several destinations, the sent, dropped-network,
/// bitrate and reconnect figures are sums over the destinations and the queue figures are those
/// of the fullest queue; `destinations` has each one.
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
    pub reconnects: u64,
    pub uptime_ms: u64,
    pub destinations: Vec<DestinationStats>,
}
