//! SRT: MPEG-TS (`core::ts`) in live-mode SRT messages (`core::srt`) over a UDP socket.
//!
//! Progress and round trip come from the peer's packets: its ACKs say which TS bytes have left
//! (the send queue counts the rest in its latency, so the ABR and the drop policy see SRT's send
//! buffer), and a peer that sends nothing back for the stall timeout (no ACK, no keepalive) is a
//! stall, as on RTMP.

use super::{Link, Opening, RepairStats, Silence};
use crate::core::media::{Codec, MediaPacket, Track};
use crate::core::srt::{SrtConfig, SrtEvent, SrtSender, MAX_DATAGRAM};
use crate::core::srt_url::SrtUrl;
use crate::core::ts::{TsMuxer, TsVideo, PACKETS_PER_DATAGRAM, TS_PACKET};
use crate::error::{Error, Result};
use crate::io::transport::WakeReceiver;
use crate::io::udp::Udp;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// 7 TS packets: one SRT live-mode message.
const PAYLOAD: usize = TS_PACKET * PACKETS_PER_DATAGRAM;
/// How long stop() may take to play out the tail when it left no time of its own.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// What the link needs from the pusher's configuration.
pub struct SrtParams {
    /// TSBPD latency when the URL gives none.
    pub latency: Duration,
    /// Used when the URL gives none.
    pub passphrase: Option<String>,
    pub pbkeylen: u8,
    pub stream_id: Option<String>,
    pub video: Option<Codec>,
    pub audio: bool,
    pub stall_timeout: Duration,
    /// Seeds the socket id, the initial sequence number and the key material.
    pub seed: u64,
}

pub struct SrtLink {
    host: String,
    udp: Udp,
    sender: SrtSender,
    mux: TsMuxer,
    /// Muxed TS not yet handed to the sender (`ts[ts_pos..]`).
    ts: Vec<u8>,
    ts_pos: usize,
    /// The datagram being sent; `blocked` when the socket refused it (sent again when writable).
    datagram: Vec<u8>,
    blocked: Option<usize>,
    rx: Vec<u8>,
    /// TS bytes handed to the sender, and the size of each message not yet acknowledged.
    written: u64,
    unacked: VecDeque<u16>,
    delivered: u64,
    silence: Silence,
    connected: bool,
    /// The socket may hold datagrams: set when a wait saw it readable, cleared once drained, so
    /// the paced wake-ups between packets cost no receive call that finds nothing.
    readable: bool,
}

impl SrtLink {
    /// Opens the UDP socket; the handshake follows in `poll_open`.
    pub fn connect(url: &SrtUrl, p: SrtParams, deadline: Instant) -> Result<SrtLink> {
        let latency = url.latency_ms.map_or(p.latency, |ms| Duration::from_millis(ms.into()));
        let passphrase = url.passphrase.clone().or(p.passphrase);
        let pbkeylen = url.pbkeylen.unwrap_or(p.pbkeylen);
        let cfg = SrtConfig {
            stream_id: url.stream_id.clone().or(p.stream_id),
            latency,
            passphrase,
            pbkeylen,
            ..SrtConfig::default()
        };
        let udp = Udp::connect(&url.host, url.port, deadline)?;
        let now = Instant::now();
        let seed = p.seed;
        let socket_id = (splitmix(seed) as u32 & 0x3FFF_FFFF).max(1);
        let initial_seq = splitmix(seed ^ 0xA5A5) as u32 & 0x7FFF_FFFF;
        let sender = SrtSender::new(cfg, socket_id, initial_seq, splitmix(seed ^ 0x5A5A), now)?;
        let video = p.video.map(|c| if c == Codec::Hevc { TsVideo::Hevc } else { TsVideo::H264 });
        Ok(SrtLink {
            host: url.host.clone(),
            udp,
            sender,
            mux: TsMuxer::new(video, p.audio),
            ts: Vec::with_capacity(256 * 1024),
            ts_pos: 0,
            datagram: vec![0u8; MAX_DATAGRAM],
            blocked: None,
            rx: vec![0u8; MAX_DATAGRAM * 2],
            written: 0,
            unacked: VecDeque::with_capacity(8192),
            delivered: 0,
            silence: Silence::new(now, p.stall_timeout),
            connected: false,
            readable: true,
        })
    }

    /// Reads what arrived, runs the sender's timers and writes what it has to send.
    fn exchange(&mut self, now: Instant) -> Result<()> {
        if self.readable {
            while let Some(n) = self.udp.recv(&mut self.rx)? {
                self.silence.heard(now);
                self.sender.handle_datagram(now, &self.rx[..n]);
            }
            self.readable = false;
        }
        self.sender.handle_timeout(now);
        loop {
            let n = match self.blocked.take() {
                Some(n) => n,
                None => match self.sender.poll_transmit(now, &mut self.datagram) {
                    Some(n) => n,
                    None => break,
                },
            };
            if !self.udp.send(&self.datagram[..n])? {
                self.blocked = Some(n);
                break;
            }
        }
        while let Some(ev) = self.sender.poll_event() {
            match ev {
                SrtEvent::Connected => self.connected = true,
                SrtEvent::Rejected { code, reason } => return Err(rejection(code, reason, &self.host)),
                SrtEvent::Closed { by_peer: true } => {
                    return Err(Error::Io(format!("the SRT peer {} closed the session", self.host)))
                }
                SrtEvent::Closed { by_peer: false } => {}
            }
        }
        // Messages the sender no longer holds were acknowledged (or dropped too late to play).
        while self.unacked.len() > self.sender.unacked() {
            self.delivered += u64::from(self.unacked.pop_front().unwrap_or(0));
        }
        Ok(())
    }

    /// Hands muxed TS to the sender, whole messages only unless `partial` (end of what is queued
    /// for now: a live stream does not wait to fill a datagram).
    fn feed(&mut self, now: Instant, partial: bool) -> Result<()> {
        while self.ts_pos < self.ts.len() && self.sender.can_send() {
            let left = self.ts.len() - self.ts_pos;
            if left < PAYLOAD && !partial {
                break;
            }
            let n = left.min(PAYLOAD);
            self.sender.send(now, &self.ts[self.ts_pos..self.ts_pos + n])?;
            self.ts_pos += n;
            self.written += n as u64;
            self.unacked.push_back(n as u16);
        }
        if self.ts_pos == self.ts.len() {
            self.ts.clear();
            self.ts_pos = 0;
        }
        Ok(())
    }
}

/// libsrt's rejection codes as this SDK's errors: a wrong or missing passphrase and the servers'
/// "unauthorized"/"forbidden" are final (retrying cannot fix them), the rest may pass later.
fn rejection(code: u32, reason: &str, host: &str) -> Error {
    let what = format!("the SRT listener {host} refused the connection: {reason} (code {code})");
    match code {
        1010 | 1011 | 1401 | 1403 => Error::Auth(what),
        1400 | 1404 => Error::ConnectRejected { code: format!("SRT {code}"), description: what },
        _ => Error::Connect(what),
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Link for SrtLink {
    fn poll_open(&mut self, now: Instant) -> Result<Opening> {
        let was = self.connected;
        self.exchange(now)?;
        Ok(Opening::from_connected(was, self.connected))
    }

    fn open_timeout(&self, ms: u128) -> Error {
        Error::Timeout(format!("no SRT handshake answer from {} within {ms} ms (is UDP blocked?)", self.host))
    }

    fn send(&mut self, ts: u64, p: &MediaPacket) -> Result<u64> {
        if self.ts_pos > 0 {
            // Keep the buffer from creeping: move the unsent tail to the front (no allocation).
            self.ts.drain(..self.ts_pos);
            self.ts_pos = 0;
        }
        let before = self.ts.len();
        match (p.track, p.header) {
            (Track::Video, true) => self.mux.set_video_config(&p.data)?,
            (Track::Audio, true) => self.mux.set_audio_config(&p.data)?,
            (Track::Video, false) => self.mux.write_video(ts, p.cts_ms.max(0), p.keyframe, &p.data, &mut self.ts)?,
            (Track::Audio, false) => self.mux.write_audio(ts, &p.data, &mut self.ts)?,
        }
        self.feed(Instant::now(), false)?;
        Ok((self.ts.len() + self.ts_pos).saturating_sub(before) as u64)
    }

    fn backlog(&self) -> usize {
        self.ts.len() - self.ts_pos
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn delivered(&self) -> u64 {
        self.delivered
    }

    fn pump(&mut self, now: Instant) -> Result<()> {
        self.feed(now, true)?;
        self.exchange(now)
    }

    fn acked(&self) -> bool {
        self.sender.stats().last_ack.is_some()
    }

    fn stalled(&self, now: Instant) -> bool {
        self.silence.stalled(now)
    }

    fn next_stall_check(&self, now: Instant) -> Duration {
        self.silence.next_check(now)
    }

    fn rtt_ms(&self) -> Option<u32> {
        let rtt = self.sender.stats().rtt_ms;
        (rtt > 0.0).then(|| rtt.ceil() as u32)
    }

    fn repair_stats(&self) -> Option<RepairStats> {
        let s = self.sender.stats();
        Some(RepairStats {
            retransmitted: s.packets_retransmitted,
            lost: s.packets_lost,
            dropped_late: s.packets_dropped + s.packets_too_late,
            send_buffer_ms: s.send_buffer_ms.min(u32::MAX as u64) as u32,
            latency_ms: self.sender.latency_ms(),
        })
    }

    fn wait(&mut self, wake: Option<&WakeReceiver>, timeout: Duration) {
        let now = Instant::now();
        let timer = self.sender.poll_timeout().map_or(timeout, |t| t.saturating_duration_since(now));
        let t = timeout.min(timer);
        if t.is_zero() {
            // Due now: the worker pumps again at once. Whatever arrived meanwhile is read then.
            self.readable = true;
            return;
        }
        // poll(2) counts whole milliseconds: a pacing timer 0.4 ms away would be a 0 ms poll, and
        // the worker would spin until it is due (~5 wake-ups per packet were measured). Waking up
        // to a millisecond late costs a packet that much delay, well inside SRT's latency.
        let t = Duration::from_millis(t.as_micros().div_ceil(1000) as u64);
        self.readable |= self.udp.wait(self.blocked.is_some(), wake, t).readable;
    }

    fn abandon(&mut self, now: Instant) {
        // UDP has no FIN: without SRT's SHUTDOWN the listener holds the session (libsrt: ~5 s of
        // silence) and may refuse the new one meanwhile.
        self.sender.close(now);
        let _ = self.exchange(now);
    }

    fn close(&mut self, _last_video_ts: Option<u64>, deadline: Instant) -> Result<()> {
        // The tail is delivered once acknowledged and played out by the receiver: libsrt's
        // receiver drops what it still holds when the caller shuts down (its linger is 0).
        let deadline = deadline.max(Instant::now() + CLOSE_GRACE);
        loop {
            let now = Instant::now();
            self.feed(now, true)?;
            self.exchange(now)?;
            if (self.backlog() == 0 && self.sender.is_flushed(now)) || now >= deadline {
                break;
            }
            self.wait(None, deadline.saturating_duration_since(now).min(Duration::from_millis(20)));
        }
        let now = Instant::now();
        self.sender.close(now);
        self.exchange(now)
    }
}
