//! Inbound RTMP chunk stream decoder (server → publisher).
//!
//! Written here instead of using `rml_rtmp::chunk_io::ChunkDeserializer` because that one is not
//! safe against a hostile or broken server: it panics (debug) or wraps (release) on an extended
//! timestamp below 0xFFFFFF and on a new message header that arrives before the previous message
//! on the stream completed, it reserves the declared message length (up to 16 MiB) on the first
//! chunk, and it keeps one partial-payload buffer for all chunk streams, so interleaved chunk
//! streams corrupt each other. This decoder bounds every allocation by bytes actually received
//! and reports every inconsistency as `Error::Protocol`. Completed messages are handed out by
//! swapping buffers with the caller, so a steady stream of small messages (acknowledgements)
//! allocates nothing.

use crate::error::{Error, Result};
use std::collections::HashMap;

/// A publisher only receives small control and command messages; anything larger is an attack or
/// a server bug.
pub(super) const MAX_MESSAGE_LEN: u32 = 1 << 20;
/// Chunk stream state is kept per id; a server needs a handful, so cap what it can make us hold.
const MAX_CHUNK_STREAMS: usize = 64;
/// Total payload bytes of partially received messages across all chunk streams.
const MAX_BUFFERED: usize = 2 * MAX_MESSAGE_LEN as usize;
const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Message buffers up to this capacity are kept for reuse; larger ones (rare) are freed.
const KEEP_CAPACITY: usize = 4096;
const EXTENDED: u32 = 0xFF_FFFF;

/// The header of a completed inbound message; its payload went to the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MessageHeader {
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
}

#[derive(Default)]
struct ChunkStream {
    timestamp: u32,
    /// Timestamp field of the last header (absolute for type 0, delta otherwise): type 3 headers
    /// that start a new message reuse it as their delta.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last type 0/1/2 header used an extended timestamp, so type 3 chunks carry one too.
    extended: bool,
    payload: Vec<u8>,
    in_progress: bool,
}

pub(super) struct ChunkReader {
    chunk_size: usize,
    buf: Vec<u8>,
    pos: usize,
    streams: HashMap<u32, ChunkStream>,
    /// Chunk stream whose chunk payload is being read, and the payload bytes left in that chunk.
    current: Option<(u32, usize)>,
    buffered: usize,
}

fn u24(b: &[u8]) -> u32 {
    (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32
}

fn protocol(msg: String) -> Error {
    Error::Protocol(msg)
}

impl ChunkReader {
    pub fn new() -> Self {
        ChunkReader { chunk_size: 128, buf: Vec::new(), pos: 0, streams: HashMap::new(), current: None, buffered: 0 }
    }

    /// Applies a peer `SetChunkSize`; takes effect from the next chunk header on.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<()> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(protocol(format!("invalid peer chunk size {size}")));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Drops the partial message on `csid` (peer `Abort` message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            self.buffered -= s.payload.len();
            s.payload.clear();
            if s.payload.capacity() > KEEP_CAPACITY {
                s.payload = Vec::new();
            }
            s.in_progress = false;
        }
    }

    /// Returns the next complete message's header and puts its payload in `data` (replacing what
    /// was there), or `None` when more input is needed. Call in a loop and apply control messages
    /// (chunk size) before calling again.
    pub fn next_message(&mut self, data: &mut Vec<u8>) -> Result<Option<MessageHeader>> {
        loop {
            match self.current {
                None => {
                    if !self.read_header()? {
                        return Ok(None);
                    }
                    if let Some(m) = self.take_if_complete(data)? {
                        return Ok(Some(m));
                    }
                }
                Some((csid, left)) => {
                    let avail = self.buf.len() - self.pos;
                    if avail == 0 {
                        return Ok(None);
                    }
                    let take = left.min(avail);
                    self.buffered += take;
                    if self.buffered > MAX_BUFFERED {
                        return Err(protocol("too many partial inbound messages".into()));
                    }
                    let s =
                        self.streams.get_mut(&csid).ok_or_else(|| Error::Internal("chunk stream vanished".into()))?;
                    s.payload.extend_from_slice(&self.buf[self.pos..self.pos + take]);
                    self.pos += take;
                    if take < left {
                        self.current = Some((csid, left - take));
                        return Ok(None);
                    }
                    self.current = None;
                    if let Some(m) = self.take_if_complete_on(csid, data)? {
                        return Ok(Some(m));
                    }
                }
            }
        }
    }

    /// After a header: a zero-length message completes without payload chunks.
    fn take_if_complete(&mut self, data: &mut Vec<u8>) -> Result<Option<MessageHeader>> {
        match self.current {
            Some((csid, 0)) => {
                self.current = None;
                self.take_if_complete_on(csid, data)
            }
            _ => Ok(None),
        }
    }

    fn take_if_complete_on(&mut self, csid: u32, data: &mut Vec<u8>) -> Result<Option<MessageHeader>> {
        let s = self.streams.get_mut(&csid).ok_or_else(|| Error::Internal("chunk stream vanished".into()))?;
        if s.payload.len() < s.length as usize {
            return Ok(None);
        }
        s.in_progress = false;
        std::mem::swap(&mut s.payload, data);
        self.buffered -= data.len();
        s.payload.clear();
        if s.payload.capacity() > KEEP_CAPACITY {
            s.payload = Vec::new();
        }
        Ok(Some(MessageHeader { timestamp: s.timestamp, type_id: s.type_id, stream_id: s.stream_id }))
    }

    /// Parses one chunk header if it is complete; returns false when more bytes are needed.
    fn read_header(&mut self) -> Result<bool> {
        let b = &self.buf[self.pos..];
        if b.is_empty() {
            return Ok(false);
        }
        let fmt = b[0] >> 6;
        let (csid, mut i) = match b[0] & 0x3f {
            0 if b.len() < 2 => return Ok(false),
            0 => (64 + b[1] as u32, 2),
            1 if b.len() < 3 => return Ok(false),
            1 => (64 + b[1] as u32 + 256 * b[2] as u32, 3),
            n => (n as u32, 1),
        };
        let prev = self.streams.get(&csid);
        if prev.is_none() {
            if fmt != 0 {
                return Err(protocol(format!("chunk type {fmt} on chunk stream {csid} without a previous header")));
            }
            if self.streams.len() >= MAX_CHUNK_STREAMS {
                return Err(protocol("too many inbound chunk streams".into()));
            }
        }
        let fixed = [11, 7, 3, 0][fmt as usize];
        if b.len() < i + fixed {
            return Ok(false);
        }
        let field = if fmt < 3 { u24(&b[i..]) } else { 0 };
        let (mut length, mut type_id, mut stream_id) = prev.map_or((0, 0, 0), |p| (p.length, p.type_id, p.stream_id));
        if fmt <= 1 {
            length = u24(&b[i + 3..]);
            type_id = b[i + 6];
        }
        if fmt == 0 {
            stream_id = u32::from_le_bytes([b[i + 7], b[i + 8], b[i + 9], b[i + 10]]);
        }
        i += fixed;
        let extended = if fmt < 3 { field == EXTENDED } else { prev.is_some_and(|p| p.extended) };
        let ext_value = if extended {
            if b.len() < i + 4 {
                return Ok(false);
            }
            let v = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            i += 4;
            Some(v)
        } else {
            None
        };
        let chunk_size = self.chunk_size;
        let in_progress = prev.is_some_and(|p| p.in_progress);
        if fmt == 3 && in_progress {
            // Continuation chunk: the header carries nothing new (its extended timestamp, if
            // any, repeats the first chunk's).
            let s = &self.streams[&csid];
            let left = (s.length as usize - s.payload.len()).min(chunk_size);
            self.pos += i;
            self.current = Some((csid, left));
            return Ok(true);
        }
        if in_progress {
            return Err(protocol(format!(
                "new message header on chunk stream {csid} before the previous message completed"
            )));
        }
        if length > MAX_MESSAGE_LEN {
            return Err(protocol(format!(
                "inbound message of {length} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit"
            )));
        }
        let s = self.streams.entry(csid).or_default();
        let value = ext_value.unwrap_or(field);
        match fmt {
            0 => {
                s.timestamp = value;
                s.delta = value;
            }
            1 | 2 => {
                s.timestamp = s.timestamp.wrapping_add(value);
                s.delta = value;
            }
            _ => {
                let delta = ext_value.unwrap_or(s.delta);
                s.timestamp = s.timestamp.wrapping_add(delta);
            }
        }
        if fmt < 3 {
            s.extended = extended;
        }
        s.length = length;
        s.type_id = type_id;
        s.stream_id = stream_id;
        s.in_progress = true;
        s.payload.clear();
        s.payload.reserve((length as usize).min(chunk_size).min(KEEP_CAPACITY));
        self.pos += i;
        self.current = Some((csid, (length as usize).min(chunk_size)));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    /// The next message as rml_rtmp's type, for comparisons.
    fn next(r: &mut ChunkReader) -> Result<Option<MessagePayload>> {
        let mut data = Vec::new();
        Ok(r.next_message(&mut data)?.map(|h| MessagePayload {
            timestamp: RtmpTimestamp::new(h.timestamp),
            type_id: h.type_id,
            message_stream_id: h.stream_id,
            data: Bytes::from(data),
        }))
    }

    fn payload(ts: u32, type_id: u8, sid: u32, len: usize) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            type_id,
            message_stream_id: sid,
            data: Bytes::from((0..len).map(|i| (i * 7) as u8).collect::<Vec<_>>()),
        }
    }

    #[test]
    fn reads_what_rml_serializes_byte_by_byte_across_chunk_sizes_and_timestamps() {
        let mut ser = ChunkSerializer::new();
        let mut wire = Vec::new();
        let mut expected = vec![
            payload(0, 20, 0, 300),
            payload(10, 20, 0, 300),
            payload(0x1234_5678, 9, 1, 1000),
            payload(0x1234_5678 + 40, 9, 1, 1000),
            payload(0x1234_5678 + 40, 9, 1, 1000),
            payload(5, 8, 1, 3),
        ];
        for m in &expected[..3] {
            wire.extend(ser.serialize(m, false, false).unwrap().bytes);
        }
        // A chunk size change between messages, applied by the reader's caller.
        wire.extend(ser.set_max_chunk_size(200, RtmpTimestamp::new(0)).unwrap().bytes);
        for m in &expected[3..] {
            wire.extend(ser.serialize(m, false, false).unwrap().bytes);
        }
        expected.insert(3, payload(0, 1, 0, 4));
        let mut r = ChunkReader::new();
        let mut got = Vec::new();
        for b in wire {
            r.push(&[b]);
            while let Some(m) = next(&mut r).unwrap() {
                if m.type_id == 1 {
                    r.set_chunk_size(u32::from_be_bytes(m.data[..4].try_into().unwrap())).unwrap();
                }
                got.push(m);
            }
        }
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.timestamp, e.timestamp);
            assert_eq!(g.type_id, e.type_id);
            assert_eq!(g.message_stream_id, e.message_stream_id);
            if e.type_id != 1 {
                assert_eq!(g.data, e.data);
            }
        }
    }

    #[test]
    fn interleaved_chunk_streams_do_not_mix() {
        // Two 200-byte messages on chunk streams 3 and 4, chunks interleaved (128 + 72 each).
        let mut wire = Vec::new();
        let hdr = |csid: u8, len: u32| {
            let mut h = vec![csid, 0, 0, 1];
            h.extend_from_slice(&len.to_be_bytes()[1..]);
            h.push(20);
            h.extend_from_slice(&0u32.to_le_bytes());
            h
        };
        wire.extend(hdr(3, 200));
        wire.extend([0xAA; 128]);
        wire.extend(hdr(4, 200));
        wire.extend([0xBB; 128]);
        wire.push(0xC3);
        wire.extend([0xAA; 72]);
        wire.push(0xC4);
        wire.extend([0xBB; 72]);
        let mut r = ChunkReader::new();
        r.push(&wire);
        let a = next(&mut r).unwrap().unwrap();
        let b = next(&mut r).unwrap().unwrap();
        assert!(next(&mut r).unwrap().is_none());
        assert!(a.data.iter().all(|&x| x == 0xAA) && a.data.len() == 200);
        assert!(b.data.iter().all(|&x| x == 0xBB) && b.data.len() == 200);
    }

    #[test]
    fn zero_length_message_completes_on_its_header() {
        // rml_rtmp's serializer emits no chunk at all for an empty payload, so build it by hand.
        let mut r = ChunkReader::new();
        r.push(&[0x05, 0, 0, 9, 0, 0, 0, 8, 1, 0, 0, 0]);
        let m = next(&mut r).unwrap().unwrap();
        assert_eq!((m.timestamp.value, m.type_id, m.data.len()), (9, 8, 0));
        assert!(next(&mut r).unwrap().is_none());
    }

    #[test]
    fn declared_oversize_and_inconsistent_headers_are_protocol_errors() {
        let mut r = ChunkReader::new();
        r.push(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0]);
        assert!(matches!(next(&mut r), Err(Error::Protocol(_))));
        let mut r = ChunkReader::new();
        r.push(&[0x43, 0, 0, 0, 0, 0, 4, 20]);
        assert!(matches!(next(&mut r), Err(Error::Protocol(_))));
        // New type 0 header while a message on the same chunk stream is half received.
        let mut r = ChunkReader::new();
        r.push(&[0x03, 0, 0, 0, 0, 1, 0, 20, 0, 0, 0, 0]);
        r.push(&[0u8; 128]);
        r.push(&[0x03, 0, 0, 0, 0, 0, 4, 20, 0, 0, 0, 0]);
        assert!(matches!(next(&mut r), Err(Error::Protocol(_))));
        assert!(ChunkReader::new().set_chunk_size(0).is_err());
    }
}
