//! Outbound RTMP chunk stream encoder (publisher → server), writing into the session's reused
//! output buffer.
//!
//! Written here instead of using `rml_rtmp::chunk_io::ChunkSerializer` because that one returns a
//! new `Vec` per message: one heap allocation per media frame, on the path that must not
//! allocate in steady state.
//!
//! Header compression follows what servers expect from encoders (OBS, librtmp): a type 0 header
//! for the first message on a chunk stream, for a new message stream id, for a timestamp that
//! goes backwards and whenever the caller asks; type 1 when the length or type changed, type 2
//! otherwise. Type 3 is only used for continuation chunks. Extended timestamps are only written
//! in type 0 headers (a delta that needs one gets a type 0 header instead), and are repeated in
//! the continuation chunks of that message, as nginx-rtmp and FFmpeg read them.

/// The chunk size every RTMP connection starts with.
const DEFAULT_CHUNK_SIZE: usize = 128;
const EXTENDED: u32 = 0xFF_FFFF;
/// Chunk stream ids 2..=7 (see `csid_for`).
const STREAMS: usize = 6;

#[derive(Clone, Copy)]
struct Last {
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

pub(super) struct ChunkWriter {
    chunk_size: usize,
    last: [Option<Last>; STREAMS],
}

/// Chunk stream per message type, as rml_rtmp chose them before (and OBS does): protocol control
/// 2, data 3, video 4, audio 5, commands 6, anything else 7.
fn csid_for(type_id: u8) -> u32 {
    match type_id {
        1..=6 => 2,
        15 | 18 => 3,
        9 => 4,
        8 => 5,
        17 | 20 => 6,
        _ => 7,
    }
}

impl ChunkWriter {
    pub fn new() -> Self {
        ChunkWriter { chunk_size: DEFAULT_CHUNK_SIZE, last: [None; STREAMS] }
    }

    /// Takes effect for the next message; the caller has already written the SetChunkSize
    /// message that announces it.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, 0x7FFF_FFFF) as usize;
    }

    /// Appends one message, split into chunks, to `out`. `payload` must be under 16 MiB (the
    /// 24-bit length field).
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
        full: bool,
    ) {
        self.write_parts(out, timestamp, type_id, stream_id, [&[], payload], full)
    }

    /// [`ChunkWriter::write`] of a message given in two pieces (an FLV tag header and the media
    /// data), chunked as their concatenation without joining them first.
    pub fn write_parts(
        &mut self,
        out: &mut Vec<u8>,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        parts: [&[u8]; 2],
        full: bool,
    ) {
        let total = parts[0].len() + parts[1].len();
        debug_assert!(total <= 0xFF_FFFF);
        let csid = csid_for(type_id);
        let slot = &mut self.last[(csid - 2) as usize];
        let length = total as u32;
        let fmt = match *slot {
            Some(p) if !full && p.stream_id == stream_id && timestamp >= p.timestamp => {
                let delta = timestamp - p.timestamp;
                if delta >= EXTENDED {
                    0
                } else if p.length == length && p.type_id == type_id {
                    2
                } else {
                    1
                }
            }
            _ => 0,
        };
        let field = match (fmt, *slot) {
            (0, _) | (_, None) => timestamp,
            (_, Some(p)) => timestamp - p.timestamp,
        };
        let extended = field >= EXTENDED;
        *slot = Some(Last { timestamp, length, type_id, stream_id });

        let basic = (fmt << 6) | csid as u8;
        out.reserve(total + 16 + total / self.chunk_size * 5);
        out.push(basic);
        out.extend_from_slice(&field.min(EXTENDED).to_be_bytes()[1..]);
        if fmt <= 1 {
            out.extend_from_slice(&length.to_be_bytes()[1..]);
            out.push(type_id);
        }
        if fmt == 0 {
            out.extend_from_slice(&stream_id.to_le_bytes());
        }
        if extended {
            out.extend_from_slice(&field.to_be_bytes());
        }
        // Chunk boundaries fall anywhere in the concatenation of the parts.
        let (head, tail) = (parts[0], parts[1]);
        let mut pos = 0;
        loop {
            let end = (pos + self.chunk_size).min(total);
            if pos < head.len() {
                out.extend_from_slice(&head[pos..end.min(head.len())]);
            }
            if end > head.len() {
                out.extend_from_slice(&tail[pos.max(head.len()) - head.len()..end - head.len()]);
            }
            pos = end;
            if pos >= total {
                break;
            }
            out.push(0xC0 | csid as u8);
            if extended {
                out.extend_from_slice(&field.to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rml_rtmp::chunk_io::ChunkDeserializer;

    #[test]
    fn a_message_in_two_parts_is_chunked_as_their_concatenation() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        // Splits before, at and across chunk boundaries, an empty part either side, and a
        // total that is an exact multiple of the chunk size.
        for chunk in [128usize, 100, 5] {
            for total in [0usize, 1, 5, 127, 128, 129, 500, 1000] {
                for split in [0usize, 1, 5, 8, 127, 128, 129, 400, total] {
                    if split > total {
                        continue;
                    }
                    let mut joined = (ChunkWriter::new(), Vec::new());
                    let mut parts = (ChunkWriter::new(), Vec::new());
                    for w in [&mut joined.0, &mut parts.0] {
                        w.set_chunk_size(chunk as u32);
                    }
                    joined.0.write(&mut joined.1, 40, 9, 1, &data[..total], false);
                    parts.0.write_parts(&mut parts.1, 40, 9, 1, [&data[..split], &data[split..total]], false);
                    assert_eq!(joined.1, parts.1, "chunk {chunk}, total {total}, split {split}");
                }
            }
        }
    }

    #[test]
    fn rml_reads_every_header_type_extended_timestamps_and_chunk_size_changes() {
        let mut w = ChunkWriter::new();
        let mut wire = Vec::new();
        let body = |n: usize, seed: u8| (0..n).map(|i| (i as u8).wrapping_mul(13) ^ seed).collect::<Vec<u8>>();
        let msgs: Vec<(u32, u8, u32, Vec<u8>, bool)> = vec![
            (0, 20, 0, body(300, 1), true),
            (0, 9, 1, body(5000, 2), false),
            (33, 9, 1, body(5000, 3), false),         // type 2
            (66, 9, 1, body(700, 4), false),          // type 1
            (20, 8, 1, body(10, 5), false),           // own chunk stream: type 0
            (10, 9, 1, body(700, 6), false),          // backwards: type 0
            (0x0123_4567, 9, 1, body(700, 7), false), // delta needs extended: type 0
            (0x0123_4567 + 40, 9, 1, body(9000, 8), false),
            (0xFFFF_FFF0, 9, 1, body(300, 9), false),
            (0x10, 9, 1, body(300, 10), false),
            (0x10, 9, 2, body(300, 11), false), // other message stream: type 0
        ];
        let mut de = ChunkDeserializer::new();
        let mut got = Vec::new();
        for (i, (ts, t, sid, data, full)) in msgs.iter().enumerate() {
            if i == 3 {
                // Announce and switch the chunk size mid-stream, as the session does.
                w.write(&mut wire, 0, 1, 0, &4096u32.to_be_bytes(), true);
                w.set_chunk_size(4096);
            }
            w.write(&mut wire, *ts, *t, *sid, data, *full);
        }
        let mut input = &wire[..];
        while let Some(m) = de.get_next_message(input).unwrap() {
            input = &[];
            if m.type_id == 1 {
                de.set_max_chunk_size(4096).unwrap();
                continue;
            }
            got.push(m);
        }
        assert_eq!(got.len(), msgs.len());
        for (g, (ts, t, sid, data, _)) in got.iter().zip(&msgs) {
            assert_eq!((g.timestamp.value, g.type_id, g.message_stream_id), (*ts, *t, *sid));
            assert_eq!(g.data, Bytes::from(data.clone()));
        }
    }

    #[test]
    fn header_sizes() {
        let mut w = ChunkWriter::new();
        let mut out = Vec::new();
        w.write(&mut out, 5, 9, 1, &[1, 2, 3], false);
        assert_eq!(out.len(), 12 + 3);
        out.clear();
        w.write(&mut out, 38, 9, 1, &[1, 2, 3], false);
        assert_eq!(out[..4], [0x84, 0, 0, 33]);
        assert_eq!(out.len(), 4 + 3);
        out.clear();
        w.write(&mut out, 40, 9, 1, &[1, 2], false);
        assert_eq!(out[..8], [0x44, 0, 0, 2, 0, 0, 2, 9]);
        out.clear();
        // Extended timestamp: in the header and in every continuation chunk.
        w.write(&mut out, 0x0200_0000, 9, 1, &[0; 200], false);
        assert_eq!(out.len(), 12 + 4 + 128 + 1 + 4 + 72);
        assert_eq!(out[1..4], [0xFF, 0xFF, 0xFF]);
        assert_eq!(out[12..16], [2, 0, 0, 0]);
        assert_eq!(out[144..149], [0xC4, 2, 0, 0, 0]);
    }
}
