//! `kp_pusher`: the C face of [`crate::pusher::Pusher`].

use super::config::kp_config;
use super::error::{fail_getter, null_arg};
use super::event::{handler, in_event_callback};
use super::refresh::{in_url_refresh, url_refresh, GateCloser, RefreshGate};
use super::{kp_pause_mode, kp_pixel_format, kp_state};
use crate::encode::{PixelFormat, VideoFrame};
use crate::pusher::{DestinationStats, PauseMode, Pusher, PusherState, Stats};
use crate::Error;
use std::ffi::{c_char, CStr};
use std::mem::{offset_of, size_of, size_of_val};
use std::sync::Arc;
use std::time::Duration;

/// Writes each named field of `$src` whose bytes lie entirely within the first `$size` bytes at
/// `$out`, one unaligned write per field: the app's struct may be an older, shorter version, so no
/// reference to the whole struct is formed. To be used inside `unsafe`: `$out` must have `$size`
/// writable bytes.
macro_rules! write_fields {
    ($ty:ty, $src:expr, $out:expr, $size:expr, [$($field:ident),* $(,)?]) => {{
        let (src, out, size) = ($src, $out.cast::<u8>(), $size);
        $(
            let offset = offset_of!($ty, $field);
            if offset + size_of_val(&src.$field) <= size {
                write_at(out, offset, src.$field);
            }
        )*
    }};
}

/// A live-stream publisher (opaque). Created by kp_pusher_new, owned by the app, released with
/// kp_pusher_free. All kp_pusher_* calls except kp_pusher_free may be made from any thread, also
/// concurrently.
#[allow(non_camel_case_types)]
pub struct kp_pusher {
    pub(super) inner: Pusher,
    /// Interleaved samples per frame for push_audio; None when the config has no audio track.
    channels: Option<usize>,
    /// Declared after `inner`, so it drops after the pusher's threads are joined: then waits for a
    /// URL refresh call still in progress and lets none start.
    _refresh: Option<GateCloser>,
}

impl kp_pusher {
    /// Interleaved samples per PCM frame (None without audio): wrappers that take a sized buffer
    /// (JNI arrays) check that it holds what kp_pusher_push_audio will read.
    #[cfg_attr(not(feature = "jni"), allow(dead_code))]
    pub(crate) fn channels(&self) -> Option<usize> {
        self.channels
    }
}

// The C API lets any thread call into one pusher at once and lets free run on another thread than
// new: that holds only while Pusher stays Send + Sync.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pusher>();
};

/// One raw picture, filled by the app. Unused planes (the third for NV12/NV21) have a NULL pointer
/// and size 0. The pixels are copied before kp_pusher_push_video returns.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct kp_video_frame {
    /// kp_pixel_format_values: I420 (planes Y, U, V), NV12 / NV21 (planes Y, interleaved chroma), or
    /// one packed plane: YUY2 / UYVY (2 bytes per pixel), RGBA / BGRA (4 bytes per pixel, alpha
    /// ignored, converted with BT.601 limited range). Unused planes: NULL with size 0.
    pub format: kp_pixel_format,
    /// In pixels; the configured size, or larger when scaling is on (kp_config_set_video_scaling).
    pub width: u32,
    pub height: u32,
    /// First byte of each plane.
    pub planes: [*const u8; 3],
    /// Bytes per row of each plane, at least the plane's row width.
    pub strides: [u32; 3],
    /// Bytes readable from each plane pointer. A plane's last row need not carry its padding, and
    /// an NV12/NV21 chroma plane may end one byte before its last row does (Camera2's
    /// YUV_420_888 planes with a pixel stride of 2): the missing sample repeats its neighbour.
    pub plane_sizes: [usize; 3],
}

/// A snapshot of a pusher's counters, filled by kp_pusher_get_stats. Set `struct_size` to
/// sizeof(kp_stats) before the call: fields are only ever appended, and a library newer than the
/// app's header fills only the fields that fit in the app's struct_size.
#[repr(C)]
#[derive(Debug, Default, Clone, PartialEq)]
#[allow(non_camel_case_types)]
pub struct kp_stats {
    /// Set by the caller; never written by the library.
    pub struct_size: u32,
    /// kp_state_values at the time of the snapshot.
    pub state: kp_state,
    /// Video push calls that passed the argument checks: kp_pusher_push_video calls (including
    /// those then refused with KP_ERR_QUEUE_FULL, which video_frames_dropped_encoder counts too,
    /// so an app that retries a refused frame counts it once per try), or kp_pusher_push_h264 /
    /// push_hevc access units with a picture.
    pub video_frames_in: u64,
    /// Audio input in the unit it was pushed in: kp_pusher_push_audio calls (PCM chunks of any
    /// length, including those refused with KP_ERR_QUEUE_FULL), or AAC frames for push_aac (then
    /// the PCM given beside them for Opus destinations is not counted).
    pub audio_frames_in: u64,
    /// Pictures out of the video encoder (or pre-encoded access units accepted).
    pub video_frames_encoded: u64,
    /// AAC frames (1024 samples each) out of the audio encoder, or pushed with push_aac.
    pub audio_frames_encoded: u64,
    /// Video / AAC frames written to the network, summed over the destinations.
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
    /// Raw frames dropped because the encoder fell behind (the KP_ERR_QUEUE_FULL refusals).
    pub video_frames_dropped_encoder: u64,
    /// Encoded frames dropped because the send queue exceeded its budget.
    pub frames_dropped_network: u64,
    /// Frames refused at input (bad arguments).
    pub frames_rejected: u64,
    pub bytes_sent: u64,
    /// Bytes of media waiting for the network.
    pub queue_bytes: u64,
    /// Milliseconds since kp_pusher_start.
    pub uptime_ms: u64,
    /// Over the last second.
    pub video_bitrate_kbps: u32,
    pub audio_bitrate_kbps: u32,
    /// Media waiting for the network, in milliseconds of stream time.
    pub queue_ms: u32,
    /// Publishes after the first one, summed over the destinations.
    pub reconnects: u64,
    /// Number of destinations (1 + those added with kp_config_add_destination).
    pub destination_count: u32,
    /// Destination 0's URL in use: 0 = its primary, then its backups in order.
    pub url_index: u32,
    /// Over the last second: raw video frames pushed by the app, frames encoded, frames sent (the
    /// busiest destination), per second.
    pub input_fps: f32,
    pub encoded_fps: f32,
    pub sent_fps: f32,
    /// 0..1, the most congested destination: its queue latency as a share of the latency budget.
    pub congestion: f32,
    /// The video encoder's current target (adaptive bitrate) and the audio's, kbit/s.
    pub target_video_kbps: u32,
    pub target_audio_kbps: u32,
    /// What the kernel sent over the last second (all destinations, RTMP framing included), kbit/s.
    pub throughput_kbps: u32,
    /// Destination 0's RTMP ping round trip in ms (media queued ahead included); 0 until the server
    /// answers a ping.
    pub rtt_ms: u32,
    /// Dropped by the drop policy under congestion (together frames_dropped_network).
    pub video_frames_dropped_congestion: u64,
    pub audio_frames_dropped_congestion: u64,
    /// Times audio had to be dropped (each a gap in the sound).
    pub audio_gaps: u64,
    /// Raw frames skipped by the adaptive bitrate's frame-rate step-down.
    pub video_frames_skipped_abr: u64,
    /// CPU time of the SDK's own threads (encoder, network, monitor) since start, ms. Conversions
    /// done inside kp_pusher_push_video run on the app's thread and are not included.
    pub cpu_time_ms: u64,
    /// Mean time to encode a video frame over the last second, ms.
    pub encode_ms: f32,
    /// The adaptive bitrate's frame-rate divisor: 1 = every frame, 2 = every other frame.
    pub fps_divisor: u32,
    /// Video frames whose time was moved one millisecond past the previous frame's because it was
    /// not later (frames pushed less than a millisecond apart, e.g. in a burst with pts_us = -1):
    /// video decode times on the wire always strictly increase. Audio times are never moved.
    pub video_timestamps_adjusted: u64,
    /// Frames lost to outages, over the destinations (see kp_destination_stats).
    pub video_frames_lost_outage: u64,
    pub audio_frames_lost_outage: u64,
    /// Messages accepted by kp_pusher_send_message.
    pub messages_accepted: u64,
    /// Messages handed to the connections, and given up (too many carried past frames dropped for
    /// congestion, or still waiting when a destination or the pusher ended), summed over the
    /// destinations (see kp_destination_stats).
    pub messages_sent: u64,
    pub messages_dropped: u64,
    /// The encode ladder (kp_config_set_encode_ladder): the rung in use (0 = the configured
    /// setting, then one per step down; 0 without a ladder) and the size and frame rate video is
    /// encoded at now (the configured ones without a ladder).
    pub encode_rung: u32,
    pub encode_width: u32,
    pub encode_height: u32,
    pub encode_fps: f32,
    /// Raw frames the encode ladder's lower frame rates skipped on purpose in
    /// kp_pusher_push_video (KP_OK, not dropped; no timestamp is used up).
    pub video_frames_skipped_ladder: u64,
}

impl kp_stats {
    fn new(s: &Stats, state: PusherState) -> kp_stats {
        kp_stats {
            struct_size: size_of::<kp_stats>() as u32,
            state: state as kp_state,
            video_frames_in: s.video_frames_in,
            audio_frames_in: s.audio_frames_in,
            video_frames_encoded: s.video_frames_encoded,
            audio_frames_encoded: s.audio_frames_encoded,
            video_frames_sent: s.video_frames_sent,
            audio_frames_sent: s.audio_frames_sent,
            video_frames_dropped_encoder: s.video_frames_dropped_encoder,
            frames_dropped_network: s.frames_dropped_network,
            frames_rejected: s.frames_rejected,
            bytes_sent: s.bytes_sent,
            queue_bytes: s.queue_bytes,
            uptime_ms: s.uptime_ms,
            video_bitrate_kbps: s.video_bitrate_kbps,
            audio_bitrate_kbps: s.audio_bitrate_kbps,
            queue_ms: s.queue_ms,
            reconnects: s.reconnects,
            destination_count: s.destinations.len() as u32,
            url_index: s.destinations.first().map_or(0, |d| d.url_index),
            input_fps: s.input_fps,
            encoded_fps: s.encoded_fps,
            sent_fps: s.sent_fps,
            congestion: s.congestion,
            target_video_kbps: s.target_video_kbps,
            target_audio_kbps: s.target_audio_kbps,
            throughput_kbps: s.throughput_kbps,
            rtt_ms: s.rtt_ms,
            video_frames_dropped_congestion: s.video_frames_dropped_congestion,
            audio_frames_dropped_congestion: s.audio_frames_dropped_congestion,
            audio_gaps: s.audio_gaps,
            video_frames_skipped_abr: s.video_frames_skipped_abr,
            cpu_time_ms: s.cpu_time_ms,
            encode_ms: s.encode_ms,
            fps_divisor: s.fps_divisor,
            video_timestamps_adjusted: s.video_timestamps_adjusted,
            video_frames_lost_outage: s.video_frames_lost_outage,
            audio_frames_lost_outage: s.audio_frames_lost_outage,
            messages_accepted: s.messages_accepted,
            messages_sent: s.messages_sent,
            messages_dropped: s.messages_dropped,
            encode_rung: s.encode_rung,
            encode_width: s.encode_width,
            encode_height: s.encode_height,
            encode_fps: s.encode_fps,
            video_frames_skipped_ladder: s.video_frames_skipped_ladder,
        }
    }

    /// Writes the fields of `self` that lie entirely within the caller's first `size` bytes.
    ///
    /// # Safety
    /// `out` points to at least `size` writable bytes.
    unsafe fn write_prefix(&self, out: *mut kp_stats, size: usize) {
        // SAFETY: per this function's contract.
        unsafe {
            write_fields!(
                kp_stats,
                self,
                out,
                size,
                [
                    state,
                    video_frames_in,
                    audio_frames_in,
                    video_frames_encoded,
                    audio_frames_encoded,
                    video_frames_sent,
                    audio_frames_sent,
                    video_frames_dropped_encoder,
                    frames_dropped_network,
                    frames_rejected,
                    bytes_sent,
                    queue_bytes,
                    uptime_ms,
                    video_bitrate_kbps,
                    audio_bitrate_kbps,
                    queue_ms,
                    reconnects,
                    destination_count,
                    url_index,
                    input_fps,
                    encoded_fps,
                    sent_fps,
                    congestion,
                    target_video_kbps,
                    target_audio_kbps,
                    throughput_kbps,
                    rtt_ms,
                    video_frames_dropped_congestion,
                    audio_frames_dropped_congestion,
                    audio_gaps,
                    video_frames_skipped_abr,
                    cpu_time_ms,
                    encode_ms,
                    fps_divisor,
                    video_timestamps_adjusted,
                    video_frames_lost_outage,
                    audio_frames_lost_outage,
                    messages_accepted,
                    messages_sent,
                    messages_dropped,
                    encode_rung,
                    encode_width,
                    encode_height,
                    encode_fps,
                    video_frames_skipped_ladder
                ]
            )
        };
    }
}

/// One destination's counters, filled by kp_pusher_get_destination_stats. Set `struct_size` to
/// sizeof(kp_destination_stats) before the call: fields are only ever appended, and a library newer
/// than the app's header fills only the fields that fit in the app's struct_size.
#[repr(C)]
#[derive(Debug, Default, Clone, PartialEq)]
#[allow(non_camel_case_types)]
pub struct kp_destination_stats {
    /// Set by the caller; never written by the library.
    pub struct_size: u32,
    /// kp_state_values: this destination's state (IDLE, CONNECTING, PUBLISHING, RECONNECTING, STOPPED,
    /// or FAILED when it gave up while others go on).
    pub state: kp_state,
    /// The URL in use: 0 = the destination's primary, then its backups in order.
    pub url_index: u32,
    /// Over the last second.
    pub video_bitrate_kbps: u32,
    pub audio_bitrate_kbps: u32,
    /// Media waiting for this destination's connection, in milliseconds of stream time.
    pub queue_ms: u32,
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
    pub bytes_sent: u64,
    /// Encoded frames this destination lost: dropped for congestion (the send queue past its
    /// thresholds) plus those lost to outages (see video_frames_lost_outage).
    pub frames_dropped_network: u64,
    /// Bytes of media waiting for this destination's connection.
    pub queue_bytes: u64,
    /// Publishes after the first one.
    pub reconnects: u64,
    /// Sum of the outages (from a lost publish to the next publish), in milliseconds.
    pub outage_ms_total: u64,
    /// What the kernel sent for this destination over the last second, kbit/s.
    pub throughput_kbps: u32,
    /// RTMP ping round trip in ms; 0 until the server answers a ping.
    pub rtt_ms: u32,
    /// This destination's adaptive-bitrate target for the video, kbit/s.
    pub target_video_kbps: u32,
    /// 0..1: this destination's queue latency as a share of the latency budget.
    pub congestion: f32,
    pub video_frames_dropped_congestion: u64,
    pub audio_frames_dropped_congestion: u64,
    /// Times audio had to be dropped for this destination (each a gap in the sound).
    pub audio_gaps: u64,
    /// SRT and WHIP destinations (0 on RTMP): packets sent again after the receiver reported
    /// them lost (SRT NAKs; WebRTC NACKs, video only: audio is not resent).
    pub packets_retransmitted: u64,
    /// SRT and WHIP: packets the receiver reported lost, repaired ones included (SRT NAKs;
    /// WebRTC receiver reports, audio and video).
    pub packets_lost: u64,
    /// SRT: packets given up because they were too late to play: dropped unacknowledged from the
    /// send buffer, or lost and not resent because the receiver's play time had passed (each a gap
    /// the receiver skips; the destination counts as congested for 2 s after one, so
    /// KP_EVENT_NET_BUSY follows when they persist).
    pub packets_dropped_late: u64,
    /// SRT: age of the oldest unacknowledged packet in the send buffer, ms.
    pub send_buffer_ms: u32,
    /// SRT: the receive latency agreed with the listener (the URL's or kp_config_set_srt's, or the
    /// listener's when it asks for more), ms.
    pub latency_ms: u32,
    /// Frames lost to outages (from a lost connection to the next publish): in flight on the lost
    /// connection (the server may have read a few of these just before it failed), queued before the keyframe the next session starts on (one is asked for when
    /// the connection is lost), or past the latency budget during a long outage. The rest of an
    /// outage's media is kept and sent after the resume.
    pub video_frames_lost_outage: u64,
    pub audio_frames_lost_outage: u64,
    /// Over all outages, ms of the media made during them that was kept and sent after the
    /// resume, and ms that was lost (KP_EVENT_RECONNECTED gives both per outage).
    pub outage_media_kept_ms: u64,
    pub outage_media_lost_ms: u64,
    /// How long the last resume took to bring queue_ms back under 300 ms (the backlog drains at
    /// link speed; meanwhile it does not count as congestion for the ABR and the alerts); 0
    /// before the first one finishes.
    pub last_catch_up_ms: u32,
    /// 1 while the backlog of the last outage is draining (queue_ms not yet under 300 ms), else 0.
    pub catching_up: u32,
    /// Messages (kp_pusher_send_message) handed to this destination's connection. A message in a
    /// frame this destination drops for congestion rides on the next frame it sends.
    pub messages_sent: u64,
    /// Messages given up: more than 64 carried past dropped frames (the oldest go), or still
    /// waiting when this destination stopped or failed. Messages in data a broken connection had
    /// written but the server had not acknowledged are not counted sent: they ride on the next
    /// session's first picture (one the server received but had not acknowledged yet can arrive
    /// twice), or count here when stop's deadline passes (bytes the kernel still held may yet
    /// reach the server after the stop).
    pub messages_dropped: u64,
    /// WHIP: WebRTC's bandwidth estimate to the peer now, kbit/s (transport-wide congestion
    /// control, or the receiver's REMB); the ABR keeps the video under 90 % of it. 0 for other
    /// transports and before the first estimate.
    pub bandwidth_estimate_kbps: u32,
    /// WHIP: keyframes the receiver asked for (PLI/FIR) and was given (at most one a second;
    /// KP_EVENT_KEYFRAME_NEEDED for pre-encoded video).
    pub keyframe_requests: u32,
}

impl kp_destination_stats {
    fn new(d: &DestinationStats) -> kp_destination_stats {
        kp_destination_stats {
            struct_size: size_of::<kp_destination_stats>() as u32,
            state: d.state.unwrap_or(PusherState::KP_STATE_IDLE) as kp_state,
            url_index: d.url_index,
            video_bitrate_kbps: d.video_bitrate_kbps,
            audio_bitrate_kbps: d.audio_bitrate_kbps,
            queue_ms: d.queue_ms,
            video_frames_sent: d.video_frames_sent,
            audio_frames_sent: d.audio_frames_sent,
            bytes_sent: d.bytes_sent,
            frames_dropped_network: d.frames_dropped_network,
            queue_bytes: d.queue_bytes,
            reconnects: d.reconnects,
            outage_ms_total: d.outage_ms_total,
            throughput_kbps: d.throughput_kbps,
            rtt_ms: d.rtt_ms,
            target_video_kbps: d.target_video_kbps,
            congestion: d.congestion,
            video_frames_dropped_congestion: d.video_frames_dropped_congestion,
            audio_frames_dropped_congestion: d.audio_frames_dropped_congestion,
            audio_gaps: d.audio_gaps,
            packets_retransmitted: d.packets_retransmitted,
            packets_lost: d.packets_lost,
            packets_dropped_late: d.packets_dropped_late,
            send_buffer_ms: d.send_buffer_ms,
            latency_ms: d.latency_ms,
            video_frames_lost_outage: d.video_frames_lost_outage,
            audio_frames_lost_outage: d.audio_frames_lost_outage,
            outage_media_kept_ms: d.outage_media_kept_ms,
            outage_media_lost_ms: d.outage_media_lost_ms,
            last_catch_up_ms: d.last_catch_up_ms,
            catching_up: d.catching_up as u32,
            messages_sent: d.messages_sent,
            messages_dropped: d.messages_dropped,
            bandwidth_estimate_kbps: d.bandwidth_estimate_kbps,
            keyframe_requests: d.keyframe_requests,
        }
    }

    /// Writes the fields of `self` that lie entirely within the caller's first `size` bytes.
    ///
    /// # Safety
    /// `out` points to at least `size` writable bytes.
    unsafe fn write_prefix(&self, out: *mut kp_destination_stats, size: usize) {
        // SAFETY: per this function's contract.
        unsafe {
            write_fields!(
                kp_destination_stats,
                self,
                out,
                size,
                [
                    state,
                    url_index,
                    video_bitrate_kbps,
                    audio_bitrate_kbps,
                    queue_ms,
                    video_frames_sent,
                    audio_frames_sent,
                    bytes_sent,
                    frames_dropped_network,
                    queue_bytes,
                    reconnects,
                    outage_ms_total,
                    throughput_kbps,
                    rtt_ms,
                    target_video_kbps,
                    congestion,
                    video_frames_dropped_congestion,
                    audio_frames_dropped_congestion,
                    audio_gaps,
                    packets_retransmitted,
                    packets_lost,
                    packets_dropped_late,
                    send_buffer_ms,
                    latency_ms,
                    video_frames_lost_outage,
                    audio_frames_lost_outage,
                    outage_media_kept_ms,
                    outage_media_lost_ms,
                    last_catch_up_ms,
                    catching_up,
                    messages_sent,
                    messages_dropped,
                    bandwidth_estimate_kbps,
                    keyframe_requests
                ]
            )
        };
    }
}

/// Receives a stats snapshot: `userdata` as given to kp_config_set_stats_callback, and the stats
/// (valid only during the call; its struct_size is the library's sizeof(kp_stats)).
#[allow(non_camel_case_types)]
pub type kp_stats_cb = Option<unsafe extern "C" fn(userdata: *mut std::ffi::c_void, stats: *const kp_stats)>;

struct StatsSink {
    cb: unsafe extern "C" fn(*mut std::ffi::c_void, *const kp_stats),
    userdata: *mut std::ffi::c_void,
}

// SAFETY: the pointer is only handed back to the app's callback; kp_config_set_stats_callback makes
// the app promise that its userdata may be used from the SDK's callback thread.
unsafe impl Send for StatsSink {}

impl StatsSink {
    fn deliver(&self, s: &Stats) {
        let c_stats = kp_stats::new(s, s.state.unwrap_or(PusherState::KP_STATE_IDLE));
        let was_inside = super::event::enter_callback();
        // SAFETY: `cb` is the app's callback with the documented signature; `c_stats` outlives the call.
        unsafe { (self.cb)(self.userdata, &c_stats) };
        super::event::leave_callback(was_inside);
    }
}

/// # Safety
/// `offset + size_of::<T>()` bytes at `out` are writable.
unsafe fn write_at<T: Copy>(out: *mut u8, offset: usize, value: T) {
    // SAFETY: per this function's contract.
    unsafe { out.add(offset).cast::<T>().write_unaligned(value) };
}

/// Reads the caller's struct_size (the first 4 bytes of a stats struct), refusing NULL and sizes
/// without room for `state`.
///
/// # Safety
/// A non-NULL `out` points to at least 4 readable bytes.
unsafe fn struct_size<T>(out: *mut T, function: &str) -> Result<usize, Error> {
    if out.is_null() {
        return Err(null_arg(function, "out"));
    }
    // SAFETY: out is non-NULL and the app's struct starts with struct_size (4 readable bytes at
    // least); read unaligned because only the app's own layout vouches for alignment.
    let size = unsafe { out.cast::<u32>().read_unaligned() } as usize;
    if size < MIN_STATS_SIZE {
        return Err(Error::InvalidArgument(format!("{function}: struct_size {size} is smaller than {MIN_STATS_SIZE}")));
    }
    Ok(size)
}

/// The smallest struct_size kp_pusher_get_stats accepts: room for `state`.
const MIN_STATS_SIZE: usize = offset_of!(kp_stats, state) + size_of::<kp_state>();
const _: () = assert!(offset_of!(kp_destination_stats, state) == offset_of!(kp_stats, state));

/// # Safety
/// `p` is NULL or a live pointer from kp_pusher_new.
pub(super) unsafe fn pusher_ref<'a>(p: *const kp_pusher, function: &str) -> Result<&'a kp_pusher, Error> {
    // SAFETY: the caller guarantees a non-NULL `p` is live; it is only read through &.
    unsafe { p.as_ref() }.ok_or_else(|| null_arg(function, "pusher"))
}

/// Borrows `len` bytes at `data`; NULL is refused even with len 0.
///
/// # Safety
/// A non-NULL `data` points to `len` readable bytes that stay unchanged during the call.
pub(super) unsafe fn bytes<'a>(data: *const u8, len: usize, function: &str, what: &str) -> Result<&'a [u8], Error> {
    if data.is_null() {
        return Err(null_arg(function, what));
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument(format!("{function}: {what} length {len} is too large")));
    }
    // SAFETY: non-NULL, length bounded by isize::MAX, readable per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Borrows the app's frame as the Rust frame type.
///
/// # Safety
/// Every non-NULL plane pointer has `plane_sizes[i]` readable bytes, unchanged during the call.
unsafe fn video_frame(f: &kp_video_frame) -> Result<VideoFrame<'_>, Error> {
    let format = PixelFormat::from_raw(f.format.into())?;
    let mut planes: [&[u8]; 3] = [&[]; 3];
    for (i, plane) in planes.iter_mut().enumerate() {
        let (ptr, len) = (f.planes[i], f.plane_sizes[i]);
        if len == 0 {
            continue;
        }
        if ptr.is_null() {
            return Err(Error::InvalidArgument(format!(
                "kp_pusher_push_video: plane {i} is NULL but its size is {len}"
            )));
        }
        // SAFETY: per this function's contract.
        *plane = unsafe { bytes(ptr, len, "kp_pusher_push_video", "plane") }?;
    }
    Ok(VideoFrame { format, width: f.width, height: f.height, planes, strides: f.strides.map(|s| s as usize) })
}

ffi_fn! {
    /// Creates a pusher from a copy of `cfg` (the config may be freed right after) and writes it to
    /// `*out`, which is written only on success. Nothing connects until kp_pusher_start. Every URL
    /// (primaries and backups of every destination) is checked here, and the config's URL refresh
    /// callback is installed.
    /// The caller owns the pusher and must release it with kp_pusher_free.
    /// Errors: KP_ERR_INVALID_ARGUMENT (NULL cfg or out, neither video nor audio, a rate, bitrate,
    /// timeout or reconnect setting out of range, more than 8 destinations or 8 URLs in one),
    /// KP_ERR_INVALID_URL (any URL), KP_ERR_BAD_DIMENSIONS (odd, zero or over 8K size),
    /// KP_ERR_UNSUPPORTED (an encoder not in this build). Thread-safe (cfg must not be modified
    /// concurrently); non-blocking.
    fn kp_pusher_new(cfg: *const kp_config, out: *mut *mut kp_pusher) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { cfg.as_ref() }.ok_or_else(|| null_arg("kp_pusher_new", "cfg"))?;
        if out.is_null() {
            return Err(null_arg("kp_pusher_new", "out"));
        }
        let mut config = cfg.inner.clone();
        // Validated here as well as in Pusher::new so that the channel count kept below is the one
        // the pusher will use.
        config.validate()?;
        let channels = config.audio.as_ref().map(|a| a.channels as usize);
        let inner = Pusher::new(config, handler(cfg.event_cb, cfg.event_userdata))?;
        if let Some(cb) = cfg.stats_cb {
            let sink = StatsSink { cb, userdata: cfg.stats_userdata };
            let interval = Duration::from_millis(cfg.stats_interval_ms.into());
            inner.set_stats_handler(interval, Box::new(move |s: &Stats| sink.deliver(s)))?;
        }
        let gate = Arc::new(RefreshGate::default());
        let refresh = match url_refresh(cfg.url_refresh_cb, cfg.url_refresh_userdata, gate.clone()) {
            Some(f) => {
                inner.set_url_refresh(f)?;
                Some(GateCloser(gate))
            }
            None => None,
        };
        let pusher = Box::into_raw(Box::new(kp_pusher { inner, channels, _refresh: refresh }));
        // SAFETY: out is non-NULL and, per the contract, writable.
        unsafe { out.write(pusher) };
        Ok(())
    }
}

ffi_fn! {
    /// Starts the pusher's threads and begins connecting; returns at once. Progress (CONNECTING,
    /// PUBLISHING, DISCONNECTED, FAILED...) is reported through the event callback; the pusher
    /// reconnects by itself. Errors: KP_ERR_INVALID_ARGUMENT (NULL), KP_ERR_INVALID_STATE (already
    /// started or stopped). Thread-safe; non-blocking.
    fn kp_pusher_start(p: *mut kp_pusher) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        unsafe { pusher_ref(p, "kp_pusher_start") }?.inner.start()
    }
}

ffi_fn! {
    /// Queues one raw picture for encoding, with its presentation time in microseconds (< 0: the SDK
    /// stamps it with its own clock). The pixels are copied before the call returns. Never blocks on
    /// the network or the encoder: if the encoder is behind, the frame is dropped, counted and
    /// KP_ERR_QUEUE_FULL returned. Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or frame, a NULL plane
    /// with a non-zero size), KP_ERR_BAD_PIXEL_FORMAT, KP_ERR_BAD_DIMENSIONS (odd size, smaller
    /// than the config's, or larger with KP_VIDEO_SCALING_OFF; larger frames are otherwise scaled
    /// down, see kp_config_set_video_scaling), KP_ERR_BAD_FRAME_SIZE (a plane or stride too small), KP_ERR_NON_MONOTONIC_TIMESTAMP,
    /// KP_ERR_NOT_STARTED (before start or after stop), KP_ERR_QUEUE_FULL, KP_ERR_INVALID_STATE (no
    /// raw video in this config). Thread-safe; non-blocking.
    fn kp_pusher_push_video(p: *mut kp_pusher, frame: *const kp_video_frame, pts_us: i64) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_push_video") }?;
        // SAFETY: frame is NULL or points to a kp_video_frame the app filled.
        let frame = unsafe { frame.as_ref() }.ok_or_else(|| null_arg("kp_pusher_push_video", "frame"))?;
        // SAFETY: the app vouches for the plane pointers and sizes in the frame.
        let frame = unsafe { video_frame(frame) }?;
        p.inner.push_video(&frame, pts_us)
    }
}

ffi_fn! {
    /// Queues signed 16-bit PCM for encoding: `frames_per_channel` frames of interleaved samples with
    /// the configured channel count (so frames_per_channel * channels values, 2-byte aligned), any
    /// number of frames per call, with the presentation time of the first frame in microseconds (< 0:
    /// stamped by the SDK). Copied before the call returns.
    /// With pre-encoded AAC (KP_AUDIO_ENCODER_PASSTHROUGH, kp_pusher_push_aac), WebRTC (WHIP)
    /// destinations cannot take the AAC: the PCM of the same capture, given here beside it with the
    /// same timestamps and the configured sample rate and channel count, becomes their Opus (and
    /// goes nowhere else). Without such PCM they carry the video alone. With pre-encoded Opus
    /// (KP_AUDIO_ENCODER_PASSTHROUGH_OPUS, kp_pusher_push_opus) the same holds the other way round:
    /// PCM given here becomes the AAC of the RTMP and SRT destinations and of the recording.
    /// Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or samples, misaligned samples, length
    /// overflow), KP_ERR_INVALID_STATE (no audio track, or pre-encoded AAC (Opus) and no destination
    /// that takes Opus (AAC), or a build without the opus (aac) feature), KP_ERR_NON_MONOTONIC_TIMESTAMP,
    /// KP_ERR_NOT_STARTED, KP_ERR_QUEUE_FULL. Thread-safe; non-blocking.
    fn kp_pusher_push_audio(
        p: *mut kp_pusher,
        samples: *const i16,
        frames_per_channel: usize,
        pts_us: i64,
    ) -> kp_result {
        const F: &str = "kp_pusher_push_audio";
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, F) }?;
        let channels = p
            .channels
            .ok_or_else(|| Error::InvalidState(format!("{F}: audio is disabled in the config")))?;
        if samples.is_null() {
            return Err(null_arg(F, "samples"));
        }
        if !samples.is_aligned() {
            return Err(Error::InvalidArgument(format!("{F}: samples are not 2-byte aligned")));
        }
        let count = frames_per_channel
            .checked_mul(channels)
            .filter(|n| *n <= isize::MAX as usize / 2)
            .ok_or_else(|| Error::InvalidArgument(format!("{F}: {frames_per_channel} frames is too many")))?;
        // SAFETY: non-NULL, aligned, size bounded; the app vouches for `count` readable samples.
        let pcm = unsafe { std::slice::from_raw_parts(samples, count) };
        p.inner.push_audio(pcm, pts_us)
    }
}

ffi_fn! {
    /// Queues one H.264 access unit in Annex-B form (start codes, SPS/PPS before the first IDR), for
    /// a KP_ENCODER_PASSTHROUGH config. Times in microseconds; dts <= pts. A unit of parameter sets
    /// only (MediaCodec's codec-config buffer) is taken as the next header and uses no frame time:
    /// the picture after it may carry the same times. Copied before the call returns. Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or data), KP_ERR_BAD_BITSTREAM,
    /// KP_ERR_NON_MONOTONIC_TIMESTAMP (dts), KP_ERR_NOT_STARTED, KP_ERR_INVALID_STATE (not a
    /// passthrough config), KP_ERR_QUEUE_FULL. Thread-safe; non-blocking.
    fn kp_pusher_push_h264(
        p: *mut kp_pusher,
        data: *const u8,
        len: usize,
        pts_us: i64,
        dts_us: i64,
    ) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_push_h264") }?;
        // SAFETY: the app vouches for `len` readable bytes at a non-NULL data.
        let au = unsafe { bytes(data, len, "kp_pusher_push_h264", "data") }?;
        p.inner.push_h264(au, pts_us, dts_us)
    }
}

ffi_fn! {
    /// Queues one H.265/HEVC access unit in Annex-B form (start codes, VPS/SPS/PPS before the first
    /// random-access picture), for a KP_ENCODER_PASSTHROUGH_HEVC config; sent over Enhanced RTMP
    /// (FourCC hvc1). Times in microseconds; dts <= pts. Copied before the call returns. Errors:
    /// KP_ERR_INVALID_ARGUMENT (NULL pusher or data), KP_ERR_BAD_BITSTREAM,
    /// KP_ERR_NON_MONOTONIC_TIMESTAMP (dts), KP_ERR_NOT_STARTED, KP_ERR_INVALID_STATE (not a
    /// KP_ENCODER_PASSTHROUGH_HEVC config). Thread-safe; non-blocking.
    fn kp_pusher_push_hevc(
        p: *mut kp_pusher,
        data: *const u8,
        len: usize,
        pts_us: i64,
        dts_us: i64,
    ) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_push_hevc") }?;
        // SAFETY: the app vouches for `len` readable bytes at a non-NULL data.
        let au = unsafe { bytes(data, len, "kp_pusher_push_hevc", "data") }?;
        p.inner.push_hevc(au, pts_us, dts_us)
    }
}

ffi_fn! {
    /// Queues AAC for a KP_AUDIO_ENCODER_PASSTHROUGH config: one raw AAC frame, or any number of ADTS
    /// frames. pts in microseconds. Copied before the call returns. WebRTC (WHIP) destinations take
    /// Opus instead, from the PCM given beside it (kp_pusher_push_audio). Errors: KP_ERR_INVALID_ARGUMENT
    /// (NULL pusher or data), KP_ERR_BAD_BITSTREAM, KP_ERR_NON_MONOTONIC_TIMESTAMP,
    /// KP_ERR_NOT_STARTED, KP_ERR_INVALID_STATE (not a passthrough config), KP_ERR_QUEUE_FULL.
    /// Thread-safe; non-blocking.
    fn kp_pusher_push_aac(p: *mut kp_pusher, data: *const u8, len: usize, pts_us: i64) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_push_aac") }?;
        // SAFETY: the app vouches for `len` readable bytes at a non-NULL data.
        let aac = unsafe { bytes(data, len, "kp_pusher_push_aac", "data") }?;
        p.inner.push_aac(aac, pts_us)
    }
}

ffi_fn! {
    /// Queues one Opus packet (RFC 6716: the TOC byte and its frames, as an Opus encoder returns it
    /// or an Ogg/WebM demuxer gives it; 48 kHz, mono or stereo, 2.5 to 120 ms) for a
    /// KP_AUDIO_ENCODER_PASSTHROUGH_OPUS config, with its presentation time in microseconds (< 0:
    /// stamped by the SDK). WebRTC (WHIP) destinations carry it as it is; RTMP and SRT destinations
    /// and the recording take AAC, made from PCM given beside it (kp_pusher_push_audio). Copied
    /// before the call returns. Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or data),
    /// KP_ERR_BAD_BITSTREAM (breaks one of RFC 6716's framing rules: the message names it),
    /// KP_ERR_NON_MONOTONIC_TIMESTAMP, KP_ERR_NOT_STARTED, KP_ERR_INVALID_STATE (not a pre-encoded
    /// Opus config). Thread-safe; non-blocking.
    fn kp_pusher_push_opus(p: *mut kp_pusher, data: *const u8, len: usize, pts_us: i64) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_push_opus") }?;
        // SAFETY: the app vouches for `len` readable bytes at a non-NULL data.
        let packet = unsafe { bytes(data, len, "kp_pusher_push_opus", "data") }?;
        p.inner.push_opus(packet, pts_us)
    }
}

ffi_fn! {
    /// Starts writing the stream to a local FLV file at `path` (UTF-8, NUL-terminated; copied)
    /// alongside the push, from the next video keyframe (one is requested; with pre-encoded video a
    /// KP_EVENT_KEYFRAME_NEEDED asks the app), with metadata and sequence headers first and
    /// timestamps starting at 0. Allowed before kp_pusher_start and while running; one recording at
    /// a time; reconnects do not interrupt it. The file is created (truncated) here; it is written on
    /// an SDK thread, and a write failure (disk full, I/O error) ends the recording with
    /// KP_EVENT_RECORDING_FAILED, never the push. KP_EVENT_RECORDING_STARTED follows when the first
    /// keyframe is written. Errors: KP_ERR_INVALID_ARGUMENT (NULL, not UTF-8), KP_ERR_FILE (the file
    /// cannot be created), KP_ERR_INVALID_STATE (a recording is in progress, or the pusher stopped or
    /// failed). Thread-safe; does file-system I/O (creates the file) but does not wait for the stream.
    fn kp_pusher_start_recording(p: *mut kp_pusher, path: *const c_char) -> kp_result {
        const F: &str = "kp_pusher_start_recording";
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, F) }?;
        if path.is_null() {
            return Err(null_arg(F, "path"));
        }
        // SAFETY: path is non-NULL and, per the contract, a NUL-terminated string.
        let path = unsafe { CStr::from_ptr(path) }
            .to_str()
            .map_err(|_| Error::InvalidArgument(format!("{F}: path is not valid UTF-8")))?;
        p.inner.start_recording(path)
    }
}

ffi_fn! {
    /// Stops the local recording: what is queued for the file is written, the file is closed and
    /// synced, KP_EVENT_RECORDING_STOPPED follows (value: video frames, value2: audio frames
    /// written). kp_pusher_stop and kp_pusher_free do this too. BLOCKS until the file is written
    /// (bounded by the recording's queue). Errors: KP_ERR_INVALID_ARGUMENT (NULL),
    /// KP_ERR_INVALID_STATE (no recording in progress: never started, stopped, or it failed).
    /// Thread-safe.
    fn kp_pusher_stop_recording(p: *mut kp_pusher) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_stop_recording") }?;
        p.inner.stop_recording()
    }
}

ffi_fn! {
    /// Stops publishing: sends what is queued for up to `timeout_ms` milliseconds, unpublishes and
    /// closes. BLOCKS for up to about timeout_ms (a TCP connect in flight is given up then; a DNS
    /// lookup in flight is still waited for, up to the connect timeout), until the encode, network and monitor threads have ended; it does not wait for the
    /// callback thread, so KP_EVENT_STOPPED may be delivered after it returns (kp_pusher_free
    /// delivers it before returning). The state is KP_STATE_STOPPED once it returns. Further
    /// pushes return KP_ERR_NOT_STARTED. Errors: KP_ERR_INVALID_ARGUMENT (NULL), KP_ERR_NOT_STARTED
    /// (never started), KP_ERR_TIMEOUT (the queue was not drained in time; the connection is closed
    /// anyway), KP_ERR_INVALID_STATE (called from inside an event or stats callback, of any pusher:
    /// the check is per thread). Thread-safe.
    fn kp_pusher_stop(p: *mut kp_pusher, timeout_ms: u32) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_stop") }?;
        if in_event_callback() {
            return Err(Error::InvalidState(
                "kp_pusher_stop: called from the event callback".into(),
            ));
        }
        p.inner.stop(Duration::from_millis(timeout_ms.into()))
    }
}

ffi_fn! {
    /// The pusher's current state (kp_state_values). A NULL pusher returns KP_STATE_FAILED and sets
    /// the last error message. Thread-safe; non-blocking.
    fn kp_pusher_get_state(p: *const kp_pusher) -> kp_state = PusherState::KP_STATE_FAILED as kp_state; {
        // SAFETY: per the contract above, p is NULL or live.
        match unsafe { pusher_ref(p, "kp_pusher_get_state") } {
            Ok(p) => p.inner.state() as kp_state,
            Err(e) => {
                fail_getter(e);
                PusherState::KP_STATE_FAILED as kp_state
            }
        }
    }
}

ffi_fn! {
    /// Copies the pusher's counters into `*out`. Set out->struct_size = sizeof(kp_stats) first; only
    /// the fields that fit in struct_size are written, struct_size itself never is, and nothing is
    /// written on failure. Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or out, struct_size too
    /// small to hold `state`). Thread-safe; non-blocking.
    fn kp_pusher_get_stats(p: *const kp_pusher, out: *mut kp_stats) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_get_stats") }?;
        // SAFETY: out is NULL or the app's kp_stats, which starts with struct_size.
        let size = unsafe { struct_size(out, "kp_pusher_get_stats") }?;
        let snapshot = kp_stats::new(&p.inner.stats(), p.inner.state());
        // SAFETY: the app declares `size` writable bytes at out via struct_size.
        unsafe { snapshot.write_prefix(out, size) };
        Ok(())
    }
}

ffi_fn! {
    /// Copies the counters of one destination into `*out`: 0 is the destination of
    /// kp_config_set_url, 1, 2, ... those added with kp_config_add_destination (kp_stats has
    /// destination_count). Set out->struct_size = sizeof(kp_destination_stats) first; only the fields
    /// that fit in struct_size are written, struct_size itself never is, and nothing is written on
    /// failure. Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or out, struct_size too small to hold
    /// `state`, no destination with that index). Thread-safe; non-blocking.
    fn kp_pusher_get_destination_stats(
        p: *const kp_pusher,
        destination: u32,
        out: *mut kp_destination_stats,
    ) -> kp_result {
        const F: &str = "kp_pusher_get_destination_stats";
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, F) }?;
        // SAFETY: out is NULL or the app's kp_destination_stats, which starts with struct_size.
        let size = unsafe { struct_size(out, F) }?;
        let stats = p.inner.stats();
        let count = stats.destinations.len();
        let d = stats.destinations.get(destination as usize).ok_or_else(|| {
            Error::InvalidArgument(format!("{F}: no destination {destination} (the pusher has {count})"))
        })?;
        // SAFETY: the app declares `size` writable bytes at out via struct_size.
        unsafe { kp_destination_stats::new(d).write_prefix(out, size) };
        Ok(())
    }
}

ffi_fn! {
    /// Releases a pusher; NULL is a no-op. If it is still running it is stopped at once without
    /// draining the queue (call kp_pusher_stop first for a clean end). BLOCKS until the pusher's
    /// threads have exited: after it returns no callback runs for this pusher. The pointer is invalid
    /// afterwards; no other call on this pusher may run concurrently with or after it. It also waits
    /// for a URL refresh callback in progress (even one past its timeout) and none starts afterwards.
    /// Must not be called from the event or URL refresh callback: if it is, the release is handed
    /// to a helper thread (further callbacks may then still run) and an error is logged.
    fn kp_pusher_free(p: *mut kp_pusher) {
        if p.is_null() {
            return;
        }
        // SAFETY: a non-NULL p came from Box::into_raw in kp_pusher_new and, per the contract, is
        // freed once with no concurrent use.
        let pusher = unsafe { Box::from_raw(p) };
        if in_event_callback() || in_url_refresh() {
            log::error!("kp_pusher_free called from an SDK callback; releasing on a helper thread");
            // Dropping here would join the callback thread from itself.
            std::thread::spawn(move || drop(pusher));
        } else {
            drop(pusher);
        }
    }
}

ffi_fn! {
    /// Background mode: keeps the connection (and the server's recording) alive while the app
    /// cannot capture. `mode` (kp_pause_mode_values): KP_PAUSE_STILL_IMAGE repeats a still picture
    /// (the one from kp_pusher_set_pause_image, else the last frame pushed) at the configured pause
    /// frame rate (kp_config_set_pause_fps, default 5) with the audio the app keeps pushing, or
    /// silence made by the SDK when none comes; KP_PAUSE_STILL_IMAGE_SILENT sends silence instead
    /// of the pushed audio; KP_PAUSE_AUDIO_ONLY stops the video and sends the app's audio or
    /// silence. While paused, kp_pusher_push_video and kp_pusher_push_h264 ignore the frame and
    /// return KP_ERR_PAUSED; kp_pusher_push_audio works as usual. Calling it while paused switches
    /// the mode. A PAUSED event follows. Errors: KP_ERR_INVALID_ARGUMENT (NULL, unknown mode),
    /// KP_ERR_NOT_STARTED (before start or after stop), KP_ERR_INVALID_STATE (failed; a still-image
    /// mode without a video track), KP_ERR_UNSUPPORTED (a still-image mode with pre-encoded video).
    /// Thread-safe; non-blocking.
    fn kp_pusher_pause(p: *mut kp_pusher, mode: kp_pause_mode) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_pause") }?;
        let mode = PauseMode::from_raw(mode.into())
            .ok_or_else(|| Error::InvalidArgument(format!("kp_pusher_pause: unknown pause mode {mode}")))?;
        p.inner.pause(mode)
    }
}

ffi_fn! {
    /// Ends a pause: frames are taken again and the video restarts with an IDR (with pre-encoded
    /// video, a KEYFRAME_NEEDED event asks for one and inter frames are dropped until it comes).
    /// Timestamps go on from before the pause; a capture clock that stood still while paused is
    /// moved, with both tracks, to where the stream is. A RESUMED event follows. Errors:
    /// KP_ERR_INVALID_ARGUMENT (NULL), KP_ERR_NOT_STARTED, KP_ERR_INVALID_STATE (not paused).
    /// Thread-safe; non-blocking.
    fn kp_pusher_resume(p: *mut kp_pusher) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        unsafe { pusher_ref(p, "kp_pusher_resume") }?.inner.resume()
    }
}

ffi_fn! {
    /// Sets the picture the still-image pause modes repeat, in the configured size (any format
    /// kp_pusher_push_video takes); copied before the call returns. Allowed before start too.
    /// Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or frame, a NULL plane with a non-zero size),
    /// KP_ERR_BAD_PIXEL_FORMAT, KP_ERR_BAD_DIMENSIONS, KP_ERR_BAD_FRAME_SIZE, KP_ERR_INVALID_STATE
    /// (stopped, or no built-in video encoder). Thread-safe; non-blocking.
    fn kp_pusher_set_pause_image(p: *mut kp_pusher, frame: *const kp_video_frame) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, "kp_pusher_set_pause_image") }?;
        // SAFETY: frame is NULL or points to a kp_video_frame the app filled.
        let frame = unsafe { frame.as_ref() }.ok_or_else(|| null_arg("kp_pusher_set_pause_image", "frame"))?;
        // SAFETY: the app vouches for the plane pointers and sizes in the frame.
        let frame = unsafe { video_frame(frame) }?;
        p.inner.set_pause_image(&frame)
    }
}

ffi_fn! {
    /// Changes the video encoder's target bitrate, in kbit/s (1..=200000), from the next frame on.
    /// Allowed before start too. Errors: KP_ERR_INVALID_ARGUMENT (NULL, out of range),
    /// KP_ERR_INVALID_STATE (stopped or failed, no video track, or pre-encoded video).
    /// Thread-safe; non-blocking.
    fn kp_pusher_set_video_bitrate(p: *mut kp_pusher, kbps: u32) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        unsafe { pusher_ref(p, "kp_pusher_set_video_bitrate") }?.inner.set_video_bitrate(kbps)
    }
}

ffi_fn! {
    /// Makes the next video frame encoded an IDR (with pre-encoded video: a KEYFRAME_NEEDED event
    /// asks the app's encoder for one). Errors: KP_ERR_INVALID_ARGUMENT (NULL), KP_ERR_NOT_STARTED
    /// (before start or after stop), KP_ERR_INVALID_STATE (failed, or no video track).
    /// Thread-safe; non-blocking.
    fn kp_pusher_request_keyframe(p: *mut kp_pusher) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        unsafe { pusher_ref(p, "kp_pusher_request_keyframe") }?.inner.request_keyframe()
    }
}

ffi_fn! {
    /// Tells the pusher that the device's network changed (the OS reported that Wi-Fi gave way to
    /// cellular, or back): every destination drops its connection at once and connects again on
    /// the new route, without waiting for the stall timeout and without the backoff of the old
    /// route's failures. Each destination that was publishing reports KP_EVENT_DISCONNECTED, then
    /// KP_EVENT_RECONNECTED; media pushed meanwhile is queued as during any outage. Errors:
    /// KP_ERR_INVALID_ARGUMENT (NULL), KP_ERR_NOT_STARTED (before start or after stop),
    /// KP_ERR_INVALID_STATE (failed). Thread-safe; non-blocking.
    fn kp_pusher_network_changed(p: *mut kp_pusher) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        unsafe { pusher_ref(p, "kp_pusher_network_changed") }?.inner.network_changed()
    }
}

ffi_fn! {
    /// Mutes (`muted` true) or unmutes the audio: muted audio is sent as silence with the timing
    /// of the samples pushed, so the track and A/V sync go on. Allowed before start too. Errors:
    /// KP_ERR_INVALID_ARGUMENT (NULL), KP_ERR_INVALID_STATE (stopped or failed, no audio track, or
    /// pre-encoded audio). Thread-safe; non-blocking.
    fn kp_pusher_set_audio_muted(p: *mut kp_pusher, muted: bool) -> kp_result {
        // SAFETY: per the contract above, p is NULL or live.
        unsafe { pusher_ref(p, "kp_pusher_set_audio_muted") }?.inner.set_audio_muted(muted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResultCode::*;
    use std::ffi::c_char;
    use std::ptr::{null, null_mut};

    const INVALID: i32 = KP_ERR_INVALID_ARGUMENT as i32;

    #[test]
    fn null_pusher_is_invalid_argument_everywhere() {
        let frame = kp_video_frame {
            format: 0,
            width: 2,
            height: 2,
            planes: [null(); 3],
            strides: [0; 3],
            plane_sizes: [0; 3],
        };
        let mut stats = kp_stats { struct_size: size_of::<kp_stats>() as u32, ..Default::default() };
        let samples = [0i16; 4];
        // SAFETY: NULL pusher handles are allowed inputs; other pointers are valid.
        unsafe {
            let mut out = null_mut();
            assert_eq!(kp_pusher_new(null(), &mut out), INVALID);
            assert!(out.is_null());
            let cfg = crate::ffi::config::kp_config_new();
            assert_eq!(kp_pusher_new(cfg, null_mut()), INVALID);
            crate::ffi::config::kp_config_free(cfg);
            assert_eq!(kp_pusher_start(null_mut()), INVALID);
            assert_eq!(kp_pusher_push_video(null_mut(), &frame, 0), INVALID);
            assert_eq!(kp_pusher_push_audio(null_mut(), samples.as_ptr(), 2, 0), INVALID);
            assert_eq!(kp_pusher_push_h264(null_mut(), [0u8].as_ptr(), 1, 0, 0), INVALID);
            assert_eq!(kp_pusher_push_aac(null_mut(), [0u8].as_ptr(), 1, 0), INVALID);
            assert_eq!(kp_pusher_push_opus(null_mut(), [0u8].as_ptr(), 1, 0), INVALID);
            assert_eq!(kp_pusher_push_hevc(null_mut(), [0u8].as_ptr(), 1, 0, 0), INVALID);
            assert_eq!(kp_pusher_start_recording(null_mut(), c"/tmp/x.flv".as_ptr()), INVALID);
            assert_eq!(kp_pusher_stop_recording(null_mut()), INVALID);
            assert_eq!(kp_pusher_stop(null_mut(), 0), INVALID);
            assert_eq!(kp_pusher_get_state(null()), PusherState::KP_STATE_FAILED as i32);
            assert_eq!(kp_pusher_get_stats(null(), &mut stats), INVALID);
            let mut dest =
                kp_destination_stats { struct_size: size_of::<kp_destination_stats>() as u32, ..Default::default() };
            assert_eq!(kp_pusher_get_destination_stats(null(), 0, &mut dest), INVALID);
            kp_pusher_free(null_mut());
        }
    }

    #[test]
    fn invalid_url_is_reported_by_new_and_out_is_untouched() {
        // SAFETY: cfg comes from kp_config_new and is freed once.
        unsafe {
            let cfg = crate::ffi::config::kp_config_new();
            let sentinel = 0x10 as *mut kp_pusher;
            let mut out = sentinel;
            crate::ffi::config::kp_config_set_url(cfg, c"http://example.com/live/key".as_ptr());
            assert_eq!(kp_pusher_new(cfg, &mut out), KP_ERR_INVALID_URL as i32);
            assert_eq!(out, sentinel);
            crate::ffi::config::kp_config_set_url(cfg, c"rtmp://h/app/key".as_ptr());
            // A bad backup or extra destination URL is refused like a bad primary.
            crate::ffi::config::kp_config_add_backup_url(cfg, c"rtmp:///nohost".as_ptr());
            assert_eq!(kp_pusher_new(cfg, &mut out), KP_ERR_INVALID_URL as i32);
            assert_eq!(out, sentinel);
            let fresh = crate::ffi::config::kp_config_new();
            crate::ffi::config::kp_config_free(cfg);
            let cfg = fresh;
            crate::ffi::config::kp_config_set_url(cfg, c"rtmp://h/app/key".as_ptr());
            let mut index = 0;
            crate::ffi::config::kp_config_add_destination(cfg, c"rtmp://h2/app/key".as_ptr(), &mut index);
            crate::ffi::config::kp_config_add_destination_backup_url(cfg, index, c"srt://h3/app/key".as_ptr());
            assert_eq!(kp_pusher_new(cfg, &mut out), KP_ERR_INVALID_URL as i32);
            assert_eq!(out, sentinel);
            crate::ffi::config::kp_config_free(cfg);
            let cfg = crate::ffi::config::kp_config_new();
            crate::ffi::config::kp_config_set_url(cfg, c"rtmp://h/app/key".as_ptr());
            crate::ffi::config::kp_config_set_video(cfg, 641, 480, 0.0, 0, 0);
            assert_eq!(kp_pusher_new(cfg, &mut out), KP_ERR_BAD_DIMENSIONS as i32);
            assert_eq!(out, sentinel);
            crate::ffi::config::kp_config_free(cfg);
        }
    }

    fn frame_with(format: i32, planes: [*const u8; 3], sizes: [usize; 3]) -> kp_video_frame {
        kp_video_frame { format, width: 2, height: 2, planes, strides: [2, 1, 1], plane_sizes: sizes }
    }

    #[test]
    fn frame_conversion_checks_format_and_plane_pointers() {
        let px = [0u8; 4];
        let good = frame_with(0, [px.as_ptr(), px.as_ptr(), px.as_ptr()], [4, 1, 1]);
        // SAFETY: every non-NULL plane points at `px`, which has at least plane_sizes bytes.
        unsafe {
            let f = video_frame(&good).unwrap();
            assert_eq!(f.planes.map(<[u8]>::len), [4, 1, 1]);
            assert_eq!(f.strides, [2, 1, 1]);
            let bad_format = frame_with(9, good.planes, good.plane_sizes);
            assert_eq!(video_frame(&bad_format).unwrap_err().code(), KP_ERR_BAD_PIXEL_FORMAT);
            let null_plane = frame_with(1, [px.as_ptr(), null(), null()], [4, 2, 0]);
            assert_eq!(video_frame(&null_plane).unwrap_err().code(), KP_ERR_INVALID_ARGUMENT);
            let unused_plane = frame_with(1, [px.as_ptr(), px.as_ptr(), null()], [4, 2, 0]);
            assert!(video_frame(&unused_plane).is_ok());
        }
    }

    #[test]
    fn stats_prefix_writes_only_fields_that_fit() {
        let s = Stats { video_frames_in: 7, audio_frames_in: 9, queue_ms: 33, ..Default::default() };
        let full = kp_stats::new(&s, PusherState::KP_STATE_PUBLISHING);
        // An "old app" struct: struct_size, state and video_frames_in only, then a canary.
        let mut buf = [0xAAu8; 32];
        let old_size = offset_of!(kp_stats, audio_frames_in);
        // SAFETY: buf has more than old_size (16) writable bytes.
        unsafe { full.write_prefix(buf.as_mut_ptr().cast(), old_size) };
        assert_eq!(&buf[0..4], &[0xAA; 4], "struct_size is never written");
        assert_eq!(i32::from_ne_bytes(buf[4..8].try_into().unwrap()), 2);
        assert_eq!(u64::from_ne_bytes(buf[8..16].try_into().unwrap()), 7);
        assert_eq!(&buf[old_size..], &[0xAA; 16], "nothing past struct_size");

        let mut all = kp_stats::default();
        // SAFETY: `all` is a whole kp_stats.
        unsafe { full.write_prefix(&mut all, size_of::<kp_stats>()) };
        assert_eq!(kp_stats { struct_size: full.struct_size, ..all }, full);
        assert_eq!(MIN_STATS_SIZE, 8);
    }

    #[test]
    fn stats_carry_reconnects_and_destination_zero() {
        let d0 = DestinationStats { url_index: 2, reconnects: 3, ..Default::default() };
        let s = Stats { reconnects: 4, destinations: vec![d0, DestinationStats::default()], ..Default::default() };
        let k = kp_stats::new(&s, PusherState::KP_STATE_RECONNECTING);
        assert_eq!((k.reconnects, k.destination_count, k.url_index), (4, 2, 2));
        assert_eq!(k.state, 6);
        // Appended after the fields of the first release, whose sizeof was 120.
        assert_eq!(offset_of!(kp_stats, reconnects), 120);
        let mut buf = [0xAAu8; 160];
        // SAFETY: buf has more than 120 writable bytes.
        unsafe { k.write_prefix(buf.as_mut_ptr().cast(), 120) };
        assert_eq!(&buf[120..], &[0xAA; 40], "an app built with the old header gets no new field");
    }

    #[test]
    fn destination_stats_prefix_writes_only_fields_that_fit() {
        let d = DestinationStats {
            state: Some(PusherState::KP_STATE_PUBLISHING),
            url_index: 1,
            video_frames_sent: 10,
            queue_ms: 40,
            reconnects: 2,
            outage_ms_total: 1500,
            ..Default::default()
        };
        let full = kp_destination_stats::new(&d);
        assert_eq!(size_of::<kp_destination_stats>(), 216, "no padding holes");
        assert_eq!(full.struct_size, 216);
        // The outage figures, then the message counters, appended after the SRT figures.
        assert_eq!(offset_of!(kp_destination_stats, video_frames_lost_outage), 152);
        assert_eq!(offset_of!(kp_destination_stats, messages_sent), 192);
        // What the previous release's apps allocate (before the SRT figures) is filled, no more.
        assert_eq!(offset_of!(kp_destination_stats, packets_retransmitted), 120);
        let mut all = kp_destination_stats::default();
        // SAFETY: `all` is a whole kp_destination_stats.
        unsafe { full.write_prefix(&mut all, size_of::<kp_destination_stats>()) };
        assert_eq!(kp_destination_stats { struct_size: full.struct_size, ..all }, full);
        assert_eq!((all.state, all.url_index, all.queue_ms, all.outage_ms_total), (2, 1, 40, 1500));
        assert_eq!(kp_destination_stats::new(&DestinationStats::default()).state, 0, "no state yet: IDLE");

        let mut buf = [0xAAu8; 96];
        let size = offset_of!(kp_destination_stats, video_frames_sent);
        // SAFETY: buf has more than `size` writable bytes.
        unsafe { full.write_prefix(buf.as_mut_ptr().cast(), size) };
        assert_eq!(&buf[0..4], &[0xAA; 4], "struct_size is never written");
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 1);
        assert_eq!(&buf[size..], &[0xAA; 96 - 24]);
    }

    #[test]
    fn get_stats_with_the_previous_release_struct_size_fills_only_what_fits() {
        // sizeof(kp_stats) before the per-second figures were appended.
        const OLD_SIZE: usize = 136;
        assert_eq!(offset_of!(kp_stats, input_fps), OLD_SIZE);
        assert_eq!(offset_of!(kp_stats, video_timestamps_adjusted), 216);
        assert_eq!(offset_of!(kp_stats, video_frames_lost_outage), 224);
        assert_eq!(offset_of!(kp_stats, messages_accepted), 240);
        assert_eq!(offset_of!(kp_stats, encode_rung), 264);
        assert_eq!(offset_of!(kp_stats, video_frames_skipped_ladder), 280);
        assert_eq!(size_of::<kp_stats>(), 288, "no padding holes");
        // SAFETY: cfg and the pusher come from their constructors and are freed once; the buffers
        // are larger than the struct_size they declare.
        unsafe {
            let cfg = crate::ffi::config::kp_config_new();
            crate::ffi::config::kp_config_set_url(cfg, c"rtmp://127.0.0.1:1/app/key".as_ptr());
            crate::ffi::config::kp_config_set_video_encoder(cfg, 2);
            crate::ffi::config::kp_config_set_audio_encoder(cfg, 1);
            let mut p = null_mut();
            assert_eq!(kp_pusher_new(cfg, &mut p), 0);
            crate::ffi::config::kp_config_free(cfg);

            #[repr(C, align(8))]
            struct Buf([u8; 256]);
            let mut old = Buf([0xAA; 256]);
            old.0[..4].copy_from_slice(&(OLD_SIZE as u32).to_ne_bytes());
            assert_eq!(kp_pusher_get_stats(p, old.0.as_mut_ptr().cast()), 0);
            assert_eq!(u32::from_ne_bytes(old.0[..4].try_into().unwrap()), OLD_SIZE as u32);
            assert_eq!(i32::from_ne_bytes(old.0[4..8].try_into().unwrap()), PusherState::KP_STATE_IDLE as i32);
            assert!(old.0[OLD_SIZE..].iter().all(|b| *b == 0xAA), "wrote past the old struct_size");

            let mut new = kp_stats { struct_size: size_of::<kp_stats>() as u32, fps_divisor: 77, ..Default::default() };
            assert_eq!(kp_pusher_get_stats(p, &mut new), 0);
            assert_eq!((new.target_video_kbps, new.target_audio_kbps, new.fps_divisor), (2000, 128, 1));
            kp_pusher_free(p);
        }
    }

    #[test]
    fn recording_arguments_and_states() {
        let dir = std::env::temp_dir().join(format!("kp-ffi-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = std::ffi::CString::new(dir.join("r.flv").to_str().unwrap()).unwrap();
        let bad = std::ffi::CString::new(dir.join("missing/r.flv").to_str().unwrap()).unwrap();
        // SAFETY: cfg and the pusher come from their constructors and are freed once; strings are
        // NUL-terminated.
        unsafe {
            let cfg = crate::ffi::config::kp_config_new();
            crate::ffi::config::kp_config_set_url(cfg, c"rtmp://127.0.0.1:1/app/key".as_ptr());
            crate::ffi::config::kp_config_set_video_encoder(cfg, 2);
            crate::ffi::config::kp_config_set_audio_encoder(cfg, 1);
            let mut p = null_mut();
            assert_eq!(kp_pusher_new(cfg, &mut p), 0);
            crate::ffi::config::kp_config_free(cfg);
            assert_eq!(kp_pusher_start_recording(p, null()), INVALID);
            assert_eq!(kp_pusher_start_recording(p, c"\xff".as_ptr()), INVALID);
            assert_eq!(kp_pusher_start_recording(p, bad.as_ptr()), KP_ERR_FILE as i32);
            assert_eq!(kp_pusher_stop_recording(p), KP_ERR_INVALID_STATE as i32);
            assert_eq!(kp_pusher_start_recording(p, good.as_ptr()), 0);
            assert_eq!(kp_pusher_start_recording(p, good.as_ptr()), KP_ERR_INVALID_STATE as i32);
            assert_eq!(kp_pusher_stop_recording(p), 0);
            kp_pusher_free(p);
        }
        // Nothing was pushed: the file holds the FLV header and onMetaData only.
        let f = std::fs::read(dir.join("r.flv")).unwrap();
        assert_eq!(&f[..3], b"FLV");
        assert_eq!(f[13], crate::core::flv::TAG_SCRIPT);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn destination_stats_check_index_and_struct_size() {
        // SAFETY: cfg and the pusher come from their constructors and are freed once.
        unsafe {
            let cfg = crate::ffi::config::kp_config_new();
            crate::ffi::config::kp_config_set_url(cfg, c"rtmp://127.0.0.1:1/app/key".as_ptr());
            crate::ffi::config::kp_config_set_video_encoder(cfg, 2);
            crate::ffi::config::kp_config_set_audio_encoder(cfg, 1);
            let mut index = 0;
            crate::ffi::config::kp_config_add_destination(cfg, c"rtmp://127.0.0.1:1/app/k2".as_ptr(), &mut index);
            let mut p = null_mut();
            assert_eq!(kp_pusher_new(cfg, &mut p), 0);
            crate::ffi::config::kp_config_free(cfg);

            let mut stats = kp_stats { struct_size: size_of::<kp_stats>() as u32, ..Default::default() };
            assert_eq!(kp_pusher_get_stats(p, &mut stats), 0);
            assert_eq!((stats.destination_count, stats.url_index, stats.reconnects), (2, 0, 0));

            let canary = kp_destination_stats { struct_size: 120, state: -7, url_index: 99, ..Default::default() };
            let mut d = canary.clone();
            assert_eq!(kp_pusher_get_destination_stats(p, 1, &mut d), 0);
            assert_eq!((d.struct_size, d.state, d.url_index), (120, PusherState::KP_STATE_IDLE as i32, 0));
            let mut d = canary.clone();
            assert_eq!(kp_pusher_get_destination_stats(p, 2, &mut d), INVALID);
            assert_eq!(d, canary, "nothing written on failure");
            let mut d = kp_destination_stats { struct_size: 7, ..canary.clone() };
            assert_eq!(kp_pusher_get_destination_stats(p, 0, &mut d), INVALID);
            assert_eq!(d.state, -7);
            assert_eq!(kp_pusher_get_destination_stats(p, 0, null_mut()), INVALID);
            kp_pusher_free(p);
        }
    }

    unsafe extern "C" fn never_called(_: *mut std::ffi::c_void, _: u32, _: u32, _: *mut c_char, _: usize) -> usize {
        unreachable!("a pusher that never starts never asks for a URL")
    }

    #[test]
    fn url_refresh_callback_is_installed_and_released_with_the_pusher() {
        // SAFETY: cfg and the pusher come from their constructors and are freed once.
        unsafe {
            let cfg = crate::ffi::config::kp_config_new();
            crate::ffi::config::kp_config_set_url(cfg, c"rtmp://127.0.0.1:1/app/key".as_ptr());
            crate::ffi::config::kp_config_set_video_encoder(cfg, 2);
            crate::ffi::config::kp_config_set_audio_encoder(cfg, 1);
            crate::ffi::config::kp_config_set_url_refresh_callback(cfg, Some(never_called), null_mut(), 0);
            let mut p = null_mut();
            assert_eq!(kp_pusher_new(cfg, &mut p), 0);
            crate::ffi::config::kp_config_free(cfg);
            assert!((*p)._refresh.is_some());
            kp_pusher_free(p);
        }
    }
}
