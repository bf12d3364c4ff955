//! One connection of a destination, whatever its wire. The network worker (`super::network`) owns
//! everything the transports share — the send queue and its drop policy, reconnect and failover,
//! events, stats, the stop deadline — and drives a [`Link`] for what differs: how to connect and
//! publish, how a codec-level unit is framed, what counts as progress and how the round trip is
//! measured.

pub mod rtmp;
pub mod srt;
#[cfg(feature = "whip")]
pub mod whip;

use crate::core::media::MediaPacket;
use crate::error::Result;
use crate::io::transport::WakeReceiver;
use std::time::{Duration, Instant};

/// A datagram transport's repair figures on one connection (running totals).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RepairStats {
    pub retransmitted: u64,
    pub lost: u64,
    pub dropped_late: u64,
    /// Age of the oldest unacknowledged packet, ms.
    pub send_buffer_ms: u32,
    /// The receive latency agreed with the peer, ms.
    pub latency_ms: u32,
}

/// How far opening a link has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Still connecting, handshaking or asking to publish.
    Pending,
    /// The peer answered the transport handshake (reported once, as the CONNECTED event).
    Connected,
    /// Media may be sent.
    Publishing,
}

impl Opening {
    /// For the datagram transports, which finish opening in one step once the handshake is
    /// through: `was` and `is` connected before and after the latest exchange.
    pub fn from_connected(was: bool, is: bool) -> Opening {
        match (was, is) {
            (false, true) => Opening::Connected,
            (true, true) => Opening::Publishing,
            _ => Opening::Pending,
        }
    }
}

/// How long the peer of a datagram transport has been silent: UDP has no connection whose
/// failure says the path is dead, so silence past the stall timeout is the sign.
#[derive(Debug, Clone, Copy)]
pub struct Silence {
    last_heard: Instant,
    timeout: Duration,
}

impl Silence {
    pub fn new(now: Instant, timeout: Duration) -> Silence {
        Silence { last_heard: now, timeout }
    }
    /// A datagram arrived from the peer.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }
    pub fn stalled(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_heard) >= self.timeout
    }
    pub fn next_check(&self, now: Instant) -> Duration {
        (self.last_heard + self.timeout).saturating_duration_since(now)
    }
}

pub trait Link: Send {
    /// Advances connecting and publishing without blocking; call it until `Publishing` (the worker
    /// waits with [`Link::wait`] in between and enforces the connect deadline).
    fn poll_open(&mut self, now: Instant) -> Result<Opening>;

    /// The error when opening did not finish within the connect timeout (`ms`): says which
    /// stage was not finished.
    fn open_timeout(&self, ms: u128) -> crate::error::Error {
        crate::error::Error::Timeout(format!("no publish reply within {ms} ms"))
    }

    /// Whether this transport carries `p` (its codec): the worker skips, and does not count, what
    /// it does not. The default is FLV's and MPEG-TS's: everything but Opus, which the pusher
    /// encodes only for WebRTC (`Shared::queue_media` does not even queue it for the others).
    /// WebRTC carries H.264 and Opus only.
    fn carries(&self, p: &MediaPacket) -> bool {
        p.codec != crate::core::media::Codec::Opus
    }

    /// Frames one unit for the wire and queues it at stream time `ts` (ms); returns the bytes it
    /// took (the unit's framed size).
    fn send(&mut self, ts: u64, p: &MediaPacket) -> Result<u64>;

    /// Bytes framed but not yet handed to the socket: the worker stops feeding above a cap, so
    /// what cannot leave stays in the send queue, where it is measured and can be dropped.
    fn backlog(&self) -> usize;

    /// Bytes handed to the socket on this connection.
    fn written(&self) -> u64;

    /// Bytes of this connection that have left (sent by the kernel, or acknowledged by the peer):
    /// a unit framed when `written() + backlog()` was N has left once this reaches N.
    fn delivered(&self) -> u64;

    /// Writes what the socket takes, reads and handles what arrived, runs the link's timers.
    fn pump(&mut self, now: Instant) -> Result<()>;

    /// The peer has acknowledged media on this connection.
    fn acked(&self) -> bool;

    /// No progress for the stall timeout (no write progress and no acknowledgement).
    fn stalled(&self, now: Instant) -> bool;

    /// When the stall check should run next, from `now`.
    fn next_stall_check(&self, now: Instant) -> Duration;

    /// The last round trip measured, in ms.
    fn rtt_ms(&self) -> Option<u32>;

    /// Loss repair figures, for transports that repair (SRT); None for TCP.
    fn repair_stats(&self) -> Option<RepairStats> {
        None
    }

    /// The peer asked for a keyframe (a WebRTC PLI/FIR), rate-limited by the link; taken once.
    fn take_keyframe_request(&mut self, _now: Instant) -> bool {
        false
    }

    /// The share of audio packets the peer reports lost (WebRTC receiver reports), smoothed,
    /// 0-100: the audio encoder protects its packets for it (Opus FEC).
    fn audio_loss_percent(&self) -> Option<u8> {
        None
    }

    /// The transport's own estimate of the bandwidth to the peer (WebRTC's transport-wide
    /// congestion control), kbit/s: the shared ABR keeps the stream under it.
    fn bandwidth_estimate_kbps(&self) -> Option<u32> {
        None
    }

    /// Sleeps until the socket is ready (readable, or writable when there is a backlog), `wake`
    /// fires, or `timeout` passes.
    fn wait(&mut self, wake: Option<&WakeReceiver>, timeout: Duration);

    /// Ends the stream on this connection (unpublish, the end-of-sequence the wire has) and
    /// delivers what is queued until `deadline`; `last_video_ts` is the last video time sent.
    fn close(&mut self, last_video_ts: Option<u64>, deadline: Instant) -> Result<()>;

    /// The connection is being given up (the network changed): tell the peer at once, best
    /// effort and without waiting, in case the old route still carries it, so that a server
    /// taking one publisher per stream frees it for the new session now rather than at its idle
    /// timeout. TCP needs nothing here: dropping the socket sends its FIN.
    fn abandon(&mut self, _now: Instant) {}

    /// Opening did not finish in time: release what the server already set up for it, waiting
    /// at most a moment. WHIP deletes the session its endpoint answered (else it lingers there
    /// until its ICE gives up); an RTMP socket closes with the link, and an SRT handshake that
    /// did not finish leaves no session.
    fn opening_abandoned(&mut self, _now: Instant) {}
}
