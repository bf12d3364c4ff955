//! One connection: handshake, then `ServerSession` driven by blocking reads with timeouts.
//!
//! Memory per connection is bounded by the protocol: a message length is 24 bits, so each of
//! the two chunk parsers (the guard's and the session's) holds at most one message under 16 MiB
//! plus one read buffer; stream tables are capped by the guard.

use super::guard::Guard;
use super::Shared;
use crate::core::flv::{write_file_tag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::core::url::mask_key;
use rml_amf0::Amf0Value;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A silent client must not pin a thread (and a connection slot) for ever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole handshake, so a client trickling bytes cannot stretch it idle timeout by idle
/// timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_BUFFER: usize = 64 * 1024;

/// What nginx-rtmp answers to a duplicate publisher and to `deny publish`.
const BAD_NAME: &str = "NetStream.Publish.BadName";

pub(super) fn run(id: u64, stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let mut conn = Conn { id, peer, shared, stream, publishing: None };
    log::debug!("receiver: connection {id} from {peer}");
    // rml_rtmp still has panics on odd input the guard does not know about; they end this
    // connection only.
    let outcome = catch_unwind(AssertUnwindSafe(|| conn.serve()))
        .unwrap_or_else(|_| Err("RTMP library panicked on the input".to_string()));
    match outcome {
        Ok(()) => log::debug!("receiver: connection {id} closed"),
        Err(_) if conn.shared.stopping.load(Ordering::SeqCst) => {}
        Err(e) => {
            log::info!("receiver: connection {id} from {peer} dropped: {e}");
            conn.shared.lock().report.last_error = Some(format!("connection {id}: {e}"));
        }
    }
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stream: TcpStream,
    /// `app/masked-key` while this connection is the publisher.
    publishing: Option<String>,
}

type ConnResult<T> = Result<T, String>;

fn guarded<T, E: std::fmt::Display>(what: &str, f: impl FnOnce() -> Result<T, E>) -> ConnResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: RTMP library panicked on the input")),
    }
}

impl Conn {
    fn serve(&mut self) -> ConnResult<()> {
        self.stream.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; READ_BUFFER];
        let Some(leftover) = self.handshake(&mut buf)? else {
            return Ok(());
        };
        self.stream.set_read_timeout(Some(IDLE_TIMEOUT)).map_err(|e| e.to_string())?;
        let (mut session, initial) = guarded("session", || ServerSession::new(ServerSessionConfig::new()))?;
        let mut guard = Guard::new();
        self.send_results(initial)?;
        self.feed(&mut session, &mut guard, &leftover)?;
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.feed(&mut session, &mut guard, &buf[..n])?;
        }
    }

    /// The bytes after the handshake, or `None` when the peer closed during it.
    fn handshake(&mut self, buf: &mut [u8]) -> ConnResult<Option<Vec<u8>>> {
        let mut handshake = Handshake::new(PeerType::Server);
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("handshake timed out".into());
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            let n = self.read(buf)?;
            if n == 0 {
                return Ok(None);
            }
            match guarded("handshake", || handshake.process_bytes(&buf[..n]))? {
                HandshakeProcessResult::InProgress { response_bytes } => self.write(&response_bytes)?,
                HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                    self.write(&response_bytes)?;
                    return Ok(Some(remaining_bytes));
                }
            }
        }
    }

    fn feed(&mut self, session: &mut ServerSession, guard: &mut Guard, bytes: &[u8]) -> ConnResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        guarded("rejected input", || guard.inspect(bytes))?;
        let results = guarded("session", || session.handle_input(bytes))?;
        // Packets go out in the order the session serialised them (chunk headers are
        // compressed against the previous one), so all of these before any reply to an event.
        let mut events = Vec::new();
        let mut out = Vec::new();
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => out.extend(packet.bytes),
                ServerSessionResult::RaisedEvent(event) => events.push(event),
                ServerSessionResult::UnhandleableMessageReceived(m) => {
                    log::trace!("receiver: connection {}: message type {}", self.id, m.type_id)
                }
            }
        }
        self.write(&out)?;
        for event in events {
            self.on_event(session, guard, event)?;
        }
        // Metadata the session did not report was not on the publishing stream.
        guard.pending_metadata.clear();
        Ok(())
    }

    fn on_event(
        &mut self,
        session: &mut ServerSession,
        guard: &mut Guard,
        event: ServerSessionEvent,
    ) -> ConnResult<()> {
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, app_name } => {
                if self.shared.app.as_ref().is_some_and(|a| *a != app_name) {
                    log::warn!("receiver: connection {}: app {app_name:?} refused", self.id);
                    self.shared.lock().report.rejected += 1;
                    let r = guarded("reject", || {
                        session.reject_request(request_id, "NetConnection.Connect.Rejected", "application not accepted")
                    })?;
                    return self.send_results(r);
                }
                let r = guarded("accept", || session.accept_request(request_id))?;
                self.send_results(r)
            }
            ServerSessionEvent::PublishStreamRequested { request_id, app_name, stream_key, .. } => {
                self.on_publish(session, request_id, &app_name, &stream_key)
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.end_publish();
                Ok(())
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if self.publishing.is_none() {
                    return Ok(());
                }
                let (timestamp, body) = match take_matching(guard, &metadata) {
                    Some(raw) => (raw.timestamp, raw.body.to_vec()),
                    None => (0, serialize_metadata(&metadata)?),
                };
                self.write_tag(TAG_SCRIPT, timestamp, &body)
            }
            ServerSessionEvent::VideoDataReceived { data, timestamp, .. } if self.publishing.is_some() => {
                self.write_tag(TAG_VIDEO, timestamp.value, &data)
            }
            ServerSessionEvent::AudioDataReceived { data, timestamp, .. } if self.publishing.is_some() => {
                self.write_tag(TAG_AUDIO, timestamp.value, &data)
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let r = guarded("reject", || {
                    session.reject_request(request_id, "NetStream.Play.StreamNotFound", "this server only records")
                })?;
                self.send_results(r)
            }
            ServerSessionEvent::UnhandleableAmf0Command { command_name, .. } => {
                // releaseStream, FCPublish, FCUnpublish: nginx-rtmp does not answer them either.
                log::trace!("receiver: connection {}: {command_name}", self.id);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_publish(&mut self, session: &mut ServerSession, request_id: u32, app: &str, key: &str) -> ConnResult<()> {
        let label = format!("{app}/{}", mask_key(key));
        let refusal = if self.shared.stream_key.as_ref().is_some_and(|k| k != key) {
            Some("stream key not accepted")
        } else if self.publishing.is_some() {
            Some("already publishing on this connection")
        } else {
            let mut state = self.shared.lock();
            if state.publisher.is_some() {
                Some("another publisher is live")
            } else {
                state.publisher = Some(self.id);
                state.report.sessions += 1;
                None
            }
        };
        let results = match refusal {
            Some(why) => {
                log::warn!("receiver: connection {} from {}: publish to {label} refused: {why}", self.id, self.peer);
                self.shared.lock().report.rejected += 1;
                // Like nginx-rtmp, the socket stays open: the client decides what to do.
                guarded("reject", || session.reject_request(request_id, BAD_NAME, why))?
            }
            None => {
                log::info!("receiver: connection {} from {}: publishing {label}", self.id, self.peer);
                self.publishing = Some(label);
                guarded("accept", || session.accept_request(request_id))?
            }
        };
        self.send_results(results)
    }

    /// Flushes the file so a waiter on the session end can read it completely.
    fn end_publish(&mut self) {
        let Some(label) = self.publishing.take() else {
            return;
        };
        let mut state = self.shared.lock();
        if state.publisher == Some(self.id) {
            state.publisher = None;
        }
        state.ended += 1;
        if let Some(Err(e)) = state.out.as_mut().map(|o| o.flush()) {
            log::warn!("receiver: flushing the output file failed: {e}");
            state.report.last_error = Some(format!("flushing the output file: {e}"));
        }
        let r = &state.report;
        log::info!(
            "receiver: connection {}: {label} ended ({} video, {} audio tags, {} bytes in the file)",
            self.id,
            r.video_tags,
            r.audio_tags,
            r.bytes
        );
        drop(state);
        self.shared.ended_changed.notify_all();
    }

    fn write_tag(&mut self, tag_type: u8, timestamp: u32, body: &[u8]) -> ConnResult<()> {
        let mut state = self.shared.lock();
        let Some(out) = state.out.as_mut() else {
            return Err("receiver stopped".into());
        };
        if let Err(e) = write_file_tag(out, tag_type, timestamp, body) {
            let e = format!("writing the output file: {e}");
            state.report.last_error = Some(e.clone());
            return Err(e);
        }
        let r = &mut state.report;
        r.bytes += (11 + body.len() + 4) as u64;
        match tag_type {
            TAG_VIDEO => r.video_tags += 1,
            TAG_AUDIO => r.audio_tags += 1,
            _ => {}
        }
        Ok(())
    }

    fn send_results(&mut self, results: Vec<ServerSessionResult>) -> ConnResult<()> {
        let mut out = Vec::new();
        for result in results {
            if let ServerSessionResult::OutboundResponse(packet) = result {
                out.extend(packet.bytes);
            }
        }
        self.write(&out)
    }

    fn read(&mut self, buf: &mut [u8]) -> ConnResult<usize> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err("timed out waiting for data".into())
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> ConnResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.stream.write_all(bytes).map_err(|e| format!("write: {e}"))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // A publisher that disconnects without unpublishing has ended its session too.
        self.end_publish();
        self.shared.lock().sockets.remove(&self.id);
    }
}

/// The raw metadata the session just reported, found by content: the session drops metadata
/// sent on other streams without saying so.
fn take_matching(guard: &mut Guard, metadata: &StreamMetadata) -> Option<super::guard::RawMetadata> {
    let at = guard.pending_metadata.iter().position(|raw| raw.parsed == *metadata)?;
    guard.pending_metadata.drain(..at);
    guard.pending_metadata.pop_front()
}

/// Fallback when the raw form was not found: the fields the session parsed.
fn serialize_metadata(m: &StreamMetadata) -> ConnResult<Vec<u8>> {
    let mut props = std::collections::HashMap::new();
    let mut num = |k: &str, v: Option<f64>| {
        if let Some(v) = v {
            props.insert(k.to_string(), Amf0Value::Number(v));
        }
    };
    num("width", m.video_width.map(f64::from));
    num("height", m.video_height.map(f64::from));
    num("videocodecid", m.video_codec_id.map(f64::from));
    num("framerate", m.video_frame_rate.map(f64::from));
    num("videodatarate", m.video_bitrate_kbps.map(f64::from));
    num("audiocodecid", m.audio_codec_id.map(f64::from));
    num("audiodatarate", m.audio_bitrate_kbps.map(f64::from));
    num("audiosamplerate", m.audio_sample_rate.map(f64::from));
    num("audiochannels", m.audio_channels.map(f64::from));
    if let Some(stereo) = m.audio_is_stereo {
        props.insert("stereo".into(), Amf0Value::Boolean(stereo));
    }
    if let Some(encoder) = &m.encoder {
        props.insert("encoder".into(), Amf0Value::Utf8String(encoder.clone()));
    }
    rml_amf0::serialize(&vec![Amf0Value::Utf8String("onMetaData".into()), Amf0Value::Object(props)])
        .map_err(|e| format!("metadata: {e}"))
}
