//! SEI user_data_unregistered (timed messages): the parser on whatever a stream holds, and the
//! writer's round trip (emulation prevention) on any payload.
#![no_main]
use kitepush::core::media::Codec;
use kitepush::core::sei;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let codec = if sel & 1 == 0 { Codec::H264 } else { Codec::Hevc };
    // As found in a stream: a NAL unit, an access unit of length-prefixed units, Annex-B.
    let _ = sei::parse_nal(codec, rest);
    let _ = sei::parse_length_prefixed(codec, rest);
    let _ = sei::parse_annexb(codec, rest);
    // As written: the payload comes back byte for byte, and no start code hides inside.
    let payload = &rest[..rest.len().min(sei::MAX_MESSAGE_LEN)];
    let mut nal = Vec::new();
    assert!(sei::write_nal(codec, &sei::MESSAGE_UUID, payload, &mut nal));
    assert!(nal.len() <= sei::max_nal_len(payload.len()));
    assert!(!nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
    let found = sei::parse_nal(codec, &nal);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].payload, payload);
});
