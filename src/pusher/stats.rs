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
    /// Bytes the kernel sent over the last second (all of RTMP), kbit/s.
    pub throughput_kbps: u32,
    /// 0..1: the share of the latency budget in use.
    pub congestion: f32,
    /// Round trip of an RTMP ping, ms (0 until the server answers one).
    pub rtt_ms: u32,
    /// This destination's adaptive-bitrate target for the video, kbit/s.
    pub target_video_kbps: u32,
    pub video_frames_dropped_congestion: u64,
    pub audio_frames_dropped_congestion: u64,
    /// Times audio had to be dropped (each a gap in the sound).
    pub audio_gaps: u64,
    /// SRT and WHIP destinations (0 on RTMP): packets sent again after the receiver reported them
    /// lost (SRT NAKs, WebRTC NACKs: video only, audio is not resent), packets it reported lost
    /// (SRT NAKs; WebRTC receiver reports, audio and video), packets given up because they were too late to play
    /// (dropped unacknowledged, or lost past the receiver's play time: each a gap the receiver
    /// skips), and the age of the oldest packet in SRT's send buffer (ms).
    pub packets_retransmitted: u64,
    pub packets_lost: u64,
    pub packets_dropped_late: u64,
    pub send_buffer_ms: u32,
    /// SRT: the receive latency agreed with the listener (the URL's or the config's, or the
    /// listener's when it asks for more), ms; 0 on RTMP.
    pub latency_ms: u32,
    /// Frames lost to outages (between a lost connection and the next publish: in flight on the
    /// lost connection (the server may have read a few just before it failed), before the keyframe the next session starts on, or past the budget).
    /// `frames_dropped_network` counts these and the congestion drops together.
    pub video_frames_lost_outage: u64,
    pub audio_frames_lost_outage: u64,
    /// Over all outages: ms of the media made during them that was kept and sent after the
    /// resume, and ms that was lost.
    pub outage_media_kept_ms: u64,
    pub outage_media_lost_ms: u64,
    /// How long the last resume took to bring the latency back under 300 ms (the backlog drains
    /// at link speed); 0 before the first one finishes.
    pub last_catch_up_ms: u32,
    /// The backlog of the last outage is still draining (latency not yet under 300 ms).
    pub catching_up: bool,
    /// App messages (`Pusher::send_message`) handed to this destination's connection, and given
    /// up: too many carried past frames dropped for congestion (see `core::message_carry`), or
    /// still waiting when the destination stopped or failed (no later video frame to ride on, or
    /// the stop deadline passed). Sent means delivered: messages in data a broken connection had
    /// written but the peer had not acknowledged go back to the queue and ride on the next
    /// session's first picture (one the server received but had not acknowledged yet can arrive
    /// twice); when the stop deadline passes, they count as dropped (bytes the kernel still held
    /// may yet reach the server after the stop).
    pub messages_sent: u64,
    pub messages_dropped: u64,
    /// WebRTC (WHIP): the transport's bandwidth estimate now, kbit/s (0: none, or another
    /// transport); the ABR keeps the video under 90 % of it.
    pub bandwidth_estimate_kbps: u32,
    /// WebRTC (WHIP): keyframes the receiver asked for (PLI/FIR) and was given, at most one a second.
    pub keyframe_requests: u32,
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
    /// Per second, over the last second: frames pushed by the app, encoded, sent (the busiest
    /// destination).
    pub input_fps: f32,
    pub encoded_fps: f32,
    pub sent_fps: f32,
    /// The video encoder's current target (adaptive bitrate), and the audio's configured one.
    pub target_video_kbps: u32,
    pub target_audio_kbps: u32,
    /// What the kernel sent over the last second, summed over destinations, kbit/s.
    pub throughput_kbps: u32,
    /// 0..1, the most congested destination: its queue latency as a share of the budget.
    pub congestion: f32,
    /// Summed over destinations; together they make `frames_dropped_network`.
    pub video_frames_dropped_congestion: u64,
    pub audio_frames_dropped_congestion: u64,
    pub audio_gaps: u64,
    /// Raw frames skipped by the frame-rate step-down of the adaptive bitrate.
    pub video_frames_skipped_abr: u64,
    /// Destination 0's RTMP ping round trip, ms (0: no answer yet).
    pub rtt_ms: u32,
    /// CPU time used by the SDK's own threads (encoder, network, monitor) since start, ms.
    pub cpu_time_ms: u64,
    /// Mean time to encode one video frame over the last second, ms.
    pub encode_ms: f32,
    /// The frame-rate divisor of the adaptive bitrate (1: every frame).
    pub fps_divisor: u32,
    /// The pusher's state (as `Pusher::state`) when the snapshot was taken.
    pub state: Option<super::PusherState>,
    /// Video times moved one millisecond past the previous one, because they were not after it
    /// (frames less than a millisecond apart): decode times on the wire strictly increase.
    pub video_timestamps_adjusted: u64,
    /// Frames lost to outages, summed over the destinations (see DestinationStats).
    pub video_frames_lost_outage: u64,
    pub audio_frames_lost_outage: u64,
    /// App messages accepted by `send_message`; sent and dropped summed over the destinations
    /// (dropped also counts messages no video frame followed before stop).
    pub messages_accepted: u64,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    /// The encode ladder's rung (0: the configured setting, then one per step down; 0 without a
    /// ladder), and the size and frame rate the video is encoded at now.
    pub encode_rung: u32,
    pub encode_width: u32,
    pub encode_height: u32,
    pub encode_fps: f32,
    /// Raw frames the encode ladder's lower frame rates left out (skipped on purpose, not dropped).
    pub video_frames_skipped_ladder: u64,
}
