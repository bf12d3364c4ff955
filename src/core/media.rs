//! Codec-level media units: what the encoders (or the app) hand to the destinations, before any
//! wire format. Each destination muxes them for its own wire (FLV for RTMP, MPEG-TS for SRT), so the
//! send queue, the drop policy, the recording tap and the stats never see a transport's framing.
//!
//! Video units are access units as 4-byte big-endian length-prefixed NAL units (the AVCC /
//! ISO 14496-15 form) without parameter sets or access unit delimiters: the parameter sets travel
//! as the decoder configuration record in a header unit, and each muxer puts them where its wire
//! wants them (FLV: a sequence header tag; MPEG-TS: in-band before every keyframe). Audio units are
//! raw AAC frames (no ADTS header), with the AudioSpecificConfig as their header unit, or Opus
//! packets (no header unit) for the destinations that take Opus. The data is
//! `Bytes`: one unit is shared by every destination without a copy.

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Hevc,
    Aac,
    /// 20 ms Opus packets for the WebRTC output; no header unit. FLV, MPEG-TS and the recording
    /// carry AAC only: those destinations are never queued Opus units.
    Opus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPacket {
    pub track: Track,
    pub codec: Codec,
    /// Stream time (decode time for video), in milliseconds.
    pub timestamp_ms: u64,
    /// Presentation minus decode time (video with B-frames), in milliseconds.
    pub cts_ms: i32,
    pub keyframe: bool,
    /// A header unit (decoder configuration): never dropped, sent first by every new session.
    pub header: bool,
    /// Header: the AVCDecoderConfigurationRecord / HEVCDecoderConfigurationRecord /
    /// AudioSpecificConfig. Otherwise: the length-prefixed NAL units of one access unit, or one raw
    /// AAC frame.
    pub data: Bytes,
    /// The app messages (SEI NAL units, see [`crate::core::sei`]) at the start of `data`.
    pub messages: MessageSpan,
}

/// The app messages a video unit carries: `count` SEI NAL units (each one message), the first
/// `len` bytes of its data. A destination that drops the unit moves them to the next one it sends
/// ([`crate::core::message_carry`]); capture-time SEIs follow them and are not moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageSpan {
    pub count: u16,
    pub len: u32,
    /// Bit i: message i is also sent as an FLV data message (`onTextData`) on RTMP and in
    /// recordings.
    pub amf_mask: u32,
}

impl MediaPacket {
    /// A video unit (header or access unit) of `codec`.
    pub fn video(codec: Codec, timestamp_ms: u64, cts_ms: i32, keyframe: bool, header: bool, data: Bytes) -> Self {
        MediaPacket {
            track: Track::Video,
            codec,
            timestamp_ms,
            cts_ms,
            keyframe,
            header,
            data,
            messages: MessageSpan::default(),
        }
    }

    /// One Opus packet (20 ms), stamped like AAC frames: the stream time of its first sample.
    pub fn opus(timestamp_ms: u64, data: Bytes) -> Self {
        MediaPacket {
            track: Track::Audio,
            codec: Codec::Opus,
            timestamp_ms,
            cts_ms: 0,
            keyframe: true,
            header: false,
            data,
            messages: MessageSpan::default(),
        }
    }

    /// An AAC unit: the AudioSpecificConfig (`header`) or one raw frame.
    pub fn aac(timestamp_ms: u64, header: bool, data: Bytes) -> Self {
        MediaPacket {
            track: Track::Audio,
            codec: Codec::Aac,
            timestamp_ms,
            cts_ms: 0,
            keyframe: true,
            header,
            data,
            messages: MessageSpan::default(),
        }
    }
}
