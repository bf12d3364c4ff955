//! The RTMP publish session: a sans-IO state machine from the handshake to `deleteStream`.
//!
//! Bytes read from the socket go in through [`PublishSession::handle_input`]; bytes to write come
//! out of [`PublishSession::pending_output`]. No sockets, threads or clocks here.
//!
//! Outbound it uses rml_rtmp's `Handshake` and one `ChunkSerializer` (header compression means every
//! packet must be written in the order it was serialized). Inbound it uses its own bounded chunk
//! reader and AMF0 decoder (see `chunk_reader` and `amf` for why), and rml_rtmp's message parsers
//! for the fixed-size control messages.
//!
//! Command sequence (as OBS): connect → [SetChunkSize, WindowAckSize, releaseStream, FCPublish,
//! createStream] → publish(key, "live") → `@setDataFrame onMetaData` → media; on stop
//! FCUnpublish → deleteStream.
//!
//! Chunk stream ids are chosen by rml_rtmp's serializer from the message type: protocol control
//! 2, data (`@setDataFrame`) 3, video 4, audio 5, commands 6.

mod amf;
mod chunk_reader;

use crate::core::metadata::StreamMetadata;
use crate::core::url::RtmpUrl;
use crate::error::{Error, Result};
use amf::Command;
use bytes::Bytes;
use chunk_reader::ChunkReader;
use rml_amf0::Amf0Value;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage, UserControlEventType};
use rml_rtmp::time::RtmpTimestamp;
use std::collections::HashMap;

/// Sent as `flashVer` in `connect`; the FMLE prefix makes some CDNs treat us as an encoder.
pub const FLASH_VER: &str = "FMLE/3.0 (compatible; kitepush)";
/// Outbound chunk size announced after connect (OBS uses 4096): fewer chunk headers per frame.
pub const OUT_CHUNK_SIZE: u32 = 4096;
/// Window acknowledgement size announced to the server (as OBS).
pub const WINDOW_ACK_SIZE: u32 = 2_500_000;

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
    state: SessionState,
    /// Closed by an error (as opposed to a clean unpublish): further input is refused.
    failed: bool,
    handshake: Option<Handshake>,
    serializer: ChunkSerializer,
    reader: ChunkReader,
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
        let obj = std::iter::once(&c.object)
            .chain(&c.args)
            .find_map(|v| match v {
                Amf0Value::Object(p) => Some(p),
                _ => None,
            });
        let get = |k: &str| match obj.and_then(|p| p.get(k)) {
            Some(Amf0Value::Utf8String(s)) => s.clone(),
            _ => String::new(),
        };
        StatusInfo {
            level: get("level"),
            code: get("code"),
            description: get("description"),
        }
    }

    fn publish_rejected(self) -> Error {
        Error::PublishRejected {
            code: self.code,
            description: self.description,
        }
    }

    /// Auth failures are told apart by the description only: servers (Adobe `authmod`, Wowza,
    /// CDNs) all answer `NetConnection.Connect.Rejected` with a free-text reason.
    fn connect_rejected(self) -> Error {
        if self.description.to_ascii_lowercase().contains("auth") {
            Error::Auth(format!("{}: {}", self.code, self.description))
        } else {
            Error::ConnectRejected {
                code: self.code,
                description: self.description,
            }
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
    /// Queues C0+C1.
    pub fn new(url: &RtmpUrl, metadata: StreamMetadata) -> Result<Self> {
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 = handshake
            .generate_outbound_p0_and_p1()
            .map_err(|e| Error::Internal(format!("handshake: {e}")))?;
        log::debug!("rtmp session to {} starting", url.redacted());
        Ok(PublishSession {
            url: url.clone(),
            metadata: Bytes::from(metadata.set_data_frame_payload()),
            state: SessionState::Handshaking,
            failed: false,
            handshake: Some(handshake),
            serializer: ChunkSerializer::new(),
            reader: ChunkReader::new(),
            out: c0c1,
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
        r
    }

    fn process(&mut self, bytes: &[u8], events: &mut Vec<SessionEvent>) -> Result<()> {
        let mut rest = bytes;
        let leftover;
        if let Some(hs) = self.handshake.as_mut() {
            match hs
                .process_bytes(bytes)
                .map_err(|e| proto(format_args!("handshake: {e}")))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    return Ok(());
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
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
        while let Some(msg) = self.reader.next_message()? {
            self.handle_message(msg, events)?;
            if self.state == SessionState::Closed {
                return Ok(());
            }
        }
        if self.window_ack > 0 && self.bytes_received - self.last_ack_sent >= self.window_ack as u64
        {
            self.last_ack_sent = self.bytes_received;
            // The spec's sequence number is the running total, modulo 2^32.
            self.send_control(RtmpMessage::Acknowledgement {
                sequence_number: self.bytes_received as u32,
            })?;
        }
        Ok(())
    }

    /// Bytes waiting to be written, in order. The caller writes a prefix and calls consume_output(n).
    pub fn pending_output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    pub fn consume_output(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
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

    /// Only in Publishing. `body` is a complete FLV video tag body (built by crate::core::flv).
    pub fn send_video(&mut self, timestamp_ms: u32, body: Bytes) -> Result<()> {
        self.send_media(TYPE_VIDEO, timestamp_ms, body)
    }

    /// Only in Publishing. `body` is a complete FLV audio tag body (built by crate::core::flv).
    pub fn send_audio(&mut self, timestamp_ms: u32, body: Bytes) -> Result<()> {
        self.send_media(TYPE_AUDIO, timestamp_ms, body)
    }

    /// FCUnpublish + deleteStream queued; state -> Closed. No-op when not publishing.
    pub fn unpublish(&mut self) -> Result<()> {
        let (SessionState::Publishing, Some(sid)) = (self.state, self.stream_id) else {
            return Ok(());
        };
        let key = Amf0Value::Utf8String(self.url.stream_key.clone());
        self.send_command("FCUnpublish", 0, Some(Pending::FcUnpublish), vec![key])?;
        self.send_command(
            "deleteStream",
            0,
            Some(Pending::DeleteStream),
            vec![Amf0Value::Number(sid as f64)],
        )?;
        self.state = SessionState::Closed;
        log::debug!("rtmp unpublish queued for {}", self.url.redacted());
        Ok(())
    }

    /// All bytes fed to `handle_input`, handshake included.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    fn send_media(&mut self, type_id: u8, timestamp_ms: u32, body: Bytes) -> Result<()> {
        let (SessionState::Publishing, Some(sid)) = (self.state, self.stream_id) else {
            return Err(Error::InvalidState(
                "media can only be sent while publishing".into(),
            ));
        };
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(timestamp_ms),
            type_id,
            message_stream_id: sid,
            data: body,
        };
        // Compressed headers: media is most of the traffic, and nothing is ever dropped after
        // serialization (dropping happens before, in the send queue).
        let packet = self
            .serializer
            .serialize(&payload, false, false)
            .map_err(|e| Error::InvalidArgument(format!("media message: {e}")))?;
        self.out.extend_from_slice(&packet.bytes);
        Ok(())
    }

    fn send_payload(&mut self, payload: &MessagePayload) -> Result<()> {
        // Control and command messages are rare: full headers cost little and some servers are
        // picky about compressed headers early in the session.
        let packet = self
            .serializer
            .serialize(payload, true, false)
            .map_err(|e| Error::Internal(format!("serialize: {e}")))?;
        self.out.extend_from_slice(&packet.bytes);
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
        self.send_command_with(
            "connect",
            0,
            Some(Pending::Connect),
            Amf0Value::Object(props),
            vec![],
        )
    }

    fn handle_message(
        &mut self,
        msg: MessagePayload,
        events: &mut Vec<SessionEvent>,
    ) -> Result<()> {
        match msg.type_id {
            TYPE_COMMAND_AMF0 | TYPE_COMMAND_AMF3 => {
                let mut data = &msg.data[..];
                // AMF3 command messages start with a format byte, then plain AMF0.
                if msg.type_id == TYPE_COMMAND_AMF3 && data.first() == Some(&0) {
                    data = &data[1..];
                }
                let cmd = amf::decode_command(data)?;
                self.handle_command(cmd, events)
            }
            1..=6 => match msg.to_rtmp_message() {
                Ok(m) => self.handle_control(m, events),
                // Unknown user control events (SWF verification, buffer hints) are not ours to
                // answer; a publisher carries on without them.
                Err(e) if msg.type_id == 4 => {
                    log::debug!("rtmp: ignoring user control message: {e}");
                    Ok(())
                }
                Err(e) => Err(proto(format_args!(
                    "control message type {}: {e}",
                    msg.type_id
                ))),
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
                events.push(SessionEvent::Acknowledged {
                    bytes: self.peer_acked,
                });
                Ok(())
            }
            RtmpMessage::WindowAcknowledgement { size } => {
                log::debug!("rtmp: server window ack size {size}");
                self.window_ack = size;
                Ok(())
            }
            RtmpMessage::UserControl {
                event_type: UserControlEventType::PingRequest,
                timestamp,
                ..
            } => self.send_control(RtmpMessage::UserControl {
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
                    "rtmp: _error for {pending:?}: {} {}",
                    info.code,
                    info.description
                );
                match pending {
                    // Optional commands: some servers do not implement them.
                    Some(Pending::ReleaseStream | Pending::FcPublish | Pending::FcUnpublish) => {
                        Ok(())
                    }
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
                log::debug!("rtmp: ignoring command {other}");
                Ok(())
            }
        }
    }

    fn handle_result(
        &mut self,
        pending: Option<Pending>,
        cmd: &Command,
        events: &mut Vec<SessionEvent>,
    ) -> Result<()> {
        match pending {
            Some(Pending::Connect) => {
                self.connected = true;
                events.push(SessionEvent::Connected);
                log::debug!("rtmp: connected to {}", self.url.redacted());
                // The serializer switches to the new size right after producing this packet.
                let packet = self
                    .serializer
                    .set_max_chunk_size(OUT_CHUNK_SIZE, RtmpTimestamp::new(0))
                    .map_err(|e| Error::Internal(format!("set chunk size: {e}")))?;
                self.out.extend_from_slice(&packet.bytes);
                self.send_control(RtmpMessage::WindowAcknowledgement {
                    size: WINDOW_ACK_SIZE,
                })?;
                let key = Amf0Value::Utf8String(self.url.stream_key.clone());
                self.send_command(
                    "releaseStream",
                    0,
                    Some(Pending::ReleaseStream),
                    vec![key.clone()],
                )?;
                self.send_command("FCPublish", 0, Some(Pending::FcPublish), vec![key])?;
                self.send_command("createStream", 0, Some(Pending::CreateStream), vec![])
            }
            Some(Pending::CreateStream) => {
                let id = cmd
                    .args
                    .iter()
                    .chain(std::iter::once(&cmd.object))
                    .find_map(|v| match v {
                        Amf0Value::Number(n) => Some(*n),
                        _ => None,
                    });
                let sid = match id {
                    Some(n) if n >= 1.0 && n <= u32::MAX as f64 && n.fract() == 0.0 => n as u32,
                    other => {
                        return Err(proto(format_args!(
                            "createStream result without a usable stream id: {other:?}"
                        )))
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
        log::debug!(
            "rtmp: onStatus {} {} {}",
            info.level,
            info.code,
            info.description
        );
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
            "NetConnection.Connect.Closed" => Err(Error::Io(format!(
                "server closed the connection: {}",
                info.description
            ))),
            "NetConnection.Connect.Rejected" | "NetConnection.Connect.Failed" => {
                Err(info.connect_rejected())
            }
            _ if info.is_publish_error() => Err(info.publish_rejected()),
            _ => {
                events.push(SessionEvent::Status {
                    code: info.code,
                    description: info.description,
                });
                Ok(())
            }
        }
    }
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
