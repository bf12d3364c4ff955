//! SRT live-mode caller (sender), sans-IO: the handshake (HSv5 with stream id and key material),
//! data packets with NAK repair, too-late drop, pacing and AES-CTR, as libsrt's listeners expect
//! them. Datagrams go in through [`SrtSender::handle_datagram`] and come out of
//! [`SrtSender::poll_transmit`] into the caller's buffer; time is always an argument.
//!
//! Written here because neither Rust SRT crate interoperates fully with libsrt (see
//! DEPENDENCY-NOTES.md); `shiguredo_srt`'s sans-IO shape is the model. Protocol references:
//! draft-sharabayko-srt and libsrt's `core.cpp` / HaiCrypt.
//!
//! A driver loop:
//! ```text
//! loop {
//!     while let Some(n) = sender.poll_transmit(now, &mut buf) { socket.send(&buf[..n]) }
//!     while let Some(ev) = sender.poll_event() { ... }
//!     wait for a datagram until sender.poll_timeout() (or new media)
//!     datagram → sender.handle_datagram(now, &d); timeout → sender.handle_timeout(now)
//! }
//! ```

mod buffer;
pub mod crypto;
pub mod packet;
mod sender;

use std::time::{Duration, Instant};

pub use sender::SrtSender;

/// The largest datagram the sender writes; `poll_transmit` needs a buffer at least this long.
pub const MAX_DATAGRAM: usize = 1500;
/// The live-mode payload: 7 MPEG-TS packets.
pub const DEFAULT_PAYLOAD_SIZE: usize = 1316;
/// libsrt's largest live-mode payload (1500 − 28 UDP/IP − 16 SRT header).
pub const MAX_PAYLOAD_SIZE: usize = 1456;
/// libsrt's SRTO_FC default.
pub const DEFAULT_FLIGHT_WINDOW: u32 = 25600;
/// libsrt's limit on SRTO_STREAMID.
pub const MAX_STREAM_ID_LEN: usize = 512;

/// Session settings. Zero means default for `payload_size` (1316) and `flight_window` (25600).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtConfig {
    /// SRTO_STREAMID, sent in the handshake's SID extension (≤ 512 bytes).
    pub stream_id: Option<String>,
    /// TSBPD latency announced both ways; the receiver holds each packet this long.
    pub latency: Duration,
    /// Enables AES-CTR; 10..=79 characters as libsrt requires.
    pub passphrase: Option<String>,
    /// AES key length in bytes: 16, 24 or 32; 0 = 16 when a passphrase is set.
    pub pbkeylen: u8,
    /// Largest payload per packet (and per `send`).
    pub payload_size: usize,
    /// Pacing ceiling in bit/s (headers included); `None` = the measured input rate + 25 %.
    pub max_bw_bps: Option<u64>,
    /// Most packets in flight we announce and accept.
    pub flight_window: u32,
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            stream_id: None,
            latency: Duration::from_millis(120),
            passphrase: None,
            pbkeylen: 0,
            payload_size: DEFAULT_PAYLOAD_SIZE,
            max_bw_bps: None,
            flight_window: DEFAULT_FLIGHT_WINDOW,
        }
    }
}

/// What happened to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtEvent {
    /// The handshake completed: `send` is accepted from now on.
    Connected,
    /// The listener refused the connection (or we refused its answer): `code` is libsrt's
    /// rejection code (1000 + reason, e.g. 1010 wrong passphrase, 1011 passphrase required or
    /// unexpected; 1400+ a server's access control). Final: not retried here.
    Rejected { code: u32, reason: &'static str },
    /// The session ended: by the peer's shutdown, or by [`SrtSender::close`].
    Closed { by_peer: bool },
}

/// Counters and estimates of one session.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SrtStats {
    /// Smoothed round trip time and its variance, as the receiver reports them in full ACKs.
    pub rtt_ms: f64,
    pub rtt_var_ms: f64,
    /// Data packets sent for the first time.
    pub packets_sent: u64,
    /// Retransmissions (packets sent again with the R flag).
    pub packets_retransmitted: u64,
    /// Packets the receiver reported lost (NAK), counted once per report.
    pub packets_lost: u64,
    /// Packets dropped from the send buffer unacknowledged because they were too late to play.
    pub packets_dropped: u64,
    /// Lost packets not retransmitted because their play time at the receiver had passed (the
    /// receiver drops them, libsrt's TLPKTDROP): the losses the viewer sees. libsrt's own sender
    /// keeps retransmitting these until its 1 s drop threshold and never learns of them.
    pub packets_too_late: u64,
    /// Payload bytes of every data packet sent, retransmissions included.
    pub bytes_sent: u64,
    /// Packets in the send buffer (unsent + unacknowledged).
    pub send_buffer_packets: usize,
    /// Age of the oldest packet in the send buffer.
    pub send_buffer_ms: u64,
    /// Packets sent and not yet acknowledged.
    pub flight_size: usize,
    /// The peer's flow window (packets it can still take).
    pub flow_window: u32,
    /// When the last ACK arrived (for stall detection); `None` before the first.
    pub last_ack: Option<Instant>,
    /// The receiver's estimates from its last full ACK.
    pub peer_link_capacity_pkts: u32,
    pub peer_recv_rate_pkts: u32,
    pub peer_recv_rate_bps: u64,
    /// The current pacing rate in bit/s (0 = not paced yet).
    pub pacing_bps: u64,
}

#[cfg(test)]
mod tests;
