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
}

/// Event kinds. Values are stable and never reused; apps ignore kinds they do not know.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum EventKind {
    /// A TCP connection to the ingest is being opened. `message`: the redacted URL.
    KP_EVENT_CONNECTING = 1,
    /// The RTMP handshake and `connect` succeeded. `value`: milliseconds since CONNECTING.
    KP_EVENT_CONNECTED = 2,
    /// The server accepted the publish; media flows. `value`: milliseconds since CONNECTING.
    KP_EVENT_PUBLISHING = 3,
    /// The connection was lost. `code`: why.
    KP_EVENT_DISCONNECTED = 4,
    /// The pusher gave up. `code`: why (e.g. `KP_ERR_PUBLISH_REJECTED`, `KP_ERR_CONNECT`).
    KP_EVENT_FAILED = 10,
    /// `stop` finished (or the pusher was freed). `value`: media frames still queued and not sent.
    KP_EVENT_STOPPED = 11,
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
    /// Kind-specific figure (see [`EventKind`]).
    pub value: i64,
}
