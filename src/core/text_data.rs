//! The FLV/RTMP data-message twin of an app message (`KP_MESSAGE_AMF`): an AMF0 data message
//! `name, { text: "..." }` (`onTextData` unless the app names it), sent at the video frame's time
//! just before the frame, which web players and servers (nginx-rtmp, SRS) pass on to viewers.
//! MPEG-TS has no such message: on SRT only the SEI carries it.

use super::media::{MediaPacket, Track};
use super::sei;

/// The body of the data message / FLV script tag (AMF0: the name, then an object with `text`).
pub fn payload(name: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_payload(name, text, &mut out);
    out
}

/// [`payload`] into `out` (cleared first; a reused buffer allocates nothing once large enough).
pub fn write_payload(name: &str, text: &str, out: &mut Vec<u8>) {
    out.clear();
    amf0_string(out, name);
    out.push(0x03); // object
    let key = b"text";
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    amf0_string(out, text);
    out.extend_from_slice(&[0x00, 0x00, 0x09]); // object end
}

fn amf0_string(out: &mut Vec<u8>, s: &str) {
    // Messages are at most 4 KiB, names are short: never the long-string form (0x0C).
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.push(0x02);
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// Reused buffers of [`for_each_payload`]: the unescaped SEI and the data message body.
#[derive(Debug, Default)]
pub struct Scratch {
    rbsp: Vec<u8>,
    body: Vec<u8>,
}

/// Calls `send` with the data-message body of each message of a video unit flagged AMF, in order
/// (nothing for the units that carry none). Stops at the first error `send` returns.
pub fn for_each_payload<E>(
    p: &MediaPacket,
    name: &str,
    scratch: &mut Scratch,
    mut send: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let span = p.messages;
    if span.amf_mask == 0 || p.track != Track::Video || p.header {
        return Ok(());
    }
    let Some(seis) = p.data.get(..span.len as usize) else {
        return Ok(());
    };
    let Scratch { rbsp, body } = scratch;
    let mut i = 0;
    let mut result = Ok(());
    sei::visit_length_prefixed(p.codec, seis, rbsp, |_, message| {
        let flagged = i < 32 && span.amf_mask & (1 << i) != 0;
        i += 1;
        // send_message refuses an AMF message that is not UTF-8.
        let (true, Ok(text), Ok(())) = (flagged, std::str::from_utf8(message), &result) else {
            return;
        };
        write_payload(name, text, body);
        result = send(body);
    });
    result
}

/// The data-message bodies of a video unit, collected (tests and tools).
pub fn payloads_of(p: &MediaPacket, name: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let _ = for_each_payload(p, name, &mut Scratch::default(), |b| {
        out.push(b.to_vec());
        Ok::<(), ()>(())
    });
    out
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
        // The first error ends it.
        let mut calls = 0;
        let r = for_each_payload(&p, "n", &mut Scratch::default(), |_| {
            calls += 1;
            Err("closed")
        });
        assert_eq!((r, calls), (Err("closed"), 1));
    }
}
