//! Annex-B H.264 from the app (push_h264) or an encoder: NAL splitting, AVCC conversion, SPS
//! parsing, the decoder configuration record and the packetizer that turns them into FLV bodies.
#![no_main]
use kitepush::core::annexb;
use kitepush::pusher::AvcPacketizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cts, au)) = data.split_first() else { return };
    for nal in annexb::nal_units(au) {
        assert!(!nal.is_empty());
        if annexb::nal_type(nal) == 7 {
            let _ = annexb::parse_sps(nal);
        }
    }
    let mut out = Vec::new();
    if let Ok(info) = annexb::annexb_to_avcc(au, &mut out) {
        // The packetizer sizes its buffer by this bound.
        assert!(out.len() <= au.len() + au.len() / 4, "{} > 5/4 of {}", out.len(), au.len());
        if let (Some(sps), Some(pps)) = (info.sps, info.pps) {
            if let Ok(rec) = annexb::avc_decoder_configuration_record(&au[sps], &au[pps]) {
                assert_eq!(rec[0], 1);
            }
        }
        // AVCC walks back: length-prefixed units covering the whole output.
        let mut rest = &out[..];
        while !rest.is_empty() {
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4 + n..];
        }
    }
    let mut p = AvcPacketizer::default();
    for _ in 0..2 {
        if let Ok(tags) = p.packetize(au, cts as i32 - 128) {
            if let Some(f) = tags.frame {
                // Length-prefixed NAL units covering the whole unit.
                let mut rest = &f[..];
                while !rest.is_empty() {
                    let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    rest = &rest[4 + n..];
                }
            }
        }
    }
});
