//! App messages through congestion drops: a destination's send queue that drops a video unit
//! carrying messages keeps their SEI NAL units (a zero-copy slice of the dropped unit's data) and
//! puts them in front of the next video unit it hands out, so a message is late by the dropped
//! frames rather than lost. Only that rare unit is rebuilt (one allocation); units without carried
//! messages pass through untouched.
//!
//! Why here and not in the encoder: each destination drops on its own (one may be congested while
//! another is not), and the recording tap sees every unit; moving the bytes per destination keeps
//! every output with each message exactly once.
//!
//! A bounded number of messages is carried; beyond it the oldest are counted as dropped (a
//! destination that drops video for that long has lost the moment the messages were about).

use super::media::{MediaPacket, MessageSpan, Track};
use bytes::Bytes;

/// Messages carried at most per destination (at the 4 KiB limit, 256 KiB).
pub const MAX_CARRIED: usize = 64;

#[derive(Debug, Default)]
pub struct MessageCarry {
    /// One slice per dropped unit, oldest first, with its message count and AMF flags.
    held: Vec<(Bytes, MessageSpan)>,
    held_count: usize,
    /// Messages handed out in units (to the network), and messages given up.
    sent: u64,
    dropped: u64,
}

impl MessageCarry {
    /// A unit is dropped: keep its messages.
    pub fn on_drop(&mut self, p: &MediaPacket) {
        let span = p.messages;
        if span.count == 0 || p.track != Track::Video || span.len as usize > p.data.len() {
            return;
        }
        self.held.push((p.data.slice(..span.len as usize), span));
        self.held_count += span.count as usize;
        self.give_up_beyond_limit();
    }

    /// A unit leaves the queue: the next video picture takes what is held.
    pub fn on_pop(&mut self, mut p: MediaPacket) -> MediaPacket {
        if p.track != Track::Video || p.header {
            return p;
        }
        if !self.held.is_empty() {
            let len: usize = self.held.iter().map(|h| h.0.len()).sum::<usize>() + p.data.len();
            let mut data = Vec::with_capacity(len);
            let mut span = MessageSpan::default();
            for (bytes, s) in self.held.drain(..) {
                data.extend_from_slice(&bytes);
                span.amf_mask |= s.amf_mask.checked_shl(span.count as u32).unwrap_or(0);
                span.count += s.count;
                span.len += s.len;
            }
            data.extend_from_slice(&p.data);
            let own = p.messages;
            span.amf_mask |= own.amf_mask.checked_shl(span.count as u32).unwrap_or(0);
            span.count += own.count;
            span.len += own.len;
            p.data = Bytes::from(data);
            p.messages = span;
            self.held_count = 0;
        }
        self.sent += p.messages.count as u64;
        p
    }

    /// Messages handed out in a unit that a broken connection never delivered (`sei` is the
    /// unit's leading SEI bytes, `span` its messages): they go first in line again, ahead of
    /// anything carried since (the unit left before those were dropped), and no longer count as
    /// sent. Over a new session they ride on its first picture, the keyframe it starts with.
    pub fn on_undelivered(&mut self, sei: Bytes, span: MessageSpan) {
        if span.count == 0 || span.len as usize > sei.len() {
            return;
        }
        self.sent = self.sent.saturating_sub(span.count as u64);
        self.held.insert(0, (sei, span));
        self.held_count += span.count as usize;
        self.give_up_beyond_limit();
    }

    fn give_up_beyond_limit(&mut self) {
        while self.held_count > MAX_CARRIED {
            // Whole units at a time: their NAL units are one slice.
            let (_, old) = self.held.remove(0);
            self.held_count -= old.count as usize;
            self.dropped += old.count as u64;
        }
    }

    /// Messages handed out so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Messages given up (more than [`MAX_CARRIED`] waiting for a unit to ride on).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages waiting for the next video unit.
    pub fn held(&self) -> usize {
        self.held_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::media::Codec;
    use crate::core::sei;

    fn unit(msgs: &[&[u8]], slice: &[u8], amf: u32) -> MediaPacket {
        let mut data = Vec::new();
        for m in msgs {
            sei::write_length_prefixed(Codec::H264, &sei::MESSAGE_UUID, m, &mut data);
        }
        let len = data.len() as u32;
        data.extend_from_slice(&(slice.len() as u32).to_be_bytes());
        data.extend_from_slice(slice);
        let mut p = MediaPacket::video(Codec::H264, 0, 0, false, false, Bytes::from(data));
        p.messages = MessageSpan { count: msgs.len() as u16, len, amf_mask: amf };
        p
    }

    fn payloads(p: &MediaPacket) -> Vec<Vec<u8>> {
        sei::parse_length_prefixed(Codec::H264, &p.data).into_iter().map(|u| u.payload).collect()
    }

    #[test]
    fn dropped_messages_ride_on_the_next_picture_in_order() {
        let mut c = MessageCarry::default();
        c.on_drop(&unit(&[b"a", b"b"], &[0x41, 1], 0b10));
        c.on_drop(&unit(&[], &[0x41, 2], 0));
        c.on_drop(&unit(&[b"c"], &[0x41, 3], 0b1));
        assert_eq!(c.held(), 3);
        // Headers and audio pass untouched.
        let hdr = MediaPacket::video(Codec::H264, 0, 0, true, true, Bytes::from_static(b"rec"));
        assert_eq!(c.on_pop(hdr.clone()), hdr);
        let out = c.on_pop(unit(&[b"d"], &[0x65, 9], 0b1));
        assert_eq!(payloads(&out), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(out.messages.count, 4);
        assert_eq!(out.messages.amf_mask, 0b1110);
        // The picture itself is still the last NAL unit.
        assert!(out.data.ends_with(&[0, 0, 0, 2, 0x65, 9]));
        let sei_len = out.messages.len as usize;
        assert_eq!(sei::parse_length_prefixed(Codec::H264, &out.data[..sei_len]).len(), 4);
        assert_eq!((c.sent(), c.dropped(), c.held()), (4, 0, 0));
        // Nothing held: the unit is the same bytes (no copy).
        let plain = unit(&[b"e"], &[0x41, 4], 0);
        let ptr = plain.data.as_ptr();
        assert_eq!(c.on_pop(plain).data.as_ptr(), ptr);
        assert_eq!(c.sent(), 5);
    }

    #[test]
    fn the_send_queue_moves_messages_of_the_video_it_drops() {
        use crate::core::send_queue::SendQueue;
        let at = |ts: u64, key: bool, msgs: &[&[u8]]| {
            let mut p = unit(msgs, &[if key { 0x65 } else { 0x41 }, 1], 0);
            p.timestamp_ms = ts;
            p.keyframe = key;
            p
        };
        let mut q = SendQueue::new(true, false, 2000, 500);
        q.push(at(0, false, &[b"a"]));
        q.push(at(33, false, &[]));
        q.push(at(66, true, &[b"b"]));
        // A new session starts at the keyframe: the two frames before it go, their message stays.
        assert_eq!(q.restart_at_keyframe().dropped_video, 2);
        assert_eq!(q.messages_waiting(), 2);
        let p = q.pop().unwrap();
        assert_eq!((p.timestamp_ms, payloads(&p)), (66, vec![b"a".to_vec(), b"b".to_vec()]));
        // No keyframe left: inter frames are refused at the door until one comes.
        assert!(q.restart_at_keyframe().keyframe_wanted);
        assert_eq!(q.push(at(100, false, &[b"c"])).dropped_video, 1);
        q.push(at(133, true, &[]));
        let p = q.pop().unwrap();
        assert_eq!((p.timestamp_ms, payloads(&p)), (133, vec![b"c".to_vec()]));
        assert_eq!((q.messages().sent(), q.messages().dropped(), q.messages_waiting()), (3, 0, 0));
    }

    #[test]
    fn undelivered_messages_go_first_and_stop_counting_as_sent() {
        let mut c = MessageCarry::default();
        let a = c.on_pop(unit(&[b"a"], &[0x41, 1], 0b1));
        let b = c.on_pop(unit(&[b"b", b"c"], &[0x41, 2], 0));
        assert_eq!(c.sent(), 3);
        // A unit dropped from the queue after those two left (it is newer).
        c.on_drop(&unit(&[b"d"], &[0x41, 3], 0));
        // The connection breaks with both undelivered: handed back newest first.
        for p in [&b, &a] {
            c.on_undelivered(p.data.slice(..p.messages.len as usize), p.messages);
        }
        assert_eq!((c.sent(), c.held()), (0, 4));
        let out = c.on_pop(unit(&[], &[0x65, 4], 0));
        assert_eq!(payloads(&out), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        assert_eq!((out.messages.count, out.messages.amf_mask), (4, 0b1));
        assert_eq!((c.sent(), c.dropped(), c.held()), (4, 0, 0));
    }

    #[test]
    fn too_many_carried_drops_the_oldest_and_counts_them() {
        let mut c = MessageCarry::default();
        for i in 0..MAX_CARRIED + 3 {
            c.on_drop(&unit(&[format!("{i}").as_bytes()], &[0x41, 1], 0));
        }
        assert_eq!((c.held(), c.dropped()), (MAX_CARRIED, 3));
        let out = c.on_pop(unit(&[], &[0x41, 1], 0));
        assert_eq!(payloads(&out)[0], b"3".to_vec());
        assert_eq!(c.sent(), MAX_CARRIED as u64);
    }
}
