//! WHIP (RFC 9725): the SDP offer is POSTed to the endpoint, the answer comes back with the
//! session's `Location`, and media goes as RTP over DTLS-SRTP, by `str0m` (sans-IO: this link owns
//! the UDP socket and the clock, like the SRT link). The session is DELETEd when the link closes.
//!
//! What the shared worker sees: progress is any datagram from the peer (consent answers, RTCP)
//! within the stall timeout; the round trip is str0m's; NACKs the peer sent are the repair
//! figure; a PLI/FIR becomes a keyframe request; the transport-wide (or REMB) bandwidth estimate
//! is handed to the shared ABR. str0m paces and repairs inside itself, so this link has no
//! backlog of its own: what it is given leaves at once or is str0m's to drop.
//!
//! ICE: one host candidate, the local address of the route to the endpoint's host (no STUN
//! gathering, no TURN: str0m has no TURN client; see the README). The endpoint's answer gives
//! the server's candidates, which is how WHIP servers with public addresses are reached.

use super::{Link, Opening, RepairStats, Silence};
use crate::core::media::{Codec, MediaPacket, Track};
use crate::core::rtp_h264::H264Packetizer;
use crate::core::ts::avcc_parameter_set_nals;
use crate::core::whip_url::WhipUrl;
use crate::error::{Error, Result};
use crate::io::http::{self, Request, Response};
use crate::io::transport::WakeReceiver;
use crate::io::udp::UdpPort;
use std::time::{Duration, Instant};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpAnswer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Reason, Rtc};

/// The H.264 payload types offered (payload type, its RTX twin, profile-level-id), all
/// packetization mode 1, str0m's numbers: constrained baseline first (what OpenH264 makes and
/// every WebRTC receiver decodes), then baseline, main and high for pre-encoded video, level 3.1.
const H264_OFFER: [(u8, u8, u32); 4] =
    [(108, 109, 0x42e01f), (127, 121, 0x42001f), (123, 119, 0x4d001f), (114, 115, 0x64001f)];

/// Redirects followed for one offer (307/308).
const MAX_REDIRECTS: usize = 5;
/// How long the DELETE at the end may take when stop() left no time of its own.
const DELETE_GRACE: Duration = Duration::from_millis(1000);
/// PLIs come in storms on a lossy link (91 in 7 s were seen at 30 % loss): one IDR a second
/// repairs as well and does not double the bitrate.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(1000);

/// A receiver's estimator starts from what it has seen so far (aiortc's REMB says ~70 % of the
/// stream 1.5 s in, then climbs): the estimate is passed on once it has had this long.
const ESTIMATE_WARMUP: Duration = Duration::from_secs(4);

/// At most this many due timeouts are run in one [`WhipLink::drain`] (more than a burst's packets;
/// a bound, not a figure that is reached: the rest waits for the worker's next pass).
const MAX_DUE_TIMEOUTS: usize = 256;

/// Datagrams gathered before they are sent even though the drain goes on (a keyframe's burst is
/// more), so a batch never waits long behind str0m's work.
const OUTBOX_LIMIT: usize = 64;

/// How much later than str0m asks its housekeeping timers may run (see [`lazy_timer`]), so they
/// ride on the wake-up of the next frame instead of waking the network worker themselves.
const TIMER_SLACK: Duration = Duration::from_millis(15);

/// Whether a timeout str0m asks for is housekeeping that can run up to [`TIMER_SLACK`] late. The
/// delay controller of its bandwidth estimator asks every 25 ms (without transport-wide feedback,
/// as from aiortc, only to ask again): at 30 fps that was two wake-ups of the network worker in
/// three, each a poll, a context switch and a pass over str0m's state. Statistics, RTCP reports,
/// probe scheduling and ICE consent keep-alives (seconds apart) do not mind 15 ms either. The pacer
/// and the packetizer do, and so does anything before the session is connected: those run on
/// time. A pacer timer due behind a lazy one is at most `TIMER_SLACK` late (the reason given is
/// the soonest timer's only); any wake-up in between (a frame, a datagram) runs everything due.
/// str0m calls `Reason` unstable across its minor versions: a new variant is simply not lazy.
fn lazy_timer(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::BweDelayControl
            | Reason::BweProbeControl
            | Reason::BweProbeEstimator
            | Reason::Stats
            | Reason::Feedback
            | Reason::Ice
    )
}

/// What the link needs from the pusher's configuration.
pub struct WhipParams {
    pub bearer_token: Option<String>,
    pub video: Option<Codec>,
    /// Opus audio is sent (the pusher encodes it); AAC units are not WebRTC's and are skipped.
    pub audio: bool,
    pub stall_timeout: Duration,
    /// The bandwidth estimate starts here (the stream's configured bitrate).
    pub start_kbps: u32,
    /// What the estimator probes for (the ABR's ceiling plus audio).
    pub max_kbps: u32,
}

pub struct WhipLink {
    endpoint: WhipUrl,
    /// The session's resource (the `Location` of the 201), DELETEd at the end.
    session: Option<WhipUrl>,
    auth: Vec<String>,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    udp: UdpPort,
    rtc: Rtc,
    video: Option<Outgoing>,
    audio: Option<Outgoing>,
    next_timeout: Instant,
    /// Whether str0m's next timeout is housekeeping that may wait [`TIMER_SLACK`] longer.
    next_timeout_lazy: bool,
    connected: bool,
    failed: Option<Error>,
    /// SPS and PPS (AVCC: 4-byte lengths), sent in front of every keyframe: a WebRTC receiver
    /// has no other way to get them.
    parameter_sets: Vec<u8>,
    /// str0m runs in RTP mode: its frame packetizer scans every access unit for start codes and
    /// allocates a Vec per packet; ours works from the AVCC lengths in one reused buffer.
    packetizer: H264Packetizer,
    rx: Vec<u8>,
    /// What one [`WhipLink::drain`] made str0m send, sent together at its end.
    outbox: Vec<(std::net::SocketAddr, Vec<u8>)>,
    written: u64,
    silence: Silence,
    rtt_ms: Option<u32>,
    nacks: u64,
    /// The audio loss the receiver reports, smoothed (a fraction).
    audio_loss: Option<f32>,
    /// Packets the receiver reports lost (its receiver reports' cumulative count): video, audio.
    lost: [u64; 2],
    keyframe_request: bool,
    last_keyframe_request: Option<Instant>,
    estimate_kbps: Option<u32>,
    /// The estimate as the WebRTC stack last gave it (passed on after the warm-up).
    raw_estimate_kbps: Option<u32>,
    connected_at: Option<Instant>,
    /// Media time 0 as a wall clock (str0m's sender reports map one onto the other).
    epoch: Instant,
}

/// One negotiated send stream: RTP mode leaves its sequence numbers to us.
struct Outgoing {
    mid: Mid,
    pt: Pt,
    ssrc: Ssrc,
    seq_no: SeqNo,
}

/// The largest RTP payload str0m's own packetizer would make: its datagram target less the SRTP
/// tag, rounded down to whole cipher blocks.
const MAX_RTP_PAYLOAD: usize = {
    let rtp = str0m::DATAGRAM_MTU_TARGET - 16;
    rtp - rtp % 16
};

impl WhipLink {
    /// Makes the offer, POSTs it (following redirects) and applies the answer, by `deadline`;
    /// ICE and DTLS follow in `poll_open`. `cancel` may end the HTTP connect early.
    pub fn connect(
        url: &WhipUrl,
        p: WhipParams,
        deadline: Instant,
        tls_client: &mut super::rtmp::TlsClient,
        tls_config: &crate::io::tls_config::TlsConfig,
        wake: Option<&WakeReceiver>,
        cancel: &mut dyn FnMut() -> Option<Error>,
    ) -> Result<WhipLink> {
        if url.tls && !cfg!(feature = "tls") {
            return Err(Error::Unsupported("whip+https:// needs the TLS transport (feature `tls`)".into()));
        }
        match p.video {
            Some(Codec::Hevc) => {
                return Err(Error::Unsupported("WHIP carries H.264 video here; HEVC is not negotiated".into()))
            }
            None if !p.audio => return Err(Error::Unsupported("WHIP needs video or Opus audio".into())),
            _ => {}
        }
        #[cfg(feature = "tls")]
        let tls = if url.tls {
            Some(match tls_client {
                Some(c) => c.clone(),
                None => tls_client.insert(crate::io::tls::client_config(tls_config)?).clone(),
            })
        } else {
            None
        };
        #[cfg(not(feature = "tls"))]
        let _ = (tls_client, tls_config);
        let udp = UdpPort::toward(&url.host, url.port, deadline)?;
        let now = Instant::now();
        let mut config = Rtc::builder()
            .clear_codecs()
            .enable_opus(p.audio, false)
            // Starts a little over the stream's rate: an estimate that begins at exactly the
            // configured rate would have the ABR step down before anything was measured.
            .enable_bwe(Some(Bitrate::kbps((p.start_kbps.max(100) as u64) * 5 / 4)))
            .set_stats_interval(Some(Duration::from_secs(1)))
            .set_rtp_mode(true);
        if p.video.is_some() {
            // Only what this link can send: packetization mode 1 (FU-A: our keyframes are larger
            // than a datagram, and slices come several to a picture). str0m's own list adds three
            // mode-0 variants an answer could pick and that we would then refuse.
            for (pt, rtx, profile_level_id) in H264_OFFER {
                config.codec_config().add_h264(pt.into(), Some(rtx.into()), true, profile_level_id);
            }
        }
        let mut rtc = config.build(now);
        let candidate = Candidate::host(udp.local(), "udp")
            .map_err(|e| Error::Connect(format!("no usable local address for ICE ({}): {e}", udp.local())))?;
        rtc.add_local_candidate(candidate);
        rtc.bwe().set_bitrate(Bitrate::kbps(p.start_kbps.max(100) as u64), Bitrate::kbps(p.max_kbps.max(100) as u64));
        let mut change = rtc.sdp_api();
        let video_mid = p.video.map(|_| change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        let audio_mid = p.audio.then(|| change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let (offer, pending) = change.apply().ok_or_else(|| Error::Protocol("WebRTC made no offer".into()))?;
        let auth: Vec<String> = p.bearer_token.iter().map(|t| format!("Authorization: Bearer {t}")).collect();
        let mut link = WhipLink {
            endpoint: url.clone(),
            session: None,
            auth,
            #[cfg(feature = "tls")]
            tls,
            udp,
            rtc,
            video: None,
            audio: None,
            next_timeout: now,
            next_timeout_lazy: false,
            connected: false,
            failed: None,
            parameter_sets: Vec::with_capacity(256),
            packetizer: H264Packetizer::new(MAX_RTP_PAYLOAD),
            rx: vec![0u8; 2048],
            outbox: Vec::with_capacity(OUTBOX_LIMIT),
            written: 0,
            silence: Silence::new(now, p.stall_timeout),
            rtt_ms: None,
            nacks: 0,
            audio_loss: None,
            lost: [0; 2],
            keyframe_request: false,
            last_keyframe_request: None,
            estimate_kbps: None,
            raw_estimate_kbps: None,
            connected_at: None,
            epoch: now,
        };
        let (resource, answer) = link.post_offer(&without_trickle(&offer.to_sdp_string()), deadline, wake, cancel)?;
        let answer = SdpAnswer::from_sdp_string(&answer)
            .map_err(|e| Error::Protocol(format!("the WHIP endpoint's answer is not SDP: {e}")))?;
        link.session = Some(resource);
        link.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| Error::Protocol(format!("the WHIP endpoint's answer was refused: {e}")))?;
        link.drain()?;
        link.video = video_mid.and_then(|mid| link.outgoing(mid, RtcCodec::H264));
        link.audio = audio_mid.and_then(|mid| link.outgoing(mid, RtcCodec::Opus));
        if p.audio && link.audio.is_none() {
            log::info!("the WHIP endpoint's answer accepts no Opus: video only");
        }
        if p.video.is_some() && link.video.is_none() {
            link.delete_session(Instant::now() + DELETE_GRACE);
            return Err(Error::ConnectRejected {
                code: "WHIP".into(),
                description: "the endpoint's answer accepts no H.264 (packetization mode 1)".into(),
            });
        }
        Ok(link)
    }

    /// POSTs the offer; returns the session resource and the answer.
    fn post_offer(
        &mut self,
        offer: &str,
        deadline: Instant,
        wake: Option<&WakeReceiver>,
        cancel: &mut dyn FnMut() -> Option<Error>,
    ) -> Result<(WhipUrl, String)> {
        let mut target = self.endpoint.clone();
        for _ in 0..=MAX_REDIRECTS {
            let r = self.request(&target, "POST", Some("application/sdp"), offer.as_bytes(), deadline, wake, cancel)?;
            match r.status {
                201 => {
                    let location = r
                        .header("location")
                        .ok_or_else(|| Error::Protocol("the WHIP endpoint answered 201 without a Location".into()))?;
                    let resource = target.resolve(location)?;
                    for link in r.headers("link") {
                        ice_servers(link);
                    }
                    let answer = String::from_utf8(r.body)
                        .map_err(|_| Error::Protocol("the WHIP endpoint's answer is not UTF-8".into()))?;
                    return Ok((resource, answer));
                }
                307 | 308 => {
                    let location = r.header("location").ok_or_else(|| {
                        Error::Protocol(format!("the WHIP endpoint answered {} without a Location", r.status))
                    })?;
                    target = target.resolve(location)?;
                    log::info!("WHIP endpoint moved to {}", target.redacted());
                }
                _ => return Err(self.refusal(&r)),
            }
        }
        Err(Error::Protocol(format!("more than {MAX_REDIRECTS} redirects from the WHIP endpoint")))
    }

    /// An HTTP answer that is not a session, as this SDK's errors: 401/403 are final (a retry
    /// cannot fix the token), 503 says when to come back, the rest may pass later.
    fn refusal(&self, r: &Response) -> Error {
        let body = String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).trim().to_string();
        let what = self.endpoint.scrub(&format!(
            "the WHIP endpoint {} answered {} {}{}",
            self.endpoint.host,
            r.status,
            r.reason,
            if body.is_empty() { String::new() } else { format!(": {body}") }
        ));
        match r.status {
            401 | 403 => Error::Auth(what),
            503 | 429 => {
                let after = r.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
                match after {
                    Some(s) => Error::Busy { retry_after: Duration::from_secs(s.min(3600)), message: what },
                    None => Error::Connect(what),
                }
            }
            400..=499 => Error::ConnectRejected { code: format!("HTTP {}", r.status), description: what },
            _ => Error::Connect(what),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        url: &WhipUrl,
        method: &str,
        content_type: Option<&str>,
        body: &[u8],
        deadline: Instant,
        wake: Option<&WakeReceiver>,
        cancel: &mut dyn FnMut() -> Option<Error>,
    ) -> Result<Response> {
        let host_header = url.host_header();
        let req = Request {
            method,
            host: &url.host,
            port: url.port,
            host_header: &host_header,
            target: &url.target,
            headers: &self.auth,
            content_type,
            body,
        };
        let conn = http::Connection {
            #[cfg(feature = "tls")]
            tls: if url.tls { self.tls.clone() } else { None },
            wake,
            cancel,
        };
        http::exchange(&req, conn, deadline).map_err(|e| match e {
            Error::Auth(m) => Error::Auth(url.scrub(&m)),
            e => e,
        })
    }

    /// DELETEs the session resource, best effort: a server that never hears it ends the session
    /// when consent checks stop.
    fn delete_session(&mut self, deadline: Instant) {
        if let Some(session) = self.session.take() {
            match self.request(&session, "DELETE", None, &[], deadline, None, &mut || None) {
                Ok(r) if r.status < 300 => {}
                Ok(r) => log::info!("WHIP DELETE answered {}", r.status),
                Err(e) => log::info!("WHIP DELETE failed: {}", session.scrub(&e.to_string())),
            }
        }
    }

    /// The send stream of `codec` on `mid` after the answer: its payload type (H.264:
    /// packetization mode 1, which carries our multi-slice, large keyframes) and SSRC.
    fn outgoing(&mut self, mid: Mid, codec: RtcCodec) -> Option<Outgoing> {
        let remote_pts = self.rtc.media(mid)?.remote_pts();
        let pt = self
            .rtc
            .codec_config()
            .params()
            .iter()
            .filter(|p| remote_pts.contains(&p.pt()) && p.spec().codec == codec)
            .find(|p| codec != RtcCodec::H264 || p.spec().format.packetization_mode == Some(1))
            .map(|p| p.pt())?;
        let ssrc = self.rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
        Some(Outgoing { mid, pt, ssrc, seq_no: SeqNo::default() })
    }

    /// Runs str0m until it waits for time or input: sends what it has, takes its events. A
    /// timeout already due is run here: str0m's pacer asks for one (1 µs on) after every packet
    /// it releases, and its packetizer one after every frame written, so a frame's packets leave
    /// in one call instead of one pass of the network worker each.
    fn drain(&mut self) -> Result<()> {
        let mut due_timeouts = 0;
        loop {
            let out = self.rtc.poll_output().map_err(|e| Error::Protocol(format!("WebRTC: {e}")))?;
            match out {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    if due_timeouts < MAX_DUE_TIMEOUTS {
                        let now = Instant::now();
                        if t <= now {
                            due_timeouts += 1;
                            self.rtc
                                .handle_input(Input::Timeout(now))
                                .map_err(|e| Error::Protocol(format!("WebRTC: {e}")))?;
                            continue;
                        }
                    }
                    self.next_timeout_lazy = lazy_timer(self.rtc.last_timeout_reason());
                    return self.flush();
                }
                Output::Transmit(t) => {
                    self.outbox.push((t.destination, t.contents.into()));
                    if self.outbox.len() >= OUTBOX_LIMIT {
                        self.flush()?;
                    }
                }
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    /// Sends what the drain gathered. A full socket buffer drops datagrams, as the network
    /// would: RTP repairs.
    fn flush(&mut self) -> Result<()> {
        let r = self.udp.send_all(&self.outbox);
        self.outbox.clear();
        r
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.failed = Some(Error::Io(format!(
                    "the WHIP peer {} stopped answering ICE consent checks",
                    self.endpoint.host
                )));
            }
            Event::KeyframeRequest(_) => self.keyframe_request = true,
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. }) => {
                self.raw_estimate_kbps = Some((estimate.as_u64() / 1000).min(u32::MAX as u64) as u32);
            }
            Event::PeerStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.rtt_ms = Some(rtt.as_millis().clamp(1, u32::MAX as u128) as u32);
                }
            }
            Event::MediaEgressStats(s) => {
                // The receiver's reports give the round trip per stream (str0m's peer figure
                // needs its own STUN timing, which not every peer allows).
                if let Some(rtt) = s.rtt {
                    self.rtt_ms = Some(rtt.as_millis().clamp(1, u32::MAX as u128) as u32);
                }
                let track = [&self.video, &self.audio].iter().position(|o| o.as_ref().map(|o| o.mid) == Some(s.mid));
                if let (Some(t), Some(r)) = (track, &s.remote) {
                    self.lost[t] = self.lost[t].max(r.packets_lost);
                }
                if track == Some(0) {
                    self.nacks = self.nacks.max(s.nacks);
                }
                if let Some(loss) = s.loss.filter(|_| Some(s.mid) == self.audio.as_ref().map(|a| a.mid)) {
                    self.audio_loss = Some(smooth_loss(self.audio_loss, loss));
                }
            }
            _ => {}
        }
    }

    fn input(&mut self, input: Input<'_>) -> Result<()> {
        self.rtc.handle_input(input).map_err(|e| Error::Protocol(format!("WebRTC: {e}")))?;
        self.drain()
    }

    /// Reads what arrived and runs str0m's timers.
    fn exchange(&mut self, now: Instant) -> Result<()> {
        let local = self.udp.local();
        while let Some((n, source)) = self.udp.recv_from(&mut self.rx)? {
            self.silence.heard(now);
            let Ok(contents) = self.rx[..n].try_into() else { continue };
            let r = Receive { proto: Protocol::Udp, source, destination: local, contents };
            // A datagram str0m cannot use (a stray or damaged one) is not the session's failure.
            if let Err(e) = self.rtc.handle_input(Input::Receive(now, r)) {
                log::debug!("WHIP: datagram from {source} refused: {e}");
            }
            self.drain()?;
        }
        if now >= self.next_timeout {
            self.input(Input::Timeout(now))?;
        }
        if self.connected {
            let since = *self.connected_at.get_or_insert(now);
            if now.duration_since(since) >= ESTIMATE_WARMUP {
                self.estimate_kbps = self.raw_estimate_kbps;
            }
        }
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Packetizes an H.264 access unit (AVCC) into the video stream: the parameter sets go
    /// ahead of a keyframe. Returns the payload bytes written.
    fn write_video(&mut self, pts: u64, unit: &[u8], keyframe: bool) -> Result<u64> {
        let Some(out) = self.video.as_mut() else { return Ok(0) };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx(&out.ssrc) else { return Ok(0) };
        let prefix: &[u8] = if keyframe { &self.parameter_sets } else { &[] };
        let wallclock = self.epoch + Duration::from_millis(pts);
        let rtp_time = pts.wrapping_mul(90) as u32;
        let mut bytes = 0;
        // Video answers NACKs from str0m's RTX cache.
        self.packetizer.packetize(prefix, unit, |payload, marker| {
            bytes += payload.len() as u64;
            let write = RtpWrite::new(out.pt, out.seq_no.inc(), rtp_time, wallclock, payload);
            stream.write_rtp(write.marker(marker).nackable(true));
        })?;
        Ok(bytes)
    }

    /// One Opus frame, one packet (an Opus frame is never split across packets). Not nackable,
    /// as str0m's own Opus packetizer has it: a late audio frame is no use to the receiver.
    fn write_audio(&mut self, ts: u64, frame: &[u8]) -> u64 {
        let Some(out) = self.audio.as_mut() else { return 0 };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx(&out.ssrc) else { return 0 };
        let wallclock = self.epoch + Duration::from_millis(ts);
        stream.write_rtp(RtpWrite::new(out.pt, out.seq_no.inc(), ts.wrapping_mul(48) as u32, wallclock, frame));
        frame.len() as u64
    }
}

/// The receiver's loss reports (one a second, each over its own interval) smoothed: up at once,
/// so protection starts with the loss, and down over several reports, so a loss that comes in
/// bursts is still protected between them.
fn smooth_loss(prev: Option<f32>, report: f32) -> f32 {
    let report = if report.is_finite() { report.clamp(0.0, 1.0) } else { 0.0 };
    match prev {
        Some(p) if report < p => p * 0.7 + report * 0.3,
        _ => report,
    }
}

impl WhipLink {
    /// Keeps the SPS and PPS of a decoder configuration record in AVCC form; a malformed record
    /// keeps the previous ones.
    fn set_parameter_sets(&mut self, record: &[u8]) -> Result<()> {
        let old = self.parameter_sets.len();
        let sets = &mut self.parameter_sets;
        let r = avcc_parameter_set_nals(record, |nal| {
            sets.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            sets.extend_from_slice(nal);
        });
        match r {
            Ok(()) => drop(self.parameter_sets.drain(..old)),
            Err(_) => self.parameter_sets.truncate(old),
        }
        r
    }
}

/// The offer without `a=ice-options:trickle` (str0m writes it in every offer): every candidate
/// this link has is in the offer and none follows by PATCH (RFC 9725 4.3), so the endpoint must
/// not wait for more.
fn without_trickle(sdp: &str) -> String {
    sdp.split_inclusive('\n').filter(|line| line.trim_end() != "a=ice-options:trickle").collect()
}

/// Logs the ICE servers a `Link` header offers (RFC 9725 4.4): this build gathers host
/// candidates only, so a STUN or TURN server is noted, not used.
fn ice_servers(link: &str) {
    for part in link.split(',') {
        if part.contains("ice-server") {
            let url = part.split(['<', '>']).nth(1).unwrap_or("").split('?').next().unwrap_or("");
            let kind = url.split(':').next().unwrap_or("");
            log::info!("WHIP endpoint offers an ICE server ({kind}); host candidates only are used");
        }
    }
}

impl Link for WhipLink {
    fn poll_open(&mut self, now: Instant) -> Result<Opening> {
        let was = self.connected;
        self.exchange(now)?;
        Ok(Opening::from_connected(was, self.connected))
    }

    fn open_timeout(&self, ms: u128) -> Error {
        Error::Timeout(format!(
            "no ICE/DTLS connection with the WHIP peer {} within {ms} ms (is UDP blocked?)",
            self.endpoint.host
        ))
    }

    fn carries(&self, p: &MediaPacket) -> bool {
        match p.track {
            Track::Video => self.video.is_some() && p.codec == Codec::H264,
            // AAC is not WebRTC's: only what the pusher encoded for it (Opus) goes.
            Track::Audio => self.audio.is_some() && p.codec == Codec::Opus,
        }
    }

    fn send(&mut self, ts: u64, p: &MediaPacket) -> Result<u64> {
        let n = match (p.track, p.header) {
            (Track::Video, true) => {
                self.set_parameter_sets(&p.data)?;
                return Ok(0);
            }
            (Track::Audio, true) => return Ok(0),
            (Track::Video, false) => {
                let pts = ts.saturating_add_signed(p.cts_ms.into());
                self.write_video(pts, &p.data, p.keyframe)?
            }
            (Track::Audio, false) => self.write_audio(ts, &p.data),
        };
        if n > 0 {
            self.written += n;
            self.drain()?;
        }
        Ok(n)
    }

    fn backlog(&self) -> usize {
        0
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn delivered(&self) -> u64 {
        self.written
    }

    fn pump(&mut self, now: Instant) -> Result<()> {
        self.exchange(now)
    }

    fn acked(&self) -> bool {
        self.connected
    }

    fn stalled(&self, now: Instant) -> bool {
        self.silence.stalled(now)
    }

    fn next_stall_check(&self, now: Instant) -> Duration {
        self.silence.next_check(now)
    }

    fn rtt_ms(&self) -> Option<u32> {
        self.rtt_ms
    }

    fn repair_stats(&self) -> Option<RepairStats> {
        Some(RepairStats { retransmitted: self.nacks, lost: self.lost[0] + self.lost[1], ..RepairStats::default() })
    }

    fn take_keyframe_request(&mut self, now: Instant) -> bool {
        if !std::mem::take(&mut self.keyframe_request) {
            return false;
        }
        if self.last_keyframe_request.is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL) {
            // Within the interval: remembered, answered when it has passed.
            self.keyframe_request = true;
            return false;
        }
        self.last_keyframe_request = Some(now);
        true
    }

    fn bandwidth_estimate_kbps(&self) -> Option<u32> {
        self.estimate_kbps
    }

    fn audio_loss_percent(&self) -> Option<u8> {
        self.audio_loss.map(|f| (f * 100.0).round().clamp(0.0, 100.0) as u8)
    }

    fn wait(&mut self, wake: Option<&WakeReceiver>, timeout: Duration) {
        let now = Instant::now();
        let mut due = self.next_timeout;
        if self.connected && self.next_timeout_lazy {
            due += TIMER_SLACK;
        }
        let t = timeout.min(due.saturating_duration_since(now));
        if t.is_zero() {
            return;
        }
        let t = Duration::from_millis(t.as_micros().div_ceil(1000) as u64);
        self.udp.wait(false, wake, t);
    }

    fn abandon(&mut self, now: Instant) {
        // The new route gets a new session; this one's consent checks stop, which ends it on the
        // server within ~30 s (a DELETE here could block on the old route).
        self.rtc.disconnect();
        let _ = self.input(Input::Timeout(now));
    }

    fn opening_abandoned(&mut self, now: Instant) {
        self.rtc.disconnect();
        self.delete_session(now + DELETE_GRACE);
    }

    fn close(&mut self, _last_video_ts: Option<u64>, deadline: Instant) -> Result<()> {
        let now = Instant::now();
        // RTP has no end of stream: what str0m still paces goes out for a moment, then BYE-less
        // teardown and the DELETE.
        let flush_until = (now + Duration::from_millis(100)).min(deadline.max(now));
        while Instant::now() < flush_until {
            let now = Instant::now();
            self.exchange(now)?;
            self.wait(None, flush_until.saturating_duration_since(now).min(Duration::from_millis(10)));
        }
        self.rtc.disconnect();
        self.delete_session(deadline.max(Instant::now() + DELETE_GRACE));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::smooth_loss;

    #[test]
    fn reported_loss_rises_at_once_and_falls_over_several_reports() {
        assert_eq!(smooth_loss(None, 0.05), 0.05);
        assert_eq!(smooth_loss(Some(0.02), 0.10), 0.10);
        // A second without loss between bursts keeps most of the protection.
        let mut l = smooth_loss(Some(0.10), 0.0);
        assert!((l - 0.07).abs() < 1e-6, "{l}");
        for _ in 0..10 {
            l = smooth_loss(Some(l), 0.0);
        }
        assert!(l < 0.002, "gone after ~10 s of clean reports: {l}");
        // A peer's nonsense is no loss, and never more than all of it.
        assert_eq!(smooth_loss(None, f32::NAN), 0.0);
        assert_eq!(smooth_loss(None, 7.0), 1.0);
    }
}
