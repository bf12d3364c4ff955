//! A second chunk parser that sees every inbound byte before `ServerSession` does.
//!
//! `rml_rtmp` 0.8 trusts its input in places: a command with fewer than three AMF0 values, an
//! `@setDataFrame` with fewer than three values, or a `SetChunkSize` of 0 make it panic or go
//! astray, and `rml_amf0` parses nested objects recursively, so a few megabytes of nested
//! objects overflow the stack and abort the whole process (a panic could be caught; that cannot).
//! The shadow parser frames the same byte stream into messages and rejects those before the
//! session parses them. It also keeps the raw `onMetaData` body, which the session only hands
//! out as a fixed-field `StreamMetadata`, so the file gets the publisher's own keys and order.

use bytes::Bytes;
use rml_amf0::Amf0Value;
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::sessions::StreamMetadata;
use std::collections::VecDeque;
use std::io::Cursor;

/// Deeper than any real command or metadata object (they are one or two levels), far below
/// what the recursive parser's stack can take.
const MAX_AMF0_DEPTH: usize = 32;
/// Each `createStream` adds an entry to the session's stream table until `deleteStream`; a
/// publisher needs one per publish attempt.
const MAX_CREATE_STREAM: u32 = 64;

const AMF0_NUMBER: u8 = 0x00;
const AMF0_BOOLEAN: u8 = 0x01;
const AMF0_STRING: u8 = 0x02;
const AMF0_OBJECT: u8 = 0x03;
const AMF0_NULL: u8 = 0x05;
const AMF0_UNDEFINED: u8 = 0x06;
const AMF0_ECMA_ARRAY: u8 = 0x08;
const AMF0_OBJECT_END: u8 = 0x09;
const AMF0_STRICT_ARRAY: u8 = 0x0a;

/// An `@setDataFrame onMetaData {..}` as sent, waiting for the session to say whether it was
/// on the publishing stream.
pub(crate) struct RawMetadata {
    /// `"onMetaData"` and the object, exactly as sent: the FLV script tag body.
    pub body: Bytes,
    /// What the session will report for it, to pair the two up.
    pub parsed: StreamMetadata,
    pub timestamp: u32,
}

pub(crate) struct Guard {
    chunks: ChunkDeserializer,
    create_streams: u32,
    pub pending_metadata: VecDeque<RawMetadata>,
}

impl Guard {
    pub fn new() -> Self {
        Guard { chunks: ChunkDeserializer::new(), create_streams: 0, pending_metadata: VecDeque::new() }
    }

    /// Frame `bytes` (the same bytes the session gets next) and check every completed message.
    pub fn inspect(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut input = bytes;
        loop {
            let message = self.chunks.get_next_message(input).map_err(|e| format!("bad chunk: {e}"))?;
            input = &[];
            match message {
                Some(m) => self.check(m)?,
                None => return Ok(()),
            }
        }
    }

    fn check(&mut self, message: MessagePayload) -> Result<(), String> {
        match message.type_id {
            1 => match message.to_rtmp_message() {
                Ok(RtmpMessage::SetChunkSize { size }) if size >= 1 => {
                    self.chunks.set_max_chunk_size(size as usize).map_err(|e| format!("bad chunk size: {e}"))
                }
                _ => Err("bad SetChunkSize".into()),
            },
            // 15 is AMF3 data; rml_rtmp parses it as AMF0 like 18.
            15 | 18 => {
                let values = parse_amf0(&message.data)?;
                let set_data_frame = matches!(values.first(), Some(Amf0Value::Utf8String(s)) if s == "@setDataFrame");
                if !set_data_frame {
                    return Ok(());
                }
                if values.len() < 3 {
                    return Err("@setDataFrame without a name and a value".into());
                }
                if matches!(&values[1], Amf0Value::Utf8String(s) if s == "onMetaData") {
                    let mut parsed = StreamMetadata::new();
                    if let Some(properties) = values[2].clone().get_object_properties() {
                        parsed.apply_metadata_values(properties);
                    }
                    // The first value is the string "@setDataFrame": marker, u16 length, bytes.
                    let skip = 3 + "@setDataFrame".len();
                    self.pending_metadata.push_back(RawMetadata {
                        body: message.data.slice(skip..),
                        parsed,
                        timestamp: message.timestamp.value,
                    });
                }
                Ok(())
            }
            17 | 20 => {
                // rml_rtmp drops one leading zero byte of AMF3 commands the same way.
                let data = match &message.data[..] {
                    [0, ..] if message.type_id == 17 => message.data.slice(1..),
                    _ => message.data.clone(),
                };
                let values = parse_amf0(&data)?;
                if values.len() < 3 {
                    return Err("command with fewer than three values".into());
                }
                if matches!(&values[0], Amf0Value::Utf8String(s) if s == "createStream") {
                    self.create_streams += 1;
                    if self.create_streams > MAX_CREATE_STREAM {
                        return Err("too many createStream commands".into());
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn parse_amf0(data: &[u8]) -> Result<Vec<Amf0Value>, String> {
    let mut pos = 0;
    while pos < data.len() {
        match skim_value(data, pos, 0)? {
            Some(next) => pos = next,
            None => break,
        }
    }
    rml_amf0::deserialize(&mut Cursor::new(data)).map_err(|e| format!("bad AMF0: {e}"))
}

/// Walks one AMF0 value the way `rml_amf0` does, only to measure nesting. Returns the position
/// after the value, `None` where `rml_amf0` would stop (end marker, end of data, or malformed
/// input, which it then reports itself), and an error only for nesting too deep.
fn skim_value(data: &[u8], mut pos: usize, depth: usize) -> Result<Option<usize>, String> {
    if depth > MAX_AMF0_DEPTH {
        return Err("AMF0 nested too deep".into());
    }
    let Some(&marker) = data.get(pos) else {
        return Ok(None);
    };
    pos += 1;
    let end = data.len();
    let u16_at = |p: usize| data.get(p..p + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let u32_at = |p: usize| data.get(p..p + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    Ok(match marker {
        AMF0_NUMBER => (pos + 8 <= end).then_some(pos + 8),
        AMF0_BOOLEAN => (pos < end).then_some(pos + 1),
        AMF0_NULL | AMF0_UNDEFINED => Some(pos),
        // rml_amf0 reads strings with a short `read`, so a string cut by the end is accepted.
        AMF0_STRING => u16_at(pos).map(|n| (pos + 2 + n as usize).min(end)),
        AMF0_OBJECT => skim_object(data, pos, depth)?,
        AMF0_ECMA_ARRAY => match u32_at(pos) {
            Some(_) => skim_object(data, pos + 4, depth)?,
            None => None,
        },
        AMF0_STRICT_ARRAY => match u32_at(pos) {
            Some(count) => {
                pos += 4;
                for _ in 0..count {
                    match data.get(pos) {
                        None => break,
                        // rml_amf0 consumes the end marker that cuts an array short.
                        Some(&AMF0_OBJECT_END) => {
                            pos += 1;
                            break;
                        }
                        Some(_) => match skim_value(data, pos, depth + 1)? {
                            Some(next) => pos = next,
                            None => return Ok(None),
                        },
                    }
                }
                Some(pos)
            }
            None => None,
        },
        _ => None,
    })
}

fn skim_object(data: &[u8], mut pos: usize, depth: usize) -> Result<Option<usize>, String> {
    loop {
        let Some(label) = data.get(pos..pos + 2) else {
            return Ok(None);
        };
        let label_len = u16::from_be_bytes([label[0], label[1]]) as usize;
        pos += 2;
        if label_len == 0 {
            return Ok((data.get(pos) == Some(&AMF0_OBJECT_END)).then_some(pos + 1));
        }
        pos = (pos + label_len).min(data.len());
        match skim_value(data, pos, depth + 1)? {
            Some(next) => pos = next,
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_objects(levels: usize) -> Vec<u8> {
        let mut v = vec![AMF0_STRING, 0, 1, b'x'];
        for _ in 0..levels {
            v.extend_from_slice(&[AMF0_OBJECT, 0, 1, b'a']);
        }
        v.push(AMF0_NULL);
        for _ in 0..levels {
            v.extend_from_slice(&[0, 0, AMF0_OBJECT_END]);
        }
        v
    }

    #[test]
    fn shallow_values_pass_and_deep_nesting_is_refused() {
        let ok = nested_objects(3);
        assert_eq!(parse_amf0(&ok).unwrap().len(), 2);
        assert!(parse_amf0(&nested_objects(MAX_AMF0_DEPTH + 2)).is_err());
        // Strict arrays nest too.
        let mut arrays = Vec::new();
        for _ in 0..10_000 {
            arrays.extend_from_slice(&[AMF0_STRICT_ARRAY, 0, 0, 0, 1]);
        }
        assert!(parse_amf0(&arrays).is_err());
    }

    #[test]
    fn metadata_body_keeps_the_sent_bytes() {
        let values = vec![
            Amf0Value::Utf8String("@setDataFrame".into()),
            Amf0Value::Utf8String("onMetaData".into()),
            Amf0Value::Object([("width".to_string(), Amf0Value::Number(320.0))].into()),
        ];
        let data = rml_amf0::serialize(&values).unwrap();
        let mut guard = Guard::new();
        guard
            .check(MessagePayload {
                timestamp: rml_rtmp::time::RtmpTimestamp::new(7),
                message_stream_id: 1,
                type_id: 18,
                data: Bytes::from(data.clone()),
            })
            .unwrap();
        let raw = guard.pending_metadata.pop_front().unwrap();
        assert_eq!(&raw.body[..], &data[16..]);
        assert_eq!(raw.parsed.video_width, Some(320));
        assert_eq!(raw.timestamp, 7);
    }

    #[test]
    fn inputs_that_panic_rml_rtmp_are_refused() {
        let short_frame = rml_amf0::serialize(&vec![Amf0Value::Utf8String("@setDataFrame".into())]);
        let short_command = rml_amf0::serialize(&vec![Amf0Value::Utf8String("connect".into())]);
        let mut guard = Guard::new();
        for (type_id, data) in [(18, short_frame.unwrap()), (20, short_command.unwrap())] {
            let message = MessagePayload {
                timestamp: rml_rtmp::time::RtmpTimestamp::new(0),
                message_stream_id: 0,
                type_id,
                data: Bytes::from(data),
            };
            assert!(guard.check(message).is_err());
        }
        let zero_chunk_size = MessagePayload {
            timestamp: rml_rtmp::time::RtmpTimestamp::new(0),
            message_stream_id: 0,
            type_id: 1,
            data: Bytes::from_static(&[0, 0, 0, 0]),
        };
        assert!(guard.check(zero_chunk_size).is_err());
    }
}
