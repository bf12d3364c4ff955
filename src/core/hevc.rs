//! H.265/HEVC Annex-B access units for Enhanced RTMP: NAL unit types, conversion to 4-byte
//! length prefixes, the SPS fields the HEVCDecoderConfigurationRecord needs (ISO 14496-15 8.3.3),
//! and the record itself. NAL splitting is shared with H.264 (`annexb::nal_units`).

use super::annexb::{nal_units, unescape, BitReader};
use crate::error::{Error, Result};

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;

/// The 6-bit type in the first byte of the 2-byte HEVC NAL header.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3f)
}

/// Random-access pictures (BLA, IDR, CRA and the reserved IRAP types): an FLV keyframe.
fn is_irap(t: u8) -> bool {
    (16..=23).contains(&t)
}

/// What one access unit held besides its slices.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccessUnitInfo {
    pub keyframe: bool,
    pub has_slices: bool,
    /// The last VPS, SPS and PPS seen in the unit, if any (ranges into the input).
    pub vps: Option<std::ops::Range<usize>>,
    pub sps: Option<std::ops::Range<usize>>,
    pub pps: Option<std::ops::Range<usize>>,
}

/// Appends the access unit with 4-byte big-endian NAL lengths to `out`. Parameter sets and access
/// unit delimiters are left out: they travel in the sequence start (the record).
pub fn annexb_to_length_prefixed(annexb: &[u8], out: &mut Vec<u8>) -> Result<AccessUnitInfo> {
    let mut info = AccessUnitInfo::default();
    let mut any = false;
    for nal in nal_units(annexb) {
        any = true;
        if nal.len() < 2 {
            return Err(Error::BadBitstream("HEVC NAL unit shorter than its 2-byte header".into()));
        }
        if nal[0] & 0x80 != 0 {
            return Err(Error::BadBitstream("NAL unit with forbidden_zero_bit set".into()));
        }
        let offset = nal.as_ptr() as usize - annexb.as_ptr() as usize;
        let range = offset..offset + nal.len();
        match nal_type(nal) {
            NAL_VPS => info.vps = Some(range),
            NAL_SPS => info.sps = Some(range),
            NAL_PPS => info.pps = Some(range),
            NAL_AUD => {}
            t => {
                if is_irap(t) {
                    info.keyframe = true;
                }
                if t < 32 {
                    info.has_slices = true;
                }
                out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                out.extend_from_slice(nal);
            }
        }
    }
    if !any {
        return Err(Error::BadBitstream("no Annex-B start code in the access unit".into()));
    }
    Ok(info)
}

/// The SPS fields the decoder configuration record and the metadata need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    pub max_sub_layers: u8,
    pub temporal_id_nesting: bool,
    pub profile_space: u8,
    pub tier_flag: bool,
    pub profile_idc: u8,
    pub profile_compatibility_flags: u32,
    /// The 48 bits after the compatibility flags (progressive_source_flag onwards).
    pub constraint_indicator_flags: u64,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma_minus8: u32,
    pub bit_depth_chroma_minus8: u32,
    pub width: u32,
    pub height: u32,
}

/// Parse an SPS (with its 2-byte NAL header), up to the bit depths (ITU-T H.265 7.3.2.2).
pub fn parse_sps(sps: &[u8]) -> Result<SpsInfo> {
    let bad = |w: &str| Error::BadBitstream(format!("HEVC SPS: {w}"));
    if sps.len() < 4 || nal_type(sps) != NAL_SPS {
        return Err(bad("too short or not an SPS"));
    }
    let rbsp = unescape(&sps[2..]);
    let mut r = BitReader::new(&rbsp);
    let bits = |r: &mut BitReader, n: u32| r.bits(n).ok_or_else(|| bad("truncated"));
    bits(&mut r, 4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = bits(&mut r, 3)?;
    let temporal_id_nesting = bits(&mut r, 1)? == 1;
    // profile_tier_level(1, sps_max_sub_layers_minus1)
    let profile_space = bits(&mut r, 2)? as u8;
    let tier_flag = bits(&mut r, 1)? == 1;
    let profile_idc = bits(&mut r, 5)? as u8;
    let profile_compatibility_flags = bits(&mut r, 32)?;
    let constraint_indicator_flags = (bits(&mut r, 16)? as u64) << 32 | bits(&mut r, 32)? as u64;
    let level_idc = bits(&mut r, 8)? as u8;
    let mut sub_layer_present = Vec::with_capacity(max_sub_layers_minus1 as usize);
    for _ in 0..max_sub_layers_minus1 {
        sub_layer_present.push((bits(&mut r, 1)? == 1, bits(&mut r, 1)? == 1));
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            bits(&mut r, 2)?; // reserved_zero_2bits
        }
    }
    for (profile_present, level_present) in sub_layer_present {
        if profile_present {
            bits(&mut r, 32)?;
            bits(&mut r, 32)?;
            bits(&mut r, 24)?; // 88 bits of sub-layer profile
        }
        if level_present {
            bits(&mut r, 8)?;
        }
    }
    let ue = |r: &mut BitReader| r.ue().ok_or_else(|| bad("truncated"));
    ue(&mut r)?; // sps_seq_parameter_set_id
    let chroma_format_idc = ue(&mut r)?;
    if chroma_format_idc > 3 {
        return Err(bad("chroma_format_idc out of range"));
    }
    if chroma_format_idc == 3 {
        r.bits(1); // separate_colour_plane_flag
    }
    let mut width = ue(&mut r)? as u64;
    let mut height = ue(&mut r)? as u64;
    if r.bits(1).ok_or_else(|| bad("truncated"))? == 1 {
        let (l, rt, t, b) = (ue(&mut r)? as u64, ue(&mut r)? as u64, ue(&mut r)? as u64, ue(&mut r)? as u64);
        let (cx, cy) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        width = width.saturating_sub((l + rt) * cx);
        height = height.saturating_sub((t + b) * cy);
    }
    let bit_depth_luma_minus8 = ue(&mut r)?;
    let bit_depth_chroma_minus8 = ue(&mut r)?;
    if bit_depth_luma_minus8 > 8 || bit_depth_chroma_minus8 > 8 {
        return Err(bad("bit depth out of range"));
    }
    if width == 0 || height == 0 || width > 16888 || height > 16888 {
        return Err(bad("picture size out of range"));
    }
    Ok(SpsInfo {
        max_sub_layers: max_sub_layers_minus1 as u8 + 1,
        temporal_id_nesting,
        profile_space,
        tier_flag,
        profile_idc,
        profile_compatibility_flags,
        constraint_indicator_flags,
        level_idc,
        chroma_format_idc,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        width: width as u32,
        height: height as u32,
    })
}

/// HEVCDecoderConfigurationRecord (ISO 14496-15 8.3.3.1) with one VPS, SPS and PPS, all marked
/// complete (FLV carries parameter sets only here, like `hvc1` in MP4).
///
/// `min_spatial_segmentation_idc` and `parallelismType` are written as 0 ("no indication"), which
/// is always valid: the real values sit in the SPS VUI and the PPS, and only help a decoder plan
/// its threads. Everything else comes from the SPS.
pub fn decoder_configuration_record(vps: &[u8], sps: &[u8], pps: &[u8]) -> Result<Vec<u8>> {
    let info = parse_sps(sps)?;
    if vps.len() < 2 || nal_type(vps) != NAL_VPS {
        return Err(Error::BadBitstream("VPS missing or not a VPS".into()));
    }
    if pps.len() < 2 || nal_type(pps) != NAL_PPS {
        return Err(Error::BadBitstream("PPS missing or not a PPS".into()));
    }
    if [vps, sps, pps].iter().any(|p| p.len() > u16::MAX as usize) {
        return Err(Error::BadBitstream("parameter set over 64 KiB".into()));
    }
    let mut rec = Vec::with_capacity(23 + 15 + vps.len() + sps.len() + pps.len());
    rec.push(1); // configurationVersion
    rec.push(info.profile_space << 6 | (info.tier_flag as u8) << 5 | info.profile_idc);
    rec.extend_from_slice(&info.profile_compatibility_flags.to_be_bytes());
    rec.extend_from_slice(&info.constraint_indicator_flags.to_be_bytes()[2..]);
    rec.push(info.level_idc);
    rec.extend_from_slice(&[0xf0, 0x00]); // reserved + min_spatial_segmentation_idc 0
    rec.push(0xfc); // reserved + parallelismType 0
    rec.push(0xfc | info.chroma_format_idc as u8);
    rec.push(0xf8 | info.bit_depth_luma_minus8.min(7) as u8);
    rec.push(0xf8 | info.bit_depth_chroma_minus8.min(7) as u8);
    rec.extend_from_slice(&[0, 0]); // avgFrameRate: unspecified
                                    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3
    rec.push((info.max_sub_layers & 7) << 3 | (info.temporal_id_nesting as u8) << 2 | 3);
    rec.push(3); // numOfArrays
    for (t, nal) in [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)] {
        rec.push(0x80 | t); // array_completeness 1, reserved 0, NAL_unit_type
        rec.extend_from_slice(&1u16.to_be_bytes());
        rec.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        rec.extend_from_slice(nal);
    }
    Ok(rec)
}

/// The VPS, SPS and PPS in a record (the first of each type), for tools that turn a recording
/// back into Annex-B.
pub fn record_parameter_sets(rec: &[u8]) -> Result<Vec<&[u8]>> {
    let bad = || Error::BadBitstream("truncated HEVCDecoderConfigurationRecord".into());
    let n = *rec.get(22).ok_or_else(bad)?;
    let mut pos = 23;
    let mut out = Vec::new();
    for _ in 0..n {
        let h = rec.get(pos..pos + 3).ok_or_else(bad)?;
        let count = u16::from_be_bytes([h[1], h[2]]);
        pos += 3;
        for _ in 0..count {
            let l = rec.get(pos..pos + 2).ok_or_else(bad)?;
            let len = u16::from_be_bytes([l[0], l[1]]) as usize;
            out.push(rec.get(pos + 2..pos + 2 + len).ok_or_else(bad)?);
            pos += 2 + len;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Parameter sets of a 320x240 Main-profile stream from FFmpeg 5.1's libx265 (`testsrc2`,
    // `-x265-params keyint=25:bframes=0`), and the hvcC box FFmpeg's MP4 muxer wrote for it with
    // `-c copy -tag:v hvc1`: the known-good record.
    const VPS: &str = "40010c01ffff01600000030090000003000003003c928090";
    const SPS: &str = "42010101600000030090000003000003003ca00a080f16592a4932bc05a02000000300200000030321";
    const PPS: &str = "4401c172b46240";
    const FFMPEG_HVCC: &str = "0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff0160000003\
        0090000003000003003c928090a10001002942010101600000030090000003000003003ca00a080f16592a4932bc05a020\
        00000300200000030321a2000100074401c172b46240";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn parses_the_sps() {
        let s = parse_sps(&hex(SPS)).unwrap();
        assert_eq!((s.width, s.height), (320, 240));
        assert_eq!((s.profile_space, s.tier_flag, s.profile_idc, s.level_idc), (0, false, 1, 60));
        assert_eq!(s.profile_compatibility_flags, 0x6000_0000);
        assert_eq!(s.constraint_indicator_flags, 0x9000_0000_0000);
        assert_eq!((s.chroma_format_idc, s.bit_depth_luma_minus8, s.bit_depth_chroma_minus8), (1, 0, 0));
        assert_eq!((s.max_sub_layers, s.temporal_id_nesting), (1, true));
        assert!(parse_sps(&hex(PPS)).is_err());
        assert!(parse_sps(&hex(&SPS[..20])).is_err());
    }

    #[test]
    fn record_equals_ffmpegs_hvcc() {
        let rec = decoder_configuration_record(&hex(VPS), &hex(SPS), &hex(PPS)).unwrap();
        assert_eq!(rec, hex(FFMPEG_HVCC));
        let sets = record_parameter_sets(&rec).unwrap();
        assert_eq!(sets, vec![&hex(VPS)[..], &hex(SPS), &hex(PPS)]);
        assert!(decoder_configuration_record(&hex(SPS), &hex(SPS), &hex(PPS)).is_err());
        assert!(decoder_configuration_record(&hex(VPS), &hex(SPS), &hex(VPS)).is_err());
        assert!(record_parameter_sets(&rec[..rec.len() - 1]).is_err());
    }

    #[test]
    fn converts_access_units() {
        let mut au = vec![0, 0, 0, 1, 0x46, 0x01, 0x50]; // AUD
        for p in [VPS, SPS, PPS] {
            au.extend_from_slice(&[0, 0, 1]);
            au.extend_from_slice(&hex(p));
        }
        au.extend_from_slice(&[0, 0, 1, 0x4e, 0x01, 5, 1, 0x80]); // prefix SEI
        au.extend_from_slice(&[0, 0, 0, 1, 0x28, 0x01, 0xaf, 0x1d]); // IDR_N_LP slice
        let mut out = vec![];
        let info = annexb_to_length_prefixed(&au, &mut out).unwrap();
        assert!(info.keyframe && info.has_slices);
        assert_eq!(&au[info.vps.clone().unwrap()], &hex(VPS)[..]);
        assert_eq!(&au[info.sps.clone().unwrap()], &hex(SPS)[..]);
        assert_eq!(&au[info.pps.clone().unwrap()], &hex(PPS)[..]);
        assert_eq!(out, vec![0, 0, 0, 5, 0x4e, 0x01, 5, 1, 0x80, 0, 0, 0, 4, 0x28, 0x01, 0xaf, 0x1d]);

        let mut out = vec![];
        let info = annexb_to_length_prefixed(&[0, 0, 1, 0x02, 0x01, 0xd0], &mut out).unwrap(); // TRAIL_R
        assert!(!info.keyframe && info.has_slices);
        assert_eq!(out, vec![0, 0, 0, 3, 0x02, 0x01, 0xd0]);

        assert!(annexb_to_length_prefixed(&[0x26, 1, 2], &mut vec![]).is_err());
        assert!(annexb_to_length_prefixed(&[0, 0, 1, 0xa6, 1], &mut vec![]).is_err());
        assert!(annexb_to_length_prefixed(&[0, 0, 1, 0x26], &mut vec![]).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 7) as u8
                })
                .collect();
            let _ = annexb_to_length_prefixed(&data, &mut vec![]);
            let mut sps = vec![0x42, 0x01];
            sps.extend_from_slice(&data);
            let _ = parse_sps(&sps);
            let _ = record_parameter_sets(&data);
        }
    }
}
