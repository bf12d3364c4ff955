//! H.264 Annex-B byte streams: NAL unit splitting (3- and 4-byte start codes), conversion to the
//! 4-byte length-prefixed AVCC form FLV carries, the AVCDecoderConfigurationRecord, and the few SPS
//! fields the record and the metadata need.

use crate::error::{Error, Result};

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// The NAL units of a 4-byte length-prefixed access unit (AVCC, or HEVC's the same way) as
/// ranges into it, in order: an error, and nothing after it, for a length that is zero or overruns
/// the unit, or for trailing bytes too few to hold a length.
pub fn length_prefixed_nals(data: &[u8]) -> impl Iterator<Item = Result<std::ops::Range<usize>>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = data.get(at..).filter(|r| !r.is_empty())?;
        let r = match rest.split_first_chunk::<4>() {
            None => Err(Error::BadBitstream(format!("{} trailing bytes after the last NAL unit", rest.len()))),
            Some((len, tail)) => match u32::from_be_bytes(*len) as usize {
                len if len == 0 || len > tail.len() => Err(Error::BadBitstream(format!(
                    "NAL unit length {len} with {} bytes left in the access unit",
                    tail.len()
                ))),
                len => Ok(at + 4..at + 4 + len),
            },
        };
        // After an error nothing more: the rest of the unit cannot be framed.
        at = r.as_ref().map_or(data.len(), |r| r.end);
        Some(r)
    })
}

/// Iterates over the NAL units of an Annex-B buffer, start codes removed. Bytes before the first
/// start code are ignored; the trailing zero of a 4-byte start code is not part of the NAL before it.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    let pos = find_start_code(data, 0).map_or(data.len(), |(_, end)| end);
    NalUnits { data, pos }
}

pub struct NalUnits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let (end, next) = match find_start_code(self.data, start) {
                Some((sc, after)) => (sc, after),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            let mut nal = &self.data[start..end];
            while let [rest @ .., 0] = nal {
                nal = rest; // trailing_zero_8bits, or the leading zero of a 4-byte start code
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// The next `00 00 01` at or after `from`: (its index, the index after it).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip fast over bytes that cannot end a start code.
        if data[i + 2] > 1 {
            i += 3;
            continue;
        }
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some((i, i + 3));
        }
        i += 1;
    }
    None
}

/// What one access unit held besides its slices.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccessUnitInfo {
    pub keyframe: bool,
    pub has_slices: bool,
    /// The last SPS and PPS seen in the unit, if any (ranges into the input).
    pub sps: Option<std::ops::Range<usize>>,
    pub pps: Option<std::ops::Range<usize>>,
}

/// Appends the access unit in AVCC form (4-byte big-endian lengths) to `out`. SPS, PPS and access
/// unit delimiters are left out: they travel in the sequence header, and repeating them in-band
/// makes some players reinitialise their decoder.
/// `out` is any byte sink (`Vec<u8>`, or the pooled `BytesMut` the packetizer uses). The output is
/// at most `annexb.len() * 5 / 4` bytes: each NAL unit grows by at most one byte.
pub fn annexb_to_avcc(annexb: &[u8], out: &mut impl bytes::BufMut) -> Result<AccessUnitInfo> {
    let mut info = AccessUnitInfo::default();
    let mut any = false;
    for nal in nal_units(annexb) {
        any = true;
        let offset = nal.as_ptr() as usize - annexb.as_ptr() as usize;
        let range = offset..offset + nal.len();
        if nal[0] & 0x80 != 0 {
            return Err(Error::BadBitstream("NAL unit with forbidden_zero_bit set".into()));
        }
        match nal_type(nal) {
            NAL_SPS => info.sps = Some(range),
            NAL_PPS => info.pps = Some(range),
            NAL_AUD => {}
            t => {
                if t == NAL_IDR {
                    info.keyframe = true;
                }
                if (1..=5).contains(&t) {
                    info.has_slices = true;
                }
                out.put_slice(&(nal.len() as u32).to_be_bytes());
                out.put_slice(nal);
            }
        }
    }
    if !any {
        return Err(Error::BadBitstream("no Annex-B start code in the access unit".into()));
    }
    Ok(info)
}

/// The fields of a sequence parameter set that FLV needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma_minus8: u32,
    pub bit_depth_chroma_minus8: u32,
    pub width: u32,
    pub height: u32,
}

/// Profiles whose SPS carries chroma format and bit depth (and whose decoder configuration record
/// carries them too, ISO 14496-15 5.3.3.1.2).
fn is_high_profile(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135)
}

/// Parse the SPS (with its NAL header byte).
pub fn parse_sps(sps: &[u8]) -> Result<SpsInfo> {
    let bad = |w: &str| Error::BadBitstream(format!("SPS: {w}"));
    if sps.len() < 4 || nal_type(sps) != NAL_SPS {
        return Err(bad("too short or not an SPS"));
    }
    // SPSs are a few dozen bytes: unescape on the stack, so checking every keyframe's parameter
    // sets allocates nothing.
    let mut stack = [0u8; 256];
    let heap;
    let rbsp: &[u8] = if sps.len() <= stack.len() {
        let n = unescape_into(&sps[1..], &mut stack);
        &stack[..n]
    } else {
        heap = unescape(&sps[1..]);
        &heap
    };
    let mut r = BitReader::new(rbsp);
    let profile_idc = r.bits(8).ok_or_else(|| bad("truncated"))? as u8;
    let constraint_flags = r.bits(8).ok_or_else(|| bad("truncated"))? as u8;
    let level_idc = r.bits(8).ok_or_else(|| bad("truncated"))? as u8;
    let ue = |r: &mut BitReader| r.ue().ok_or_else(|| bad("truncated"));
    ue(&mut r)?; // seq_parameter_set_id
    let (mut chroma_format_idc, mut depth_l, mut depth_c) = (1, 0, 0);
    if is_high_profile(profile_idc) {
        chroma_format_idc = ue(&mut r)?;
        if chroma_format_idc > 3 {
            return Err(bad("chroma_format_idc out of range"));
        }
        if chroma_format_idc == 3 {
            r.bits(1); // separate_colour_plane_flag
        }
        depth_l = ue(&mut r)?;
        depth_c = ue(&mut r)?;
        r.bits(1); // qpprime_y_zero_transform_bypass_flag
        if r.bits(1).ok_or_else(|| bad("truncated"))? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1).ok_or_else(|| bad("truncated"))? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 }).ok_or_else(|| bad("scaling list"))?;
                }
            }
        }
    }
    ue(&mut r)?; // log2_max_frame_num_minus4
    let poc_type = ue(&mut r)?;
    if poc_type == 0 {
        ue(&mut r)?;
    } else if poc_type == 1 {
        r.bits(1);
        r.se().ok_or_else(|| bad("truncated"))?;
        r.se().ok_or_else(|| bad("truncated"))?;
        let n = ue(&mut r)?;
        if n > 255 {
            return Err(bad("num_ref_frames_in_pic_order_cnt_cycle out of range"));
        }
        for _ in 0..n {
            r.se().ok_or_else(|| bad("truncated"))?;
        }
    }
    ue(&mut r)?; // max_num_ref_frames
    r.bits(1); // gaps_in_frame_num_value_allowed_flag
    let w_mbs = ue(&mut r)? as u64 + 1;
    let h_map = ue(&mut r)? as u64 + 1;
    let frame_mbs_only = r.bits(1).ok_or_else(|| bad("truncated"))? as u64;
    if frame_mbs_only == 0 {
        r.bits(1); // mb_adaptive_frame_field_flag
    }
    r.bits(1); // direct_8x8_inference_flag
    let mut width = w_mbs * 16;
    let mut height = (2 - frame_mbs_only) * h_map * 16;
    if r.bits(1).ok_or_else(|| bad("truncated"))? == 1 {
        let (l, rt, t, b) = (ue(&mut r)? as u64, ue(&mut r)? as u64, ue(&mut r)? as u64, ue(&mut r)? as u64);
        let (cx, cy) = match chroma_format_idc {
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        width = width.saturating_sub((l + rt) * cx);
        height = height.saturating_sub((t + b) * cy);
    }
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return Err(bad("picture size out of range"));
    }
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        bit_depth_luma_minus8: depth_l,
        bit_depth_chroma_minus8: depth_c,
        width: width as u32,
        height: height as u32,
    })
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// AVCDecoderConfigurationRecord (ISO 14496-15 5.3.3.1) for one SPS and one PPS.
pub fn avc_decoder_configuration_record(sps: &[u8], pps: &[u8]) -> Result<Vec<u8>> {
    let mut rec = Vec::with_capacity(16 + sps.len() + pps.len());
    avc_decoder_configuration_record_into(sps, pps, &mut rec)?;
    Ok(rec)
}

/// [`avc_decoder_configuration_record`] written into `rec` (cleared first), so a caller that
/// checks every keyframe's parameter sets against the last ones can reuse one buffer.
pub fn avc_decoder_configuration_record_into(sps: &[u8], pps: &[u8], rec: &mut Vec<u8>) -> Result<()> {
    rec.clear();
    let info = parse_sps(sps)?;
    if pps.is_empty() || nal_type(pps) != NAL_PPS {
        return Err(Error::BadBitstream("PPS missing or not a PPS".into()));
    }
    if sps.len() > u16::MAX as usize || pps.len() > u16::MAX as usize {
        return Err(Error::BadBitstream("parameter set over 64 KiB".into()));
    }
    // version, profile, compatibility, level, 6 reserved bits + lengthSizeMinusOne = 3
    rec.extend_from_slice(&[1, info.profile_idc, info.constraint_flags, info.level_idc, 0xff]);
    rec.push(0xe1); // 3 reserved bits + one SPS
    rec.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    rec.extend_from_slice(sps);
    rec.push(1);
    rec.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    rec.extend_from_slice(pps);
    if is_high_profile(info.profile_idc) {
        rec.push(0xfc | info.chroma_format_idc as u8);
        rec.push(0xf8 | info.bit_depth_luma_minus8.min(7) as u8);
        rec.push(0xf8 | info.bit_depth_chroma_minus8.min(7) as u8);
        rec.push(0); // no SPS extensions
    }
    Ok(())
}

/// Remove emulation-prevention bytes (`00 00 03` → `00 00`).
/// [`unescape`] into `out`, which must be at least as long as `data`; returns the length.
fn unescape_into(data: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out[n] = b;
        n += 1;
    }
    n
}

pub(crate) fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    pub(crate) fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1) as u32;
            self.pos += 1;
        }
        Some(v)
    }

    pub(crate) fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + self.bits(zeros)? as u64).min(u32::MAX as u64) as u32)
    }

    pub(crate) fn se(&mut self) -> Option<i64> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_nals_are_ranges_and_stop_at_a_bad_length() {
        let unit = [0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 3, 0x65, 1, 2];
        let got: Vec<_> = length_prefixed_nals(&unit).collect::<Result<_>>().unwrap();
        assert_eq!(got, [4..6, 10..13]);
        assert_eq!(length_prefixed_nals(&[]).count(), 0);
        for bad in [&[0, 0, 0, 9, 0x65, 1][..], &[0, 0, 0, 0, 0x65], &[0, 0, 0, 1, 0x65, 0, 0]] {
            let got: Vec<_> = length_prefixed_nals(bad).collect();
            assert!(got.last().is_some_and(|r| r.is_err()), "{bad:?}: {got:?}");
            assert_eq!(got.iter().filter(|r| r.is_err()).count(), 1, "nothing after the error: {got:?}");
        }
    }

    // SPS of a 1280x720 Constrained Baseline and of a 320x240 High stream, both from x264.
    const SPS_720P_BASELINE: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
        0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
    ];
    const SPS_240P_HIGH: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
        0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0, 0, 1, 0x06, 0];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5], &[0x06]]);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn converts_to_avcc_and_keeps_parameter_sets_aside() {
        let mut au = vec![0, 0, 0, 1, 0x09, 0xf0];
        au.extend_from_slice(&[0, 0, 0, 1]);
        au.extend_from_slice(SPS_720P_BASELINE);
        au.extend_from_slice(&[0, 0, 1]);
        au.extend_from_slice(PPS);
        au.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x84]);
        let mut out = vec![];
        let info = annexb_to_avcc(&au, &mut out).unwrap();
        assert!(info.keyframe && info.has_slices);
        assert_eq!(&au[info.sps.clone().unwrap()], SPS_720P_BASELINE);
        assert_eq!(&au[info.pps.clone().unwrap()], PPS);
        assert_eq!(out, vec![0, 0, 0, 3, 0x65, 0x88, 0x84]);

        let mut out = vec![];
        let info = annexb_to_avcc(&[0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x41, 0x9b], &mut out).unwrap();
        assert!(!info.keyframe && info.has_slices);
        assert_eq!(out, vec![0, 0, 0, 2, 0x41, 0x9a, 0, 0, 0, 2, 0x41, 0x9b]);

        assert!(annexb_to_avcc(&[0x65, 1, 2], &mut vec![]).is_err());
        assert!(annexb_to_avcc(&[0, 0, 1, 0xe5, 1], &mut vec![]).is_err());
    }

    #[test]
    fn parses_sps_dimensions() {
        let s = parse_sps(SPS_720P_BASELINE).unwrap();
        assert_eq!((s.profile_idc, s.level_idc, s.width, s.height), (66, 31, 1280, 720));
        let s = parse_sps(SPS_240P_HIGH).unwrap();
        assert_eq!((s.profile_idc, s.width, s.height, s.chroma_format_idc), (100, 320, 240, 1));
        assert!(parse_sps(&[0x67, 0x42]).is_err());
        assert!(parse_sps(PPS).is_err());
    }

    #[test]
    fn decoder_configuration_record_layout() {
        let rec = avc_decoder_configuration_record(SPS_720P_BASELINE, PPS).unwrap();
        let n = SPS_720P_BASELINE.len();
        assert_eq!(&rec[..8], &[1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, n as u8]);
        assert_eq!(&rec[8..8 + n], SPS_720P_BASELINE);
        assert_eq!(&rec[8 + n..], &[1, 0, 4, 0x68, 0xce, 0x3c, 0x80]);
        // High profile carries chroma format and bit depths after the PPS.
        let rec = avc_decoder_configuration_record(SPS_240P_HIGH, PPS).unwrap();
        assert_eq!(&rec[rec.len() - 4..], &[0xfd, 0xf8, 0xf8, 0]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 5) as u8 // lots of zeros and ones: start codes
                })
                .collect();
            let _ = annexb_to_avcc(&data, &mut vec![]);
            let mut sps = vec![0x67];
            sps.extend_from_slice(&data);
            let _ = parse_sps(&sps);
        }
    }
}
