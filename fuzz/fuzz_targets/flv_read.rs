//! The FLV file reader (recordings, the receiver's checks): hostile files.
#![no_main]
use kitepush::core::flv::FileReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = FileReader::new(data) else { return };
    let mut consumed = 13usize;
    for tag in r {
        let Ok(tag) = tag else { break };
        consumed += 11 + tag.body.len() + 4;
        // No tag is made up: every body byte came from the input.
        assert!(consumed <= data.len() + 1024);
    }
});
