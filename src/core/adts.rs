//! AAC framing: ADTS headers (what hardware encoders and `.aac` files give) and the
//! AudioSpecificConfig that the FLV sequence header carries.

use crate::error::{Error, Result};

const SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

pub fn sample_rate_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES.iter().position(|&r| r == rate).map(|i| i as u8)
}

/// The parts of an ADTS header that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// MPEG-4 audio object type (2 = AAC-LC).
    pub object_type: u8,
    pub sample_rate_index: u8,
    pub channel_config: u8,
    /// Header length: 7, or 9 with CRC.
    pub header_len: usize,
    /// Whole frame length including the header.
    pub frame_len: usize,
}

impl AdtsHeader {
    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES[self.sample_rate_index as usize]
    }

    pub fn audio_specific_config(&self) -> [u8; 2] {
        audio_specific_config(self.object_type, self.sample_rate_index, self.channel_config)
    }
}

pub fn is_adts(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0xff && data[1] & 0xf6 == 0xf0
}

pub fn parse_adts_header(data: &[u8]) -> Result<AdtsHeader> {
    let bad = |w: &str| Error::BadBitstream(format!("ADTS: {w}"));
    if data.len() < 7 || !is_adts(data) {
        return Err(bad("no syncword"));
    }
    let protection_absent = data[1] & 1 == 1;
    let object_type = (data[2] >> 6) + 1;
    let sample_rate_index = (data[2] >> 2) & 0x0f;
    let channel_config = ((data[2] & 1) << 2) | (data[3] >> 6);
    let frame_len = ((data[3] as usize & 3) << 11) | ((data[4] as usize) << 3) | (data[5] as usize >> 5);
    let header_len = if protection_absent { 7 } else { 9 };
    if sample_rate_index as usize >= SAMPLE_RATES.len() {
        return Err(bad("reserved sampling frequency index"));
    }
    if channel_config == 0 {
        return Err(bad("channel configuration in the bitstream is not supported"));
    }
    if frame_len <= header_len {
        return Err(bad("frame length shorter than its header"));
    }
    if data[6] & 3 != 0 {
        return Err(bad("more than one raw data block per frame is not supported"));
    }
    Ok(AdtsHeader { object_type, sample_rate_index, channel_config, header_len, frame_len })
}

/// Iterates over the raw AAC frames of a buffer of concatenated ADTS frames, with their headers.
pub fn adts_frames(data: &[u8]) -> impl Iterator<Item = Result<(AdtsHeader, &[u8])>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let item = parse_adts_header(rest).and_then(|h| {
            if h.frame_len > rest.len() {
                return Err(Error::BadBitstream(format!(
                    "ADTS: frame of {} bytes truncated to {}",
                    h.frame_len,
                    rest.len()
                )));
            }
            let raw = &rest[h.header_len..h.frame_len];
            rest = &rest[h.frame_len..];
            Ok((h, raw))
        });
        if item.is_err() {
            rest = &[];
        }
        Some(item)
    })
}

/// A 2-byte AudioSpecificConfig (ISO 14496-3 1.6.2.1) for the common object types.
pub fn audio_specific_config(object_type: u8, sample_rate_index: u8, channels: u8) -> [u8; 2] {
    [(object_type << 3) | (sample_rate_index >> 1), ((sample_rate_index & 1) << 7) | (channels << 3)]
}

/// (sample rate, channels) from an AudioSpecificConfig.
pub fn parse_audio_specific_config(asc: &[u8]) -> Result<(u32, u8)> {
    if asc.len() < 2 {
        return Err(Error::BadBitstream("AudioSpecificConfig shorter than 2 bytes".into()));
    }
    let idx = ((asc[0] & 7) << 1) | (asc[1] >> 7);
    let channels = (asc[1] >> 3) & 0x0f;
    let rate = *SAMPLE_RATES.get(idx as usize).ok_or_else(|| {
        Error::BadBitstream("AudioSpecificConfig with an explicit sample rate is not supported".into())
    })?;
    Ok((rate, channels))
}

/// A 7-byte ADTS header for a raw frame (used by tests and the receiver's tools).
pub fn adts_header(object_type: u8, sample_rate_index: u8, channels: u8, raw_len: usize) -> [u8; 7] {
    let len = raw_len + 7;
    [
        0xff,
        0xf1,
        ((object_type - 1) << 6) | (sample_rate_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | ((len >> 11) as u8 & 3),
        (len >> 3) as u8,
        ((len as u8 & 7) << 5) | 0x1f,
        0xfc,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_for_common_rates() {
        assert_eq!(audio_specific_config(2, sample_rate_index(44100).unwrap(), 2), [0x12, 0x10]);
        assert_eq!(audio_specific_config(2, sample_rate_index(48000).unwrap(), 1), [0x11, 0x88]);
        assert_eq!(parse_audio_specific_config(&[0x12, 0x10]).unwrap(), (44100, 2));
        assert_eq!(parse_audio_specific_config(&[0x11, 0x88]).unwrap(), (48000, 1));
        assert!(parse_audio_specific_config(&[0x12]).is_err());
    }

    #[test]
    fn adts_round_trip_and_stripping() {
        let mut stream = vec![];
        for n in [10usize, 300, 2000] {
            stream.extend_from_slice(&adts_header(2, 4, 2, n));
            stream.extend(std::iter::repeat_n(n as u8, n));
        }
        let frames: Vec<_> = adts_frames(&stream).map(Result::unwrap).collect();
        assert_eq!(frames.len(), 3);
        for ((h, raw), n) in frames.iter().zip([10usize, 300, 2000]) {
            assert_eq!(raw.len(), n);
            assert!(raw.iter().all(|&b| b == n as u8));
            assert_eq!((h.object_type, h.sample_rate(), h.channel_config), (2, 44100, 2));
            assert_eq!(h.audio_specific_config(), [0x12, 0x10]);
        }
    }

    #[test]
    fn bad_adts_is_an_error_not_a_panic() {
        assert!(parse_adts_header(&[0xff, 0xf1, 0x50]).is_err());
        assert!(parse_adts_header(&[0x12, 0x10, 0, 0, 0, 0, 0]).is_err());
        let mut truncated = adts_header(2, 4, 2, 100).to_vec();
        truncated.extend_from_slice(&[0; 20]);
        assert!(adts_frames(&truncated).next().unwrap().is_err());
        let mut bad_rate = adts_header(2, 4, 2, 10);
        bad_rate[2] |= 0x3c; // index 15
        assert!(parse_adts_header(&bad_rate).is_err());
        let mut seed = 7u32;
        for len in 0..300 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    if seed >> 28 == 0 {
                        0xff
                    } else {
                        (seed >> 16) as u8
                    }
                })
                .collect();
            for f in adts_frames(&data) {
                let _ = f;
            }
        }
    }
}
