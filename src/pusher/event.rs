//! Events the pusher reports to the app, and the pusher's state.

use crate::error::ResultCode;

/// Pusher states. Values are stable (they cross the C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum PusherState {
    KP_STATE_IDLE = 0,
    KP_STATE_CONNECTING = 1,
    KP_STATE_PUBLISHING = 2,
    KP_STATE_STOPPING = 3,
    KP_STATE_STOPPED = 4,
    KP_STATE_FAILED = 5,
    /// The connection was lost; the pusher is waiting to reconnect or reconnecting. Input is
    /// still accepted and queued within the latency budget.
    KP_STATE_RECONNECTING = 6,
}

/// Event kinds. Values are stable and never reused; apps ignore kinds they do not know.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum EventKind {
    /// A TCP connection to the ingest is being opened. `message`: the redacted URL, `value`: the
    /// index of the URL tried (0 = primary, then the backups).
    KP_EVENT_CONNECTING = 1,
    /// The RTMP handshake and `connect` succeeded. `value`: milliseconds since CONNECTING.
    KP_EVENT_CONNECTED = 2,
    /// The server accepted the publish; media flows. `value`: milliseconds since CONNECTING.
    KP_EVENT_PUBLISHING = 3,
    /// A publishing connection was lost. `code`: why (`KP_ERR_IO`, `KP_ERR_TIMEOUT` after a stall, ...).
    /// Reconnecting follows unless the pusher is stopping. The media made meanwhile is kept for
    /// the next session from a keyframe on: one is asked for at once (a KEYFRAME_NEEDED event
    /// with pre-encoded video) unless the destination's queue already holds one.
    KP_EVENT_DISCONNECTED = 4,
    /// A reconnect is scheduled. `value`: the number of the connect attempt that follows (1 after
    /// a lost publish; the first connect of the pusher is attempt 1, so its first retry is 2),
    /// `value2`: the delay before it in milliseconds. `code`: why the previous attempt failed (KP_OK after a
    /// lost publish).
    KP_EVENT_RECONNECTING = 5,
    /// Publishing again after an outage. `value`: the outage in milliseconds (from the loss to
    /// the new publish), `value2`: attempts it took, `value3`: ms of the outage's media kept
    /// (sent now, from the keyframe the session starts on, draining at link speed), `value4`: ms
    /// lost (in flight on the lost connection, before that keyframe, or past the latency budget).
    KP_EVENT_RECONNECTED = 6,
    /// No progress for the stall timeout (the socket takes no writes, or the server acknowledges
    /// nothing: not its RTMP acknowledgements, not the TCP acknowledgements of bytes waiting in the
    /// socket; SRT and WHIP: no packet from the peer): the connection is dropped and
    /// reconnected. `value`: milliseconds without progress.
    KP_EVENT_STALLED = 7,
    /// Switched ingest URL. `value`: the index it left, `value2`: the index it moves to
    /// (0 = primary, then the backups in order). `message`: the new URL, redacted.
    KP_EVENT_FAILOVER = 8,
    /// Pre-encoded video: the stream needs a keyframe (a new session starts after video has
    /// flowed, the queue dropped up to one, the receiver asked, or the first pictures came without
    /// their parameter sets or keyframe). Ask the hardware encoder for an IDR; inter frames are
    /// dropped until it comes. Sent once until a keyframe is pushed.
    KP_EVENT_KEYFRAME_NEEDED = 9,
    /// The destination gave up. `code`: why (e.g. `KP_ERR_CONNECT_REJECTED`, `KP_ERR_AUTH`, or
    /// the last error when the attempt limit was reached).
    KP_EVENT_FAILED = 10,
    /// `stop` finished (or the pusher was freed). `value`: media frames still queued and not sent.
    KP_EVENT_STOPPED = 11,
    /// The uplink is congested: congestion (0..1, see stats) stayed at or above the app's threshold
    /// for the set time. `value`: congestion in thousandths, `value2`: queue latency in ms.
    KP_EVENT_NET_BUSY = 12,
    /// After NET_BUSY: congestion stayed below half the threshold for the set time. `value`:
    /// congestion in thousandths.
    KP_EVENT_NET_RECOVERED = 13,
    /// Video frames sent per second stayed under the set fraction of the configured frame rate.
    /// `value`: sent frames per second, `value2`: the configured rate (both rounded).
    KP_EVENT_LOW_FPS = 14,
    /// Encoding a frame took longer than the frame interval on average for the set time: lower
    /// the resolution or frame rate. `value`: mean encode time in microseconds, `value2`: the frame
    /// interval in microseconds.
    KP_EVENT_ENCODER_OVERLOADED = 15,
    /// The adaptive bitrate changed the video encoder's target. `value`: the new target in
    /// kbit/s, `value2`: the frame-rate divisor (1: every frame, 2: half the frames).
    KP_EVENT_BITRATE_CHANGED = 16,
    /// Pre-encoded video: the adaptive bitrate suggests this target for the app's encoder.
    /// `value`: kbit/s, `value2`: the suggested frame-rate divisor.
    KP_EVENT_BITRATE_SUGGESTED = 17,
    /// `kp_pusher_pause` took effect. `value`: the kp_pause_mode.
    KP_EVENT_PAUSED = 20,
    /// `kp_pusher_resume` took effect; the video restarts with an IDR. `value`: how long the pause
    /// lasted, in milliseconds.
    KP_EVENT_RESUMED = 21,
    /// A local recording (`start_recording`) wrote its first keyframe. `message`: the file path,
    /// `value`: the stream time (ms) where it begins; the file's timestamps start at 0.
    KP_EVENT_RECORDING_STARTED = 24,
    /// A local recording was stopped and its file closed. `message`: the path, `value`: video
    /// frames written, `value2`: audio frames written.
    KP_EVENT_RECORDING_STOPPED = 25,
    /// A local recording ended on an error (`code` KP_ERR_FILE: disk full, I/O error, or the
    /// writer fell behind); the push goes on. What was written stays readable. `message`: why.
    KP_EVENT_RECORDING_FAILED = 26,
    /// The encode ladder (`kp_config_set_encode_ladder`) moved the video encoder to another rung:
    /// the CPU could not keep up (down) or has room again (up). `value`, `value2`: the new width
    /// and height, `value3`: the new frame rate in thousandths of a frame per second, `value4`:
    /// the rung (0 = the configured setting, then one per step down).
    /// `message` names the rung and its complexity. A new size reaches the viewers with the next
    /// picture of that size, an IDR with new sequence headers.
    KP_EVENT_ENCODE_RUNG_CHANGED = 27,
}

/// One event. `message` never contains the stream key.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub code: ResultCode,
    pub message: String,
    /// Milliseconds since the pusher was created.
    pub timestamp_ms: u64,
    /// Index of the destination the event is about (0 with one destination).
    pub destination: u32,
    /// Kind-specific figures (see [`EventKind`]).
    pub value: i64,
    pub value2: i64,
    /// Third and fourth figures, for the kinds that have more than two (RECONNECTED).
    pub value3: i64,
    pub value4: i64,
}
