//! Opus packets from the app (push_opus): RFC 6716 framing checks and the duration read from them.
#![no_main]
use kitepush::core::opus_packet::{packet_samples, MAX_PACKET_SAMPLES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = packet_samples(data) {
        // 2.5 ms to 120 ms, in whole 2.5 ms steps.
        assert!((120..=MAX_PACKET_SAMPLES).contains(&n) && n % 120 == 0, "{n}");
    }
});
