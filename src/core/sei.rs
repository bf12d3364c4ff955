//! SEI `user_data_unregistered` NAL units (payload type 5: a 16-byte UUID, then the app's bytes):
//! how timed app messages and capture timestamps ride inside the video, frame-accurately, through
//! every muxer (they are ordinary NAL units of the access unit).
//!
//! Layout (H.264 7.3.2.3 / 7.3.5 and D.1.6; H.265 7.3.2.4 / 7.3.5 and D.2.7):
//!
//! ```text
//! H.264: 06                      nal_unit_type 6, nal_ref_idc 0
//! HEVC:  4E 01                   nal_unit_type 39 (prefix SEI), layer 0, temporal id plus 1 = 1
//! then the RBSP, with emulation prevention (00 00 0x, x <= 3  ->  00 00 03 0x):
//!        05                      payloadType 5
//!        FF .. FF nn             payloadSize = 16 + len: one FF per 255, then the rest
//!        uuid[16] payload[len]
//!        80                      rbsp_trailing_bits
//! ```
//!
//! Pure functions, no allocation on the write side beyond the caller's buffer.

use super::media::Codec;

/// The default UUID of app messages (`kp_pusher_send_message`), unless the config sets another:
/// the ASCII bytes of `kitepush-message` (`6b697465-7075-7368-2d6d-657373616765`).
pub const MESSAGE_UUID: [u8; 16] = *b"kitepush-message";

/// The UUID of capture-time SEIs: the ASCII bytes of `kitepush-capture`
/// (`6b697465-7075-7368-2d63-617074757265`).
/// Payload: 16 bytes, the capture wall-clock time (UTC µs since the Unix epoch, u64 big-endian),
/// then the frame's presentation time in the stream (µs, u64 big-endian; the FLV/TS time of the
/// frame plus its composition time).
pub const CAPTURE_TIME_UUID: [u8; 16] = *b"kitepush-capture";

/// Largest app message accepted (bytes of payload, without the UUID).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// The NAL unit type byte(s) of an SEI for `codec` (`None` for audio).
fn nal_header(codec: Codec) -> Option<&'static [u8]> {
    match codec {
        Codec::H264 => Some(&[0x06]),
        Codec::Hevc => Some(&[0x4e, 0x01]),
        Codec::Aac | Codec::Opus => None,
    }
}

/// The most bytes [`write_nal`] appends for a payload of `len` bytes (every third byte escaped at
/// worst, plus header, type, size and trailing bits).
pub fn max_nal_len(len: usize) -> usize {
    let rbsp = 1 + (16 + len) / 255 + 1 + 16 + len + 1;
    2 + rbsp + rbsp / 2 + 1
}

/// Appends emulation-prevented bytes, remembering the zeros written so far.
struct Escaper<'a> {
    out: &'a mut Vec<u8>,
    zeros: u8,
}

impl Escaper<'_> {
    fn put(&mut self, b: u8) {
        if self.zeros >= 2 && b <= 3 {
            self.out.push(3);
            self.zeros = 0;
        }
        self.out.push(b);
        self.zeros = if b == 0 { self.zeros + 1 } else { 0 };
    }

    fn put_all(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.put(b));
    }
}

/// Appends one SEI NAL unit (no start code, no length prefix) holding one
/// `user_data_unregistered` message to `out`. Returns false (and appends nothing) for audio.
pub fn write_nal(codec: Codec, uuid: &[u8; 16], payload: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(header) = nal_header(codec) else {
        return false;
    };
    out.reserve(max_nal_len(payload.len()));
    out.extend_from_slice(header);
    let mut e = Escaper { out, zeros: 0 };
    e.put(5);
    let mut size = 16 + payload.len();
    while size >= 255 {
        e.put(0xff);
        size -= 255;
    }
    e.put(size as u8);
    e.put_all(uuid);
    e.put_all(payload);
    // 0x80 is above 3: it never needs an escape, and it keeps the NAL from ending in 00.
    e.put(0x80);
    true
}

/// Appends the SEI as one length-prefixed (4-byte big-endian) NAL unit, the form of the media
/// path's access units ([`crate::core::media`]).
pub fn write_length_prefixed(codec: Codec, uuid: &[u8; 16], payload: &[u8], out: &mut Vec<u8>) -> bool {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    if !write_nal(codec, uuid, payload, out) {
        out.truncate(at);
        return false;
    }
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    true
}

/// The 16-byte capture-time payload (see [`CAPTURE_TIME_UUID`]).
pub fn capture_time_payload(capture_utc_us: u64, pts_us: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&capture_utc_us.to_be_bytes());
    p[8..].copy_from_slice(&pts_us.to_be_bytes());
    p
}

/// (capture UTC µs, stream pts µs) from a capture-time payload.
pub fn parse_capture_time(payload: &[u8]) -> Option<(u64, u64)> {
    let (a, b) = payload.split_first_chunk::<8>()?;
    let b = b.first_chunk::<8>()?;
    Some((u64::from_be_bytes(*a), u64::from_be_bytes(*b)))
}

/// One `user_data_unregistered` message found in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub uuid: [u8; 16],
    pub payload: Vec<u8>,
}

/// Removes emulation prevention bytes (the 03 of every 00 00 03).
pub fn unescape(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    unescape_into(ebsp, &mut out);
    out
}

/// [`unescape`] appending to `out` (a reused buffer: no allocation once it is large enough).
pub fn unescape_into(ebsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Whether `nal` (no start code or length) is an SEI of `codec` (for HEVC: a prefix SEI).
pub fn is_sei(codec: Codec, nal: &[u8]) -> bool {
    match (codec, nal) {
        (Codec::H264, [h, ..]) => h & 0x1f == 6,
        (Codec::Hevc, [h, _, ..]) => (h >> 1) & 0x3f == 39,
        _ => false,
    }
}

/// The `user_data_unregistered` messages of one SEI NAL unit (empty when it is not an SEI or
/// holds none; a truncated message ends the search).
pub fn parse_nal(codec: Codec, nal: &[u8]) -> Vec<UserData> {
    let mut found = Vec::new();
    visit_nal(codec, nal, &mut Vec::new(), |uuid, payload| {
        found.push(UserData { uuid: *uuid, payload: payload.to_vec() })
    });
    found
}

/// Calls `f` with the UUID and payload of each `user_data_unregistered` message of one SEI NAL
/// unit, in order; `rbsp` is a reused buffer for the unescaped bytes (no allocation once it is
/// large enough).
pub fn visit_nal(codec: Codec, nal: &[u8], rbsp: &mut Vec<u8>, mut f: impl FnMut(&[u8; 16], &[u8])) {
    if !is_sei(codec, nal) {
        return;
    }
    let header = if codec == Codec::Hevc { 2 } else { 1 };
    rbsp.clear();
    unescape_into(&nal[header..], rbsp);
    let rbsp = &rbsp[..];
    let mut pos = 0;
    let read_coded = |pos: &mut usize| -> Option<usize> {
        let mut v = 0;
        loop {
            let b = *rbsp.get(*pos)?;
            *pos += 1;
            v += b as usize;
            if b != 0xff {
                return Some(v);
            }
        }
    };
    // more_rbsp_data: anything before the trailing 0x80.
    while pos < rbsp.len() && rbsp[pos..] != [0x80] {
        let (Some(kind), Some(size)) = (read_coded(&mut pos), read_coded(&mut pos)) else {
            break;
        };
        let Some(body) = rbsp.get(pos..pos + size) else {
            break;
        };
        pos += size;
        if kind == 5 && size >= 16 {
            let (uuid, payload) = body.split_first_chunk::<16>().expect("16 bytes checked");
            f(uuid, payload);
        }
    }
}

/// [`visit_nal`] over an access unit of 4-byte length-prefixed NAL units.
pub fn visit_length_prefixed(codec: Codec, au: &[u8], rbsp: &mut Vec<u8>, mut f: impl FnMut(&[u8; 16], &[u8])) {
    let mut rest = au;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(nal) = tail.get(..len) else { break };
        visit_nal(codec, nal, rbsp, &mut f);
        rest = &tail[len..];
    }
}

/// The messages in an access unit of 4-byte length-prefixed NAL units, in order.
pub fn parse_length_prefixed(codec: Codec, au: &[u8]) -> Vec<UserData> {
    let mut found = Vec::new();
    let mut rest = au;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(nal) = tail.get(..len) else { break };
        found.extend(parse_nal(codec, nal));
        rest = &tail[len..];
    }
    found
}

/// The NAL units of an Annex-B stream (3- or 4-byte start codes), without their start codes.
pub fn annexb_nals(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &(_, begin)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |s| s.0);
        // A 4-byte start code's leading zero (and trailing_zero_8bits) belong to no NAL.
        while end > begin && stream[end - 1] == 0 {
            end -= 1;
        }
        nals.push(&stream[begin..end]);
    }
    nals
}

/// The messages in an Annex-B stream, in order.
pub fn parse_annexb(codec: Codec, stream: &[u8]) -> Vec<UserData> {
    annexb_nals(stream).into_iter().flat_map(|n| parse_nal(codec, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(codec: Codec, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        assert!(write_nal(codec, &MESSAGE_UUID, payload, &mut v));
        v
    }

    #[test]
    fn short_h264_message_matches_the_spec_layout() {
        let v = nal(Codec::H264, b"hi");
        let mut want = vec![0x06, 0x05, 18];
        want.extend_from_slice(&MESSAGE_UUID);
        want.extend_from_slice(b"hi\x80");
        assert_eq!(v, want);
    }

    #[test]
    fn hevc_uses_the_two_byte_prefix_sei_header() {
        let v = nal(Codec::Hevc, b"x");
        assert_eq!(&v[..4], &[0x4e, 0x01, 0x05, 17]);
        assert_eq!(parse_nal(Codec::Hevc, &v), vec![UserData { uuid: MESSAGE_UUID, payload: b"x".to_vec() }]);
        assert!(!write_nal(Codec::Aac, &MESSAGE_UUID, b"x", &mut Vec::new()));
    }

    #[test]
    fn payload_size_is_coded_in_ff_runs() {
        // 16 + 239 = 255: one FF then 00.
        let v = nal(Codec::H264, &[b'a'; 239]);
        assert_eq!(&v[..4], &[0x06, 0x05, 0xff, 0x00]);
        // 16 + 4096 = 4112 = 16 * 255 + 32.
        let v = nal(Codec::H264, &[b'a'; 4096]);
        assert!(v[2..18].iter().all(|&b| b == 0xff));
        assert_eq!(v[18], 32);
        assert_eq!(parse_nal(Codec::H264, &v)[0].payload.len(), 4096);
    }

    #[test]
    fn zero_runs_are_escaped_and_round_trip() {
        let payload = [0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 7, 0, 0];
        let v = nal(Codec::H264, &payload);
        // No start code or 00 00 0x (x <= 3) survives in the NAL.
        assert!(v.windows(3).all(|w| !(w[0] == 0 && w[1] == 0 && w[2] <= 3) || w[2] == 3));
        assert!(!v.windows(3).any(|w| w == [0, 0, 0] || w == [0, 0, 1] || w == [0, 0, 2]));
        assert_eq!(&v[v.len() - 20..], &[0, 0, 3, 0, 0, 3, 0, 1, 0, 0, 3, 2, 0, 0, 3, 3, 7, 0, 0, 0x80]);
        for codec in [Codec::H264, Codec::Hevc] {
            let got = parse_nal(codec, &nal(codec, &payload));
            assert_eq!(got, vec![UserData { uuid: MESSAGE_UUID, payload: payload.to_vec() }]);
        }
        // Zeros at the end of the UUID carry over into the payload's first bytes.
        let uuid = [0u8; 16];
        let mut v = Vec::new();
        write_nal(Codec::H264, &uuid, &[0, 1, 2, 3], &mut v);
        assert_eq!(&v[3..6], &[0, 0, 3]);
        assert_eq!(parse_nal(Codec::H264, &v), vec![UserData { uuid, payload: vec![0, 1, 2, 3] }]);
        assert!(v.len() <= max_nal_len(4));
    }

    #[test]
    fn found_in_length_prefixed_and_annexb_units() {
        let mut au = Vec::new();
        write_length_prefixed(Codec::H264, &MESSAGE_UUID, b"one", &mut au);
        write_length_prefixed(Codec::H264, &CAPTURE_TIME_UUID, &capture_time_payload(7, 9), &mut au);
        au.extend_from_slice(&[0, 0, 0, 3, 0x65, 0x88, 0x80]);
        let got = parse_length_prefixed(Codec::H264, &au);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload, b"one");
        assert_eq!(parse_capture_time(&got[1].payload), Some((7, 9)));

        let mut annexb = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1];
        write_nal(Codec::H264, &MESSAGE_UUID, &[0, 0, 0, 0], &mut annexb);
        annexb.extend_from_slice(&[0, 0, 1, 0x65, 0x88]);
        assert_eq!(parse_annexb(Codec::H264, &annexb)[0].payload, vec![0, 0, 0, 0]);
    }

    #[test]
    fn random_payloads_round_trip_and_garbage_never_panics() {
        // A fixed xorshift: zero-heavy payloads hit every escape case, deterministically.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let len = 1 + (next() % 600) as usize;
            let payload: Vec<u8> =
                (0..len).map(|_| if next() % 3 == 0 { (next() % 256) as u8 } else { (next() % 4) as u8 }).collect();
            let codec = if round % 2 == 0 { Codec::H264 } else { Codec::Hevc };
            let mut uuid = [0u8; 16];
            uuid.iter_mut().for_each(|b| *b = (next() % 3) as u8);
            let mut au = Vec::new();
            write_length_prefixed(codec, &uuid, &payload, &mut au);
            assert!(au.len() - 4 <= max_nal_len(len));
            // No start code prefix and no 00 00 00..02 inside the NAL.
            assert!(!au[4..].windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2), "round {round}");
            assert_eq!(parse_length_prefixed(codec, &au), vec![UserData { uuid, payload: payload.clone() }]);
            // Garbage: whatever it finds, it does not panic.
            let garbage: Vec<u8> = (0..len).map(|_| (next() % 256) as u8).collect();
            let _ = parse_nal(codec, &garbage);
            let _ = parse_length_prefixed(codec, &garbage);
            let _ = parse_annexb(codec, &garbage);
        }
    }

    #[test]
    fn malformed_seis_give_what_is_whole() {
        let v = nal(Codec::H264, b"hello");
        for cut in 0..v.len() - 1 {
            assert!(parse_nal(Codec::H264, &v[..cut]).is_empty(), "cut at {cut}");
        }
        assert!(parse_nal(Codec::H264, &[0x65, 5, 17]).is_empty());
    }
}
