//! The FLV writer's inputs: tag type, timestamp and body (any bytes, any size the format allows)
//! and the tag-body builders; what is written must read back identically.
#![no_main]
use kitepush::core::flv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (head, rest) = data.split_at(6);
    let cts = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let h = flv::avc_nalu_header(head[4] & 1 == 1, cts);
    assert_eq!(h[1], 1);
    let _ = flv::classify(head[5], rest);
    let seq = flv::avc_sequence_header(rest);
    assert_eq!(&seq[flv::AVC_HEADER_LEN..], rest);
    let aseq = flv::aac_sequence_header(rest);
    assert_eq!(&aseq[flv::AAC_HEADER_LEN..], rest);

    // Several tags from the input: [type, ts(4), len(2)] then the body.
    let mut file = flv::file_header(head[4] & 2 != 0, head[4] & 4 != 0).to_vec();
    let mut expect = Vec::new();
    let mut r = rest;
    while r.len() >= 7 {
        let tag_type = r[0];
        let ts = u32::from_be_bytes([r[1], r[2], r[3], r[4]]);
        let len = (u16::from_be_bytes([r[5], r[6]]) as usize).min(r.len() - 7);
        let body = &r[7..7 + len];
        r = &r[7 + len..];
        if flv::write_file_tag(&mut file, tag_type, ts, body).is_ok() {
            expect.push((tag_type & 0x1f, ts, body.to_vec()));
        }
    }
    let reader = flv::FileReader::new(&file[..]).expect("own header");
    let got: Vec<_> =
        reader.map(|t| t.map(|t| (t.tag_type, t.timestamp_ms, t.body))).collect::<Result<_, _>>().unwrap();
    assert_eq!(got, expect);
});
