//! The publish session fed server bytes: from the first byte (handshake), or after a valid
//! server handshake so the input reaches the chunk stream and commands. The session must end in
//! a protocol (or rejection) error, never a panic, and its output must stay bounded.
#![no_main]
use bytes::Bytes;
use kitepush::core::metadata::{AudioMeta, StreamMetadata, VideoCodec, VideoMeta};
use kitepush::core::session::{PublishSession, SessionState};
use kitepush::core::url::RtmpUrl;
use kitepush::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/key").unwrap();
    let meta = StreamMetadata {
        video: Some(VideoMeta { codec: VideoCodec::H264, width: 64, height: 64, framerate: 30.0, bitrate_kbps: 100 }),
        audio: Some(AudioMeta { sample_rate: 44100, channels: 2, bitrate_kbps: 64 }),
        encoder: "fuzz".into(),
    };
    let mut s = PublishSession::new(&url, meta).unwrap();
    let mut events = Vec::new();
    // S0 S1 S2 with zero payloads: rml_rtmp's client handshake accepts them.
    let handshake = [&[3u8][..], &[0u8; 3072][..]].concat();
    let input: Vec<u8> = if mode & 1 == 1 { [&handshake[..], data].concat() } else { data.to_vec() };
    let piece = 1 + (mode >> 1) as usize * 8;
    let body = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
    let mut ts = 0u32;
    for chunk in input.chunks(piece) {
        match s.handle_input(chunk, &mut events) {
            Ok(()) => {}
            Err(Error::InvalidArgument(m)) | Err(Error::Internal(m)) => panic!("not a server error: {m}"),
            Err(_) => return,
        }
        events.clear();
        // Output is what we queued ourselves: replies and media, never a copy of the input.
        assert!(s.pending_output().len() <= 64 * 1024 + 4 * input.len(), "{}", s.pending_output().len());
        let n = s.pending_output().len();
        s.consume_output(n);
        if s.state() == SessionState::Publishing {
            ts = ts.wrapping_add(33);
            s.send_video(ts, &[], &body).unwrap();
        }
    }
    let _ = s.unpublish();
});
