//! FLV: tag bodies as RTMP carries them (video/audio message payloads) and the FLV file format
//! (header + tags + previous-tag-size), per the FLV spec v10.1, annex E.

use crate::core::media::{Codec, MediaPacket};
use std::io::{self, Read, Write};

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// Frame type (high nibble) | codec id 7 (AVC).
const AVC_KEY: u8 = 0x17;
const AVC_INTER: u8 = 0x27;
/// AAC, 44 kHz, 16-bit, stereo: the spec says AAC always uses these flags; the real parameters
/// are in the AudioSpecificConfig.
const AAC_FLAGS: u8 = 0xAF;
/// Enhanced RTMP v2: SoundFormat "ExHeader" and its AudioPacketType "CodedFrames".
const EX_AUDIO_FORMAT: u8 = 9;
const EX_AUDIO_CODED_FRAMES: u8 = 1;

/// Size of the AVC video tag header (flags, packet type, composition time).
pub const AVC_HEADER_LEN: usize = 5;
/// Size of the AAC audio tag header (flags, packet type).
pub const AAC_HEADER_LEN: usize = 2;

/// Video tag body carrying an AVCDecoderConfigurationRecord.
pub fn avc_sequence_header(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(AVC_HEADER_LEN + record.len());
    out.extend_from_slice(&[AVC_KEY, 0x00, 0, 0, 0]);
    out.extend_from_slice(record);
    out
}

/// The 5-byte header of an AVC NALU tag; the AVCC payload follows it.
/// `cts_ms` is pts − dts, a signed 24-bit value.
pub fn avc_nalu_header(keyframe: bool, cts_ms: i32) -> [u8; AVC_HEADER_LEN] {
    let c = cts_ms.clamp(-(1 << 23), (1 << 23) - 1) as u32;
    [if keyframe { AVC_KEY } else { AVC_INTER }, 0x01, (c >> 16) as u8, (c >> 8) as u8, c as u8]
}

/// AVC end-of-sequence tag body, sent before unpublishing.
pub fn avc_end_of_sequence() -> [u8; AVC_HEADER_LEN] {
    [AVC_KEY, 0x02, 0, 0, 0]
}

/// Enhanced RTMP (veovera enhanced-rtmp v1) video: the first byte has IsExHeader (0x80), the frame
/// type (bits 4-6) and a PacketType (bits 0-3); a FourCC naming the codec follows.
pub const FOURCC_HEVC: [u8; 4] = *b"hvc1";
pub const EX_PACKET_SEQUENCE_START: u8 = 0;
pub const EX_PACKET_CODED_FRAMES: u8 = 1;
pub const EX_PACKET_SEQUENCE_END: u8 = 2;
/// Coded frames with an implied composition time of 0 (saves 3 bytes per frame).
pub const EX_PACKET_CODED_FRAMES_X: u8 = 3;
const EX_HEADER: u8 = 0x80;
const FRAME_KEY: u8 = 1 << 4;
const FRAME_INTER: u8 = 2 << 4;

/// Longest ExVideoTagHeader this crate writes: flags, FourCC, composition time.
pub const EX_VIDEO_HEADER_MAX: usize = 8;

/// Enhanced video tag body carrying the codec's decoder configuration record.
pub fn ex_video_sequence_start(fourcc: [u8; 4], record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + record.len());
    out.push(EX_HEADER | FRAME_KEY | EX_PACKET_SEQUENCE_START);
    out.extend_from_slice(&fourcc);
    out.extend_from_slice(record);
    out
}

/// The header of an enhanced coded-frames tag: CodedFramesX (5 bytes) when the composition time
/// is 0, else CodedFrames with the signed 24-bit composition time (8 bytes). Returns the header
/// and its length; the length-prefixed NAL units follow it.
pub fn ex_video_frame_header(fourcc: [u8; 4], keyframe: bool, cts_ms: i32) -> ([u8; EX_VIDEO_HEADER_MAX], usize) {
    let frame = if keyframe { FRAME_KEY } else { FRAME_INTER };
    let mut h = [0u8; EX_VIDEO_HEADER_MAX];
    h[1..5].copy_from_slice(&fourcc);
    if cts_ms == 0 {
        h[0] = EX_HEADER | frame | EX_PACKET_CODED_FRAMES_X;
        return (h, 5);
    }
    let c = cts_ms.clamp(-(1 << 23), (1 << 23) - 1) as u32;
    h[0] = EX_HEADER | frame | EX_PACKET_CODED_FRAMES;
    h[5..8].copy_from_slice(&[(c >> 16) as u8, (c >> 8) as u8, c as u8]);
    (h, 8)
}

/// Enhanced video tag body ending the sequence, sent before unpublishing.
pub fn ex_video_sequence_end(fourcc: [u8; 4]) -> [u8; 5] {
    [EX_HEADER | FRAME_KEY | EX_PACKET_SEQUENCE_END, fourcc[0], fourcc[1], fourcc[2], fourcc[3]]
}

/// An enhanced video tag body taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExVideoTag<'a> {
    pub keyframe: bool,
    pub packet_type: u8,
    pub fourcc: [u8; 4],
    /// Composition time offset in ms (0 unless CodedFrames).
    pub cts_ms: i32,
    /// What follows the header: the record, or the length-prefixed NAL units.
    pub payload: &'a [u8],
}

/// Parse an enhanced video tag body; None for a legacy tag or one too short for its header.
pub fn parse_ex_video(body: &[u8]) -> Option<ExVideoTag<'_>> {
    let (&b0, rest) = body.split_first()?;
    if b0 & EX_HEADER == 0 || rest.len() < 4 {
        return None;
    }
    let packet_type = b0 & 0x0f;
    let fourcc = [rest[0], rest[1], rest[2], rest[3]];
    let (cts_ms, payload) = if packet_type == EX_PACKET_CODED_FRAMES {
        let c = rest.get(4..7)?;
        // Sign-extend the 24-bit value.
        ((i32::from_be_bytes([0, c[0], c[1], c[2]]) << 8) >> 8, &rest[7..])
    } else {
        (0, &rest[4..])
    };
    Some(ExVideoTag { keyframe: (b0 >> 4) & 7 == 1, packet_type, fourcc, cts_ms, payload })
}

/// Audio tag body carrying an AudioSpecificConfig.
pub fn aac_sequence_header(asc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAC_HEADER_LEN + asc.len());
    out.extend_from_slice(&[AAC_FLAGS, 0x00]);
    out.extend_from_slice(asc);
    out
}

/// The 2-byte header of a raw AAC frame tag.
pub fn aac_raw_header() -> [u8; AAC_HEADER_LEN] {
    [AAC_FLAGS, 0x01]
}

/// The FLV muxer of the codec-level units ([`crate::core::media`]): the tag type and the start of
/// the tag body that goes in front of a unit's data (flags, packet type, composition time). The
/// body is this prefix followed by the unit's data, so a unit is never copied to be framed.
pub fn unit_prefix(p: &MediaPacket) -> (u8, [u8; EX_VIDEO_HEADER_MAX], usize) {
    let mut h = [0u8; EX_VIDEO_HEADER_MAX];
    match (p.codec, p.header) {
        (Codec::H264, true) => {
            h[0] = AVC_KEY;
            (TAG_VIDEO, h, AVC_HEADER_LEN)
        }
        (Codec::H264, false) => {
            h[..AVC_HEADER_LEN].copy_from_slice(&avc_nalu_header(p.keyframe, p.cts_ms));
            (TAG_VIDEO, h, AVC_HEADER_LEN)
        }
        (Codec::Hevc, true) => {
            h[0] = EX_HEADER | FRAME_KEY | EX_PACKET_SEQUENCE_START;
            h[1..5].copy_from_slice(&FOURCC_HEVC);
            (TAG_VIDEO, h, 5)
        }
        (Codec::Hevc, false) => {
            let (h, n) = ex_video_frame_header(FOURCC_HEVC, p.keyframe, p.cts_ms);
            (TAG_VIDEO, h, n)
        }
        (Codec::Aac, header) => {
            h[0] = AAC_FLAGS;
            h[1] = if header { 0 } else { 1 };
            (TAG_AUDIO, h, AAC_HEADER_LEN)
        }
        // Enhanced RTMP v2's ExAudioTagHeader (SoundFormat 9, CodedFrames, FourCC "Opus"), for
        // completeness: no destination or recording muxes Opus into FLV today (nginx-rtmp and
        // most ingests take AAC only), they skip Opus units before getting here.
        (Codec::Opus, _) => {
            h[0] = EX_AUDIO_FORMAT << 4 | EX_AUDIO_CODED_FRAMES;
            h[1..5].copy_from_slice(b"Opus");
            (TAG_AUDIO, h, 5)
        }
    }
}

/// Write one codec-level unit as an FLV file tag at `timestamp_ms`.
pub fn write_file_unit<W: Write>(out: &mut W, p: &MediaPacket, timestamp_ms: u32) -> io::Result<()> {
    let (tag_type, prefix, n) = unit_prefix(p);
    write_file_tag_parts(out, tag_type, timestamp_ms, &prefix[..n], &p.data)
}

/// What a tag body is, read from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    AvcSequenceHeader,
    AvcKeyframe,
    AvcInterframe,
    AvcEndOfSequence,
    AacSequenceHeader,
    AacRaw,
    Script,
    Other,
}

pub fn classify(tag_type: u8, body: &[u8]) -> TagKind {
    match (tag_type, body) {
        (TAG_VIDEO, [f, 0, ..]) if f & 0x0f == 7 => TagKind::AvcSequenceHeader,
        (TAG_VIDEO, [f, 1, ..]) if f & 0x0f == 7 && f >> 4 == 1 => TagKind::AvcKeyframe,
        (TAG_VIDEO, [f, 1, ..]) if f & 0x0f == 7 => TagKind::AvcInterframe,
        (TAG_VIDEO, [f, 2, ..]) if f & 0x0f == 7 => TagKind::AvcEndOfSequence,
        (TAG_AUDIO, [f, 0, ..]) if f >> 4 == 10 => TagKind::AacSequenceHeader,
        (TAG_AUDIO, [f, 1, ..]) if f >> 4 == 10 => TagKind::AacRaw,
        (TAG_SCRIPT, _) => TagKind::Script,
        _ => TagKind::Other,
    }
}

/// The 9-byte FLV file header followed by PreviousTagSize0.
pub fn file_header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let flags = (has_audio as u8) << 2 | has_video as u8;
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// Write one tag (11-byte header, body, PreviousTagSize) to an FLV file.
pub fn write_file_tag<W: Write>(out: &mut W, tag_type: u8, timestamp_ms: u32, body: &[u8]) -> io::Result<()> {
    write_file_tag_parts(out, tag_type, timestamp_ms, &[], body)
}

/// [`write_file_tag`] with the body in two pieces (a tag header and the media data).
pub fn write_file_tag_parts<W: Write>(
    out: &mut W,
    tag_type: u8,
    timestamp_ms: u32,
    prefix: &[u8],
    body: &[u8],
) -> io::Result<()> {
    let len = prefix.len() + body.len();
    if len >= 1 << 24 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "FLV tag body over 16 MiB"));
    }
    let t = timestamp_ms;
    let header = [
        tag_type,
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        (t >> 16) as u8,
        (t >> 8) as u8,
        t as u8,
        (t >> 24) as u8, // TimestampExtended
        0,
        0,
        0,
    ];
    out.write_all(&header)?;
    out.write_all(prefix)?;
    out.write_all(body)?;
    out.write_all(&((len + 11) as u32).to_be_bytes())
}

/// A tag read back from an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTag {
    pub tag_type: u8,
    pub timestamp_ms: u32,
    pub body: Vec<u8>,
}

/// Reads tags from an FLV file: for tests, the receiver's checks and tools. Bodies over 16 MiB
/// cannot be declared, so a hostile file cannot make it allocate more than that per tag.
pub struct FileReader<R: Read> {
    inner: R,
    pub has_audio: bool,
    pub has_video: bool,
}

impl<R: Read> FileReader<R> {
    pub fn new(mut inner: R) -> io::Result<Self> {
        let mut h = [0u8; 9];
        inner.read_exact(&mut h)?;
        if &h[..3] != b"FLV" {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not an FLV file"));
        }
        let offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
        if !(9..=1024).contains(&offset) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad FLV header size"));
        }
        // Rest of the header, then PreviousTagSize0.
        io::copy(&mut (&mut inner).take(offset as u64 - 9 + 4), &mut io::sink())?;
        Ok(FileReader { has_audio: h[4] & 4 != 0, has_video: h[4] & 1 != 0, inner })
    }

    /// The next tag, or `None` at a clean end of file. A truncated last tag is reported as `None`
    /// too (a recording cut by a crash still yields its complete tags).
    pub fn next_tag(&mut self) -> io::Result<Option<FileTag>> {
        let mut h = [0u8; 11];
        match self.inner.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let mut body = vec![0u8; len];
        let mut trailer = [0u8; 4];
        match self.inner.read_exact(&mut body).and_then(|_| self.inner.read_exact(&mut trailer)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(Some(FileTag { tag_type: h[0] & 0x1f, timestamp_ms: ts, body }))
    }
}

impl<R: Read> Iterator for FileReader<R> {
    type Item = io::Result<FileTag>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_tag().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_video_tags_match_the_spec() {
        assert_eq!(ex_video_sequence_start(FOURCC_HEVC, &[1, 2]), vec![0x90, b'h', b'v', b'c', b'1', 1, 2]);
        assert_eq!(ex_video_sequence_end(FOURCC_HEVC), [0x92, b'h', b'v', b'c', b'1']);
        let (h, n) = ex_video_frame_header(FOURCC_HEVC, true, 0);
        assert_eq!(&h[..n], &[0x93, b'h', b'v', b'c', b'1']);
        let (h, n) = ex_video_frame_header(FOURCC_HEVC, false, 66);
        assert_eq!(&h[..n], &[0xa1, b'h', b'v', b'c', b'1', 0, 0, 66]);
        let (h, n) = ex_video_frame_header(FOURCC_HEVC, false, -2);
        assert_eq!(&h[..n], &[0xa1, b'h', b'v', b'c', b'1', 0xff, 0xff, 0xfe]);
        let mut body = h[..n].to_vec();
        body.extend_from_slice(&[0, 0, 0, 1, 9]);
        let t = parse_ex_video(&body).unwrap();
        assert_eq!((t.keyframe, t.packet_type, t.fourcc, t.cts_ms), (false, 1, FOURCC_HEVC, -2));
        assert_eq!(t.payload, &[0, 0, 0, 1, 9]);
        let t = parse_ex_video(&[0x93, b'h', b'v', b'c', b'1', 7]).unwrap();
        assert_eq!((t.keyframe, t.packet_type, t.cts_ms, t.payload), (true, 3, 0, &[7u8][..]));
        assert_eq!(parse_ex_video(&[0x17, 1, 0, 0, 0]), None);
        assert_eq!(parse_ex_video(&[0x91, b'h', b'v', b'c', b'1', 0]), None);
        assert_eq!(parse_ex_video(&[0x90, b'h']), None);
    }

    #[test]
    fn avc_tags_match_the_spec() {
        assert_eq!(avc_sequence_header(&[1, 0x42, 0xc0, 0x1f]), vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1f]);
        assert_eq!(avc_nalu_header(true, 0), [0x17, 1, 0, 0, 0]);
        assert_eq!(avc_nalu_header(false, 66), [0x27, 1, 0, 0, 66]);
        // Negative composition offsets are two's complement in 24 bits.
        assert_eq!(avc_nalu_header(false, -1), [0x27, 1, 0xff, 0xff, 0xff]);
        assert_eq!(avc_end_of_sequence(), [0x17, 2, 0, 0, 0]);
    }

    #[test]
    fn aac_tags_match_the_spec() {
        assert_eq!(aac_sequence_header(&[0x12, 0x10]), vec![0xaf, 0, 0x12, 0x10]);
        assert_eq!(aac_raw_header(), [0xaf, 1]);
        assert_eq!(classify(TAG_AUDIO, &[0xaf, 0, 0x12, 0x10]), TagKind::AacSequenceHeader);
        assert_eq!(classify(TAG_VIDEO, &avc_nalu_header(true, 0)), TagKind::AvcKeyframe);
        assert_eq!(classify(TAG_VIDEO, &avc_nalu_header(false, 0)), TagKind::AvcInterframe);
    }

    #[test]
    fn file_round_trip_with_extended_timestamp() {
        let mut f = file_header(true, true).to_vec();
        assert_eq!(&f[..], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        write_file_tag(&mut f, TAG_VIDEO, 0x0123_4567, &[0x17, 1, 0, 0, 0, 9]).unwrap();
        // Header: type, size 6, ts low 24 bits, ts high byte, stream id 0.
        assert_eq!(&f[13..24], &[9, 0, 0, 6, 0x23, 0x45, 0x67, 0x01, 0, 0, 0]);
        assert_eq!(&f[30..34], &17u32.to_be_bytes());
        write_file_tag(&mut f, TAG_AUDIO, 5, &[0xaf, 1, 1, 2]).unwrap();
        f.extend_from_slice(&[8, 0, 0]); // truncated tag header at the end
        let tags: Vec<_> = FileReader::new(&f[..]).unwrap().map(Result::unwrap).collect();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].timestamp_ms, 0x0123_4567);
        assert_eq!(tags[1], FileTag { tag_type: TAG_AUDIO, timestamp_ms: 5, body: vec![0xaf, 1, 1, 2] });
    }
}
