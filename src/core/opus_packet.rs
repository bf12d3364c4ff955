//! Opus packets as the app hands them over (`push_opus`): checked against RFC 6716's framing rules
//! (section 3.4, R1-R7) and measured in 48 kHz samples from the TOC byte and the frame count, with
//! no decoder. A build without libopus can still carry the app's Opus to WebRTC.
//!
//! Hand-written: libopus's `opus_packet_parse` does this, but only a build with the `opus` feature
//! has libopus, and the crates that parse Opus framing in Rust (`ogg`, `symphonia`) do so for
//! containers, not for one packet.

use crate::error::{Error, Result};

/// The longest packet RFC 6716 allows: 120 ms.
pub const MAX_PACKET_SAMPLES: u32 = 5760;
/// The largest frame (R2).
const MAX_FRAME_BYTES: usize = 1275;

/// Samples at 48 kHz in one frame of the TOC byte's configuration (section 3.1, table 2).
fn frame_samples(toc: u8) -> u32 {
    let config = toc >> 3;
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config & 3)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config & 1)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config & 3)],
    }
}

/// A frame length as sections 3.2.1 codes it: one byte below 252, else two. Returns the length
/// and the bytes its coding took.
fn frame_length(data: &[u8]) -> Result<(usize, usize)> {
    match data {
        [] => Err(bad("a frame length is missing")),
        [b0, ..] if *b0 < 252 => Ok((usize::from(*b0), 1)),
        [_] => Err(bad("a two-byte frame length is cut short")),
        [b0, b1, ..] => Ok((usize::from(*b1) * 4 + usize::from(*b0), 2)),
    }
}

fn bad(why: &str) -> Error {
    Error::BadBitstream(format!("not an Opus packet (RFC 6716 section 3): {why}"))
}

/// The packet's duration in 48 kHz samples, once every rule of RFC 6716 section 3.4 holds: a
/// packet libopus's decoder would refuse is refused here, with the rule it breaks.
pub fn packet_samples(packet: &[u8]) -> Result<u32> {
    // R1: at least the TOC byte.
    let (&toc, rest) = packet.split_first().ok_or_else(|| bad("empty (no TOC byte)"))?;
    let per_frame = frame_samples(toc);
    let frames = match toc & 3 {
        // One frame: the rest.
        0 => {
            if rest.len() > MAX_FRAME_BYTES {
                return Err(bad("a frame longer than 1275 bytes"));
            }
            1
        }
        // Two frames of equal size (R3).
        1 => {
            if rest.len() % 2 != 0 {
                return Err(bad("two equal frames in an odd number of bytes"));
            }
            if rest.len() / 2 > MAX_FRAME_BYTES {
                return Err(bad("a frame longer than 1275 bytes"));
            }
            2
        }
        // Two frames, the first's length coded (R4).
        2 => {
            let (first, used) = frame_length(rest)?;
            let left = rest.len() - used;
            if first > left {
                return Err(bad("the first of two frames is longer than the packet"));
            }
            if first > MAX_FRAME_BYTES || left - first > MAX_FRAME_BYTES {
                return Err(bad("a frame longer than 1275 bytes"));
            }
            2
        }
        // Any number of frames (R5-R7).
        _ => {
            let (&count, mut body) =
                rest.split_first().ok_or_else(|| bad("a code 3 packet without its frame count"))?;
            let m = u32::from(count & 0x3f);
            if m == 0 {
                return Err(bad("no frames"));
            }
            if m * per_frame > MAX_PACKET_SAMPLES {
                return Err(bad("more than 120 ms of audio"));
            }
            if count & 0x40 != 0 {
                // Padding: each 255 adds 254 bytes and another length byte follows.
                let mut padding = 0usize;
                loop {
                    let (&p, after) = body.split_first().ok_or_else(|| bad("the padding length is cut short"))?;
                    body = after;
                    if p == 255 {
                        padding += 254;
                    } else {
                        padding += usize::from(p);
                        break;
                    }
                }
                if padding > body.len() {
                    return Err(bad("more padding than bytes"));
                }
                body = &body[..body.len() - padding];
            }
            let m = m as usize;
            if count & 0x80 != 0 {
                // VBR (R7): M-1 lengths, the last frame takes what is left.
                let mut coded = 0usize;
                for _ in 1..m {
                    let (len, used) = frame_length(body)?;
                    body = &body[used..];
                    if len > MAX_FRAME_BYTES {
                        return Err(bad("a frame longer than 1275 bytes"));
                    }
                    coded += len;
                }
                if coded > body.len() {
                    return Err(bad("the frames are longer than the packet"));
                }
                if body.len() - coded > MAX_FRAME_BYTES {
                    return Err(bad("a frame longer than 1275 bytes"));
                }
            } else {
                // CBR (R6): M frames of one size.
                if body.len() % m != 0 {
                    return Err(bad("equal frames that do not divide the packet"));
                }
                if body.len() / m > MAX_FRAME_BYTES {
                    return Err(bad("a frame longer than 1275 bytes"));
                }
            }
            m as u32
        }
    };
    Ok(frames * per_frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_come_from_the_toc_and_the_frame_count() {
        // CELT FB 20 ms (config 31), one frame.
        assert_eq!(packet_samples(&[31 << 3, 1, 2, 3]).unwrap(), 960);
        // SILK NB 60 ms (config 3), two equal frames.
        assert_eq!(packet_samples(&[(3 << 3) | 1, 1, 2]).unwrap(), 5760);
        // Hybrid FB 10 ms (config 14), two frames, the first of 2 bytes.
        assert_eq!(packet_samples(&[(14 << 3) | 2, 2, 9, 9, 9]).unwrap(), 960);
        // CELT 2.5 ms (config 16), code 3 CBR, 6 frames of 1 byte.
        assert_eq!(packet_samples(&[(16 << 3) | 3, 6, 1, 1, 1, 1, 1, 1]).unwrap(), 720);
        // A DTX frame (no bytes after the TOC) is a frame.
        assert_eq!(packet_samples(&[1 << 3]).unwrap(), 960);
    }

    #[test]
    fn code_3_reads_padding_and_vbr_lengths() {
        // VBR, padded: 3 frames (CELT 10 ms), lengths 2 and 1, the last 3; 2 bytes of padding.
        let p = [(18 << 3) | 3, 0xc0 | 3, 2, 2, 1, 7, 7, 8, 9, 9, 9, 0, 0];
        assert_eq!(packet_samples(&p).unwrap(), 1440);
        // 255 in the padding length means 254 and more to come.
        let mut long = vec![(31 << 3) | 3, 0x40 | 1, 255, 1];
        long.extend(std::iter::repeat_n(0, 10 + 255));
        assert_eq!(packet_samples(&long).unwrap(), 960);
    }

    #[test]
    fn packets_breaking_a_rule_are_refused_with_it() {
        let why = |p: &[u8]| packet_samples(p).unwrap_err().to_string();
        assert!(why(&[]).contains("empty"));
        assert!(why(&[(31 << 3) | 1, 1, 2, 3]).contains("odd"));
        assert!(why(&[(31 << 3) | 2, 10, 1]).contains("longer than the packet"));
        assert!(why(&[(31 << 3) | 2, 252]).contains("cut short"));
        assert!(why(&[(31 << 3) | 3]).contains("frame count"));
        assert!(why(&[(31 << 3) | 3, 0]).contains("no frames"));
        // 7 frames of 20 ms: 140 ms.
        assert!(why(&[(31 << 3) | 3, 7, 0, 0, 0, 0, 0, 0, 0]).contains("120 ms"));
        assert!(why(&[(31 << 3) | 3, 2, 1, 2, 3]).contains("divide"));
        assert!(why(&[(31 << 3) | 3, 0x40 | 1, 200]).contains("padding"));
        assert!(why(&[(31 << 3) | 3, 0x80 | 2, 5, 1]).contains("longer than the packet"));
        assert!(why(&vec![31 << 3; 1277]).contains("1275"));
        assert!(why(&[(31 << 3) | 3, 0x40 | 1]).contains("cut short"));
    }

    /// libopus, where the build has it, agrees on every packet its own encoder makes, at every
    /// frame duration it offers.
    #[cfg(feature = "opus")]
    #[test]
    fn agrees_with_libopus_on_its_own_packets() {
        use opus::{Application, Channels, Encoder};
        let mut out = vec![0u8; 4000];
        for samples in [120usize, 240, 480, 960, 1920, 2880] {
            for app in [Application::Voip, Application::Audio, Application::LowDelay] {
                let mut enc = Encoder::new(48000, Channels::Stereo, app).unwrap();
                let pcm: Vec<i16> = (0..samples * 2).map(|i| ((i * 37) % 2000) as i16 - 1000).collect();
                for _ in 0..3 {
                    let n = enc.encode(&pcm, &mut out).unwrap();
                    let p = &out[..n];
                    assert_eq!(packet_samples(p).unwrap() as usize, samples, "{app:?} {samples}: {p:02x?}");
                    assert_eq!(opus::packet::get_nb_samples(p, 48000).unwrap(), samples);
                }
            }
        }
    }
}
