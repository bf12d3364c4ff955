//! The FLV/RTMP data-message twin of an app message (`KP_MESSAGE_AMF`): an AMF0 data message
//! `name, { text: "..." }` (`onTextData` unless the app names it), sent at the video frame's time
//! just before the frame, which web players and servers (nginx-rtmp, SRS) pass on to viewers.
//! MPEG-TS has no such message: on SRT only the SEI carries it.

use super::media::{MediaPacket, Track};
use super::sei;

/// The body of the data message / FLV script tag (AMF0: the name, then an object with `text`).
pub fn payload(name: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + text.len() + 16);
    amf0_string(&mut out, name);
    out.push(0x03); // object
    let key = b"text";
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    amf0_string(&mut out, text);
    out.extend_from_slice(&[0x00, 0x00, 0x09]); // object end
    out
}

fn amf0_string(out: &mut Vec<u8>, s: &str) {
    // Messages are at most 4 KiB, names are short: never the long-string form (0x0C).
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.push(0x02);
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// The data-message bodies a video unit asks for (its messages flagged AMF), in order. Empty (and
/// no allocation) for the units that carry none.
pub fn payloads_of(p: &MediaPacket, name: &str) -> Vec<Vec<u8>> {
    let span = p.messages;
    if span.amf_mask == 0 || p.track != Track::Video || p.header {
        return Vec::new();
    }
    let Some(seis) = p.data.get(..span.len as usize) else {
        return Vec::new();
    };
    sei::parse_length_prefixed(p.codec, seis)
        .into_iter()
        .take(span.count as usize)
        .enumerate()
        .filter(|(i, _)| *i < 32 && span.amf_mask & (1 << i) != 0)
        .map(|(_, u)| payload(name, &String::from_utf8_lossy(&u.payload)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::media::{Codec, MessageSpan};
    use bytes::Bytes;

    #[test]
    fn on_text_data_layout() {
        let p = payload("onTextData", "hi");
        let mut want = vec![0x02, 0, 10];
        want.extend_from_slice(b"onTextData");
        want.extend_from_slice(&[0x03, 0, 4]);
        want.extend_from_slice(b"text");
        want.extend_from_slice(&[0x02, 0, 2, b'h', b'i', 0, 0, 9]);
        assert_eq!(p, want);
    }

    #[test]
    fn only_flagged_messages_get_a_twin() {
        let mut data = Vec::new();
        for m in ["a", "b", "c"] {
            sei::write_length_prefixed(Codec::Hevc, &sei::MESSAGE_UUID, m.as_bytes(), &mut data);
        }
        let len = data.len() as u32;
        data.extend_from_slice(&[0, 0, 0, 2, 2, 1]);
        let mut p = MediaPacket::video(Codec::Hevc, 0, 0, false, false, Bytes::from(data));
        assert!(payloads_of(&p, "n").is_empty());
        p.messages = MessageSpan { count: 3, len, amf_mask: 0b101 };
        assert_eq!(payloads_of(&p, "n"), vec![payload("n", "a"), payload("n", "c")]);
    }
}
