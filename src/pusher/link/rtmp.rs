//! RTMP/RTMPS: FLV tags over the publish session (`core::session`) on a TCP (and TLS) transport.

use super::{Link, Opening};
use crate::core::flv;
use crate::core::media::{MediaPacket, Track};
use crate::core::metadata::StreamMetadata;
use crate::core::session::{PublishSession, SessionEvent, SessionState};
use crate::core::stall::StallDetector;
use crate::core::url::RtmpUrl;
use crate::error::{Error, Result};
use crate::io::transport::{Transport, WakeReceiver};
use std::time::{Duration, Instant};

/// The socket's send buffer holds about this much of the stream (see `Transport::set_send_buffer`).
const SOCKET_BUFFER_MS: u64 = 200;
const MIN_SOCKET_BUFFER: usize = 16 * 1024;
/// An RTMP ping every so often gives the round trip for the stats.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// How long unpublish may take when stop() left no time of its own.
const UNPUBLISH_GRACE: Duration = Duration::from_millis(500);
/// How long the end of a connection waits for the server to close its side (see `Transport::finish`).
const FINISH_GRACE: Duration = Duration::from_secs(2);

/// The rustls client settings of a destination, built at its first `rtmps://` connect and kept
/// so that reconnects can resume the TLS session.
#[cfg(feature = "tls")]
pub type TlsClient = Option<std::sync::Arc<rustls::ClientConfig>>;
/// Without the `tls` feature there is never a client config.
#[cfg(not(feature = "tls"))]
pub type TlsClient = Option<std::convert::Infallible>;

pub struct RtmpLink {
    /// The host name, for messages.
    host: String,
    transport: Transport,
    session: PublishSession,
    buf: Vec<u8>,
    events: Vec<SessionEvent>,
    written: u64,
    /// `written` less what the kernel still held at the last [`Self::exchange`].
    delivered: u64,
    stall: StallDetector,
    acked: bool,
    /// The server answered `connect`, not yet reported by `poll_open`.
    just_connected: bool,
    /// Pre-encoded HEVC: the stream ends with an enhanced sequence-end tag.
    hevc: bool,
    opened: Instant,
    /// The ping awaiting its answer (when sent, its timestamp), and when the next one is due.
    ping_sent: Option<(Instant, u32)>,
    next_ping: Instant,
    rtt_ms: Option<u32>,
    /// The data message name of `KP_MESSAGE_AMF` messages, and the buffers to build them in.
    amf_name: String,
    amf_scratch: crate::core::text_data::Scratch,
}

/// What the link needs from the pusher's configuration.
pub struct RtmpParams<'a> {
    pub tls: &'a crate::io::tls_config::TlsConfig,
    /// Video + audio bitrate, kbit/s: sizes the socket's send buffer.
    pub stream_kbps: u32,
    pub stall_timeout: Duration,
    pub metadata: StreamMetadata,
    pub amf_name: String,
}

impl RtmpLink {
    /// Connects TCP (and TLS) by `deadline`; the RTMP handshake and publish follow in `poll_open`.
    /// `cancel` may end the TCP connect early (asked when `wake` fires and every 100 ms).
    pub fn connect(
        url: &RtmpUrl,
        p: RtmpParams<'_>,
        deadline: Instant,
        tls_client: &mut TlsClient,
        wake: Option<&WakeReceiver>,
        cancel: &mut dyn FnMut() -> Option<Error>,
    ) -> Result<Self> {
        if url.tls && !cfg!(feature = "tls") {
            return Err(Error::Unsupported(
                "rtmps:// needs the TLS transport (feature `tls`), not in this build".into(),
            ));
        }
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut transport = Transport::connect_cancellable(&url.host, url.port, deadline, wake, cancel)?;
        #[cfg(feature = "tls")]
        if url.tls {
            let config = match tls_client {
                Some(c) => c.clone(),
                None => tls_client.insert(crate::io::tls::client_config(p.tls)?).clone(),
            };
            transport.start_tls(config, &url.host)?;
        }
        #[cfg(not(feature = "tls"))]
        let _ = (tls_client, p.tls);
        transport.set_send_buffer(((p.stream_kbps as u64 * SOCKET_BUFFER_MS / 8) as usize).max(MIN_SOCKET_BUFFER));
        let hevc = p.metadata.video.as_ref().is_some_and(|v| v.codec == crate::core::metadata::VideoCodec::Hevc);
        let session = PublishSession::new(url, p.metadata)?;
        let now = Instant::now();
        Ok(RtmpLink {
            host: url.host.clone(),
            transport,
            session,
            buf: vec![0u8; 16 * 1024],
            events: Vec::new(),
            written: 0,
            delivered: 0,
            stall: StallDetector::new(p.stall_timeout, now),
            acked: false,
            just_connected: false,
            hevc,
            opened: now,
            ping_sent: None,
            next_ping: now,
            rtt_ms: None,
            amf_name: p.amf_name,
            amf_scratch: Default::default(),
        })
    }

    /// One round of writing and reading; handles what the server said.
    fn exchange(&mut self) -> Result<()> {
        loop {
            let out = self.session.pending_output();
            if out.is_empty() {
                break;
            }
            let n = self.transport.write_some(out)?;
            if n == 0 {
                break;
            }
            self.session.consume_output(n);
            self.written += n as u64;
            self.stall.on_write(Instant::now(), self.written);
        }
        // One SIOCOUTQ per pass, kept for `delivered()`, which the worker asks right after.
        let unsent = self.transport.unsent_bytes();
        self.delivered = self.written.saturating_sub(unsent.unwrap_or(0) as u64);
        if unsent.is_some() {
            self.stall.on_delivered(Instant::now(), self.delivered);
        }
        while let Some(n) = self.transport.read_some(&mut self.buf)? {
            self.session.handle_input(&self.buf[..n], &mut self.events)?;
        }
        for ev in self.events.drain(..) {
            match ev {
                SessionEvent::Acknowledged { bytes } => {
                    self.acked = true;
                    self.stall.on_ack(Instant::now(), bytes);
                }
                SessionEvent::Status { code, description } => log::info!("server status {code}: {description}"),
                SessionEvent::PingResponse { timestamp_ms } => {
                    if let Some((sent, ms)) = self.ping_sent {
                        if ms == timestamp_ms {
                            let now = Instant::now();
                            self.rtt_ms = Some(now.duration_since(sent).as_millis().max(1) as u32);
                            self.ping_sent = None;
                            self.next_ping = now + PING_INTERVAL;
                        }
                    }
                }
                SessionEvent::Connected => self.just_connected = true,
                _ => {}
            }
        }
        Ok(())
    }
}

impl Link for RtmpLink {
    fn poll_open(&mut self, _now: Instant) -> Result<Opening> {
        if !self.just_connected {
            self.exchange()?;
        }
        if std::mem::take(&mut self.just_connected) {
            return Ok(Opening::Connected);
        }
        Ok(if self.session.state() == SessionState::Publishing { Opening::Publishing } else { Opening::Pending })
    }

    fn open_timeout(&self, ms: u128) -> Error {
        if self.transport.is_handshaking() {
            return Error::Timeout(format!("TLS handshake with {} not finished within {ms} ms", self.host));
        }
        Error::Timeout(format!("no publish reply within {ms} ms"))
    }

    fn send(&mut self, ts: u64, p: &MediaPacket) -> Result<u64> {
        // RTMP timestamps are 32-bit milliseconds: they wrap after 49.7 days, as the spec intends.
        let ts = ts as u32;
        let (_, prefix, n) = flv::unit_prefix(p);
        let mut extra = 0;
        let session = &mut self.session;
        crate::core::text_data::for_each_payload(p, &self.amf_name, &mut self.amf_scratch, |body| {
            extra += body.len();
            session.send_data(ts, body)
        })?;
        match p.track {
            Track::Video => self.session.send_video(ts, &prefix[..n], &p.data)?,
            Track::Audio => self.session.send_audio(ts, &prefix[..n], &p.data)?,
        }
        Ok((n + p.data.len() + extra) as u64)
    }

    fn backlog(&self) -> usize {
        self.session.pending_output().len()
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn delivered(&self) -> u64 {
        self.delivered
    }

    fn pump(&mut self, now: Instant) -> Result<()> {
        self.exchange()?;
        if now >= self.next_ping {
            // One ping at a time; one unanswered for long is forgotten (the server may not answer).
            let ms = now.duration_since(self.opened).as_millis() as u32;
            self.session.send_ping(ms)?;
            self.ping_sent = Some((now, ms));
            self.next_ping = now + PING_INTERVAL * 5;
        }
        Ok(())
    }

    fn acked(&self) -> bool {
        self.acked
    }

    fn stalled(&self, now: Instant) -> bool {
        self.stall.is_stalled(now, self.backlog() > 0, self.session.ack_window() as u64)
    }

    fn next_stall_check(&self, now: Instant) -> Duration {
        self.stall.next_check(now)
    }

    fn rtt_ms(&self) -> Option<u32> {
        self.rtt_ms
    }

    fn wait(&mut self, wake: Option<&WakeReceiver>, timeout: Duration) {
        self.transport.wait(self.backlog() > 0, wake, timeout);
    }

    fn close(&mut self, last_video_ts: Option<u64>, deadline: Instant) -> Result<()> {
        if let Some(ts) = last_video_ts.filter(|_| self.hevc) {
            // Enhanced RTMP ends a sequence explicitly; players may flush their decoder on it.
            let end = flv::ex_video_sequence_end(flv::FOURCC_HEVC);
            self.session.send_video(ts as u32, &end, &[])?;
        }
        self.session.unpublish()?;
        let deadline = deadline.max(Instant::now() + UNPUBLISH_GRACE);
        while !self.session.pending_output().is_empty() && Instant::now() < deadline {
            self.exchange()?;
            self.transport.wait(true, None, deadline.saturating_duration_since(Instant::now()));
        }
        // A server that does not close when we do must not hold stop() for its whole timeout.
        self.transport.finish(deadline.min(Instant::now() + FINISH_GRACE));
        // What the close delivered, for the messages of what it did not. Our FIN takes one
        // sequence number, which the kernel's count includes until the server acknowledges it.
        if let Some(unsent) = self.transport.unsent_bytes() {
            self.delivered = self.written.saturating_sub(unsent.saturating_sub(1) as u64);
        }
        Ok(())
    }
}
