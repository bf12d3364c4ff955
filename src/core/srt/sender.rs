//! The caller's state machine: handshake, then sending with ACK/NAK processing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::buffer::SendBuffer;
use super::crypto::Crypto;
use super::packet::*;
use super::{
    SrtConfig, SrtEvent, SrtStats, DEFAULT_FLIGHT_WINDOW, DEFAULT_PAYLOAD_SIZE, MAX_DATAGRAM, MAX_PAYLOAD_SIZE,
    MAX_STREAM_ID_LEN,
};
use crate::error::{Error, Result};

/// The caller resends its handshake this often until answered (libsrt's 250 ms).
const HANDSHAKE_RESEND: Duration = Duration::from_millis(250);
/// Keepalive after this long without sending anything (libsrt's COMM_KEEPALIVE_PERIOD).
const KEEPALIVE: Duration = Duration::from_secs(1);
/// libsrt's SRT_TLPKTDROP_MINTHRESHOLD_MS: the sender keeps a packet at least this long, so
/// one big I-frame at the bandwidth limit is not dropped before it could be sent.
const DROP_MIN_THRESHOLD: Duration = Duration::from_millis(1000);
/// Added to the drop threshold: twice the 10 ms ACK period (libsrt's 2 × COMM_SYN_INTERVAL).
const DROP_MARGIN: Duration = Duration::from_millis(20);
/// Least extra wait in `is_flushed` after the receiver's latency.
const FLUSH_MARGIN: Duration = Duration::from_millis(100);
/// libsrt receivers send a full ACK every 10 ms (COMM_SYN_INTERVAL).
const ACK_PERIOD: Duration = Duration::from_millis(10);
/// SRTO_OHEADBW default: pace at the input rate + 25 %.
const OVERHEAD_PERCENT: u64 = 25;
/// UDP/IP + SRT header bytes counted with each payload in rates, as libsrt does.
const PKT_OVERHEAD: u64 = 44;
/// Pacing never goes below this, so a slow input (audio only, a still picture) does not turn a
/// keyframe burst into a second of queueing.
const MIN_PACING_BPS: u64 = 1_000_000;
/// How far behind the pacing clock may fall and be caught up at once. Drivers wake up late by
/// their timer's granularity (a socket receive timeout is rounded to scheduler ticks, 4-8 ms
/// here); without this credit every late wake-up would lower the rate below the input's.
const PACING_CATCH_UP: Duration = Duration::from_millis(20);
/// A wake-up for a packet that is due also sends those due within this much after it: the
/// pacing clock keeps its rate, packets leave in small groups (≤ 10 ms of the pacing rate, a few
/// packets at a few Mbit/s) instead of one wake-up of the driver each, which on a loaded host
/// cost more CPU than the sends (scheduler switches, ~2.5 per 30 fps frame at 4 Mbit/s).
const PACING_SEND_AHEAD: Duration = Duration::from_millis(10);
/// libsrt's initial RTT estimate: what its receiver puts in ACKs until its first ACK/ACKACK
/// sample, and ours until the handshake gives one.
const INITIAL_RTT_US: u32 = 100_000;
const INITIAL_RTT_VAR_US: u32 = 50_000;
/// Least RTT taken from the handshake (loopback answers in microseconds; the timers built on
/// it must still span a receiver's 10 ms ACK period).
const MIN_HANDSHAKE_RTT_US: u32 = 1_000;
/// Largest send buffer in packets (libsrt's SRTO_SNDBUF default, 8192 × 1456 bytes).
const MAX_SEND_SLOTS: usize = 8192;
/// Pending control replies kept (ACKACKs, DROPREQs); more are dropped, which only costs an
/// RTT sample or a repeated drop request.
const CONTROL_QUEUE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Induction,
    Conclusion { cookie: u32 },
    Connected,
    Rejected,
    Closed,
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    AckAck(u32),
    DropReq { msgno: u32, first: u32, last: u32 },
}

/// The SRT live-mode caller. See the module documentation.
#[derive(Debug)]
pub struct SrtSender {
    state: State,
    socket_id: u32,
    peer_socket_id: u32,
    initial_seq: u32,
    start: Instant,
    now: Instant,

    latency_ms: u16,
    /// The stream id already in wire order (word-swapped, padded).
    stream_id: [u8; MAX_STREAM_ID_LEN],
    stream_id_len: usize,
    crypto: Option<Crypto>,
    payload_size: usize,
    max_bw_bps: Option<u64>,
    flight_window: u32,

    hs_next: Instant,
    /// When the latest handshake packet left, and how many of this phase's have: the answer
    /// to a conclusion sent once times the first RTT sample.
    hs_sent_at: Instant,
    hs_sends: u32,
    peer_latency_ms: u32,
    peer_tlpktdrop: bool,
    peer_flow_window: u32,
    ack_window: u32,

    buf: SendBuffer,
    next_msgno: u32,
    pending: VecDeque<Pending>,
    keepalive_due: bool,
    shutdown_due: bool,
    last_tx: Instant,
    events: VecDeque<SrtEvent>,

    rtt_us: u32,
    rtt_var_us: u32,
    /// Whether an ACK has carried the receiver's own RTT measurement (not libsrt's initial guess).
    peer_rtt_measured: bool,
    last_ack: Option<Instant>,
    last_ack_seq: u32,
    /// The oldest packet's sequence number once an ACK confirmed the receiver lacks it.
    head_missing: Option<u32>,
    /// When the last ACK emptied the send buffer.
    drained_at: Instant,
    /// When an ACK last released packets (or the connection started).
    ack_progress_at: Instant,
    /// Tail-loss probes sent since then: each waits twice as long as the one before.
    tail_probes: u32,

    /// Input rate sampling (libsrt's CSndBuffer::updateInputRate): 0.5 s first, then 1 s.
    rate_start: Instant,
    rate_bytes: u64,
    rate_pkts: u64,
    rate_period: Duration,
    /// Time between data packets; zero until the first input-rate sample (or a max_bw).
    pacing_period: Duration,
    pacing_bps: u64,
    next_data_at: Instant,

    stats: SrtStats,
}

impl SrtSender {
    /// A caller that starts its handshake at `now`. `socket_id` is our SRT socket id
    /// (non-zero, unique per connection), `initial_seq` the first sequence number (31 bits),
    /// `seed` feeds the encryption salt and key (0: from the OS's random source; pass 0 in
    /// production, a fixed value only for reproducible tests).
    pub fn new(cfg: SrtConfig, socket_id: u32, initial_seq: u32, seed: u64, now: Instant) -> Result<Self> {
        if socket_id == 0 {
            return Err(Error::InvalidArgument("SRT socket id must not be 0".into()));
        }
        let payload_size = if cfg.payload_size == 0 { DEFAULT_PAYLOAD_SIZE } else { cfg.payload_size };
        if payload_size > MAX_PAYLOAD_SIZE {
            return Err(Error::InvalidArgument(format!("SRT payload size {payload_size} above {MAX_PAYLOAD_SIZE}")));
        }
        let flight_window = if cfg.flight_window == 0 { DEFAULT_FLIGHT_WINDOW } else { cfg.flight_window.max(32) };
        let latency_ms = u16::try_from(cfg.latency.as_millis())
            .map_err(|_| Error::InvalidArgument(format!("SRT latency {:?} above 65535 ms", cfg.latency)))?;
        let mut stream_id = [0u8; MAX_STREAM_ID_LEN];
        let stream_id_len = match &cfg.stream_id {
            Some(s) if s.len() > MAX_STREAM_ID_LEN => {
                return Err(Error::InvalidArgument(format!(
                    "SRT stream id is {} bytes, at most {MAX_STREAM_ID_LEN}",
                    s.len()
                )))
            }
            Some(s) => write_stream_id(&mut stream_id, s.as_bytes()),
            None => 0,
        };
        let crypto = match &cfg.passphrase {
            None => None,
            Some(p) => {
                let n = p.chars().count();
                if !(10..=79).contains(&n) {
                    return Err(Error::InvalidArgument(format!(
                        "SRT passphrase has {n} characters, libsrt requires 10 to 79"
                    )));
                }
                let key_len = match cfg.pbkeylen {
                    0 | 16 => 16,
                    24 => 24,
                    32 => 32,
                    k => return Err(Error::InvalidArgument(format!("SRT pbkeylen {k}: 16, 24 or 32"))),
                };
                // Salt (16 bytes) then SEK (up to 32), drawn once.
                let mut material = [0u8; 48];
                key_material(seed, &mut material)?;
                let mut taken = 0;
                Some(Crypto::new(p.as_bytes(), key_len, &mut |b: &mut [u8]| {
                    b.copy_from_slice(&material[taken..taken + b.len()]);
                    taken += b.len();
                })?)
            }
        };
        if cfg.passphrase.is_none() && !matches!(cfg.pbkeylen, 0 | 16 | 24 | 32) {
            return Err(Error::InvalidArgument(format!("SRT pbkeylen {}: 16, 24 or 32", cfg.pbkeylen)));
        }
        let initial_seq = initial_seq & SEQ_MASK;
        // Sized for the drop threshold at 4 Mbit/s (or the configured ceiling): enough that the
        // too-late drop, not the ring, bounds it in the common case.
        let rate_bps = cfg.max_bw_bps.unwrap_or(4_000_000).max(MIN_PACING_BPS);
        let hold_ms =
            (u64::from(latency_ms) + DROP_MARGIN.as_millis() as u64).max(DROP_MIN_THRESHOLD.as_millis() as u64);
        let pkts = rate_bps / 8 / (payload_size as u64 + PKT_OVERHEAD) * hold_ms / 1000;
        let slots = (pkts as usize).clamp(64, MAX_SEND_SLOTS).next_power_of_two().min(MAX_SEND_SLOTS);
        Ok(SrtSender {
            state: State::Induction,
            socket_id,
            peer_socket_id: 0,
            initial_seq,
            start: now,
            now,
            latency_ms,
            stream_id,
            stream_id_len,
            crypto,
            payload_size,
            max_bw_bps: cfg.max_bw_bps.filter(|b| *b > 0),
            flight_window,
            hs_next: now,
            hs_sent_at: now,
            hs_sends: 0,
            peer_latency_ms: u32::from(latency_ms),
            peer_tlpktdrop: true,
            peer_flow_window: flight_window,
            ack_window: flight_window,
            buf: SendBuffer::new(payload_size, slots, MAX_SEND_SLOTS, initial_seq, now),
            next_msgno: 1,
            pending: VecDeque::with_capacity(CONTROL_QUEUE),
            keepalive_due: false,
            shutdown_due: false,
            last_tx: now,
            events: VecDeque::with_capacity(8),
            rtt_us: INITIAL_RTT_US,
            rtt_var_us: INITIAL_RTT_VAR_US,
            peer_rtt_measured: false,
            last_ack: None,
            last_ack_seq: initial_seq,
            drained_at: now,
            ack_progress_at: now,
            tail_probes: 0,
            head_missing: None,
            rate_start: now,
            rate_bytes: 0,
            rate_pkts: 0,
            rate_period: Duration::from_millis(500),
            pacing_period: Duration::ZERO,
            pacing_bps: 0,
            next_data_at: now,
            stats: SrtStats::default(),
        })
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Room in the send buffer for one more `send`.
    pub fn can_send(&self) -> bool {
        self.state == State::Connected && self.buf.has_room()
    }

    /// Packets queued or sent and not yet acknowledged; wait for 0 before `close` so the
    /// stream's tail reaches the receiver (libsrt's live-mode linger is 0).
    pub fn unacked(&self) -> usize {
        self.buf.len()
    }

    /// Whether the stream's tail has been played out: nothing unacknowledged, and the
    /// receiver's latency (+ max(RTT, 100 ms)) has passed since the last ACK, so it has
    /// delivered the packets it holds (libsrt's receiver discards undelivered packets when the caller shuts down).
    /// The pusher's stop() waits for this, within its deadline, before `close`.
    pub fn is_flushed(&self, now: Instant) -> bool {
        if self.state != State::Connected {
            return true;
        }
        // Plus a margin for the receiving application to read what its TSBPD released before
        // our shutdown makes it stop reading (seen lost under load with the bare latency).
        let margin = Duration::from_micros(u64::from(self.rtt_us)).max(FLUSH_MARGIN);
        self.buf.is_empty() && now >= self.drained_at + Duration::from_millis(u64::from(self.peer_latency_ms)) + margin
    }

    /// The TSBPD latency in force, ms: ours, or the listener's when it asked for more.
    pub fn latency_ms(&self) -> u32 {
        self.peer_latency_ms
    }

    pub fn poll_event(&mut self) -> Option<SrtEvent> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> SrtStats {
        let mut s = self.stats;
        s.rtt_ms = f64::from(self.rtt_us) / 1000.0;
        s.rtt_var_ms = f64::from(self.rtt_var_us) / 1000.0;
        s.send_buffer_packets = self.buf.len();
        s.send_buffer_ms =
            self.buf.oldest_origin().map_or(0, |t| self.now.saturating_duration_since(t).as_millis() as u64);
        s.flight_size = self.buf.sent();
        s.flow_window = self.window();
        s.last_ack = self.last_ack;
        s.pacing_bps = self.pacing_bps;
        s
    }

    /// Queues one live-mode message (one packet, ≤ `payload_size` bytes).
    pub fn send(&mut self, now: Instant, payload: &[u8]) -> Result<()> {
        if self.state != State::Connected {
            return Err(Error::InvalidState("SRT session is not connected".into()));
        }
        if payload.is_empty() || payload.len() > self.payload_size {
            return Err(Error::InvalidArgument(format!(
                "SRT payload of {} bytes (1..={})",
                payload.len(),
                self.payload_size
            )));
        }
        self.tick(now);
        let msgno = self.next_msgno;
        let Some((seq, slot)) = self.buf.push(now, payload, msgno) else {
            return Err(Error::QueueFull("SRT send buffer full"));
        };
        if let Some(c) = &self.crypto {
            c.apply(seq, slot);
        }
        self.next_msgno = msgno_next(msgno);
        self.sample_input(now, payload.len());
        Ok(())
    }

    /// Stops the session: a connected one tells the peer with a shutdown packet (the next
    /// `poll_transmit`). Packets still unacknowledged are abandoned: check `unacked` first.
    pub fn close(&mut self, now: Instant) {
        self.now = now;
        match self.state {
            State::Connected => {
                self.shutdown_due = true;
                self.state = State::Closed;
                self.events.push_back(SrtEvent::Closed { by_peer: false });
            }
            State::Induction | State::Conclusion { .. } => {
                self.state = State::Closed;
                self.events.push_back(SrtEvent::Closed { by_peer: false });
            }
            State::Rejected | State::Closed => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
    }

    /// When the sender next needs `handle_timeout` / `poll_transmit`; `None` when finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Induction | State::Conclusion { .. } => Some(self.hs_next),
            State::Connected => {
                if !self.pending.is_empty() || self.keepalive_due {
                    return Some(self.now);
                }
                let mut t = self.last_tx + KEEPALIVE;
                if let Some(o) = self.buf.oldest_origin() {
                    t = t.min(o + self.drop_threshold());
                }
                if self.buf.lost() > 0 || self.can_send_new() {
                    t = t.min(self.next_data_at);
                }
                if let Some(due) = self.overdue_at() {
                    t = t.min(due);
                }
                if let Some(due) = self.head_resend_due() {
                    t = t.min(due);
                }
                if let Some((_, due)) = self.tail_probe_due() {
                    t = t.min(due);
                }
                Some(t)
            }
            State::Closed if self.shutdown_due => Some(self.now),
            State::Rejected | State::Closed => None,
        }
    }

    /// Writes the next datagram to send into `buf` (at least [`MAX_DATAGRAM`] bytes; a shorter
    /// buffer gets nothing) and returns its length.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < MAX_DATAGRAM {
            return None;
        }
        self.tick(now);
        match self.state {
            State::Induction | State::Conclusion { .. } => {
                if now < self.hs_next {
                    return None;
                }
                self.hs_next = now + HANDSHAKE_RESEND;
                self.hs_sent_at = now;
                self.hs_sends += 1;
                Some(self.write_handshake(now, buf))
            }
            State::Connected => self.transmit_connected(now, buf),
            State::Closed if self.shutdown_due => {
                self.shutdown_due = false;
                let n = write_control_header(buf, CTRL_SHUTDOWN, 0, self.ts(now), self.peer_socket_id);
                buf[n..n + 4].fill(0);
                Some(n + 4)
            }
            State::Rejected | State::Closed => None,
        }
    }

    /// Takes one datagram from the peer. Anything malformed or not addressed to us is ignored.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        self.tick(now);
        let Some(c) = parse_control(data) else {
            return; // a data packet: we only send
        };
        if c.dest != self.socket_id {
            return;
        }
        match c.ctype {
            CTRL_HANDSHAKE => self.on_handshake(now, c.cif),
            CTRL_ACK if self.state == State::Connected => self.on_ack(now, c.info, c.cif),
            CTRL_NAK if self.state == State::Connected => self.on_nak(now, c.cif),
            CTRL_SHUTDOWN => {
                if matches!(self.state, State::Connected | State::Conclusion { .. }) {
                    self.state = State::Closed;
                    self.events.push_back(SrtEvent::Closed { by_peer: true });
                }
            }
            _ => {}
        }
    }

    #[cfg(test)]
    pub(super) fn next_msgno_for_test(&mut self, m: u32) {
        self.next_msgno = m;
    }

    // ---- internals ----

    fn ts(&self, t: Instant) -> u32 {
        t.saturating_duration_since(self.start).as_micros() as u32
    }

    fn window(&self) -> u32 {
        self.flight_window.min(self.peer_flow_window).min(self.ack_window)
    }

    fn can_send_new(&self) -> bool {
        self.buf.unsent() > 0 && (self.buf.sent() as u64) < u64::from(self.window())
    }

    /// libsrt's sender drop threshold: max(peer latency + SRTO_SNDDROPDELAY (0), 1 s) + 20 ms.
    fn drop_threshold(&self) -> Duration {
        Duration::from_millis(u64::from(self.peer_latency_ms)).max(DROP_MIN_THRESHOLD) + DROP_MARGIN
    }

    /// How old a packet may be for a retransmission to still reach the receiver before it plays
    /// (or skips) it: the peer's TSBPD latency, plus the ACK-period margin of the drop threshold.
    fn play_deadline(&self) -> Duration {
        Duration::from_millis(u64::from(self.peer_latency_ms)) + DROP_MARGIN
    }

    fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        if self.state != State::Connected {
            return;
        }
        if self.peer_tlpktdrop {
            if let Some(cutoff) = now.checked_sub(self.drop_threshold()) {
                if let Some(d) = self.buf.drop_older_than(cutoff) {
                    self.stats.packets_dropped += d.count as u64;
                    log::debug!("SRT: dropped {} packets too late to play ({}..={})", d.count, d.first_seq, d.last_seq);
                    self.push_pending(Pending::DropReq { msgno: d.first_msgno, first: d.first_seq, last: d.last_seq });
                }
            }
        }
        self.check_head_timeout(None);
        if now.saturating_duration_since(self.last_tx) >= KEEPALIVE {
            self.keepalive_due = true;
        }
    }

    /// ACK-driven retransmission of the oldest packet. The receiver's ACK names the first packet
    /// it lacks. An ACK that names our oldest packet and arrived at least RTT + 10 ms after our
    /// last copy of it left means that copy (or the NAK for it) was lost: resend at once, and
    /// again every RTT + min(4 × RTTVar, RTT) + 10 ms while no ACK moves past it — a libsrt
    /// receiver stops sending ACKs while their sequence number is stuck, and spaces its
    /// periodic NAK reports by (RTT + 4 × RTTVar) / 2, which right after connecting (RTT
    /// 100 ms, var 50 ms) is 150 ms: a whole 120-160 ms latency budget.
    fn check_head_timeout(&mut self, ack_arrived: Option<Instant>) {
        let base = self.buf.base_seq();
        let Some(tx) = self.buf.head_last_tx() else { return };
        if self.last_ack_seq != base {
            return;
        }
        let rtt = Duration::from_micros(u64::from(self.rtt_us));
        if let Some(at) = ack_arrived {
            if at >= tx + rtt + ACK_PERIOD {
                self.head_missing = Some(base);
                self.buf.mark_lost(base, base);
                return;
            }
        }
        if self.head_resend_due().is_some_and(|due| self.now >= due) {
            self.buf.mark_lost(base, base);
        }
        if let Some((seq, due)) = self.tail_probe_due() {
            if self.now >= due {
                self.buf.mark_lost(seq, seq);
                self.tail_probes += 1;
            }
        }
    }

    /// Tail-loss probe (as TCP's): when the newest packets are lost, no later packet shows the
    /// receiver the gap, so no NAK comes and the ACK just stops moving; the stream's last
    /// packets (a close, a pause, the end of a burst) would wait for the too-late drop. When
    /// nothing new can go out and no ACK released anything for RTT + min(4 × RTTVar, RTT) +
    /// 20 ms after the newest packet left, that packet is sent again: its arrival either is
    /// acknowledged or shows the receiver every gap before it, which it then NAKs. The second
    /// probe waits as long as the first, then they back off (doubling, up to 16 ×) while nothing
    /// answers, so a dead link costs a few packets a second: with the usual 4 × RTT latency the
    /// tail gets two probes before it plays, not one (CI at f10a207, 5 % loss, RTT 41 ms, latency
    /// 160 ms: the last packet and its only probe were both lost, and the stream ended a packet
    /// short). Not while the head is being resent for ACKs that name it (that already probes),
    /// nor once the packet's play time has passed (the probe would only be given up).
    /// Two ACK periods, not one: the receiver acknowledges on its 10 ms timer, so the ACK for
    /// a packet comes up to 10 ms + RTT after it left, later still when the receiver's thread
    /// wakes late; with one period the probe went before that ACK after most bursts (443 of
    /// 8300 packets on loopback at 30 fps were needless probes, each an extra wake-up).
    fn tail_probe_due(&self) -> Option<(u32, Instant)> {
        if self.buf.lost() > 0 || self.can_send_new() || self.head_missing == Some(self.buf.base_seq()) {
            return None;
        }
        let (seq, origin, tx) = self.buf.tail_last_tx()?;
        let rtt = Duration::from_micros(u64::from(self.rtt_us));
        let var = Duration::from_micros(4 * u64::from(self.rtt_var_us)).min(rtt);
        let wait = (rtt + var + 2 * ACK_PERIOD) * (1u32 << self.tail_probes.saturating_sub(1).min(4));
        let due = tx.max(self.ack_progress_at) + wait;
        let plays_at = origin + self.play_deadline();
        (due < plays_at && self.now < plays_at).then_some((seq, due))
    }

    /// When the next new packet goes out whatever the pacing clock says: once it has waited a
    /// quarter of the receiver's latency. The pacer spreads bursts at the input rate + 25 %
    /// (at least 1 Mbit/s), which is right for a keyframe but not for the backlog of a sender
    /// that was starved of CPU: after 120 ms without a wake-up (a loaded 2-core host) a 300
    /// kbit/s stream's packets left up to 110 ms late, half of a 200 ms latency, and a loss
    /// among them had no time left for a second repair. Not with a `max_bw` cap: that is the
    /// app's limit, kept.
    fn overdue_at(&self) -> Option<Instant> {
        if self.max_bw_bps.is_some() || !self.can_send_new() {
            return None;
        }
        let hold = Duration::from_millis(u64::from(self.peer_latency_ms)) / 4;
        Some(self.buf.next_unsent_origin()? + hold)
    }

    /// When the oldest packet, confirmed missing by an ACK, is due to be sent again.
    fn head_resend_due(&self) -> Option<Instant> {
        let tx = self.buf.head_last_tx()?;
        if self.head_missing != Some(self.buf.base_seq()) || self.last_ack_seq != self.buf.base_seq() {
            return None;
        }
        let rtt = Duration::from_micros(u64::from(self.rtt_us));
        let var = Duration::from_micros(4 * u64::from(self.rtt_var_us)).min(rtt);
        Some(tx + rtt + var + ACK_PERIOD)
    }

    fn push_pending(&mut self, p: Pending) {
        if self.pending.len() < CONTROL_QUEUE {
            self.pending.push_back(p);
        }
    }

    fn reject(&mut self, code: u32) {
        self.state = State::Rejected;
        self.events.push_back(SrtEvent::Rejected { code, reason: reject_reason(code) });
    }

    fn write_handshake(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let mut n = write_control_header(buf, CTRL_HANDSHAKE, 0, self.ts(now), 0);
        let mut hs = Handshake {
            version: HS_VERSION_UDT4,
            encryption: 0,
            extension: UDT_DGRAM,
            initial_seq: self.initial_seq,
            mtu: MAX_DATAGRAM as u32,
            flow_window: self.flight_window,
            hs_type: HS_TYPE_INDUCTION,
            socket_id: self.socket_id,
            cookie: 0,
            peer_ip: [0; 16],
        };
        let State::Conclusion { cookie } = self.state else {
            return n + hs.write(&mut buf[n..]);
        };
        hs.version = HS_VERSION_SRT5;
        hs.hs_type = HS_TYPE_CONCLUSION;
        hs.cookie = cookie;
        hs.encryption = self.crypto.as_ref().map_or(0, |c| (c.key_len() / 8) as u16);
        hs.extension = HS_EXT_FLAG_HSREQ;
        if self.crypto.is_some() {
            hs.extension |= HS_EXT_FLAG_KMREQ;
        }
        if self.stream_id_len > 0 {
            // Without the CONFIG flag libsrt ignores the SID block.
            hs.extension |= HS_EXT_FLAG_CONFIG;
        }
        n += hs.write(&mut buf[n..]);
        n += write_ext_header(&mut buf[n..], EXT_HSREQ, 3);
        n += HsExt {
            version: SRT_VERSION,
            flags: SRT_OPT_TSBPDSND
                | SRT_OPT_TSBPDRCV
                | SRT_OPT_HAICRYPT
                | SRT_OPT_TLPKTDROP
                | SRT_OPT_NAKREPORT
                | SRT_OPT_REXMITFLG,
            recv_delay_ms: self.latency_ms,
            send_delay_ms: self.latency_ms,
        }
        .write(&mut buf[n..]);
        if self.stream_id_len > 0 {
            n += write_ext_header(&mut buf[n..], EXT_SID, (self.stream_id_len / 4) as u16);
            buf[n..n + self.stream_id_len].copy_from_slice(&self.stream_id[..self.stream_id_len]);
            n += self.stream_id_len;
        }
        if let Some(c) = &self.crypto {
            // The KM message is already in network order and goes on the wire unchanged.
            let km = c.km_message();
            n += write_ext_header(&mut buf[n..], EXT_KMREQ, (km.len() / 4) as u16);
            buf[n..n + km.len()].copy_from_slice(km);
            n += km.len();
        }
        n
    }

    fn on_handshake(&mut self, now: Instant, cif: &[u8]) {
        let Some(hs) = Handshake::parse(cif) else { return };
        let connecting = matches!(self.state, State::Induction | State::Conclusion { .. });
        if !connecting {
            return; // a repeated conclusion response after we connected
        }
        if hs.hs_type >= HS_TYPE_REJECT_BASE && hs.hs_type != HS_TYPE_CONCLUSION {
            self.reject(hs.hs_type);
            return;
        }
        match (self.state, hs.hs_type) {
            (State::Induction, HS_TYPE_INDUCTION) => {
                if hs.version != HS_VERSION_SRT5 || hs.extension != SRT_MAGIC {
                    // An HSv4-only peer (libsrt < 1.3): we speak HSv5 only.
                    self.reject(HS_TYPE_REJECT_BASE + 8);
                    return;
                }
                self.state = State::Conclusion { cookie: hs.cookie };
                self.hs_next = now;
                self.hs_sends = 0;
            }
            (State::Conclusion { .. }, HS_TYPE_CONCLUSION) => self.on_conclusion(now, &hs, &cif[HS_CIF_LEN..]),
            _ => {}
        }
    }

    fn on_conclusion(&mut self, now: Instant, hs: &Handshake, exts: &[u8]) {
        if hs.version != HS_VERSION_SRT5 || hs.socket_id == 0 {
            return;
        }
        let mut km_ok = self.crypto.is_none();
        let mut km_state = None;
        for (ty, body) in hs_extensions(exts) {
            match ty {
                EXT_HSRSP => {
                    if let Some(h) = HsExt::parse(body) {
                        // The receiver's TSBPD delay, which the too-late drop is measured against.
                        self.peer_latency_ms = u32::from(h.recv_delay_ms.max(self.latency_ms));
                        self.peer_tlpktdrop = h.flags & SRT_OPT_TLPKTDROP != 0;
                    }
                }
                EXT_KMRSP => {
                    if body.len() == 4 {
                        // A bare KM state: 3 = no secret on the peer, 4 = bad secret.
                        km_state = Some(u32::from_be_bytes([body[0], body[1], body[2], body[3]]));
                    } else if let Some(c) = &self.crypto {
                        km_ok = body.len() >= c.km_message().len() && body[..c.km_message().len()] == *c.km_message();
                    }
                }
                _ => {}
            }
        }
        self.peer_socket_id = hs.socket_id;
        if !km_ok {
            // The listener accepted without our key (not enforcing encryption): it could not
            // decrypt the stream, so refuse as libsrt's enforced-encryption caller does.
            let code = match km_state {
                Some(4) => HS_TYPE_REJECT_BASE + 10,
                _ => HS_TYPE_REJECT_BASE + 11,
            };
            self.shutdown_due = true;
            self.state = State::Closed;
            self.events.push_back(SrtEvent::Rejected { code, reason: reject_reason(code) });
            return;
        }
        if hs.flow_window > 0 {
            self.peer_flow_window = hs.flow_window;
        }
        self.state = State::Connected;
        self.sample_handshake_rtt(now);
        self.last_tx = now;
        self.next_data_at = now;
        self.rate_start = now;
        self.events.push_back(SrtEvent::Connected);
        log::debug!(
            "SRT: connected, peer socket {:#x}, peer latency {} ms, flow window {}",
            self.peer_socket_id,
            self.peer_latency_ms,
            self.peer_flow_window
        );
    }

    fn on_ack(&mut self, now: Instant, ack_no: u32, cif: &[u8]) {
        let Some(ack) = Ack::parse(cif) else { return };
        let light = Ack::is_light(cif);
        let Some(released) = self.buf.acknowledge(ack.ack_seq) else {
            return; // acknowledges packets never sent: not from our peer's receiver
        };
        if released > 0 {
            self.ack_progress_at = now;
            self.tail_probes = 0;
            if self.buf.is_empty() {
                self.drained_at = now;
            }
        }
        if !light {
            // Answer at once: the receiver measures the RTT from the ACK to this ACKACK.
            self.push_pending(Pending::AckAck(ack_no));
        }
        self.last_ack = Some(now);
        let fresh = seq_diff(ack.ack_seq, self.last_ack_seq) >= 0;
        if fresh {
            self.last_ack_seq = ack.ack_seq;
        }
        if let (Some(rtt), Some(var)) = (ack.rtt_us, ack.rtt_var_us) {
            // libsrt's receiver reports its initial 100 ms guess until its first ACKACK comes
            // back; our handshake sample is a measurement, so it stays until the peer has one.
            let guess = !self.peer_rtt_measured && rtt == INITIAL_RTT_US && var == INITIAL_RTT_VAR_US;
            if rtt > 0 && !guess {
                self.rtt_us = rtt;
                self.rtt_var_us = var;
                self.peer_rtt_measured = true;
            }
        }
        if fresh {
            if let Some(avail) = ack.buffer_available {
                // Never shut the window completely: with nothing in flight the receiver has
                // nothing to acknowledge and would never reopen it.
                self.ack_window = avail.max(2);
            }
        }
        self.check_head_timeout(Some(now));
        if let Some(v) = ack.recv_rate_pkts {
            self.stats.peer_recv_rate_pkts = v;
        }
        if let Some(v) = ack.link_capacity_pkts {
            self.stats.peer_link_capacity_pkts = v;
        }
        if let Some(v) = ack.recv_rate_bytes {
            self.stats.peer_recv_rate_bps = u64::from(v) * 8;
        }
    }

    fn on_nak(&mut self, now: Instant, cif: &[u8]) {
        // The receiver is repairing the flight: the probe waits while that runs.
        self.ack_progress_at = now;
        let base = self.buf.base_seq();
        for (lo, hi) in nak_ranges(cif) {
            self.stats.packets_lost += self.buf.mark_lost(lo, hi) as u64;
            if seq_diff(base, lo) >= 0 && seq_diff(hi, base) >= 0 {
                // The receiver lacks our oldest packet: if this copy is lost too, its ACK stays
                // stuck and no ACK arrives to show it, so the head-resend timer watches it.
                self.head_missing = Some(base);
            }
        }
    }

    /// The first RTT sample: the handshake's round trip, as the receiver's first ACK/ACKACK
    /// sample would be (RTT = sample, RTTVar = sample / 2). Until the receiver measures one it
    /// reports libsrt's 100 ms / 50 ms guess, and every repair timer built on it (head resend,
    /// tail probe) waited RTT + 4 × RTTVar ≈ 200 ms: a whole 200 ms latency budget, so a packet
    /// lost twice in a stream's first half second was dropped by the receiver (a libsrt receiver
    /// also spaces its periodic NAKs by (RTT + 4 × RTTVar) / 2 = 150 ms then, and sends no ACK
    /// while the lost packet holds its ACK back).
    fn sample_handshake_rtt(&mut self, now: Instant) {
        let sample = now.saturating_duration_since(self.hs_sent_at);
        if self.hs_sends == 1 && sample < HANDSHAKE_RESEND {
            // Resent: the answer may be to the earlier copy; keep the guess.
            let us = (sample.as_micros() as u32).max(MIN_HANDSHAKE_RTT_US);
            self.rtt_us = us;
            self.rtt_var_us = us / 2;
        }
    }

    /// libsrt's retransmission hold-off: a packet retransmitted less than SRTT − 4 × RTTVar
    /// ago is not sent again for a repeated NAK (the first copy may still be on its way).
    fn rexmit_hold_off(&self) -> Duration {
        Duration::from_micros(u64::from(self.rtt_us.saturating_sub(self.rtt_var_us.saturating_mul(4))))
    }

    fn transmit_connected(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(p) = self.pending.pop_front() {
            let n = match p {
                Pending::AckAck(no) => {
                    let n = write_control_header(buf, CTRL_ACKACK, no, self.ts(now), self.peer_socket_id);
                    buf[n..n + 4].fill(0);
                    n + 4
                }
                Pending::DropReq { msgno, first, last } => {
                    let n = write_control_header(buf, CTRL_DROPREQ, msgno, self.ts(now), self.peer_socket_id);
                    buf[n..n + 4].copy_from_slice(&first.to_be_bytes());
                    buf[n + 4..n + 8].copy_from_slice(&last.to_be_bytes());
                    n + 8
                }
            };
            self.last_tx = now;
            return Some(n);
        }
        let overdue = self.overdue_at().is_some_and(|due| now >= due);
        if overdue || now + PACING_SEND_AHEAD >= self.next_data_at {
            if self.peer_tlpktdrop && self.buf.lost() > 0 {
                if let Some(cutoff) = now.checked_sub(self.play_deadline()) {
                    self.stats.packets_too_late += self.buf.give_up_lost_before(cutoff) as u64;
                }
            }
            let rexmit = self.buf.next_lost(now, self.rexmit_hold_off());
            let index = match rexmit {
                Some(i) => Some(i),
                None if self.can_send_new() => self.buf.next_unsent(now),
                None => None,
            };
            if let Some(i) = index {
                let (seq, msgno, origin, payload) = self.buf.packet(i);
                let kk = if self.crypto.is_some() { KK_EVEN } else { KK_NONE };
                write_data_header(buf, seq, msgno, kk, rexmit.is_some(), self.ts(origin), self.peer_socket_id);
                let n = HEADER_LEN + payload.len();
                buf[HEADER_LEN..n].copy_from_slice(payload);
                self.stats.bytes_sent += payload.len() as u64;
                if rexmit.is_some() {
                    self.stats.packets_retransmitted += 1;
                } else {
                    self.stats.packets_sent += 1;
                }
                self.next_data_at = if overdue {
                    // The clock restarts from now: left far ahead, it would hold every later
                    // packet for the whole quarter latency.
                    now + self.pacing_period
                } else {
                    self.next_data_at.max(now.checked_sub(PACING_CATCH_UP).unwrap_or(now)) + self.pacing_period
                };
                self.last_tx = now;
                self.keepalive_due = false;
                return Some(n);
            }
        }
        if self.keepalive_due {
            self.keepalive_due = false;
            self.last_tx = now;
            let n = write_control_header(buf, CTRL_KEEPALIVE, 0, self.ts(now), self.peer_socket_id);
            buf[n..n + 4].fill(0);
            return Some(n + 4);
        }
        None
    }

    /// Input-rate sampling for the pacing (libsrt's LiveCC with SRTO_MAXBW = 0: input rate
    /// × (1 + SRTO_OHEADBW)), or the configured ceiling.
    fn sample_input(&mut self, now: Instant, len: usize) {
        if self.rate_pkts == 0 && self.pacing_bps == 0 {
            // The first window starts with the first packet, not at the connection: a pusher
            // that starts late would otherwise look like a slow input.
            self.rate_start = now;
        }
        self.rate_bytes += len as u64 + PKT_OVERHEAD;
        self.rate_pkts += 1;
        let elapsed = now.saturating_duration_since(self.rate_start);
        if self.max_bw_bps.is_none() && elapsed < self.rate_period {
            return;
        }
        let avg_pkt = self.rate_bytes.checked_div(self.rate_pkts).unwrap_or(self.payload_size as u64 + PKT_OVERHEAD);
        let bps = match self.max_bw_bps {
            Some(max) => max,
            None => {
                let input_bps = self.rate_bytes * 8 * 1_000_000 / (elapsed.as_micros() as u64).max(1);
                (input_bps * (100 + OVERHEAD_PERCENT) / 100).max(MIN_PACING_BPS)
            }
        };
        self.pacing_bps = bps;
        self.pacing_period = Duration::from_nanos(avg_pkt * 8 * 1_000_000_000 / bps.max(1));
        if elapsed >= self.rate_period {
            self.rate_start = now;
            self.rate_bytes = 0;
            self.rate_pkts = 0;
            self.rate_period = Duration::from_secs(1);
        }
    }
}

/// Random bytes for the salt and the SEK: the OS's random source, or for `seed != 0` a
/// SplitMix64 stream so tests can replay a session.
fn key_material(seed: u64, out: &mut [u8]) -> Result<()> {
    if seed == 0 {
        return getrandom::getrandom(out)
            .map_err(|e| Error::Internal(format!("no OS random source for the SRT key: {e}")));
    }
    let mut state = seed;
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
    Ok(())
}
