//! Timed app messages and capture timestamps (issue 15): `Pusher::send_message` stores a copy in a
//! bounded, preallocated store; the first video access unit pushed after the call (a raw picture,
//! once it leaves the encoder, or a pre-encoded unit) takes it as an SEI NAL unit in front of its
//! slices ([`crate::core::sei`]), so every muxer carries it with no transport code. "Pushed after
//! the call", not "leaving the encoder after the call": a picture the encoder still works on when
//! the call comes was captured before the moment the message marks. The unit's
//! [`MessageSpan`] says how many bytes are messages, so a destination that drops the unit moves
//! them on ([`crate::core::message_carry`]).
//!
//! Capture timestamps: an SEI with the frame's capture wall-clock time. The capture time is the
//! frame's stream presentation time mapped to the wall clock by the offset measured at the latest
//! `push_*` of video (wall time of the call minus the stream time it got): for an app that pushes
//! frames as they are captured, the time the frame was pushed, without reading the clock on the
//! encoder's side (a frame the encoder holds back is not stamped late).

use super::shared::lock;
use crate::core::body_pool::BodyPool;
use crate::core::media::{Codec, MessageSpan};
use crate::core::sei;
use crate::error::{Error, Result};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Flags of `send_message` (bits; values are stable, they cross the C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum MessageFlag {
    /// Only the SEI in the video (every transport, and the recording).
    KP_MESSAGE_SEI_ONLY = 0,
    /// Also an FLV data message (AMF0 `onTextData` with a `text` string, or the name set in the
    /// config) at the frame's time, on RTMP and in the local recording. SRT ignores it (MPEG-TS
    /// has no such message; the SEI is there).
    KP_MESSAGE_AMF = 1,
}

/// When capture timestamps are sent (values are stable, they cross the C ABI). Each is an SEI
/// user_data_unregistered with the UUID "kitepush-capture" and 16 bytes: the capture time (UTC
/// µs, u64 big-endian), then the frame's stream pts (µs, u64 big-endian); see
/// kp_config_set_capture_timestamps.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(non_camel_case_types)]
pub enum CaptureTimestamps {
    /// None (the default).
    #[default]
    KP_CAPTURE_TIMESTAMPS_OFF = 0,
    /// On every keyframe.
    KP_CAPTURE_TIMESTAMPS_KEYFRAMES = 1,
    /// On every video frame.
    KP_CAPTURE_TIMESTAMPS_EVERY_FRAME = 2,
}

impl CaptureTimestamps {
    pub fn from_raw(v: i64) -> Option<Self> {
        Some(match v {
            0 => CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_OFF,
            1 => CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_KEYFRAMES,
            2 => CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_EVERY_FRAME,
            _ => return None,
        })
    }
}

/// The message settings of a pusher.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSettings {
    /// The UUID of app messages' SEIs; default [`sei::MESSAGE_UUID`].
    pub uuid: [u8; 16],
    /// The FLV data message name of `KP_MESSAGE_AMF` messages; default `onTextData`.
    pub amf_name: String,
    pub capture_timestamps: CaptureTimestamps,
}

impl Default for MessageSettings {
    fn default() -> Self {
        MessageSettings {
            uuid: sei::MESSAGE_UUID,
            amf_name: "onTextData".into(),
            capture_timestamps: CaptureTimestamps::default(),
        }
    }
}

/// Messages that may wait for a video frame at once (a frame every 33 ms takes them all).
pub const MAX_PENDING: usize = 16;

pub struct MessageStore {
    settings: MessageSettings,
    /// How many messages wait: read without the lock on every frame.
    pending: AtomicUsize,
    inner: Mutex<Inner>,
    /// Wall clock (UTC µs) minus stream time (µs) at the latest video push.
    offset_us: AtomicI64,
    offset_known: AtomicBool,
    /// Stream time (ms) of the latest video push; `u64::MAX` before the first.
    last_push_ms: AtomicU64,
    /// Messages the app handed over, and those that never found a frame (still waiting at stop).
    pub accepted: AtomicU64,
    pub unsent: AtomicU64,
}

struct Inner {
    /// The waiting messages' bytes, back to back, and for each: its length, flags, and the stream
    /// time of the latest video push when it came (it rides on a later picture).
    bytes: Vec<u8>,
    entries: Vec<(usize, u32, Option<u64>)>,
    /// The SEI NAL units being built for one frame (reused).
    scratch: Vec<u8>,
    bodies: BodyPool,
}

impl MessageStore {
    pub fn new(settings: MessageSettings) -> Self {
        MessageStore {
            settings,
            pending: AtomicUsize::new(0),
            inner: Mutex::new(Inner {
                bytes: Vec::with_capacity(MAX_PENDING * sei::MAX_MESSAGE_LEN),
                entries: Vec::with_capacity(MAX_PENDING),
                scratch: Vec::with_capacity(MAX_PENDING * sei::max_nal_len(sei::MAX_MESSAGE_LEN) + 64),
                bodies: BodyPool::default(),
            }),
            offset_us: AtomicI64::new(0),
            offset_known: AtomicBool::new(false),
            last_push_ms: AtomicU64::new(u64::MAX),
            accepted: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &MessageSettings {
        &self.settings
    }

    /// Copies a message in; it rides with the next video unit.
    pub fn send(&self, data: &[u8], flags: u32) -> Result<()> {
        if data.is_empty() {
            return Err(Error::InvalidArgument("empty message".into()));
        }
        if data.len() > sei::MAX_MESSAGE_LEN {
            return Err(Error::InvalidArgument(format!(
                "message of {} bytes is over the {}-byte limit",
                data.len(),
                sei::MAX_MESSAGE_LEN
            )));
        }
        if flags & !(MessageFlag::KP_MESSAGE_AMF as u32) != 0 {
            return Err(Error::InvalidArgument(format!("unknown message flags {flags:#x}")));
        }
        if flags & MessageFlag::KP_MESSAGE_AMF as u32 != 0 && std::str::from_utf8(data).is_err() {
            return Err(Error::InvalidArgument("a KP_MESSAGE_AMF message must be UTF-8 text".into()));
        }
        let mut g = lock(&self.inner);
        if g.entries.len() >= MAX_PENDING {
            return Err(Error::QueueFull("16 messages already wait for a video frame"));
        }
        g.bytes.extend_from_slice(data);
        let after = Some(self.last_push_ms.load(Relaxed)).filter(|&t| t != u64::MAX);
        g.entries.push((data.len(), flags, after));
        self.pending.store(g.entries.len(), Relaxed);
        self.accepted.fetch_add(1, Relaxed);
        Ok(())
    }

    /// A video picture was pushed now, with decode time `dts_ms` and presentation time `pts_ms`
    /// (the same for raw pictures): later messages wait for a later picture in decode order, and
    /// the capture-time offset is that of the picture's presentation time.
    pub fn note_push(&self, dts_ms: u64, pts_ms: u64) {
        self.last_push_ms.store(dts_ms, Relaxed);
        if self.settings.capture_timestamps == CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_OFF {
            return;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        self.offset_us.store(now - pts_ms as i64 * 1000, Relaxed);
        self.offset_known.store(true, Relaxed);
    }

    /// The access unit `frame` (length-prefixed NAL units) with the waiting messages and the
    /// capture time (when due) in front, and the span of the messages. Without either, `frame`
    /// itself (no copy, no allocation).
    pub fn attach(&self, codec: Codec, frame: Bytes, keyframe: bool, pts_ms: u64) -> (Bytes, MessageSpan) {
        let stamp = match self.settings.capture_timestamps {
            CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_OFF => false,
            CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_KEYFRAMES => keyframe,
            CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_EVERY_FRAME => true,
        } && self.offset_known.load(Relaxed);
        if self.pending.load(Relaxed) == 0 && !stamp {
            return (frame, MessageSpan::default());
        }
        let mut g = lock(&self.inner);
        let Inner { bytes, entries, scratch, bodies } = &mut *g;
        // Calls come in order, so the messages due on this picture are a prefix.
        let due = entries.iter().take_while(|e| e.2.is_none_or(|after| pts_ms > after)).count();
        if due == 0 && !stamp {
            return (frame, MessageSpan::default());
        }
        scratch.clear();
        let mut span = MessageSpan::default();
        let mut start = 0;
        for (i, &(len, flags, _)) in entries[..due].iter().enumerate() {
            sei::write_length_prefixed(codec, &self.settings.uuid, &bytes[start..start + len], scratch);
            start += len;
            if flags & MessageFlag::KP_MESSAGE_AMF as u32 != 0 && i < 32 {
                span.amf_mask |= 1 << i;
            }
        }
        span.count = due as u16;
        span.len = scratch.len() as u32;
        entries.drain(..due);
        bytes.drain(..start);
        self.pending.store(entries.len(), Relaxed);
        if stamp {
            let pts_us = pts_ms * 1000;
            let capture = (pts_us as i64 + self.offset_us.load(Relaxed)).max(0) as u64;
            sei::write_length_prefixed(
                codec,
                &sei::CAPTURE_TIME_UUID,
                &sei::capture_time_payload(capture, pts_us),
                scratch,
            );
        }
        (bodies.concat(&[scratch, &frame]), span)
    }

    /// The pusher stops: what still waits will never find a frame.
    pub fn discard(&self) {
        let mut g = lock(&self.inner);
        self.unsent.fetch_add(g.entries.len() as u64, Relaxed);
        g.entries.clear();
        g.bytes.clear();
        self.pending.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Bytes {
        Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88])
    }

    #[test]
    fn messages_go_in_front_of_the_next_frame_once() {
        let s = MessageStore::new(MessageSettings::default());
        let (same, span) = s.attach(Codec::H264, frame(), true, 0);
        assert_eq!((same, span), (frame(), MessageSpan::default()));
        s.send(b"one", 0).unwrap();
        s.send(&[0, 0, 0, 1], MessageFlag::KP_MESSAGE_AMF as u32).unwrap();
        let (au, span) = s.attach(Codec::H264, frame(), false, 40);
        assert_eq!((span.count, span.amf_mask), (2, 0b10));
        assert!(au.ends_with(&frame()));
        let found = sei::parse_length_prefixed(Codec::H264, &au[..span.len as usize]);
        assert_eq!(
            found.iter().map(|u| u.payload.clone()).collect::<Vec<_>>(),
            vec![b"one".to_vec(), vec![0, 0, 0, 1]]
        );
        assert!(found.iter().all(|u| u.uuid == sei::MESSAGE_UUID));
        assert_eq!(s.attach(Codec::H264, frame(), false, 80).1, MessageSpan::default());
    }

    #[test]
    fn a_message_waits_for_a_picture_pushed_after_it() {
        let s = MessageStore::new(MessageSettings::default());
        s.note_push(0, 0);
        s.note_push(33, 33);
        s.send(b"a", 0).unwrap();
        s.note_push(66, 66);
        s.send(b"b", 0).unwrap();
        // The encoder's output of earlier pictures takes nothing.
        assert_eq!(s.attach(Codec::H264, frame(), true, 0).1.count, 0);
        assert_eq!(s.attach(Codec::H264, frame(), false, 33).1.count, 0);
        let (au, span) = s.attach(Codec::H264, frame(), false, 66);
        assert_eq!(span.count, 1);
        assert_eq!(sei::parse_length_prefixed(Codec::H264, &au)[0].payload, b"a");
        let (au, span) = s.attach(Codec::H264, frame(), false, 100);
        assert_eq!(span.count, 1);
        assert_eq!(sei::parse_length_prefixed(Codec::H264, &au)[0].payload, b"b");
    }

    #[test]
    fn limits_are_errors_not_panics() {
        let s = MessageStore::new(MessageSettings::default());
        assert!(matches!(s.send(&[], 0), Err(Error::InvalidArgument(_))));
        assert!(matches!(s.send(&[1; sei::MAX_MESSAGE_LEN + 1], 0), Err(Error::InvalidArgument(_))));
        assert!(matches!(s.send(b"x", 4), Err(Error::InvalidArgument(_))));
        for _ in 0..MAX_PENDING {
            s.send(&[1; sei::MAX_MESSAGE_LEN], 0).unwrap();
        }
        assert!(matches!(s.send(b"x", 0), Err(Error::QueueFull(_))));
        let (au, span) = s.attach(Codec::Hevc, frame(), false, 0);
        assert_eq!(span.count as usize, MAX_PENDING);
        assert_eq!(sei::parse_length_prefixed(Codec::Hevc, &au).len(), MAX_PENDING);
        s.send(b"late", 0).unwrap();
        s.discard();
        assert_eq!((s.accepted.load(Relaxed), s.unsent.load(Relaxed)), (MAX_PENDING as u64 + 1, 1));
    }

    #[test]
    fn capture_times_follow_the_messages_and_are_not_in_their_span() {
        let settings = MessageSettings {
            capture_timestamps: CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_KEYFRAMES,
            ..MessageSettings::default()
        };
        let s = MessageStore::new(settings);
        // No push seen yet: no offset, no stamp.
        assert_eq!(s.attach(Codec::H264, frame(), true, 0).0, frame());
        let wall = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        let before = wall();
        s.note_push(1000, 1000);
        let after = wall();
        assert_eq!(s.attach(Codec::H264, frame(), false, 1000).0, frame());
        s.send(b"m", 0).unwrap();
        let (au, span) = s.attach(Codec::H264, frame(), true, 1033);
        let found = sei::parse_length_prefixed(Codec::H264, &au);
        assert_eq!(found.len(), 2);
        assert_eq!(sei::parse_length_prefixed(Codec::H264, &au[..span.len as usize]).len(), 1);
        assert_eq!(found[1].uuid, sei::CAPTURE_TIME_UUID);
        let (capture, pts) = sei::parse_capture_time(&found[1].payload).unwrap();
        assert_eq!(pts, 1_033_000);
        // The picture 33 ms after the one pushed: 33 ms after that push's wall time.
        assert!((before + 33_000..=after + 33_000).contains(&capture), "{capture} vs {before}..{after}");
    }
}
