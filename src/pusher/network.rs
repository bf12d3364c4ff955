//! The network worker of one destination: connects, publishes, drains the send queue into the
//! RTMP session and the socket, detects stalls, and reconnects (with backoff and failover) until
//! the pusher stops or the destination gives up.

use super::event::{EventKind, PusherState};
use super::shared::{lock, Destination, Shared};
use super::VideoEncoderKind;
use crate::core::flv;
use crate::core::media::{MediaPacket, Track};
use crate::core::metadata::StreamMetadata;
use crate::core::reconnect::{Decision, Reconnector};
use crate::core::session::{PublishSession, SessionEvent, SessionState};
use crate::core::stall::StallDetector;
use crate::core::url::RtmpUrl;
use crate::error::{Error, Result, ResultCode};
use crate::io::transport::{Transport, WakeReceiver};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop moving packets into the session once this much is waiting for the socket: the rest
/// stays in the send queue, where it is measured and can be dropped.
const MAX_SESSION_BACKLOG: usize = 8 * 1024;
/// The socket's send buffer holds about this much of the stream (see `Transport::set_send_buffer`).
const SOCKET_BUFFER_MS: u64 = 200;
const MIN_SOCKET_BUFFER: usize = 16 * 1024;
/// An RTMP ping every so often gives the round trip for the stats.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// How long unpublish may take when stop() left no time of its own.
const UNPUBLISH_GRACE: Duration = Duration::from_millis(500);
/// How long the end of a connection waits for the server to close its side (see `Transport::finish`).
const FINISH_GRACE: Duration = Duration::from_secs(2);
/// The TCP probe of the primary while publishing on a backup blocks sending for at most this.
const PRIMARY_PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct NetworkWorker {
    pub shared: Arc<Shared>,
    pub dest: usize,
    pub wake: WakeReceiver,
}

struct Conn {
    transport: Transport,
    session: PublishSession,
    buf: Vec<u8>,
    written: u64,
    stall: StallDetector,
    /// The sequence headers this session has sent, to skip repeats from the queue.
    sent_header: [Option<Bytes>; 2],
    /// The server acknowledged media on this connection.
    acked: bool,
    /// Timestamp of the last video frame sent on this connection (for the sequence end).
    last_video_ts: Option<u64>,
    /// When publishing began, until the publish counts as working (see STABLE_PUBLISH).
    unproven_since: Option<Instant>,
    /// Media handed to the session: (end offset in the connection's byte stream, timestamp),
    /// until the kernel has sent it.
    in_flight: std::collections::VecDeque<(u64, u64)>,
    /// Bytes of this connection the kernel has sent.
    delivered: u64,
    opened: Instant,
    /// The ping awaiting its answer (when sent, its timestamp), and when the next one is due.
    ping_sent: Option<(Instant, u32)>,
    next_ping: Instant,
}

fn track_idx(t: Track) -> usize {
    match t {
        Track::Video => 0,
        Track::Audio => 1,
    }
}

/// The rustls client settings of this destination, built at its first `rtmps://` connect and kept
/// so that reconnects can resume the TLS session.
#[cfg(feature = "tls")]
type TlsClient = Option<Arc<rustls::ClientConfig>>;
/// Without the `tls` feature there is never a client config.
#[cfg(not(feature = "tls"))]
type TlsClient = Option<std::convert::Infallible>;

/// How a session ended without an error.
enum Ended {
    /// stop(): everything sent (or the deadline passed with this many packets unsent).
    Stopped(usize),
    /// The primary answers again: leave the backup for it.
    BackToPrimary,
}

/// A session's failure, and whether it had been publishing.
struct Lost {
    error: Error,
    was_publishing: bool,
    /// The publish had held long enough to prove the URL works: a server that accepts a publish
    /// and drops it at once (nginx's `deny publish` does) must still run into the attempt limit.
    was_stable: bool,
}

/// A publish that lasted this long (or got a server acknowledgement) counts as working.
const STABLE_PUBLISH: Duration = Duration::from_secs(3);

impl NetworkWorker {
    fn d(&self) -> &Destination {
        &self.shared.destinations[self.dest]
    }

    fn emit(&self, kind: EventKind, code: ResultCode, message: impl Into<String>, value: i64, value2: i64) {
        self.shared.emit_full(kind, code, message, self.d().index, value, value2);
    }

    /// stop() was called and its deadline has passed. Until then a stopping pusher still connects
    /// (or reconnects) to deliver what is queued.
    fn out_of_time(&self) -> bool {
        self.shared.stopping() && self.shared.stop_deadline_passed(Instant::now())
    }

    pub fn run(self) {
        let shared = self.shared.clone();
        let d = self.d();
        let mut rc = Reconnector::new(
            crate::core::reconnect::ReconnectPolicy { seed: seed(self.dest), ..shared.config.reconnect.clone() },
            lock(&d.urls).len(),
        );
        // When the last publish was lost, and the attempts since.
        let mut outage: Option<(Instant, u32)> = None;
        let mut first = true;
        let mut last_error = Error::Io("no connection attempt".into());
        let mut tls_client = TlsClient::default();
        loop {
            if self.out_of_time() || shared.state() == PusherState::KP_STATE_FAILED {
                break;
            }
            let now = Instant::now();
            match rc.poll(now) {
                Decision::Wait { until, delay, attempt, .. } => {
                    d.set_state(PusherState::KP_STATE_RECONNECTING);
                    let code = if outage.is_some_and(|(_, n)| n == 0) { ResultCode::KP_OK } else { last_error.code() };
                    self.emit(
                        EventKind::KP_EVENT_RECONNECTING,
                        code,
                        format!("reconnecting in {} ms", delay.as_millis()),
                        attempt as i64,
                        delay.as_millis() as i64,
                    );
                    while !self.out_of_time() && Instant::now() < until {
                        let wake_at = lock(&shared.stop_deadline).map_or(until, |d| d.min(until));
                        self.wake.wait(wake_at.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)));
                    }
                }
                Decision::GiveUp => {
                    if self.refresh_url(rc.current_url()) {
                        rc.reset_after_new_url();
                        continue;
                    }
                    shared.fail_destination(d, last_error);
                    return;
                }
                Decision::Connect { url, attempt } => {
                    if let Some((from, to)) = rc.take_switch() {
                        let redacted = lock(&d.urls)[to].redacted();
                        self.emit(EventKind::KP_EVENT_FAILOVER, ResultCode::KP_OK, redacted, from as i64, to as i64);
                    }
                    if !first {
                        self.refresh_url(url);
                    }
                    first = false;
                    d.counters.url_index.store(url as u32, Relaxed);
                    if let Some((_, n)) = outage.as_mut() {
                        *n = attempt;
                    }
                    match self.session(url, &mut rc, &mut outage, &mut tls_client) {
                        Ok(Ended::Stopped(unsent)) => return self.stopped(unsent),
                        Ok(Ended::BackToPrimary) => {
                            outage = Some((Instant::now(), 0));
                        }
                        Err(Lost { error, was_publishing, was_stable }) => {
                            // Whatever quoted the server must not carry the key into an event or a log.
                            let error = lock(&d.urls).iter().fold(error, |e, u| e.map_text(|t| u.scrub(t)));
                            if self.out_of_time() {
                                break;
                            }
                            if was_publishing {
                                self.emit(EventKind::KP_EVENT_DISCONNECTED, error.code(), error.to_string(), 0, 0);
                                outage = Some((Instant::now(), 0));
                            }
                            log::info!("destination {}: {error}", d.index);
                            // What that connection had in flight is lost, not waiting.
                            lock(&d.queue).set_in_flight(None);
                            rc.on_failure(Instant::now(), &error, was_stable);
                            last_error = error;
                        }
                    }
                }
            }
        }
        let unsent = lock(&d.queue).len();
        self.stopped(unsent);
    }

    /// The worker ends; `unsent` media packets were left in the queue (stop() reports them).
    fn stopped(&self, unsent: usize) {
        let d = self.d();
        d.set_state(PusherState::KP_STATE_STOPPED);
        if self.shared.stopping() {
            d.unsent_at_stop.store(unsent as u64, Relaxed);
        }
        self.emit(EventKind::KP_EVENT_STOPPED, ResultCode::KP_OK, "stopped", unsent as i64, 0);
    }

    /// Ask the app for a fresh URL (signed URLs expire). True when it gave a new, valid one.
    fn refresh_url(&self, index: usize) -> bool {
        let Some(new) = self.ask_url_refresh(index) else {
            return false;
        };
        match RtmpUrl::parse(&new) {
            Ok(u) => {
                let mut urls = lock(&self.d().urls);
                let changed = urls[index] != u;
                urls[index] = u;
                changed
            }
            Err(e) => {
                log::warn!("URL refresh callback gave a bad URL: {e}");
                false
            }
        }
    }

    fn ask_url_refresh(&self, index: usize) -> Option<String> {
        let cb = self.shared.url_refresh.clone();
        if lock(&cb).is_none() {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let dest = self.d().index;
        // The app's callback may block (it may fetch a URL over the network): it runs on its own
        // thread, and a late answer is dropped rather than stalling the reconnect.
        let spawned = std::thread::Builder::new().name("kp-url-refresh".into()).spawn(move || {
            let mut guard = lock(&cb);
            if let Some(f) = guard.as_mut() {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(dest, index as u32)));
                let _ = tx.send(r.ok().flatten());
            }
        });
        if spawned.is_err() {
            return None;
        }
        match rx.recv_timeout(self.shared.config.url_refresh_timeout) {
            Ok(url) => url,
            Err(_) => {
                log::warn!("URL refresh callback did not answer within {:?}", self.shared.config.url_refresh_timeout);
                None
            }
        }
    }

    fn metadata(&self) -> StreamMetadata {
        self.shared.stream_metadata()
    }

    /// One connection: connect, publish, stream until stop or failure.
    fn session(
        &self,
        url_index: usize,
        rc: &mut Reconnector,
        outage: &mut Option<(Instant, u32)>,
        tls_client: &mut TlsClient,
    ) -> std::result::Result<Ended, Lost> {
        let shared = &self.shared;
        let d = self.d();
        let url = lock(&d.urls)[url_index].clone();
        let lost = |error| Lost { error, was_publishing: false, was_stable: false };
        let started = Instant::now();
        if outage.is_none() {
            d.set_state(PusherState::KP_STATE_CONNECTING);
        }
        self.emit(EventKind::KP_EVENT_CONNECTING, ResultCode::KP_OK, url.redacted(), url_index as i64, 0);
        if url.tls && !cfg!(feature = "tls") {
            return Err(lost(Error::Unsupported(
                "rtmps:// needs the TLS transport (feature `tls`), not in this build".into(),
            )));
        }
        let deadline = started + shared.config.connect_timeout;
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut transport = Transport::connect(&url.host, url.port, deadline).map_err(lost)?;
        #[cfg(feature = "tls")]
        if url.tls {
            let config = match tls_client {
                Some(c) => c.clone(),
                None => tls_client.insert(crate::io::tls::client_config(&shared.config.tls).map_err(lost)?).clone(),
            };
            transport.start_tls(config, &url.host).map_err(lost)?;
        }
        #[cfg(not(feature = "tls"))]
        let _ = tls_client;
        let c = &shared.config;
        let stream_kbps =
            c.video.as_ref().map_or(0, |v| v.bitrate_kbps) + c.audio.as_ref().map_or(0, |a| a.bitrate_kbps);
        transport.set_send_buffer(((stream_kbps as u64 * SOCKET_BUFFER_MS / 8) as usize).max(MIN_SOCKET_BUFFER));
        let session = PublishSession::new(&url, self.metadata()).map_err(lost)?;
        let now = Instant::now();
        let mut conn = Conn {
            transport,
            session,
            buf: vec![0u8; 16 * 1024],
            written: 0,
            stall: StallDetector::new(shared.config.stall_timeout, now),
            sent_header: [None, None],
            acked: false,
            last_video_ts: None,
            unproven_since: None,
            in_flight: std::collections::VecDeque::with_capacity(256),
            delivered: 0,
            opened: now,
            ping_sent: None,
            next_ping: now,
        };
        let mut events = Vec::new();

        // Handshake, connect, createStream, publish.
        while conn.session.state() != SessionState::Publishing {
            if self.out_of_time() {
                return Ok(Ended::Stopped(lock(&d.queue).len()));
            }
            let now = Instant::now();
            if now >= deadline && conn.transport.is_handshaking() {
                return Err(lost(Error::Timeout(format!(
                    "TLS handshake with {} not finished within {} ms",
                    url.host,
                    shared.config.connect_timeout.as_millis()
                ))));
            }
            if now >= deadline {
                return Err(lost(Error::Timeout(format!(
                    "no publish reply within {} ms",
                    shared.config.connect_timeout.as_millis()
                ))));
            }
            self.pump(&mut conn, &mut events).map_err(lost)?;
            for ev in events.drain(..) {
                if ev == SessionEvent::Connected {
                    self.emit(
                        EventKind::KP_EVENT_CONNECTED,
                        ResultCode::KP_OK,
                        "connected",
                        started.elapsed().as_millis() as i64,
                        0,
                    );
                }
            }
            if conn.session.state() == SessionState::Publishing {
                break;
            }
            let wake_at = lock(&shared.stop_deadline).map_or(deadline, |d| d.min(deadline));
            let timeout = wake_at.saturating_duration_since(now).max(Duration::from_millis(1));
            conn.transport.wait(!conn.session.pending_output().is_empty(), Some(&self.wake), timeout);
        }
        let now = Instant::now();
        conn.unproven_since = Some(now);
        d.set_state(PusherState::KP_STATE_PUBLISHING);
        {
            let mut st = lock(&shared.state);
            if *st == PusherState::KP_STATE_CONNECTING {
                *st = PusherState::KP_STATE_PUBLISHING;
            }
        }
        self.emit(
            EventKind::KP_EVENT_PUBLISHING,
            ResultCode::KP_OK,
            "publishing",
            started.elapsed().as_millis() as i64,
            0,
        );
        if let Some((lost_at, attempts)) = outage.take() {
            let ms = now.duration_since(lost_at).as_millis() as u64;
            d.counters.reconnects.fetch_add(1, Relaxed);
            d.counters.outage_ms_total.fetch_add(ms, Relaxed);
            self.emit(
                EventKind::KP_EVENT_RECONNECTED,
                ResultCode::KP_OK,
                format!("reconnected after {ms} ms"),
                ms as i64,
                attempts as i64,
            );
        }

        // A session starts with the current sequence headers and, for video, a keyframe; the
        // timeline continues where the last session left it.
        let headers = {
            let mut q = lock(&d.queue);
            let out = q.restart_at_keyframe();
            drop(q);
            shared.account_drops(d, out);
            let q = lock(&d.queue);
            [q.latest_header(Track::Video).cloned(), q.latest_header(Track::Audio).cloned()]
        };
        for (t, h) in [Track::Video, Track::Audio].into_iter().zip(headers) {
            if let Some(h) = h {
                conn.sent_header[track_idx(t)] = Some(h.data.clone());
                self.send(&mut conn, 0, &h).map_err(|error| Lost { error, was_publishing: true, was_stable: false })?;
            }
        }
        let result = self.stream(&mut conn, &mut events, rc);
        result.map_err(|error| Lost { error, was_publishing: true, was_stable: conn.unproven_since.is_none() })
    }

    /// Frames one codec-level unit as an FLV tag body and hands it to the session; returns the
    /// body's length.
    fn send(&self, conn: &mut Conn, ts: u64, p: &MediaPacket) -> Result<u64> {
        // RTMP timestamps are 32-bit milliseconds: they wrap after 49.7 days, as the spec intends.
        let ts = ts as u32;
        let (_, prefix, n) = flv::unit_prefix(p);
        match p.track {
            Track::Video => conn.session.send_video(ts, &prefix[..n], &p.data)?,
            Track::Audio => conn.session.send_audio(ts, &prefix[..n], &p.data)?,
        }
        Ok((n + p.data.len()) as u64)
    }

    fn stream(&self, conn: &mut Conn, events: &mut Vec<SessionEvent>, rc: &mut Reconnector) -> Result<Ended> {
        let shared = &self.shared;
        let d = self.d();
        let c = &d.counters;
        let mut window_start = Instant::now();
        let mut window_bytes = (c.video_bytes_sent.load(Relaxed), c.audio_bytes_sent.load(Relaxed));
        loop {
            // Feed the session from the queue while the socket keeps up.
            let mut finished_and_empty = false;
            // Whether feeding stopped at the backlog cap with the queue perhaps holding more.
            let mut fed_to_cap = false;
            loop {
                if conn.session.pending_output().len() >= MAX_SESSION_BACKLOG {
                    fed_to_cap = true;
                    break;
                }
                let popped = {
                    let mut q = lock(&d.queue);
                    let p = q.pop();
                    if p.is_none() && q.is_empty() && shared.stopping() && shared.encode_finished.load(Relaxed) {
                        finished_and_empty = true;
                    }
                    p
                };
                let Some(p) = popped else { break };
                if p.header {
                    let slot = &mut conn.sent_header[track_idx(p.track)];
                    if slot.as_ref() == Some(&p.data) {
                        continue;
                    }
                    *slot = Some(p.data.clone());
                }
                let len = self.send(conn, p.timestamp_ms, &p)?;
                if !p.header {
                    if p.track == Track::Video {
                        conn.last_video_ts = Some(p.timestamp_ms);
                    }
                    let end = conn.written + conn.session.pending_output().len() as u64;
                    conn.in_flight.push_back((end, p.timestamp_ms));
                    let (frames, bytes) = match p.track {
                        Track::Video => (&c.video_frames_sent, &c.video_bytes_sent),
                        Track::Audio => (&c.audio_frames_sent, &c.audio_bytes_sent),
                    };
                    frames.fetch_add(1, Relaxed);
                    bytes.fetch_add(len, Relaxed);
                }
            }
            self.pump(conn, events)?;
            events.clear();
            self.update_in_flight(conn);

            let now = Instant::now();
            if now >= conn.next_ping {
                // One ping at a time; one unanswered for long is forgotten (the server may not answer).
                let ms = now.duration_since(conn.opened).as_millis() as u32;
                conn.session.send_ping(ms)?;
                conn.ping_sent = Some((now, ms));
                conn.next_ping = now + PING_INTERVAL * 5;
            }
            let elapsed = now - window_start;
            if elapsed >= Duration::from_secs(1) {
                c.cpu_ns.store(super::shared::thread_cpu_ns(), Relaxed);
                let (v, a) = (c.video_bytes_sent.load(Relaxed), c.audio_bytes_sent.load(Relaxed));
                let ms = elapsed.as_millis().max(1) as u64;
                c.video_bitrate_kbps.store(((v - window_bytes.0) * 8 / ms) as u32, Relaxed);
                c.audio_bitrate_kbps.store(((a - window_bytes.1) * 8 / ms) as u32, Relaxed);
                window_bytes = (v, a);
                window_start = now;
            }

            // Only a publish that holds resets the attempt count: a server that accepts and drops
            // at once must still reach the attempt limit.
            if let Some(since) = conn.unproven_since {
                if conn.acked || now.duration_since(since) >= STABLE_PUBLISH {
                    rc.on_published(since);
                    conn.unproven_since = None;
                }
            }
            let backlog = !conn.session.pending_output().is_empty();
            if finished_and_empty && !backlog {
                return self.unpublish(conn).map(|_| Ended::Stopped(0));
            }
            if shared.stopping() && shared.stop_deadline_passed(now) {
                let unsent = lock(&d.queue).len();
                log::warn!("destination {}: stop deadline passed with {unsent} packets unsent", d.index);
                let _ = self.unpublish(conn);
                return Ok(Ended::Stopped(unsent));
            }
            if conn.stall.is_stalled(now, backlog, conn.session.ack_window() as u64) {
                let ms = shared.config.stall_timeout.as_millis() as i64;
                self.emit(
                    EventKind::KP_EVENT_STALLED,
                    ResultCode::KP_ERR_TIMEOUT,
                    "no progress: connection stalled",
                    ms,
                    0,
                );
                return Err(Error::Timeout(format!(
                    "stalled: no write progress or server acknowledgement for {ms} ms"
                )));
            }
            if !shared.stopping() && rc.primary_probe_due(now) {
                let ok = self.probe_primary();
                rc.on_primary_probe(Instant::now(), ok);
                if ok {
                    let _ = self.unpublish(conn);
                    return Ok(Ended::BackToPrimary);
                }
            }
            if fed_to_cap && !backlog {
                // The socket took everything fed: feed more now. Waiting here (for a push to wake
                // us, or 250 ms) paced a backlog (after an outage, a pre-encoded burst) to one
                // capful per wake-up instead of the link's speed.
                continue;
            }
            let timeout = Duration::from_millis(250).min(conn.stall.next_check(now) + Duration::from_millis(1));
            conn.transport.wait(backlog, Some(&self.wake), timeout);
        }
    }

    /// Whether the primary accepts TCP connections again.
    fn probe_primary(&self) -> bool {
        let url = lock(&self.d().urls)[0].clone();
        Transport::connect(&url.host, url.port, Instant::now() + PRIMARY_PROBE_TIMEOUT).is_ok()
    }

    /// Write what the socket takes and read what has arrived; returns after one round.
    fn pump(&self, conn: &mut Conn, events: &mut Vec<SessionEvent>) -> Result<()> {
        loop {
            let out = conn.session.pending_output();
            if out.is_empty() {
                break;
            }
            let n = conn.transport.write_some(out)?;
            if n == 0 {
                break;
            }
            conn.session.consume_output(n);
            conn.written += n as u64;
            conn.stall.on_write(Instant::now(), conn.written);
            self.d().counters.bytes_sent.fetch_add(n as u64, Relaxed);
        }
        while let Some(n) = conn.transport.read_some(&mut conn.buf)? {
            let Conn { session, buf, .. } = conn;
            session.handle_input(&buf[..n], events)?;
        }
        for ev in events.iter() {
            match ev {
                SessionEvent::Acknowledged { bytes } => {
                    conn.acked = true;
                    conn.stall.on_ack(Instant::now(), *bytes);
                }
                SessionEvent::Status { code, description } => {
                    log::info!("server status {code}: {description}")
                }
                SessionEvent::PingResponse { timestamp_ms } => {
                    if let Some((sent, ms)) = conn.ping_sent {
                        if ms == *timestamp_ms {
                            let now = Instant::now();
                            let rtt = now.duration_since(sent).as_millis().max(1) as u32;
                            self.d().counters.rtt_ms.store(rtt, Relaxed);
                            conn.ping_sent = None;
                            conn.next_ping = now + PING_INTERVAL;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// What the kernel has sent since the last call: the bytes delivered, and the oldest media
    /// still in the session or the socket, which the send queue counts in its latency.
    fn update_in_flight(&self, conn: &mut Conn) {
        let unsent = conn.transport.unsent_bytes().unwrap_or(0) as u64;
        let delivered = conn.written.saturating_sub(unsent);
        let d = self.d();
        if delivered > conn.delivered {
            d.counters.bytes_delivered.fetch_add(delivered - conn.delivered, Relaxed);
            conn.delivered = delivered;
        }
        while conn.in_flight.front().is_some_and(|(end, _)| *end <= delivered) {
            conn.in_flight.pop_front();
        }
        let mut q = lock(&d.queue);
        q.set_clock(self.shared.created.elapsed().as_millis() as u64);
        q.set_in_flight(conn.in_flight.front().map(|f| f.1));
    }

    fn unpublish(&self, conn: &mut Conn) -> Result<()> {
        let hevc = self
            .shared
            .config
            .video
            .as_ref()
            .is_some_and(|v| v.encoder == VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC);
        if let (true, Some(ts)) = (hevc, conn.last_video_ts) {
            // Enhanced RTMP ends a sequence explicitly; players may flush their decoder on it.
            let end = flv::ex_video_sequence_end(flv::FOURCC_HEVC);
            conn.session.send_video(ts as u32, &end, &[])?;
        }
        conn.session.unpublish()?;
        let deadline =
            lock(&self.shared.stop_deadline).unwrap_or_else(Instant::now).max(Instant::now() + UNPUBLISH_GRACE);
        let mut events = Vec::new();
        while !conn.session.pending_output().is_empty() && Instant::now() < deadline {
            self.pump(conn, &mut events)?;
            conn.transport.wait(true, None, deadline.saturating_duration_since(Instant::now()));
        }
        // A server that does not close when we do must not hold stop() for its whole timeout.
        conn.transport.finish(deadline.min(Instant::now() + FINISH_GRACE));
        Ok(())
    }
}

/// A jitter seed that differs per process, destination and start, so devices that lost the same
/// server at the same moment do not retry in lockstep.
fn seed(dest: usize) -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ ((std::process::id() as u64) << 32) ^ (dest as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
