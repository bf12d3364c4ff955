//! The network worker: connects, publishes, drains the send queue into the RTMP session and the
//! socket with deadlines, and unpublishes on stop.

use super::event::{EventKind, PusherState};
use super::shared::{lock, Shared};
use crate::core::metadata::{AudioMeta, StreamMetadata, VideoCodec, VideoMeta};
use crate::core::send_queue::Track;
use crate::core::session::{PublishSession, SessionEvent, SessionState};
use crate::error::{Error, Result, ResultCode};
use crate::io::transport::{Transport, WakeReceiver};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop moving packets into the session once this much is waiting for the socket: the rest
/// stays in the send queue, where it is measured and can be dropped.
const MAX_SESSION_BACKLOG: usize = 64 * 1024;
/// How long unpublish may take when stop() left no time of its own.
const UNPUBLISH_GRACE: Duration = Duration::from_millis(500);

pub struct NetworkWorker {
    pub shared: Arc<Shared>,
    pub wake: WakeReceiver,
}

struct Conn {
    transport: Transport,
    session: PublishSession,
    buf: Vec<u8>,
    last_progress: Instant,
    /// The sequence headers this session has sent, to skip repeats from the queue.
    sent_header: [Option<Bytes>; 2],
}

fn track_idx(t: Track) -> usize {
    match t {
        Track::Video => 0,
        Track::Audio => 1,
    }
}

impl NetworkWorker {
    pub fn run(self) {
        let shared = self.shared.clone();
        match self.publish_and_stream() {
            Ok(unsent) => {
                shared.set_state(PusherState::KP_STATE_STOPPED);
                shared.emit(
                    EventKind::KP_EVENT_STOPPED,
                    ResultCode::KP_OK,
                    "stopped",
                    unsent as i64,
                );
            }
            Err(e) => {
                if shared.state() == PusherState::KP_STATE_PUBLISHING {
                    shared.emit(EventKind::KP_EVENT_DISCONNECTED, e.code(), e.to_string(), 0);
                }
                shared.fail(e);
            }
        }
    }

    fn metadata(&self) -> StreamMetadata {
        let c = &self.shared.config;
        StreamMetadata {
            video: c.video.as_ref().map(|v| VideoMeta {
                codec: VideoCodec::H264,
                width: v.width,
                height: v.height,
                framerate: v.fps as f64,
                bitrate_kbps: v.bitrate_kbps,
            }),
            audio: c.audio.as_ref().map(|a| AudioMeta {
                sample_rate: a.sample_rate,
                channels: a.channels,
                bitrate_kbps: a.bitrate_kbps,
            }),
            encoder: format!("kitepush {}", crate::VERSION),
        }
    }

    /// Returns the number of media packets left unsent when the stop deadline passed.
    fn publish_and_stream(&self) -> Result<usize> {
        let shared = &self.shared;
        let url = &shared.url;
        let started = Instant::now();
        shared.emit(
            EventKind::KP_EVENT_CONNECTING,
            ResultCode::KP_OK,
            url.redacted(),
            0,
        );
        if url.tls {
            return Err(Error::Unsupported(
                "rtmps:// needs the TLS transport, not in this build".into(),
            ));
        }
        let deadline = started + shared.config.connect_timeout;
        let transport = Transport::connect(&url.host, url.port, deadline)?;
        let session = PublishSession::new(url, self.metadata())?;
        let mut conn = Conn {
            transport,
            session,
            buf: vec![0u8; 64 * 1024],
            last_progress: Instant::now(),
            sent_header: [None, None],
        };
        let mut events = Vec::new();

        // Handshake, connect, createStream, publish.
        while conn.session.state() != SessionState::Publishing {
            if shared.stopping() {
                return Ok(lock(&shared.send_queue).len());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout(format!(
                    "no publish reply within {} ms",
                    shared.config.connect_timeout.as_millis()
                )));
            }
            self.pump(&mut conn, &mut events)?;
            for ev in events.drain(..) {
                if ev == SessionEvent::Connected {
                    shared.emit(
                        EventKind::KP_EVENT_CONNECTED,
                        ResultCode::KP_OK,
                        "connected",
                        started.elapsed().as_millis() as i64,
                    );
                }
            }
            if conn.session.state() == SessionState::Publishing {
                break;
            }
            conn.transport.wait(
                !conn.session.pending_output().is_empty(),
                Some(&self.wake),
                deadline - now,
            );
        }
        shared.set_state(PusherState::KP_STATE_PUBLISHING);
        shared.emit(
            EventKind::KP_EVENT_PUBLISHING,
            ResultCode::KP_OK,
            "publishing",
            started.elapsed().as_millis() as i64,
        );

        // A new session starts with the current sequence headers, whatever the queue holds.
        {
            let q = lock(&shared.send_queue);
            for t in [Track::Video, Track::Audio] {
                if let Some(h) = q.latest_header(t) {
                    conn.sent_header[track_idx(t)] = Some(h.clone());
                }
            }
        }
        for t in [Track::Video, Track::Audio] {
            if let Some(h) = conn.sent_header[track_idx(t)].clone() {
                self.send(&mut conn, t, 0, h)?;
            }
        }
        self.stream(&mut conn, &mut events)
    }

    fn send(&self, conn: &mut Conn, track: Track, ts: u64, body: Bytes) -> Result<()> {
        // RTMP timestamps are 32-bit milliseconds: they wrap after 49.7 days, as the spec intends.
        let ts = ts as u32;
        match track {
            Track::Video => conn.session.send_video(ts, body),
            Track::Audio => conn.session.send_audio(ts, body),
        }
    }

    fn stream(&self, conn: &mut Conn, events: &mut Vec<SessionEvent>) -> Result<usize> {
        let shared = &self.shared;
        let c = &shared.counters;
        let mut window_start = Instant::now();
        let mut window_bytes = (0u64, 0u64);
        loop {
            // Feed the session from the queue while the socket keeps up.
            let mut finished_and_empty = false;
            while conn.session.pending_output().len() < MAX_SESSION_BACKLOG {
                let popped = {
                    let mut q = lock(&shared.send_queue);
                    let p = q.pop();
                    if p.is_none() && q.is_empty() && shared.stopping() && self.encoder_done() {
                        finished_and_empty = true;
                    }
                    p
                };
                let Some(p) = popped else { break };
                if p.header {
                    let slot = &mut conn.sent_header[track_idx(p.track)];
                    if slot.as_ref() == Some(&p.body) {
                        continue;
                    }
                    *slot = Some(p.body.clone());
                }
                let len = p.body.len() as u64;
                self.send(conn, p.track, p.timestamp_ms, p.body)?;
                if !p.header {
                    match p.track {
                        Track::Video => {
                            c.video_frames_sent.fetch_add(1, Relaxed);
                            c.video_bytes_sent.fetch_add(len, Relaxed);
                        }
                        Track::Audio => {
                            c.audio_frames_sent.fetch_add(1, Relaxed);
                            c.audio_bytes_sent.fetch_add(len, Relaxed);
                        }
                    }
                }
            }
            self.pump(conn, events)?;
            events.clear();

            let now = Instant::now();
            let elapsed = now - window_start;
            if elapsed >= Duration::from_secs(1) {
                let (v, a) = (
                    c.video_bytes_sent.load(Relaxed),
                    c.audio_bytes_sent.load(Relaxed),
                );
                let ms = elapsed.as_millis().max(1) as u64;
                c.video_bitrate_kbps
                    .store(((v - window_bytes.0) * 8 / ms) as u32, Relaxed);
                c.audio_bitrate_kbps
                    .store(((a - window_bytes.1) * 8 / ms) as u32, Relaxed);
                window_bytes = (v, a);
                window_start = now;
            }

            let backlog = !conn.session.pending_output().is_empty();
            if finished_and_empty && !backlog {
                return self.unpublish(conn).map(|_| 0);
            }
            if shared.stopping() && shared.stop_deadline_passed(now) {
                let unsent = lock(&shared.send_queue).len();
                log::warn!("stop deadline passed with {unsent} packets unsent");
                let _ = self.unpublish(conn);
                return Ok(unsent);
            }
            if backlog && now - conn.last_progress > shared.config.write_timeout {
                return Err(Error::Timeout(format!(
                    "no write progress for {} ms",
                    shared.config.write_timeout.as_millis()
                )));
            }
            let mut timeout = Duration::from_millis(250);
            if backlog {
                timeout = timeout.min(
                    shared
                        .config
                        .write_timeout
                        .saturating_sub(now - conn.last_progress)
                        + Duration::from_millis(1),
                );
            }
            conn.transport.wait(backlog, Some(&self.wake), timeout);
        }
    }

    fn encoder_done(&self) -> bool {
        // The encode worker calls finish() on the queue when it is done; until then more may come.
        self.shared.encode_finished.load(Relaxed)
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
            conn.last_progress = Instant::now();
            self.shared.counters.bytes_sent.fetch_add(n as u64, Relaxed);
        }
        while let Some(n) = conn.transport.read_some(&mut conn.buf)? {
            let Conn { session, buf, .. } = conn;
            session.handle_input(&buf[..n], events)?;
            for ev in events.iter() {
                if let SessionEvent::Status { code, description } = ev {
                    log::info!("server status {code}: {description}");
                }
            }
        }
        Ok(())
    }

    fn unpublish(&self, conn: &mut Conn) -> Result<()> {
        conn.session.unpublish()?;
        let deadline = lock(&self.shared.stop_deadline)
            .unwrap_or_else(Instant::now)
            .max(Instant::now() + UNPUBLISH_GRACE);
        let mut events = Vec::new();
        while !conn.session.pending_output().is_empty() && Instant::now() < deadline {
            self.pump(conn, &mut events)?;
            conn.transport.wait(
                true,
                None,
                deadline.saturating_duration_since(Instant::now()),
            );
        }
        Ok(())
    }
}
