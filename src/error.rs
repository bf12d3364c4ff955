//! The crate's error type and the stable numeric codes it maps to at the C ABI.

/// Stable result codes. Values are never reused or renumbered; new codes are appended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum ResultCode {
    /// Success.
    KP_OK = 0,
    /// A NULL pointer, an out-of-range value or an inconsistent set of arguments.
    KP_ERR_INVALID_ARGUMENT = 1,
    /// The call is not allowed in the object's current state (e.g. start twice, config change after start).
    KP_ERR_INVALID_STATE = 2,
    /// The URL is not `rtmp[s]://host[:port]/app[/instance]/key[?query]`.
    KP_ERR_INVALID_URL = 3,
    /// The feature or format is not supported by this build.
    KP_ERR_UNSUPPORTED = 4,
    /// The frame's buffer or stride is too small for its declared size and format.
    KP_ERR_BAD_FRAME_SIZE = 5,
    /// The frame's dimensions are zero, odd, or differ from the configured size.
    KP_ERR_BAD_DIMENSIONS = 6,
    /// The pixel format value is unknown.
    KP_ERR_BAD_PIXEL_FORMAT = 7,
    /// A timestamp went backwards (or repeated) on its track.
    KP_ERR_NON_MONOTONIC_TIMESTAMP = 8,
    /// Media was pushed before `kp_pusher_start` or after `kp_pusher_stop`.
    KP_ERR_NOT_STARTED = 9,
    /// The input queue is full; the frame was dropped and counted.
    KP_ERR_QUEUE_FULL = 10,
    /// The encoder failed.
    KP_ERR_ENCODER = 11,
    /// Pre-encoded input is malformed (no start code, bad ADTS header, missing parameter sets).
    KP_ERR_BAD_BITSTREAM = 12,
    /// The TCP connection was refused or the host is unreachable.
    KP_ERR_CONNECT = 13,
    /// A connect, handshake, write or stop did not finish before its deadline.
    KP_ERR_TIMEOUT = 14,
    /// The host name could not be resolved.
    KP_ERR_DNS = 15,
    /// Other socket error (reset, broken pipe, closed by the server).
    KP_ERR_IO = 16,
    /// The server sent something that breaks the RTMP protocol.
    KP_ERR_PROTOCOL = 17,
    /// The server refused the publish but may accept it later (BadName, already publishing, busy).
    KP_ERR_PUBLISH_REJECTED = 18,
    /// The server rejected the connection (`NetConnection.Connect.Rejected`): not retried.
    KP_ERR_CONNECT_REJECTED = 19,
    /// The server refused the credentials in the URL: not retried.
    KP_ERR_AUTH = 20,
    /// TLS failure (certificate, handshake).
    KP_ERR_TLS = 21,
    /// A bug in kitepush (a caught panic). The handle should be freed.
    KP_ERR_INTERNAL = 22,
    /// A local file could not be created or written (recording: bad path, permission, disk full).
    KP_ERR_FILE = 23,
    /// Video is paused (kp_pusher_pause): the frame was ignored. Resume first.
    KP_ERR_PAUSED = 24,
}

impl ResultCode {
    /// A static, NUL-terminated description of the code.
    pub fn as_cstr(self) -> &'static std::ffi::CStr {
        use ResultCode::*;
        match self {
            KP_OK => c"ok",
            KP_ERR_INVALID_ARGUMENT => c"invalid argument",
            KP_ERR_INVALID_STATE => c"call not allowed in the current state",
            KP_ERR_INVALID_URL => c"invalid RTMP URL",
            KP_ERR_UNSUPPORTED => c"not supported by this build",
            KP_ERR_BAD_FRAME_SIZE => c"frame buffer too small for its size and format",
            KP_ERR_BAD_DIMENSIONS => c"bad frame dimensions",
            KP_ERR_BAD_PIXEL_FORMAT => c"unknown pixel format",
            KP_ERR_NON_MONOTONIC_TIMESTAMP => c"timestamp is not increasing",
            KP_ERR_NOT_STARTED => c"pusher is not started",
            KP_ERR_QUEUE_FULL => c"input queue full, frame dropped",
            KP_ERR_ENCODER => c"encoder error",
            KP_ERR_BAD_BITSTREAM => c"malformed encoded input",
            KP_ERR_CONNECT => c"connection refused or host unreachable",
            KP_ERR_TIMEOUT => c"timed out",
            KP_ERR_DNS => c"host name not resolved",
            KP_ERR_IO => c"network I/O error",
            KP_ERR_PROTOCOL => c"RTMP protocol error",
            KP_ERR_PUBLISH_REJECTED => c"publish rejected by the server (retryable)",
            KP_ERR_CONNECT_REJECTED => c"connection rejected by the server",
            KP_ERR_AUTH => c"authentication failed",
            KP_ERR_TLS => c"TLS error",
            KP_ERR_INTERNAL => c"internal error",
            KP_ERR_FILE => c"file error",
            KP_ERR_PAUSED => c"paused, frame ignored",
        }
    }
}

/// Every failure inside kitepush. Converted to [`ResultCode`] only at the C ABI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid state: {0}")]
    InvalidState(String),
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("bad frame size: {0}")]
    BadFrameSize(String),
    #[error("bad dimensions: {0}")]
    BadDimensions(String),
    #[error("unknown pixel format {0}")]
    BadPixelFormat(i64),
    #[error("non-monotonic timestamp on {track}: {ts_us} us after {last_us} us")]
    NonMonotonicTimestamp { track: &'static str, ts_us: i64, last_us: i64 },
    #[error("not started")]
    NotStarted,
    #[error("input queue full: {0}")]
    QueueFull(&'static str),
    #[error("encoder: {0}")]
    Encoder(String),
    #[error("bad bitstream: {0}")]
    BadBitstream(String),
    #[error("connect failed: {0}")]
    Connect(String),
    #[error("timed out: {0}")]
    Timeout(String),
    /// The server is up but asked us to come back later (HTTP 503/429 with `Retry-After`): the
    /// reconnect waits at least `retry_after`. Reported as KP_ERR_CONNECT.
    #[error("connect failed: {message} (retry after {} s)", retry_after.as_secs())]
    Busy { retry_after: std::time::Duration, message: String },
    #[error("DNS: {0}")]
    Dns(String),
    #[error("I/O: {0}")]
    Io(String),
    #[error("protocol: {0}")]
    Protocol(String),
    /// `code` is the server's status code, e.g. `NetStream.Publish.BadName`.
    #[error("publish rejected: {code}: {description}")]
    PublishRejected { code: String, description: String },
    #[error("connect rejected: {code}: {description}")]
    ConnectRejected { code: String, description: String },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("internal: {0}")]
    Internal(String),
    #[error("file: {0}")]
    File(String),
    #[error("paused: {0}")]
    Paused(String),
}

impl Error {
    pub fn code(&self) -> ResultCode {
        use ResultCode::*;
        match self {
            Error::InvalidArgument(_) => KP_ERR_INVALID_ARGUMENT,
            Error::InvalidState(_) => KP_ERR_INVALID_STATE,
            Error::InvalidUrl(_) => KP_ERR_INVALID_URL,
            Error::Unsupported(_) => KP_ERR_UNSUPPORTED,
            Error::BadFrameSize(_) => KP_ERR_BAD_FRAME_SIZE,
            Error::BadDimensions(_) => KP_ERR_BAD_DIMENSIONS,
            Error::BadPixelFormat(_) => KP_ERR_BAD_PIXEL_FORMAT,
            Error::NonMonotonicTimestamp { .. } => KP_ERR_NON_MONOTONIC_TIMESTAMP,
            Error::NotStarted => KP_ERR_NOT_STARTED,
            Error::QueueFull(_) => KP_ERR_QUEUE_FULL,
            Error::Encoder(_) => KP_ERR_ENCODER,
            Error::BadBitstream(_) => KP_ERR_BAD_BITSTREAM,
            Error::Connect(_) | Error::Busy { .. } => KP_ERR_CONNECT,
            Error::Timeout(_) => KP_ERR_TIMEOUT,
            Error::Dns(_) => KP_ERR_DNS,
            Error::Io(_) => KP_ERR_IO,
            Error::Protocol(_) => KP_ERR_PROTOCOL,
            Error::PublishRejected { .. } => KP_ERR_PUBLISH_REJECTED,
            Error::ConnectRejected { .. } => KP_ERR_CONNECT_REJECTED,
            Error::Auth(_) => KP_ERR_AUTH,
            Error::Tls(_) => KP_ERR_TLS,
            Error::Internal(_) => KP_ERR_INTERNAL,
            Error::File(_) => KP_ERR_FILE,
            Error::Paused(_) => KP_ERR_PAUSED,
        }
    }

    /// Whether a new connection attempt may succeed where this one failed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Connect(_)
                | Error::Busy { .. }
                | Error::Timeout(_)
                | Error::Dns(_)
                | Error::Io(_)
                | Error::Protocol(_)
                | Error::PublishRejected { .. }
        )
    }

    /// The same error with its free text passed through `f`, e.g. [`crate::core::url::RtmpUrl::scrub`]
    /// on errors that may quote a server. Variants that carry no text, or only text the SDK wrote
    /// from its own values, are returned as they are.
    pub fn map_text(self, f: impl Fn(&str) -> String) -> Error {
        match self {
            Error::Connect(m) => Error::Connect(f(&m)),
            Error::Busy { retry_after, message } => Error::Busy { retry_after, message: f(&message) },
            Error::Timeout(m) => Error::Timeout(f(&m)),
            Error::Dns(m) => Error::Dns(f(&m)),
            Error::Io(m) => Error::Io(f(&m)),
            Error::Protocol(m) => Error::Protocol(f(&m)),
            Error::PublishRejected { code, description } => {
                Error::PublishRejected { code: f(&code), description: f(&description) }
            }
            Error::ConnectRejected { code, description } => {
                Error::ConnectRejected { code: f(&code), description: f(&description) }
            }
            Error::Auth(m) => Error::Auth(f(&m)),
            Error::Tls(m) => Error::Tls(f(&m)),
            Error::Internal(m) => Error::Internal(f(&m)),
            Error::InvalidUrl(m) => Error::InvalidUrl(f(&m)),
            Error::InvalidArgument(m) => Error::InvalidArgument(f(&m)),
            Error::InvalidState(m) => Error::InvalidState(f(&m)),
            other => other,
        }
    }

    /// Classify a socket error.
    pub fn from_io(context: &str, e: &std::io::Error) -> Error {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable => {
                Error::Connect(format!("{context}: {e}"))
            }
            TimedOut | WouldBlock => Error::Timeout(format!("{context}: {e}")),
            _ => Error::Io(format!("{context}: {e}")),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
