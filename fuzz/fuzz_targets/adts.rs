//! ADTS AAC from the app (push_aac): header parsing, frame splitting, AudioSpecificConfig.
#![no_main]
use kitepush::core::adts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = adts::is_adts(data);
    if let Ok(h) = adts::parse_adts_header(data) {
        let asc = h.audio_specific_config();
        let _ = adts::parse_audio_specific_config(&asc);
        let _ = h.sample_rate();
    }
    let mut total = 0usize;
    for f in adts::adts_frames(data) {
        match f {
            Ok((h, raw)) => {
                assert_eq!(raw.len() + h.header_len, h.frame_len);
                total += h.frame_len;
                assert!(total <= data.len());
            }
            Err(_) => break,
        }
    }
    let _ = adts::parse_audio_specific_config(data);
});
