//! The network worker of one destination: connects, publishes, drains the send queue into the
//! destination's link (RTMP today, see `super::link`) and the socket, detects stalls, and
//! reconnects (with backoff and failover) until the pusher stops or the destination gives up.
//! Everything here is shared by every transport; what differs lives behind [`Link`].

use super::event::{EventKind, PusherState};
use super::link::rtmp::{RtmpLink, RtmpParams, TlsClient};
use super::link::srt::{SrtLink, SrtParams};
#[cfg(feature = "whip")]
use super::link::whip::{WhipLink, WhipParams};
use super::link::{Link, Opening, RepairStats};
use super::shared::{lock, Destination, Shared};
use crate::core::media::{Codec, MessageSpan, Track};
use crate::core::reconnect::{Decision, Reconnector};
use crate::core::url::DestUrl;
use crate::error::{Error, Result, ResultCode};
use crate::io::transport::{Transport, WakeReceiver};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop moving packets into the link once this much is waiting for the socket: the rest
/// stays in the send queue, where it is measured and can be dropped.
const MAX_LINK_BACKLOG: usize = 8 * 1024;
/// The part of a check of the primary that holds the backup's sending (RTMP's TCP connect,
/// WHIP's POST) takes at most this.
const PRIMARY_PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// While a check of the primary runs, the send loop comes round at least this often to poll it.
const PROBE_POLL: Duration = Duration::from_millis(10);

/// A check of the primary running beside the session on a backup (SRT, WHIP): its handshake is
/// polled on each pass of the send loop rather than holding the backup's sending while it runs.
struct PrimaryProbe {
    link: Box<dyn Link>,
    deadline: Instant,
}

impl PrimaryProbe {
    /// Advances the handshake: `Some(true)` once the primary answered (the probe session is
    /// closed: WHIP's is DELETEd), `Some(false)` when it failed or ran out of time, `None` while
    /// it runs.
    fn step(&mut self, now: Instant) -> Option<bool> {
        // No wait: this only lets the link read what its socket already holds.
        self.link.wait(None, Duration::ZERO);
        match self.link.poll_open(now) {
            Ok(Opening::Pending) if now < self.deadline => None,
            Ok(Opening::Connected | Opening::Publishing) => {
                let _ = self.link.close(None, now);
                Some(true)
            }
            Ok(Opening::Pending) | Err(_) => {
                self.link.opening_abandoned(now);
                Some(false)
            }
        }
    }
}

pub struct NetworkWorker {
    pub shared: Arc<Shared>,
    pub dest: usize,
    pub wake: WakeReceiver,
    /// The destination's count of network changes this worker has acted on.
    pub routes_seen: std::cell::Cell<u64>,
    /// The last connection ended because the network changed.
    pub route_lost: std::cell::Cell<bool>,
}

struct Conn {
    link: Box<dyn Link>,
    /// The headers this connection has sent, to skip repeats from the queue.
    sent_header: [Option<Bytes>; 2],
    /// Timestamp of the last video frame sent on this connection (for the sequence end).
    last_video_ts: Option<u64>,
    /// When publishing began, until the publish counts as working (see STABLE_PUBLISH).
    unproven_since: Option<Instant>,
    /// Media handed to the link, until it has left.
    in_flight: std::collections::VecDeque<InFlight>,
    /// Bytes of this connection that have left, and that the counters have seen written.
    delivered: u64,
    counted: u64,
    /// The link's repair figures the destination's counters have seen.
    repair: RepairStats,
}

/// A unit handed to the link and not yet delivered.
struct InFlight {
    /// End offset in the connection's byte stream.
    end: u64,
    timestamp_ms: u64,
    track: Track,
    /// The unit's app messages (its leading SEI bytes, a slice of its data: no copy), given back
    /// to the send queue if the connection breaks before they are delivered.
    messages: Option<(Bytes, MessageSpan)>,
}

fn track_idx(t: Track) -> usize {
    match t {
        Track::Video => 0,
        Track::Audio => 1,
    }
}

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

    /// The app said the network changed (`Pusher::network_changed`) since the last call.
    fn take_route_change(&self) -> bool {
        let now = self.d().route_changes.load(Relaxed);
        now != self.routes_seen.replace(now)
    }

    /// Ends the connection at once when the network changed: its socket is bound to a route that
    /// may be gone, and waiting for the stall timeout to say so would cost seconds.
    fn check_route(&self) -> Result<()> {
        if self.take_route_change() {
            self.route_lost.set(true);
            return Err(Error::Io("the network changed: reconnecting on the new route".into()));
        }
        Ok(())
    }

    /// Whether a TCP connect in flight should be given up: the network changed (its route may be
    /// gone), or stop()'s deadline passed.
    fn connect_cancelled(&self) -> Option<Error> {
        if let Err(e) = self.check_route() {
            return Some(e);
        }
        self.out_of_time().then(|| Error::Timeout("stop() ended the connect in flight".into()))
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
                        if self.take_route_change() {
                            // A new route: try it now rather than after the old route's backoff.
                            rc.on_network_changed();
                            break;
                        }
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
                            self.outage_begins();
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
                            if was_publishing {
                                self.outage_begins();
                            } else {
                                // What that connection had in flight is lost, not waiting.
                                lock(&d.queue).set_in_flight(None);
                            }
                            if self.route_lost.take() {
                                // We dropped the connection for the new route: no fault of the
                                // URL's (no failover, no attempt counted), and no backoff.
                                rc.on_failure(Instant::now(), &error, true);
                                rc.on_network_changed();
                            } else {
                                rc.on_failure(Instant::now(), &error, was_stable);
                            }
                            last_error = error;
                        }
                    }
                }
            }
        }
        let unsent = lock(&d.queue).len();
        self.stopped(unsent);
    }

    /// The publish was lost (or left for the primary): the queue keeps the outage's media for
    /// the next session from a keyframe on, asking the encoder (or the app) for one now.
    fn outage_begins(&self) {
        let d = self.d();
        let out = lock(&d.queue).on_disconnect();
        self.shared.account_drops(d, out);
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
        match DestUrl::parse(&new) {
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

    /// Opens the link of one URL: for RTMP, TCP (and TLS) connected by `deadline`, unless the
    /// network changes or stop()'s deadline passes first (`cancellable`).
    fn open_link(
        &self,
        url: &DestUrl,
        deadline: Instant,
        tls_client: &mut TlsClient,
        cancellable: bool,
    ) -> Result<Box<dyn Link>> {
        let c = &self.shared.config;
        let url = match url {
            DestUrl::Rtmp(u) => u,
            #[cfg(feature = "whip")]
            DestUrl::Whip(u) => {
                let video = c.video.as_ref().map(|v| {
                    if v.encoder == super::VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC {
                        Codec::Hevc
                    } else {
                        Codec::H264
                    }
                });
                let video_kbps = c.video.as_ref().map_or(0, |v| v.bitrate_kbps);
                let audio_kbps = c.audio.as_ref().map_or(0, |a| a.bitrate_kbps);
                let ceiling = if c.abr.max_kbps > 0 { c.abr.max_kbps.max(video_kbps) } else { video_kbps };
                let params = WhipParams {
                    bearer_token: c.whip.bearer_token.clone(),
                    video,
                    audio: super::config::has_opus(c),
                    stall_timeout: c.stall_timeout,
                    start_kbps: video_kbps + audio_kbps,
                    max_kbps: ceiling + audio_kbps,
                };
                let mut cancel = || if cancellable { self.connect_cancelled() } else { None };
                let wake = cancellable.then_some(&self.wake);
                return Ok(Box::new(WhipLink::connect(u, params, deadline, tls_client, &c.tls, wake, &mut cancel)?));
            }
            #[cfg(not(feature = "whip"))]
            DestUrl::Whip(_) => {
                return Err(Error::Unsupported("whip+http(s):// needs the `whip` feature, not in this build".into()))
            }
            DestUrl::Srt(u) => {
                let s = &c.srt;
                let video = c.video.as_ref().map(|v| {
                    if v.encoder == super::VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC {
                        Codec::Hevc
                    } else {
                        Codec::H264
                    }
                });
                let params = SrtParams {
                    latency: Duration::from_millis(if s.latency_ms == 0 { 120 } else { s.latency_ms.into() }),
                    passphrase: s.passphrase.clone(),
                    pbkeylen: s.pbkeylen,
                    stream_id: s.stream_id.clone(),
                    video,
                    audio: c.audio.is_some(),
                    stall_timeout: c.stall_timeout,
                    seed: seed(self.dest),
                };
                return Ok(Box::new(SrtLink::connect(u, params, deadline)?));
            }
        };
        let stream_kbps =
            c.video.as_ref().map_or(0, |v| v.bitrate_kbps) + c.audio.as_ref().map_or(0, |a| a.bitrate_kbps);
        let params = RtmpParams {
            tls: &c.tls,
            stream_kbps,
            stall_timeout: c.stall_timeout,
            metadata: self.shared.stream_metadata(),
            amf_name: c.messages.amf_name.clone(),
        };
        let mut cancel = || if cancellable { self.connect_cancelled() } else { None };
        let wake = cancellable.then_some(&self.wake);
        let link = RtmpLink::connect(url, params, deadline, tls_client, wake, &mut cancel)?;
        Ok(Box::new(link))
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
        let deadline = started + shared.config.connect_timeout;
        let link = self.open_link(&url, deadline, tls_client, true).map_err(lost)?;
        let mut conn = Conn {
            link,
            sent_header: [None, None],
            last_video_ts: None,
            unproven_since: None,
            in_flight: std::collections::VecDeque::with_capacity(256),
            delivered: 0,
            counted: 0,
            repair: RepairStats::default(),
        };

        // The wire's handshake, then the request to publish.
        loop {
            if self.out_of_time() {
                return Ok(Ended::Stopped(lock(&d.queue).len()));
            }
            let now = Instant::now();
            if now >= deadline {
                conn.link.opening_abandoned(now);
                return Err(lost(conn.link.open_timeout(shared.config.connect_timeout.as_millis())));
            }
            self.check_route().map_err(lost)?;
            let opening = conn.link.poll_open(now).map_err(lost)?;
            self.count_written(&mut conn);
            match opening {
                Opening::Publishing => break,
                Opening::Connected => {
                    self.emit(
                        EventKind::KP_EVENT_CONNECTED,
                        ResultCode::KP_OK,
                        "connected",
                        started.elapsed().as_millis() as i64,
                        0,
                    );
                    continue;
                }
                Opening::Pending => {}
            }
            let wake_at = lock(&shared.stop_deadline).map_or(deadline, |d| d.min(deadline));
            let timeout = wake_at.saturating_duration_since(now).max(Duration::from_millis(1));
            conn.link.wait(Some(&self.wake), timeout);
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
        // A session starts with the current headers and, for video, a keyframe (after an outage,
        // the one asked for when it began); the timeline continues where the last session left it.
        let (out, figures) = lock(&d.queue).on_resume();
        shared.account_drops(d, out);
        if let Some((lost_at, attempts)) = outage.take() {
            let ms = now.duration_since(lost_at).as_millis() as u64;
            let c = &d.counters;
            c.reconnects.fetch_add(1, Relaxed);
            c.outage_ms_total.fetch_add(ms, Relaxed);
            c.outage_media_kept_ms.fetch_add(figures.kept_ms, Relaxed);
            c.outage_media_lost_ms.fetch_add(figures.lost_ms, Relaxed);
            self.shared.emit_values(
                EventKind::KP_EVENT_RECONNECTED,
                ResultCode::KP_OK,
                format!("reconnected after {ms} ms: {} ms of media kept, {} ms lost", figures.kept_ms, figures.lost_ms),
                d.index,
                [ms as i64, attempts as i64, figures.kept_ms as i64, figures.lost_ms as i64],
            );
        }
        let headers = {
            let q = lock(&d.queue);
            [q.latest_header(Track::Video).cloned(), q.latest_header(Track::Audio).cloned()]
        };
        for (t, h) in [Track::Video, Track::Audio].into_iter().zip(headers) {
            if let Some(h) = h {
                conn.sent_header[track_idx(t)] = Some(h.data.clone());
                conn.link.send(0, &h).map_err(|error| Lost { error, was_publishing: true, was_stable: false })?;
            }
        }
        let result = self.stream(&mut conn, rc);
        if result.is_err() && self.route_lost.get() {
            conn.link.abandon(Instant::now());
        }
        if result.is_err() {
            // Handed to the connection and not delivered: lost with it (the kernel may have
            // sent some of it, but nothing says the server got it).
            let c = &d.counters;
            for f in &conn.in_flight {
                match f.track {
                    Track::Video => c.video_lost_outage.fetch_add(1, Relaxed),
                    Track::Audio => c.audio_lost_outage.fetch_add(1, Relaxed),
                };
                c.frames_dropped_network.fetch_add(1, Relaxed);
            }
            self.requeue_undelivered_messages(&mut conn);
        }
        result.map_err(|error| Lost { error, was_publishing: true, was_stable: conn.unproven_since.is_none() })
    }

    fn stream(&self, conn: &mut Conn, rc: &mut Reconnector) -> Result<Ended> {
        // A check of the primary in progress (SRT, WHIP), polled on each pass of the loop.
        let mut probe: Option<PrimaryProbe> = None;
        let ended = self.stream_with_probe(conn, rc, &mut probe);
        if let Some(mut p) = probe {
            // The session ended (stop, failure, stall) while the primary was being checked: end
            // the check's session too, or a WHIP server holds it until its own timeout. Not on a
            // lost route, where the DELETE could only wait for the old path.
            if self.route_lost.get() {
                p.link.abandon(Instant::now());
            } else {
                p.link.opening_abandoned(Instant::now());
            }
        }
        ended
    }

    fn stream_with_probe(
        &self,
        conn: &mut Conn,
        rc: &mut Reconnector,
        probe: &mut Option<PrimaryProbe>,
    ) -> Result<Ended> {
        let shared = &self.shared;
        let d = self.d();
        let c = &d.counters;
        let mut window_start = Instant::now();
        let mut window_bytes = (c.video_bytes_sent.load(Relaxed), c.audio_bytes_sent.load(Relaxed));
        loop {
            self.check_route()?;
            // Feed the link from the queue while the socket keeps up.
            let mut finished_and_empty = false;
            // Whether feeding stopped at the backlog cap with the queue perhaps holding more.
            let mut fed_to_cap = false;
            loop {
                if conn.link.backlog() >= MAX_LINK_BACKLOG {
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
                if !conn.link.carries(&p) {
                    continue;
                }
                if p.header {
                    let slot = &mut conn.sent_header[track_idx(p.track)];
                    if slot.as_ref() == Some(&p.data) {
                        continue;
                    }
                    *slot = Some(p.data.clone());
                }
                let len = conn.link.send(p.timestamp_ms, &p)?;
                if !p.header {
                    if p.track == Track::Video {
                        conn.last_video_ts = Some(p.timestamp_ms);
                    }
                    let end = conn.link.written() + conn.link.backlog() as u64;
                    let messages = (p.messages.count > 0 && p.messages.len as usize <= p.data.len())
                        .then(|| (p.data.slice(..p.messages.len as usize), p.messages));
                    conn.in_flight.push_back(InFlight { end, timestamp_ms: p.timestamp_ms, track: p.track, messages });
                    let (frames, bytes) = match p.track {
                        Track::Video => (&c.video_frames_sent, &c.video_bytes_sent),
                        Track::Audio => (&c.audio_frames_sent, &c.audio_bytes_sent),
                    };
                    frames.fetch_add(1, Relaxed);
                    bytes.fetch_add(len, Relaxed);
                }
            }
            let now = Instant::now();
            conn.link.pump(now)?;
            self.count_written(conn);
            self.update_in_flight(conn);
            if let Some(rtt) = conn.link.rtt_ms() {
                c.rtt_ms.store(rtt, Relaxed);
            }
            if conn.link.take_keyframe_request(now) {
                c.keyframe_requests.fetch_add(1, Relaxed);
                shared.want_keyframe(d.index);
            }
            c.bandwidth_estimate_kbps.store(conn.link.bandwidth_estimate_kbps().unwrap_or(0), Relaxed);
            c.audio_loss_percent.store(u32::from(conn.link.audio_loss_percent().unwrap_or(0)), Relaxed);
            if let Some(r) = conn.link.repair_stats() {
                let old = std::mem::replace(&mut conn.repair, r);
                c.packets_retransmitted.fetch_add(r.retransmitted.saturating_sub(old.retransmitted), Relaxed);
                c.packets_lost.fetch_add(r.lost.saturating_sub(old.lost), Relaxed);
                c.packets_dropped_late.fetch_add(r.dropped_late.saturating_sub(old.dropped_late), Relaxed);
                c.send_buffer_ms.store(r.send_buffer_ms, Relaxed);
                c.latency_ms.store(r.latency_ms, Relaxed);
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
                if conn.link.acked() || now.duration_since(since) >= STABLE_PUBLISH {
                    rc.on_published(since);
                    conn.unproven_since = None;
                }
            }
            let backlog = conn.link.backlog() > 0;
            if finished_and_empty && !backlog {
                let closed = self.unpublish(conn);
                // A close that ran out of time (a server that stopped reading) leaves data in the
                // socket: its messages were not delivered and are not counted sent.
                self.update_in_flight(conn);
                self.requeue_undelivered_messages(conn);
                return closed.map(|_| Ended::Stopped(0));
            }
            if shared.stopping() && shared.stop_deadline_passed(now) {
                let unsent = lock(&d.queue).len();
                log::warn!("destination {}: stop deadline passed with {unsent} packets unsent", d.index);
                let _ = self.unpublish(conn);
                // Messages the close did not deliver wait with the queue's, counted as lost.
                self.update_in_flight(conn);
                self.requeue_undelivered_messages(conn);
                return Ok(Ended::Stopped(unsent));
            }
            if conn.link.stalled(now) {
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
            if shared.stopping() {
                if let Some(mut p) = probe.take() {
                    p.link.opening_abandoned(now);
                }
            } else {
                let mut verdict = None;
                if probe.is_none() && rc.primary_probe_due(now) {
                    match self.start_primary_probe() {
                        Ok(p) => *probe = Some(p),
                        Err(answered) => verdict = Some(answered),
                    }
                }
                if let Some(p) = probe.as_mut() {
                    verdict = p.step(Instant::now());
                    if verdict.is_some() {
                        *probe = None;
                    }
                }
                if let Some(ok) = verdict {
                    rc.on_primary_probe(Instant::now(), ok);
                    if ok {
                        let _ = self.unpublish(conn);
                        return Ok(Ended::BackToPrimary);
                    }
                }
            }
            if fed_to_cap && !backlog {
                // The socket took everything fed: feed more now. Waiting here (for a push to wake
                // us, or 250 ms) paced a backlog (after an outage, a pre-encoded burst) to one
                // capful per wake-up instead of the link's speed.
                continue;
            }
            let mut timeout =
                Duration::from_millis(250).min(conn.link.next_stall_check(now) + Duration::from_millis(1));
            if probe.is_some() {
                // The probe's socket is not in this wait: come back soon enough for its handshake.
                timeout = timeout.min(PROBE_POLL);
            }
            conn.link.wait(Some(&self.wake), timeout);
        }
    }

    /// Starts checking whether the primary accepts connections again. RTMP: a TCP connect,
    /// answered here (`Err(answered)`). SRT: a whole handshake; WHIP: a whole session (offer,
    /// ICE, DTLS, then DELETE), as its HTTP port answering says nothing of the media path (UDP
    /// is often blocked where TCP passes): switching to a primary whose ICE then fails cost the
    /// backup's session and two outages every interval. Those run beside the session on the
    /// backup ([`PrimaryProbe::step`]), up to the connect timeout; only WHIP's POST blocks here,
    /// for at most `PRIMARY_PROBE_TIMEOUT`. One short extra session per interval (default 30 s)
    /// costs the server little.
    fn start_primary_probe(&self) -> std::result::Result<PrimaryProbe, bool> {
        let url = lock(&self.d().urls)[0].clone();
        let now = Instant::now();
        if let DestUrl::Rtmp(_) = &url {
            return Err(Transport::connect(url.host(), url.port(), now + PRIMARY_PROBE_TIMEOUT).is_ok());
        }
        match self.open_link(&url, now + PRIMARY_PROBE_TIMEOUT, &mut TlsClient::default(), false) {
            Ok(link) => Ok(PrimaryProbe { link, deadline: now + self.shared.config.connect_timeout }),
            Err(_) => Err(false),
        }
    }

    /// Adds what the link wrote since the last call to the destination's byte counter.
    fn count_written(&self, conn: &mut Conn) {
        let written = conn.link.written();
        if written > conn.counted {
            self.d().counters.bytes_sent.fetch_add(written - conn.counted, Relaxed);
            conn.counted = written;
        }
    }

    /// What has left since the last call: the bytes delivered, and the oldest media still in the
    /// link or the socket, which the send queue counts in its latency.
    fn update_in_flight(&self, conn: &mut Conn) {
        let delivered = conn.link.delivered();
        let d = self.d();
        if delivered > conn.delivered {
            d.counters.bytes_delivered.fetch_add(delivered - conn.delivered, Relaxed);
            conn.delivered = delivered;
        }
        while conn.in_flight.front().is_some_and(|f| f.end <= delivered) {
            conn.in_flight.pop_front();
        }
        let mut q = lock(&d.queue);
        q.set_clock(self.shared.created.elapsed().as_millis() as u64);
        q.set_in_flight(conn.in_flight.front().map(|f| f.timestamp_ms));
    }

    /// The connection is gone with media undelivered: its app messages go back to the queue, to
    /// ride on the next session's first picture (or to be counted lost if none comes). A message
    /// the server's kernel had acknowledged is not resent; one it received but had not yet
    /// acknowledged can arrive twice (once in each session), never zero times uncounted.
    fn requeue_undelivered_messages(&self, conn: &mut Conn) {
        let undelivered: Vec<(Bytes, MessageSpan)> = conn.in_flight.drain(..).filter_map(|f| f.messages).collect();
        if undelivered.is_empty() {
            return;
        }
        let mut q = lock(&self.d().queue);
        // Newest first: each goes to the front of the line, so the oldest ends up first.
        for (sei, span) in undelivered.into_iter().rev() {
            q.requeue_undelivered_messages(sei, span);
        }
    }

    fn unpublish(&self, conn: &mut Conn) -> Result<()> {
        let deadline = lock(&self.shared.stop_deadline).unwrap_or_else(Instant::now);
        let r = conn.link.close(conn.last_video_ts, deadline);
        self.count_written(conn);
        r
    }
}

/// A jitter seed that differs per process, destination and start, so devices that lost the same
/// server at the same moment do not retry in lockstep.
fn seed(dest: usize) -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ ((std::process::id() as u64) << 32) ^ (dest as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
