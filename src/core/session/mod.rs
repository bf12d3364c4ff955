//! The RTMP publish session: a sans-IO state machine from the handshake to `deleteStream`.
//!
//! Bytes read from the socket go in through [`PublishSession::handle_input`]; bytes to write come
//! out of [`PublishSession::pending_output`]. No sockets, threads or clocks here.
//!
//! Outbound it uses rml_rtmp's `Handshake` and its own chunk writer (header compression means every
//! packet must be written in the order it was serialized; see `chunk_writer` for why not rml_rtmp's
//! serializer). Inbound it uses its own bounded chunk reader and AMF0 decoder (see `chunk_reader`
//! and `amf` for why) and parses the fixed-size control messages itself. In steady state (media
//! out, acknowledgements in) nothing here allocates: the output and message buffers are reused.
//!
//! Command sequence (as OBS): connect → [SetChunkSize, WindowAckSize, releaseStream, FCPublish,
//! createStream] → publish(key, "live") → `@setDataFrame onMetaData` → media; on stop
//! FCUnpublish → deleteStream.
//!
//! Chunk stream ids are chosen from the message type: protocol control 2, data (`@setDataFrame`)
//! 3, video 4, audio 5, commands 6.

mod amf;
mod chunk_reader;
mod chunk_writer;

use crate::core::metadata::StreamMetadata;
use crate::core::url::RtmpUrl;
use crate::error::{Error, Result};
use amf::Command;
use bytes::Bytes;
use chunk_reader::{ChunkReader, MessageHeader};
use chunk_writer::ChunkWriter;
use rml_amf0::Amf0Value;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage, UserControlEventType};
use rml_rtmp::time::RtmpTimestamp;
use std::collections::HashMap;

/// Sent as `flashVer` in `connect`; the FMLE prefix makes some CDNs treat us as an encoder.
pub const FLASH_VER: &str = "FMLE/3.0 (compatible; kitepush)";
/// Outbound chunk size announced after connect (OBS uses 4096): fewer chunk headers per frame.
pub const OUT_CHUNK_SIZE: u32 = 4096;
/// The window acknowledgement size announced to the server: it acknowledges every this many
/// bytes, and those acks are how a stall is seen while the kernel's socket buffer still takes
/// writes. Half a second of the stream's bitrate, so acks keep coming at any rate (OBS announces
/// 2.5 MB: at 500 kbit/s one ack in 40 s, too slow to notice anything), within [16 KiB, 256 KiB].
pub fn ack_window_for(metadata: &StreamMetadata) -> u32 {
    let kbps =
        metadata.video.as_ref().map_or(0, |v| v.bitrate_kbps) + metadata.audio.as_ref().map_or(0, |a| a.bitrate_kbps);
    let kbps = if kbps == 0 { 2000 } else { kbps };
    (kbps.saturating_mul(1000) / 16).clamp(16 * 1024, 256 * 1024)
}

const TYPE_AUDIO: u8 = 8;
const TYPE_VIDEO: u8 = 9;
const TYPE_DATA_AMF0: u8 = 18;
const TYPE_COMMAND_AMF3: u8 = 17;
const TYPE_COMMAND_AMF0: u8 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Handshaking,
    /// From the end of the handshake until `NetStream.Publish.Start`.
    Connecting,
    Publishing,
    /// After `unpublish`, or after an error.
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// connect `_result` received
    Connected,
    /// NetStream.Publish.Start received; metadata already queued; the caller sends sequence headers next
    Publishing,
    /// server Acknowledgement message: total bytes it has received (progress signal)
    Acknowledged { bytes: u64 },
    /// any onStatus that is not an error we act on (code, description), for logging
    Status { code: String, description: String },
    /// the server answered a ping sent with `send_ping`: its timestamp, echoed
    PingResponse { timestamp_ms: u32 },
}

/// What a transaction id we sent was for, to route `_result` / `_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Connect,
    ReleaseStream,
    FcPublish,
    CreateStream,
    Publish,
    FcUnpublish,
    DeleteStream,
}

pub struct PublishSession {
    url: RtmpUrl,
    metadata: Bytes,
    /// Enhanced RTMP codecs announced in `connect` (`fourCcList`); empty for legacy FLV codecs.
    fourcc_list: Vec<String>,
    ack_window: u32,
    state: SessionState,
    /// Closed by an error (as opposed to a clean unpublish): further input is refused.
    failed: bool,
    handshake: Option<Handshake>,
    writer: ChunkWriter,
    reader: ChunkReader,
    /// Payload of the inbound message being handled, swapped with the reader's buffers.
    inbound: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    bytes_received: u64,
    last_ack_sent: u64,
    /// Server's window acknowledgement size; 0 until it sends one.
    window_ack: u32,
    /// Server acknowledgement, unwrapped past 4 GiB.
    peer_acked: u64,
    next_transaction: u32,
    pending: HashMap<u32, Pending>,
    connected: bool,
    stream_id: Option<u32>,
}

impl std::fmt::Debug for PublishSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishSession")
            .field("url", &self.url)
            .field("state", &self.state)
            .field("stream_id", &self.stream_id)
            .field("bytes_received", &self.bytes_received)
            .finish_non_exhaustive()
    }
}

fn proto(e: impl std::fmt::Display) -> Error {
    Error::Protocol(e.to_string())
}

/// Fields of an onStatus / `_error` info object; absent ones are empty.
#[derive(Debug, Default)]
struct StatusInfo {
    level: String,
    code: String,
    description: String,
}

impl StatusInfo {
    fn from_command(c: &Command) -> StatusInfo {
        let obj = std::iter::once(&c.object).chain(&c.args).find_map(|v| match v {
            Amf0Value::Object(p) => Some(p),
            _ => None,
        });
        let get = |k: &str| match obj.and_then(|p| p.get(k)) {
            Some(Amf0Value::Utf8String(s)) => s.clone(),
            _ => String::new(),
        };
        StatusInfo { level: get("level"), code: get("code"), description: get("description") }
    }

    fn publish_rejected(self) -> Error {
        Error::PublishRejected { code: self.code, description: self.description }
    }

    /// Auth failures are told apart by the description only: servers (Adobe `authmod`, Wowza,
    /// CDNs) all answer `NetConnection.Connect.Rejected` with a free-text reason.
    fn connect_rejected(self) -> Error {
        if self.description.to_ascii_lowercase().contains("auth") {
            Error::Auth(format!("{}: {}", self.code, self.description))
        } else {
            Error::ConnectRejected { code: self.code, description: self.description }
        }
    }

    fn is_publish_error(&self) -> bool {
        let d = self.description.to_ascii_lowercase();
        self.level.eq_ignore_ascii_case("error")
            || matches!(
                self.code.as_str(),
                "NetStream.Publish.BadName" | "NetStream.Publish.Denied" | "NetStream.Failed"
            )
            || d.contains("already publishing")
            || d.contains("busy")
    }
}

impl PublishSession {
    /// The window acknowledgement size this session asks the server to use.
    pub fn ack_window(&self) -> u32 {
        self.ack_window
    }

    /// Queues C0+C1.
    pub fn new(url: &RtmpUrl, metadata: StreamMetadata) -> Result<Self> {
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 = handshake.generate_outbound_p0_and_p1().map_err(|e| Error::Internal(format!("handshake: {e}")))?;
        log::debug!("rtmp session to {} starting", url.redacted());
        Ok(PublishSession {
            url: url.clone(),
            ack_window: ack_window_for(&metadata),
            fourcc_list: match metadata.video.as_ref().map(|v| v.codec) {
                Some(crate::core::metadata::VideoCodec::Hevc) => {
                    vec![String::from_utf8_lossy(&crate::core::flv::FOURCC_HEVC).into_owned()]
                }
                _ => Vec::new(),
            },
            metadata: Bytes::from(metadata.set_data_frame_payload()),
            state: SessionState::Handshaking,
            failed: false,
            handshake: Some(handshake),
            writer: ChunkWriter::new(),
            reader: ChunkReader::new(),
            inbound: Vec::new(),
            out: {
                // Sized once for a typical keyframe plus what queues behind it: growing it later
                // would allocate on the network thread in the middle of a stream.
                let mut out = Vec::with_capacity(OUT_CAPACITY);
                out.extend_from_slice(&c0c1);
                out
            },
            out_pos: 0,
            bytes_received: 0,
            last_ack_sent: 0,
            window_ack: 0,
            peer_acked: 0,
            next_transaction: 1,
            pending: HashMap::new(),
            connected: false,
            stream_id: None,
        })
    }

    /// Feed bytes read from the socket. Replies (C2, commands, acks, pong) are queued to the output.
    /// Err on publish/connect rejection or protocol violations (never panics on any input); the
    /// session is then `Closed` and refuses further input.
    pub fn handle_input(&mut self, bytes: &[u8], events: &mut Vec<SessionEvent>) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidState("RTMP session already failed".into()));
        }
        self.bytes_received += bytes.len() as u64;
        let r = self.process(bytes, events);
        if r.is_err() {
            self.failed = true;
            self.state = SessionState::Closed;
        }
        // Errors may quote the server, and some servers quote the stream name.
        r.map_err(|e| e.map_text(|t| self.url.scrub(t)))
    }

    fn process(&mut self, bytes: &[u8], events: &mut Vec<SessionEvent>) -> Result<()> {
        let mut rest = bytes;
        let leftover;
        if let Some(hs) = self.handshake.as_mut() {
            match hs.process_bytes(bytes).map_err(|e| proto(format_args!("handshake: {e}")))? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    return Ok(());
                }
                HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    self.handshake = None;
                    self.state = SessionState::Connecting;
                    log::debug!("rtmp handshake done with {}", self.url.host);
                    self.send_connect()?;
                    leftover = remaining_bytes;
                    rest = &leftover;
                }
            }
        }
        if self.state == SessionState::Closed {
            // After a clean unpublish the server's last words (onStatus, onFCUnpublish) are moot.
            return Ok(());
        }
        self.reader.push(rest);
        let mut data = std::mem::take(&mut self.inbound);
        let r = self.handle_messages(&mut data, events);
        if data.capacity() > MAX_KEPT_INBOUND {
            data = Vec::new();
        }
        self.inbound = data;
        r?;
        if self.state == SessionState::Closed {
            return Ok(());
        }
        if self.window_ack > 0 && self.bytes_received - self.last_ack_sent >= self.window_ack as u64 {
            self.last_ack_sent = self.bytes_received;
            // The spec's sequence number is the running total, modulo 2^32.
            // Written directly (type 3, the byte count): recurs while publishing, without allocating.
            let seq = (self.bytes_received as u32).to_be_bytes();
            self.writer.write(&mut self.out, 0, 3, 0, &seq, true);
        }
        Ok(())
    }

    fn handle_messages(&mut self, data: &mut Vec<u8>, events: &mut Vec<SessionEvent>) -> Result<()> {
        while let Some(header) = self.reader.next_message(data)? {
            self.handle_message(header, data, events)?;
            if self.state == SessionState::Closed {
                break;
            }
        }
        Ok(())
    }

    /// Bytes waiting to be written, in order. The caller writes a prefix and calls consume_output(n).
    pub fn pending_output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    pub fn consume_output(&mut self, n: usize) {
        self.out_pos = self.out_pos.saturating_add(n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos >= 64 * 1024 && self.out_pos * 2 >= self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Only in Publishing. The FLV video tag body is `prefix` followed by `data` (see
    /// `crate::core::flv::unit_prefix`); they are chunked as one message without being joined.
    pub fn send_video(&mut self, timestamp_ms: u32, prefix: &[u8], data: &[u8]) -> Result<()> {
        self.send_media(TYPE_VIDEO, timestamp_ms, prefix, data)
    }

    /// Only in Publishing. The FLV audio tag body is `prefix` followed by `data`.
    pub fn send_audio(&mut self, timestamp_ms: u32, prefix: &[u8], data: &[u8]) -> Result<()> {
        self.send_media(TYPE_AUDIO, timestamp_ms, prefix, data)
    }

    /// Only in Publishing. An AMF0 data message (type 18) with `body` (e.g. `onTextData`).
    pub fn send_data(&mut self, timestamp_ms: u32, body: &[u8]) -> Result<()> {
        self.send_media(TYPE_DATA_AMF0, timestamp_ms, &[], body)
    }

    /// FCUnpublish + deleteStream queued; state -> Closed. No-op when not publishing.
    pub fn unpublish(&mut self) -> Result<()> {
        let (SessionState::Publishing, Some(sid)) = (self.state, self.stream_id) else {
            return Ok(());
        };
        let key = Amf0Value::Utf8String(self.url.stream_key.clone());
        self.send_command("FCUnpublish", 0, Some(Pending::FcUnpublish), vec![key])?;
        self.send_command("deleteStream", 0, Some(Pending::DeleteStream), vec![Amf0Value::Number(sid as f64)])?;
        self.state = SessionState::Closed;
        log::debug!("rtmp unpublish queued for {}", self.url.redacted());
        Ok(())
    }

    /// Queues a ping request (User Control event 6); a server that answers echoes `timestamp_ms`
    /// in a `PingResponse` event, which gives the round trip (media queued ahead of it included).
    pub fn send_ping(&mut self, timestamp_ms: u32) -> Result<()> {
        // Written directly (User Control type 4, event 6 = PingRequest, then the timestamp): it
        // recurs while publishing, and rml_rtmp's serializer would allocate for each one.
        let mut body = [0u8; 6];
        body[..2].copy_from_slice(&6u16.to_be_bytes());
        body[2..].copy_from_slice(&timestamp_ms.to_be_bytes());
        self.writer.write(&mut self.out, 0, 4, 0, &body, true);
        Ok(())
    }

    /// All bytes fed to `handle_input`, handshake included.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    fn send_media(&mut self, type_id: u8, timestamp_ms: u32, prefix: &[u8], data: &[u8]) -> Result<()> {
        let (SessionState::Publishing, Some(sid)) = (self.state, self.stream_id) else {
            return Err(Error::InvalidState("media can only be sent while publishing".into()));
        };
        let len = prefix.len() + data.len();
        if len > MAX_OUT_MESSAGE {
            return Err(Error::InvalidArgument(format!(
                "media message of {len} bytes exceeds RTMP's {MAX_OUT_MESSAGE}-byte limit"
            )));
        }
        // Compressed headers: media is most of the traffic, and nothing is ever dropped after
        // serialization (dropping happens before, in the send queue).
        self.writer.write_parts(&mut self.out, timestamp_ms, type_id, sid, [prefix, data], false);
        Ok(())
    }

    fn send_payload(&mut self, payload: &MessagePayload) -> Result<()> {
        // Control and command messages are rare: full headers cost little and some servers are
        // picky about compressed headers early in the session.
        if payload.data.len() > MAX_OUT_MESSAGE {
            return Err(Error::Internal(format!("message of {} bytes is too large for RTMP", payload.data.len())));
        }
        self.writer.write(
            &mut self.out,
            payload.timestamp.value,
            payload.type_id,
            payload.message_stream_id,
            &payload.data,
            true,
        );
        Ok(())
    }

    fn send_message(&mut self, msg: RtmpMessage, stream_id: u32) -> Result<()> {
        let payload = msg
            .into_message_payload(RtmpTimestamp::new(0), stream_id)
            .map_err(|e| Error::Internal(format!("serialize: {e}")))?;
        self.send_payload(&payload)
    }

    fn send_control(&mut self, msg: RtmpMessage) -> Result<()> {
        self.send_message(msg, 0)
    }

    fn send_command(
        &mut self,
        name: &str,
        stream_id: u32,
        pending: Option<Pending>,
        args: Vec<Amf0Value>,
    ) -> Result<()> {
        self.send_command_with(name, stream_id, pending, Amf0Value::Null, args)
    }

    fn send_command_with(
        &mut self,
        name: &str,
        stream_id: u32,
        pending: Option<Pending>,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) -> Result<()> {
        let tid = match pending {
            Some(p) => {
                let t = self.next_transaction;
                self.next_transaction += 1;
                self.pending.insert(t, p);
                t
            }
            None => 0,
        };
        self.send_message(
            RtmpMessage::Amf0Command {
                command_name: name.to_string(),
                transaction_id: tid as f64,
                command_object: object,
                additional_arguments: args,
            },
            stream_id,
        )
    }

    fn send_connect(&mut self) -> Result<()> {
        let s = |v: &str| Amf0Value::Utf8String(v.to_string());
        let mut props = HashMap::new();
        props.insert("app".to_string(), s(&self.url.app));
        props.insert("type".to_string(), s("nonprivate"));
        props.insert("flashVer".to_string(), s(FLASH_VER));
        props.insert("tcUrl".to_string(), s(&self.url.tc_url()));
        if !self.fourcc_list.is_empty() {
            // Enhanced RTMP: the codecs beyond legacy FLV this client handles. Servers that do not
            // know the key ignore it (nginx-rtmp, rml_rtmp).
            let list = self.fourcc_list.iter().map(|f| s(f)).collect();
            props.insert("fourCcList".to_string(), Amf0Value::StrictArray(list));
        }
        self.send_command_with("connect", 0, Some(Pending::Connect), Amf0Value::Object(props), vec![])
    }

    fn handle_message(&mut self, msg: MessageHeader, data: &[u8], events: &mut Vec<SessionEvent>) -> Result<()> {
        match msg.type_id {
            TYPE_COMMAND_AMF0 | TYPE_COMMAND_AMF3 => {
                let mut data = data;
                // AMF3 command messages start with a format byte, then plain AMF0.
                if msg.type_id == TYPE_COMMAND_AMF3 && data.first() == Some(&0) {
                    data = &data[1..];
                }
                let cmd = amf::decode_command(data)?;
                self.handle_command(cmd, events)
            }
            1..=6 => match parse_control(msg.type_id, data)? {
                Some(m) => self.handle_control(m, events),
                // Unknown user control events (SWF verification, buffer hints) are not ours to
                // answer; a publisher carries on without them.
                None => {
                    log::debug!("rtmp: ignoring user control message");
                    Ok(())
                }
            },
            t => {
                // Data, media and shared-object messages mean nothing to a publisher.
                log::trace!("rtmp: ignoring inbound message type {t}");
                Ok(())
            }
        }
    }

    fn handle_control(&mut self, m: RtmpMessage, events: &mut Vec<SessionEvent>) -> Result<()> {
        match m {
            RtmpMessage::SetChunkSize { size } => {
                log::debug!("rtmp: server chunk size {size}");
                self.reader.set_chunk_size(size)
            }
            RtmpMessage::Abort { stream_id } => {
                self.reader.abort(stream_id);
                Ok(())
            }
            RtmpMessage::Acknowledgement { sequence_number } => {
                self.peer_acked = unwrap_u32(self.peer_acked, sequence_number);
                events.push(SessionEvent::Acknowledged { bytes: self.peer_acked });
                Ok(())
            }
            RtmpMessage::WindowAcknowledgement { size } => {
                log::debug!("rtmp: server window ack size {size}");
                self.window_ack = size;
                Ok(())
            }
            RtmpMessage::UserControl { event_type: UserControlEventType::PingResponse, timestamp: Some(t), .. } => {
                events.push(SessionEvent::PingResponse { timestamp_ms: t.value });
                Ok(())
            }
            RtmpMessage::UserControl { event_type: UserControlEventType::PingRequest, timestamp, .. } => self
                .send_control(RtmpMessage::UserControl {
                    event_type: UserControlEventType::PingResponse,
                    stream_id: None,
                    buffer_length: None,
                    timestamp: Some(timestamp.unwrap_or(RtmpTimestamp::new(0))),
                }),
            // SetPeerBandwidth limits what *we* may send unacknowledged; a publisher that never
            // waits for acks has nothing to adjust. StreamBegin and the like need no answer.
            _ => Ok(()),
        }
    }

    fn handle_command(&mut self, cmd: Command, events: &mut Vec<SessionEvent>) -> Result<()> {
        // Transaction ids are ours, small integers; anything else matches nothing.
        let tid = cmd.transaction_id;
        let pending = if tid >= 1.0 && tid <= u32::MAX as f64 && tid.fract() == 0.0 {
            self.pending.remove(&(tid as u32))
        } else {
            None
        };
        match cmd.name.as_str() {
            "_result" => self.handle_result(pending, &cmd, events),
            "_error" => {
                let info = StatusInfo::from_command(&cmd);
                log::debug!(
                    "rtmp: _error for {pending:?}: {}",
                    self.url.scrub(&format!("{} {}", info.code, info.description))
                );
                match pending {
                    // Optional commands: some servers do not implement them.
                    Some(Pending::ReleaseStream | Pending::FcPublish | Pending::FcUnpublish) => Ok(()),
                    Some(Pending::DeleteStream) => Ok(()),
                    Some(Pending::Connect) => Err(info.connect_rejected()),
                    Some(Pending::CreateStream | Pending::Publish) => Err(info.publish_rejected()),
                    // Unmatched (rml_rtmp-style servers answer a rejected publish with id 0):
                    // judge by how far we got.
                    None if !self.connected => Err(info.connect_rejected()),
                    None => Err(info.publish_rejected()),
                }
            }
            "onStatus" => self.handle_status(StatusInfo::from_command(&cmd), events),
            "close" => Err(Error::Io("server closed the RTMP connection".into())),
            other => {
                // onBWDone, onFCPublish, onFCUnpublish, _checkbw, ...: nothing to do for a publisher.
                log::debug!("rtmp: ignoring command {}", self.url.scrub(other));
                Ok(())
            }
        }
    }

    fn handle_result(&mut self, pending: Option<Pending>, cmd: &Command, events: &mut Vec<SessionEvent>) -> Result<()> {
        match pending {
            Some(Pending::Connect) => {
                self.connected = true;
                events.push(SessionEvent::Connected);
                log::debug!("rtmp: connected to {}", self.url.redacted());
                // Announced with the old chunk size, used from the next message on.
                self.send_control(RtmpMessage::SetChunkSize { size: OUT_CHUNK_SIZE })?;
                self.writer.set_chunk_size(OUT_CHUNK_SIZE);
                self.send_control(RtmpMessage::WindowAcknowledgement { size: self.ack_window })?;
                let key = Amf0Value::Utf8String(self.url.stream_key.clone());
                self.send_command("releaseStream", 0, Some(Pending::ReleaseStream), vec![key.clone()])?;
                self.send_command("FCPublish", 0, Some(Pending::FcPublish), vec![key])?;
                self.send_command("createStream", 0, Some(Pending::CreateStream), vec![])
            }
            Some(Pending::CreateStream) => {
                let id = cmd.args.iter().chain(std::iter::once(&cmd.object)).find_map(|v| match v {
                    Amf0Value::Number(n) => Some(*n),
                    _ => None,
                });
                let sid = match id {
                    Some(n) if n >= 1.0 && n <= u32::MAX as f64 && n.fract() == 0.0 => n as u32,
                    other => {
                        return Err(proto(format_args!("createStream result without a usable stream id: {other:?}")))
                    }
                };
                self.stream_id = Some(sid);
                log::debug!("rtmp: stream {sid} created, publishing");
                let key = Amf0Value::Utf8String(self.url.stream_key.clone());
                self.send_command(
                    "publish",
                    sid,
                    Some(Pending::Publish),
                    vec![key, Amf0Value::Utf8String("live".into())],
                )
            }
            other => {
                log::trace!("rtmp: _result for {other:?} ignored");
                Ok(())
            }
        }
    }

    fn handle_status(&mut self, info: StatusInfo, events: &mut Vec<SessionEvent>) -> Result<()> {
        log::debug!("rtmp: onStatus {}", self.url.scrub(&format!("{} {} {}", info.level, info.code, info.description)));
        match info.code.as_str() {
            "NetStream.Publish.Start" if self.state == SessionState::Connecting => {
                let Some(sid) = self.stream_id else {
                    return Err(proto("NetStream.Publish.Start before createStream result"));
                };
                self.send_payload(&MessagePayload {
                    timestamp: RtmpTimestamp::new(0),
                    type_id: TYPE_DATA_AMF0,
                    message_stream_id: sid,
                    data: self.metadata.clone(),
                })?;
                self.state = SessionState::Publishing;
                events.push(SessionEvent::Publishing);
                Ok(())
            }
            "NetConnection.Connect.Closed" => {
                Err(Error::Io(format!("server closed the connection: {}", info.description)))
            }
            "NetConnection.Connect.Rejected" | "NetConnection.Connect.Failed" => Err(info.connect_rejected()),
            _ if info.is_publish_error() => Err(info.publish_rejected()),
            _ => {
                events.push(SessionEvent::Status {
                    code: self.url.scrub(&info.code),
                    description: self.url.scrub(&info.description),
                });
                Ok(())
            }
        }
    }
}

/// Entry points for the fuzz targets in `fuzz/` (cargo-fuzz builds with `--cfg fuzzing`): the
/// inbound decoders are private to the session.
#[cfg(fuzzing)]
pub mod fuzzing {
    use super::*;

    /// Frames `data` as server chunks, fed in pieces whose sizes come from the input, applying
    /// chunk size and abort messages and decoding commands and control messages as the session
    /// does. Checks the reader's bounds on every message.
    pub fn inbound(data: &[u8]) {
        let Some((&split, data)) = data.split_first() else { return };
        let piece = 1 + split as usize * 4;
        let mut reader = ChunkReader::new();
        let mut msg = Vec::new();
        for input in data.chunks(piece) {
            reader.push(input);
            loop {
                let h = match reader.next_message(&mut msg) {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(e) => {
                        assert!(matches!(e, Error::Protocol(_)), "{e:?}");
                        return;
                    }
                };
                assert!(msg.len() <= chunk_reader::MAX_MESSAGE_LEN as usize);
                let r = match h.type_id {
                    TYPE_COMMAND_AMF0 | TYPE_COMMAND_AMF3 => amf::decode_command(&msg).map(drop),
                    1..=6 => parse_control(h.type_id, &msg).and_then(|m| match m {
                        Some(RtmpMessage::SetChunkSize { size }) => reader.set_chunk_size(size),
                        Some(RtmpMessage::Abort { stream_id }) => {
                            reader.abort(stream_id);
                            Ok(())
                        }
                        _ => Ok(()),
                    }),
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
                    return;
                }
            }
        }
    }
}

/// RTMP's message length field is 24 bits.
const MAX_OUT_MESSAGE: usize = 0xFF_FFFF;

/// Initial capacity of the serialized-output buffer.
const OUT_CAPACITY: usize = 64 * 1024;
/// The inbound message buffer is kept for reuse up to this capacity (acks and pings are a few
/// bytes; a rare large command reply is not worth holding on to).
const MAX_KEPT_INBOUND: usize = 64 * 1024;

/// Parses a protocol control (1, 2, 3, 5, 6) or user control (4) message. `None` for user control
/// events a publisher ignores. Short messages are protocol errors.
fn parse_control(type_id: u8, data: &[u8]) -> Result<Option<RtmpMessage>> {
    let short = || proto(format_args!("control message type {type_id} of {} bytes is too short", data.len()));
    let u32_at = |i: usize| data.get(i..i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(short);
    Ok(Some(match type_id {
        // The top bit of a chunk size is reserved as 0.
        1 => RtmpMessage::SetChunkSize { size: u32_at(0)? & 0x7FFF_FFFF },
        2 => RtmpMessage::Abort { stream_id: u32_at(0)? },
        3 => RtmpMessage::Acknowledgement { sequence_number: u32_at(0)? },
        4 => {
            let event = data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(short)?;
            // PingRequest (6) needs an answer; PingResponse (7) answers our pings (the round
            // trip in the stats). The other events mean nothing to a publisher.
            let event_type = match event {
                6 => UserControlEventType::PingRequest,
                7 => UserControlEventType::PingResponse,
                _ => return Ok(None),
            };
            RtmpMessage::UserControl {
                event_type,
                stream_id: None,
                buffer_length: None,
                timestamp: Some(RtmpTimestamp::new(u32_at(2)?)),
            }
        }
        5 => RtmpMessage::WindowAcknowledgement { size: u32_at(0)? },
        _ => {
            u32_at(0)?;
            // SetPeerBandwidth: see handle_control.
            return Ok(None);
        }
    }))
}

/// Extends a 32-bit counter that wraps at 4 GiB to 64 bits, given the last extended value. Only a
/// drop from the top quarter to the bottom quarter counts as a wrap, so a server that reports
/// something else than a running total cannot inflate the figure by 4 GiB per message.
fn unwrap_u32(prev: u64, next: u32) -> u64 {
    let high = prev & !0xFFFF_FFFF;
    let prev_low = prev as u32;
    if prev_low >= 0xC000_0000 && next < 0x4000_0000 {
        high + (1 << 32) + next as u64
    } else {
        high + next as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metadata::{AudioMeta, VideoCodec, VideoMeta};
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::sessions::{
        PublishMode, ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
    };

    const KEY: &str = "secretkey?sig=abc";

    fn url() -> RtmpUrl {
        RtmpUrl::parse(&format!("rtmp://127.0.0.1:1935/live/{KEY}")).unwrap()
    }

    fn metadata() -> StreamMetadata {
        StreamMetadata {
            video: Some(VideoMeta {
                codec: VideoCodec::H264,
                width: 640,
                height: 360,
                framerate: 25.0,
                bitrate_kbps: 800,
            }),
            audio: Some(AudioMeta { sample_rate: 44100, channels: 2, bitrate_kbps: 96 }),
            encoder: "kitepush test".into(),
        }
    }

    fn body(len: usize, seed: u8) -> Bytes {
        Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<_>>())
    }

    fn status(level: &str, code: &str, description: &str) -> Amf0Value {
        let mut p = HashMap::new();
        for (k, v) in [("level", level), ("code", code), ("description", description)] {
            p.insert(k.to_string(), Amf0Value::Utf8String(v.to_string()));
        }
        Amf0Value::Object(p)
    }

    /// Peer scripted by hand on rml_rtmp's server handshake and chunk_io; keeps every message the
    /// client sent, in order.
    struct RawServer {
        hs: Option<Handshake>,
        ser: ChunkSerializer,
        de: ChunkDeserializer,
        got: Vec<MessagePayload>,
    }

    impl RawServer {
        fn new() -> Self {
            RawServer {
                hs: Some(Handshake::new(PeerType::Server)),
                ser: ChunkSerializer::new(),
                de: ChunkDeserializer::new(),
                got: Vec::new(),
            }
        }

        /// Takes client bytes; returns the handshake bytes the server answers with.
        fn receive(&mut self, bytes: &[u8]) -> Vec<u8> {
            let mut rest = bytes.to_vec();
            let mut reply = Vec::new();
            if let Some(hs) = self.hs.as_mut() {
                match hs.process_bytes(bytes).unwrap() {
                    HandshakeProcessResult::InProgress { response_bytes } => return response_bytes,
                    HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                        reply = response_bytes;
                        rest = remaining_bytes;
                        self.hs = None;
                    }
                }
            }
            let mut input = &rest[..];
            while let Some(m) = self.de.get_next_message(input).unwrap() {
                input = &[];
                if let Ok(RtmpMessage::SetChunkSize { size }) = m.to_rtmp_message() {
                    self.de.set_max_chunk_size(size as usize).unwrap();
                }
                self.got.push(m);
            }
            reply
        }

        fn send(&mut self, msg: RtmpMessage, stream_id: u32) -> Vec<u8> {
            let p = msg.into_message_payload(RtmpTimestamp::new(0), stream_id).unwrap();
            self.ser.serialize(&p, false, false).unwrap().bytes
        }

        fn command(&mut self, name: &str, tid: f64, args: Vec<Amf0Value>, sid: u32) -> Vec<u8> {
            self.send(
                RtmpMessage::Amf0Command {
                    command_name: name.into(),
                    transaction_id: tid,
                    command_object: Amf0Value::Null,
                    additional_arguments: args,
                },
                sid,
            )
        }

        /// Commands received, decoded: (name, transaction id, object, args, message stream id).
        fn commands(&self) -> Vec<(String, f64, Amf0Value, Vec<Amf0Value>, u32)> {
            self.got
                .iter()
                .filter(|m| m.type_id == 20)
                .map(|m| match m.to_rtmp_message().unwrap() {
                    RtmpMessage::Amf0Command { command_name, transaction_id, command_object, additional_arguments } => {
                        (command_name, transaction_id, command_object, additional_arguments, m.message_stream_id)
                    }
                    _ => unreachable!(),
                })
                .collect()
        }

        fn tid_of(&self, name: &str) -> f64 {
            self.commands().into_iter().find(|c| c.0 == name).unwrap_or_else(|| panic!("{name} not sent")).1
        }
    }

    /// Moves all pending client output to the server, and the server's handshake replies back.
    fn flush(s: &mut PublishSession, srv: &mut RawServer, ev: &mut Vec<SessionEvent>) {
        loop {
            let out = s.pending_output().to_vec();
            if out.is_empty() {
                break;
            }
            s.consume_output(out.len());
            let reply = srv.receive(&out);
            if !reply.is_empty() {
                s.handle_input(&reply, ev).unwrap();
            }
        }
    }

    /// Handshake done and connect received by the server.
    fn connecting() -> (PublishSession, RawServer, Vec<SessionEvent>) {
        let mut s = PublishSession::new(&url(), metadata()).unwrap();
        let mut srv = RawServer::new();
        let mut ev = Vec::new();
        assert_eq!(s.state(), SessionState::Handshaking);
        flush(&mut s, &mut srv, &mut ev);
        assert_eq!(s.state(), SessionState::Connecting);
        (s, srv, ev)
    }

    #[test]
    fn hevc_announces_its_fourcc_in_connect() {
        let connect_props = |meta: StreamMetadata| {
            let mut s = PublishSession::new(&url(), meta).unwrap();
            let mut srv = RawServer::new();
            flush(&mut s, &mut srv, &mut Vec::new());
            srv.commands()[0].2.clone().get_object_properties().unwrap()
        };
        let mut meta = metadata();
        assert!(!connect_props(meta.clone()).contains_key("fourCcList"));
        meta.video.as_mut().unwrap().codec = VideoCodec::Hevc;
        assert_eq!(
            connect_props(meta)["fourCcList"],
            Amf0Value::StrictArray(vec![Amf0Value::Utf8String("hvc1".into())])
        );
    }

    fn connect_result(srv: &mut RawServer) -> Vec<u8> {
        let mut props = HashMap::new();
        props.insert("fmsVer".into(), Amf0Value::Utf8String("FMS/3,0,1,123".into()));
        let mut reply = srv.send(
            RtmpMessage::Amf0Command {
                command_name: "_result".into(),
                transaction_id: 1.0,
                command_object: Amf0Value::Object(props),
                additional_arguments: vec![status("status", "NetConnection.Connect.Success", "Connection succeeded.")],
            },
            0,
        );
        reply.extend(srv.command("onBWDone", 0.0, vec![Amf0Value::Number(8192.0)], 0));
        reply
    }

    /// Up to the publish command (stream id 1) received by the server.
    fn publish_sent() -> (PublishSession, RawServer, Vec<SessionEvent>) {
        let (mut s, mut srv, mut ev) = connecting();
        let r = connect_result(&mut srv);
        s.handle_input(&r, &mut ev).unwrap();
        flush(&mut s, &mut srv, &mut ev);
        let tid = srv.tid_of("createStream");
        let r = srv.command("_result", tid, vec![Amf0Value::Number(1.0)], 0);
        s.handle_input(&r, &mut ev).unwrap();
        flush(&mut s, &mut srv, &mut ev);
        (s, srv, ev)
    }

    fn publishing() -> (PublishSession, RawServer, Vec<SessionEvent>) {
        let (mut s, mut srv, mut ev) = publish_sent();
        let r = srv.command("onStatus", 0.0, vec![status("status", "NetStream.Publish.Start", "Start publishing")], 1);
        s.handle_input(&r, &mut ev).unwrap();
        flush(&mut s, &mut srv, &mut ev);
        assert_eq!(s.state(), SessionState::Publishing);
        (s, srv, ev)
    }

    #[test]
    fn full_command_sequence_in_order_then_media() {
        let (mut s, mut srv, ev) = publishing();
        assert_eq!(ev, vec![SessionEvent::Connected, SessionEvent::Publishing]);
        s.send_video(0, &[], &body(500, 1)).unwrap();
        s.send_audio(0, &[], &body(20, 2)).unwrap();
        s.send_video(40, &[], &body(300, 3)).unwrap();
        s.send_audio(23, &[], &body(21, 4)).unwrap();
        let mut ev = Vec::new();
        flush(&mut s, &mut srv, &mut ev);

        let kinds: Vec<String> = srv
            .got
            .iter()
            .map(|m| match m.to_rtmp_message().unwrap() {
                RtmpMessage::Amf0Command { command_name, .. } => command_name,
                other => format!("type{}", other.get_message_type_id()),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "connect",
                "type1",
                "type5",
                "releaseStream",
                "FCPublish",
                "createStream",
                "publish",
                "type18",
                "type9",
                "type8",
                "type9",
                "type8"
            ]
        );

        let cmds = srv.commands();
        let (_, tid, obj, _, sid) = &cmds[0];
        assert_eq!((*tid, *sid), (1.0, 0));
        let props = obj.clone().get_object_properties().unwrap();
        let str_prop = |k: &str| props[k].clone().get_string().unwrap();
        assert_eq!(str_prop("app"), "live");
        assert_eq!(str_prop("tcUrl"), "rtmp://127.0.0.1:1935/live");
        assert_eq!(str_prop("flashVer"), FLASH_VER);
        assert_eq!(str_prop("type"), "nonprivate");
        assert!(!props.contains_key("swfUrl"));
        let key = Amf0Value::Utf8String(KEY.into());
        assert_eq!(cmds[1].3, vec![key.clone()]);
        assert_eq!(cmds[2].3, vec![key.clone()]);
        assert_eq!(cmds[4].3, vec![key, Amf0Value::Utf8String("live".into())]);
        assert_eq!(cmds[4].4, 1, "publish goes on the created stream");
        assert_eq!(srv.got[1].to_rtmp_message().unwrap(), RtmpMessage::SetChunkSize { size: 4096 });
        assert_eq!(srv.got[2].to_rtmp_message().unwrap(), RtmpMessage::WindowAcknowledgement { size: 56_000 });

        let data = &srv.got[7];
        assert_eq!(data.message_stream_id, 1);
        assert_eq!(&data.data[..], &metadata().set_data_frame_payload()[..]);

        let media: Vec<_> =
            srv.got[8..].iter().map(|m| (m.type_id, m.timestamp.value, m.message_stream_id, m.data.clone())).collect();
        assert_eq!(
            media,
            vec![(9, 0, 1, body(500, 1)), (8, 0, 1, body(20, 2)), (9, 40, 1, body(300, 3)), (8, 23, 1, body(21, 4)),]
        );
        assert!(!format!("{s:?}").contains("secret"));
    }

    /// rml_rtmp's own ServerSession as a realistic peer: it must see a normal publisher.
    struct RmlServer {
        hs: Option<Handshake>,
        session: ServerSession,
        initial: Vec<u8>,
        accept_publish: bool,
        events: Vec<ServerSessionEvent>,
    }

    impl RmlServer {
        fn new(accept_publish: bool) -> Self {
            let (session, results) = ServerSession::new(ServerSessionConfig::new()).unwrap();
            let mut server = RmlServer {
                hs: Some(Handshake::new(PeerType::Server)),
                session,
                initial: Vec::new(),
                accept_publish,
                events: Vec::new(),
            };
            server.initial = server.collect(results);
            server
        }

        fn collect(&mut self, results: Vec<ServerSessionResult>) -> Vec<u8> {
            let mut out = Vec::new();
            for r in results {
                match r {
                    ServerSessionResult::OutboundResponse(p) => out.extend(p.bytes),
                    ServerSessionResult::RaisedEvent(e) => {
                        let more = match &e {
                            ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                                self.session.accept_request(*request_id).unwrap()
                            }
                            ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                                if self.accept_publish {
                                    self.session.accept_request(*request_id).unwrap()
                                } else {
                                    self.session
                                        .reject_request(
                                            *request_id,
                                            "NetStream.Publish.BadName",
                                            "Stream already publishing",
                                        )
                                        .unwrap()
                                }
                            }
                            _ => Vec::new(),
                        };
                        self.events.push(e);
                        let more = self.collect(more);
                        out.extend(more);
                    }
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
            out
        }

        fn receive(&mut self, bytes: &[u8]) -> Vec<u8> {
            let mut rest = bytes.to_vec();
            let mut reply = Vec::new();
            if let Some(hs) = self.hs.as_mut() {
                match hs.process_bytes(bytes).unwrap() {
                    HandshakeProcessResult::InProgress { response_bytes } => return response_bytes,
                    HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                        reply = response_bytes;
                        reply.append(&mut self.initial);
                        rest = remaining_bytes;
                        self.hs = None;
                    }
                }
            }
            let results = self.session.handle_input(&rest).unwrap();
            reply.extend(self.collect(results));
            reply
        }
    }

    fn pump_rml(s: &mut PublishSession, srv: &mut RmlServer, ev: &mut Vec<SessionEvent>) -> Result<()> {
        loop {
            let out = s.pending_output().to_vec();
            if out.is_empty() {
                return Ok(());
            }
            s.consume_output(out.len());
            let reply = srv.receive(&out);
            if !reply.is_empty() {
                s.handle_input(&reply, ev)?;
            }
        }
    }

    #[test]
    fn publishes_to_rml_server_session_and_unpublishes() {
        let mut s = PublishSession::new(&url(), metadata()).unwrap();
        let mut srv = RmlServer::new(true);
        let mut ev = Vec::new();
        pump_rml(&mut s, &mut srv, &mut ev).unwrap();
        assert_eq!(s.state(), SessionState::Publishing);
        assert_eq!(ev, vec![SessionEvent::Connected, SessionEvent::Publishing]);
        s.send_video(0, &[], &body(9000, 5)).unwrap();
        s.send_audio(10, &[], &body(30, 6)).unwrap();
        pump_rml(&mut s, &mut srv, &mut ev).unwrap();
        s.unpublish().unwrap();
        assert_eq!(s.state(), SessionState::Closed);
        pump_rml(&mut s, &mut srv, &mut ev).unwrap();

        let names: Vec<String> = srv
            .events
            .iter()
            .map(|e| match e {
                ServerSessionEvent::UnhandleableAmf0Command { command_name, .. } => command_name.clone(),
                other => format!("{other:?}").split([' ', '{']).next().unwrap().to_string(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "ConnectionRequested",
                "releaseStream",
                "FCPublish",
                "PublishStreamRequested",
                "StreamMetadataChanged",
                "VideoDataReceived",
                "AudioDataReceived",
                "FCUnpublish",
                "PublishStreamFinished"
            ]
        );
        match &srv.events[3] {
            ServerSessionEvent::PublishStreamRequested { app_name, stream_key, mode, .. } => {
                assert_eq!((app_name.as_str(), stream_key.as_str()), ("live", KEY));
                assert_eq!(*mode, PublishMode::Live);
            }
            e => panic!("{e:?}"),
        }
        match &srv.events[4] {
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                assert_eq!(metadata.video_width, Some(640));
                assert_eq!(metadata.audio_sample_rate, Some(44100));
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(&srv.events[5],
            ServerSessionEvent::VideoDataReceived { data, timestamp, .. }
                if *data == body(9000, 5) && timestamp.value == 0));
        assert!(matches!(&srv.events[6],
            ServerSessionEvent::AudioDataReceived { data, timestamp, .. }
                if *data == body(30, 6) && timestamp.value == 10));
        // After unpublish the session refuses media and unpublish is a no-op.
        assert!(matches!(s.send_video(50, &[], &body(10, 0)), Err(Error::InvalidState(_))));
        s.unpublish().unwrap();
        assert!(s.pending_output().is_empty());
    }

    #[test]
    fn rml_server_rejecting_publish_is_publish_rejected() {
        let mut s = PublishSession::new(&url(), metadata()).unwrap();
        let mut srv = RmlServer::new(false);
        let mut ev = Vec::new();
        let e = pump_rml(&mut s, &mut srv, &mut ev).unwrap_err();
        assert_eq!(
            e,
            Error::PublishRejected {
                code: "NetStream.Publish.BadName".into(),
                description: "Stream already publishing".into()
            }
        );
        assert!(e.is_retryable());
        assert_eq!(s.state(), SessionState::Closed);
    }

    #[test]
    fn a_server_quoting_the_stream_key_does_not_leak_it() {
        let leaks = |s: &str| s.contains("secretkey") || s.contains("sig=abc");
        // In a publish rejection.
        let (mut s, mut srv, mut ev) = publish_sent();
        let echo = format!("Stream {KEY} is already publishing; {}", KEY.split('?').next().unwrap());
        let r = srv.command("onStatus", 0.0, vec![status("error", "NetStream.Publish.BadName", &echo)], 1);
        let e = s.handle_input(&r, &mut ev).unwrap_err();
        assert!(matches!(&e, Error::PublishRejected { code, .. } if code == "NetStream.Publish.BadName"), "{e:?}");
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!leaks(&text) && text.contains("***"), "{text}");
        }
        // In an informational status, which becomes an event the worker logs.
        let (mut s, mut srv, mut ev) = publishing();
        let r = srv.command("onStatus", 0.0, vec![status("status", "NetStream.Info", &format!("hello {KEY}"))], 1);
        s.handle_input(&r, &mut ev).unwrap();
        let status_text = ev.iter().find_map(|e| match e {
            SessionEvent::Status { code, description } => Some(format!("{code} {description}")),
            _ => None,
        });
        assert!(status_text.as_deref().is_some_and(|t| !leaks(t) && t.contains("hello ***")), "{ev:?}");
        // In a rejected connect.
        let (mut s, mut srv, mut ev) = connecting();
        let tid = srv.tid_of("connect");
        let r = srv.command("_error", tid, vec![status("error", "NetConnection.Connect.Rejected", &echo)], 0);
        let e = s.handle_input(&r, &mut ev).unwrap_err();
        assert!(!leaks(&e.to_string()), "{e}");
    }

    #[test]
    fn bad_name_on_status_is_publish_rejected_not_a_hang() {
        let (mut s, mut srv, mut ev) = publish_sent();
        let r =
            srv.command("onStatus", 0.0, vec![status("error", "NetStream.Publish.BadName", "Already publishing")], 1);
        let e = s.handle_input(&r, &mut ev).unwrap_err();
        assert!(matches!(&e, Error::PublishRejected { code, .. } if code == "NetStream.Publish.BadName"), "{e:?}");
        assert_eq!(s.state(), SessionState::Closed);
        assert!(matches!(s.handle_input(&[0], &mut ev), Err(Error::InvalidState(_))));
        assert!(s.send_video(0, &[], &body(10, 0)).is_err());

        // "busy" in a status-level message is a rejection too (some CDNs).
        let (mut s, mut srv, mut ev) = publish_sent();
        let r = srv.command("onStatus", 0.0, vec![status("status", "NetStream.Publish.Failed", "Server busy")], 1);
        assert!(matches!(s.handle_input(&r, &mut ev), Err(Error::PublishRejected { .. })));

        // _error to createStream.
        let (mut s, mut srv, mut ev) = connecting();
        let r = connect_result(&mut srv);
        s.handle_input(&r, &mut ev).unwrap();
        flush(&mut s, &mut srv, &mut ev);
        let tid = srv.tid_of("createStream");
        let r = srv.command("_error", tid, vec![status("error", "X", "no")], 0);
        assert!(matches!(s.handle_input(&r, &mut ev), Err(Error::PublishRejected { .. })));
    }

    #[test]
    fn errors_to_release_stream_and_fc_publish_are_ignored() {
        let (mut s, mut srv, mut ev) = connecting();
        let r = connect_result(&mut srv);
        s.handle_input(&r, &mut ev).unwrap();
        flush(&mut s, &mut srv, &mut ev);
        let mut r = Vec::new();
        for name in ["releaseStream", "FCPublish"] {
            let tid = srv.tid_of(name);
            r.extend(srv.command(
                "_error",
                tid,
                vec![status("error", "NetConnection.Call.Failed", "Method not found")],
                0,
            ));
        }
        r.extend(srv.command("onFCPublish", 0.0, vec![], 0));
        let tid = srv.tid_of("createStream");
        r.extend(srv.command("_result", tid, vec![Amf0Value::Number(7.0)], 0));
        s.handle_input(&r, &mut ev).unwrap();
        flush(&mut s, &mut srv, &mut ev);
        let publish = srv.commands().into_iter().find(|c| c.0 == "publish");
        assert_eq!(publish.unwrap().4, 7);
    }

    #[test]
    fn connect_rejection_and_auth_failure() {
        let (mut s, mut srv, mut ev) = connecting();
        let r = srv.command(
            "_error",
            1.0,
            vec![status("error", "NetConnection.Connect.Rejected", "Connection rejected")],
            0,
        );
        let e = s.handle_input(&r, &mut ev).unwrap_err();
        assert!(matches!(&e, Error::ConnectRejected { code, .. } if code == "NetConnection.Connect.Rejected"), "{e:?}");
        assert!(!e.is_retryable());

        let (mut s, mut srv, mut ev) = connecting();
        let r = srv.command(
            "_error",
            1.0,
            vec![status(
                "error",
                "NetConnection.Connect.Rejected",
                "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : ",
            )],
            0,
        );
        assert!(matches!(s.handle_input(&r, &mut ev), Err(Error::Auth(_))));
        assert!(ev.is_empty());
    }

    #[test]
    fn close_command_and_connect_closed_are_io_errors() {
        let (mut s, mut srv, mut ev) = publishing();
        let r = srv.command("close", 0.0, vec![], 0);
        assert!(matches!(s.handle_input(&r, &mut ev), Err(Error::Io(_))));
        let (mut s, mut srv, mut ev) = publishing();
        let r = srv.command("onStatus", 0.0, vec![status("status", "NetConnection.Connect.Closed", "bye")], 0);
        assert!(matches!(s.handle_input(&r, &mut ev), Err(Error::Io(_))));
    }

    #[test]
    fn ping_window_ack_and_server_acknowledgement() {
        let (mut s, mut srv, _) = publishing();
        let mut ev = Vec::new();
        let mut r = srv.send(
            RtmpMessage::UserControl {
                event_type: UserControlEventType::PingRequest,
                stream_id: None,
                buffer_length: None,
                timestamp: Some(RtmpTimestamp::new(123_456)),
            },
            0,
        );
        r.extend(srv.send(
            RtmpMessage::UserControl {
                event_type: UserControlEventType::PingResponse,
                stream_id: None,
                buffer_length: None,
                timestamp: Some(RtmpTimestamp::new(4242)),
            },
            0,
        ));
        r.extend(srv.send(RtmpMessage::WindowAcknowledgement { size: 5000 }, 0));
        r.extend(srv.send(RtmpMessage::Acknowledgement { sequence_number: 777 }, 0));
        r.extend(srv.command("onStatus", 0.0, vec![status("status", "NetStream.Publish.Idle", "idle")], 1));
        s.handle_input(&r, &mut ev).unwrap();
        assert_eq!(
            ev,
            vec![
                SessionEvent::PingResponse { timestamp_ms: 4242 },
                SessionEvent::Acknowledged { bytes: 777 },
                SessionEvent::Status { code: "NetStream.Publish.Idle".into(), description: "idle".into() }
            ]
        );
        let before = srv.got.len();
        flush(&mut s, &mut srv, &mut ev);
        assert_eq!(
            srv.got[before].to_rtmp_message().unwrap(),
            RtmpMessage::UserControl {
                event_type: UserControlEventType::PingResponse,
                stream_id: None,
                buffer_length: None,
                timestamp: Some(RtmpTimestamp::new(123_456)),
            }
        );
        // Handshake (3073 bytes) + the above is still under the window: no ack yet.
        assert!(s.bytes_received() < 5000);
        assert!(!srv.got.iter().any(|m| m.type_id == 3));
        // Data messages the publisher ignores push the total past the window.
        let filler = srv.send(RtmpMessage::Amf0Data { values: vec![Amf0Value::Utf8String("x".repeat(3000))] }, 0);
        s.handle_input(&filler, &mut ev).unwrap();
        let total = s.bytes_received();
        assert!(total >= 5000);
        flush(&mut s, &mut srv, &mut ev);
        let acks: Vec<_> = srv
            .got
            .iter()
            .filter_map(|m| match m.to_rtmp_message().unwrap() {
                RtmpMessage::Acknowledgement { sequence_number } => Some(sequence_number),
                _ => None,
            })
            .collect();
        assert_eq!(acks, vec![total as u32], "running total, once per window");
        // The second ack carries the running total too, not the bytes since the first.
        s.handle_input(&filler, &mut ev).unwrap();
        s.handle_input(&filler, &mut ev).unwrap();
        let total2 = s.bytes_received();
        flush(&mut s, &mut srv, &mut ev);
        let last_ack = srv.got.iter().rev().find_map(|m| match m.to_rtmp_message() {
            Ok(RtmpMessage::Acknowledgement { sequence_number }) => Some(sequence_number),
            _ => None,
        });
        assert_eq!(last_ack, Some(total2 as u32));
    }

    #[test]
    fn acknowledgement_counter_unwraps_past_4_gib() {
        assert_eq!(unwrap_u32(0, 10), 10);
        assert_eq!(unwrap_u32(0xFFFF_FF00, 0x100), (1 << 32) + 0x100);
        assert_eq!(unwrap_u32((1 << 32) + 5, 9), (1 << 32) + 9);
        // A small step back is not a wrap.
        assert_eq!(unwrap_u32(5000, 4000), 4000);
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// Feeds `input` in random pieces; returns the first error.
    fn feed_pieces(s: &mut PublishSession, input: &[u8], rng: &mut Rng) -> Result<()> {
        let mut ev = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(700));
            s.handle_input(&rest[..n], &mut ev)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    #[test]
    fn garbage_truncated_and_oversized_input_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (_, mut srv, _) = publishing();
        let valid: Vec<u8> = [
            srv.command("onStatus", 0.0, vec![status("status", "NetStream.Publish.Idle", "x")], 1),
            srv.send(RtmpMessage::SetChunkSize { size: 300 }, 0),
            srv.send(RtmpMessage::WindowAcknowledgement { size: 100 }, 0),
            srv.command("onBWDone", 0.0, vec![Amf0Value::Number(1.0)], 0),
        ]
        .concat();

        for round in 0..300 {
            // Raw garbage from the first byte: the handshake must refuse it or wait.
            let mut fresh = PublishSession::new(&url(), metadata()).unwrap();
            let n = rng.below(4000);
            let garbage = rng.bytes(n);
            if let Err(e) = feed_pieces(&mut fresh, &garbage, &mut rng) {
                assert!(matches!(e, Error::Protocol(_)), "round {round}: {e:?}");
            }

            // Garbage after a good handshake and publish.
            let (mut s, _, _) = publishing();
            let n = 1 + rng.below(3000);
            let garbage = rng.bytes(n);
            if let Err(e) = feed_pieces(&mut s, &garbage, &mut rng) {
                assert!(matches!(e, Error::Protocol(_)), "round {round}: {e:?}");
            }

            // Valid messages cut short and followed by garbage, or with a few bytes flipped:
            // any outcome but a panic is fine.
            let (mut s, _, _) = publishing();
            let mut input = valid[..rng.below(valid.len())].to_vec();
            if round % 2 == 0 {
                let n = rng.below(500);
                input.extend(rng.bytes(n));
            } else {
                input = valid.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(input.len());
                    input[i] = rng.next() as u8;
                }
            }
            let _ = feed_pieces(&mut s, &input, &mut rng);
        }

        // A declared 16 MiB message is refused on its header, before any payload arrives.
        let (mut s, _, mut ev) = publishing();
        let huge = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
        assert!(matches!(s.handle_input(&huge, &mut ev), Err(Error::Protocol(_))));
        // A SetChunkSize of zero would make the reader spin on empty chunks.
        let (mut s, mut srv, mut ev) = publishing();
        let mut zero = srv.send(RtmpMessage::SetChunkSize { size: 1 }, 0);
        let n = zero.len();
        zero[n - 4..].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(s.handle_input(&zero, &mut ev), Err(Error::Protocol(_))));
        // createStream answered without a stream id.
        let (mut s, mut srv, mut ev) = connecting();
        let r = connect_result(&mut srv);
        s.handle_input(&r, &mut ev).unwrap();
        flush(&mut s, &mut srv, &mut ev);
        let tid = srv.tid_of("createStream");
        let r = srv.command("_result", tid, vec![Amf0Value::Utf8String("1".into())], 0);
        assert!(matches!(s.handle_input(&r, &mut ev), Err(Error::Protocol(_))));
    }

    #[test]
    fn chunk_size_4096_is_announced_and_used() {
        let (mut s, mut srv, _) = publishing();
        assert!(s.pending_output().is_empty());
        let b = body(10 * 1024, 9);
        s.send_video(40, &[], &b.clone()).unwrap();
        let out = s.pending_output().to_vec();
        // Type 0 header on chunk stream 4 (12 bytes), then two type 3 continuation headers.
        assert_eq!(out.len(), 12 + 10 * 1024 + 2);
        assert_eq!(out[0], 0x04);
        assert_eq!(out[12 + 4096], 0xC4);
        assert_eq!(out[12 + 4096 + 1 + 4096], 0xC4);
        // Partial writes: the caller may consume any prefix, in pieces.
        s.consume_output(100);
        assert_eq!(s.pending_output().len(), 12 + 10 * 1024 + 2 - 100);
        let mut wire = out[..100].to_vec();
        wire.extend_from_slice(s.pending_output());
        s.consume_output(usize::MAX);
        assert!(s.pending_output().is_empty());
        srv.receive(&wire);
        let m = srv.got.last().unwrap();
        assert_eq!((m.type_id, m.timestamp.value), (9, 40));
        assert_eq!(m.data, b);
    }

    #[test]
    fn extended_timestamps_and_u32_wrap() {
        let (mut s, mut srv, mut ev) = publishing();
        let t = 0x1234_5678;
        s.send_video(t, &[], &body(10 * 1024, 1)).unwrap();
        s.send_audio(t, &[], &body(10, 2)).unwrap();
        s.send_video(t + 33, &[], &body(700, 3)).unwrap();
        s.send_audio(t + 23, &[], &body(10, 4)).unwrap();
        s.send_video(t + 66, &[], &body(700, 5)).unwrap();
        s.send_video(0xFFFF_FFF0, &[], &body(700, 6)).unwrap();
        s.send_video(0x10, &[], &body(700, 7)).unwrap();
        flush(&mut s, &mut srv, &mut ev);
        let media: Vec<_> = srv
            .got
            .iter()
            .filter(|m| m.type_id == 8 || m.type_id == 9)
            .map(|m| (m.type_id, m.timestamp.value, m.data.len()))
            .collect();
        assert_eq!(
            media,
            vec![
                (9, t, 10 * 1024),
                (8, t, 10),
                (9, t + 33, 700),
                (8, t + 23, 10),
                (9, t + 66, 700),
                (9, 0xFFFF_FFF0, 700),
                (9, 0x10, 700),
            ]
        );
    }
}
