//! The iOS shim on the host: the Objective-C wrapper (ios/Sources) compiled with clang against
//! GNUstep Foundation and the release static library, without ARC (this runtime has none), and its
//! test program (ios/tests/host_test.m) pushing to the built-in receiver and to nginx-rtmp started
//! here; what they recorded is checked here with ffprobe. The same wrapper source is also compiled
//! with -fobjc-arc (syntax and ARC semantics, against ios/tests/arc-check's declarations-only
//! Foundation), as iOS builds it.

mod common;

use common::pushing::encoded_test_media;
use common::*;
use kitepush::receiver::{Receiver, ReceiverConfig};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_objective_c_wrapper_pushes_to_the_receiver_and_nginx() {
    // Every server here is on loopback; the WHIP push's WebRTC must not see any other interface.
    if !common::whip::in_loopback_netns("the_objective_c_wrapper_pushes_to_the_receiver_and_nginx") {
        return;
    }
    for tool in ["make", "clang", "gcc", "gnustep-config"] {
        require_tool(tool);
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"));
    let lib_dir = std::env::var("KP_LIB_DIR").map(PathBuf::from).unwrap_or_else(|_| target.join("release"));
    assert!(
        lib_dir.join("libkitepush.a").exists(),
        "{}/libkitepush.a is missing: run `cargo build --release --lib` first (scripts/test does)",
        lib_dir.display()
    );
    let out = Command::new("make")
        .arg("-C")
        .arg(root().join("ios/tests"))
        .args(["-B", "host_test", "arc_check"])
        .arg(format!("LIBDIR={}", lib_dir.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make ios/tests: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let work = tmp_dir("ios");
    let receiver_out = work.join("receiver.flv");
    let rx = Receiver::start(ReceiverConfig::new(&receiver_out)).expect("start the built-in receiver");
    let nginx = Nginx::start(NginxOptions::default());
    let raw_key = unique_key("ios-nv12");
    let avcc_key = unique_key("ios-avcc");
    let close_key = unique_key("ios-close");
    let pause_key = unique_key("ios-pause");
    let controls_key = unique_key("ios-controls");
    let whip = common::whip::WhipEndpoint::start(common::whip::WhipOptions {
        bearer: Some("objc-token-7".into()),
        ..Default::default()
    });
    let local_recording = work.join("local-recording.flv");
    let (aus, adts) = encoded_test_media(&work, 3, 30);
    assert_eq!(aus.len(), 90);
    let mut framed = Vec::new();
    for au in &aus {
        framed.extend_from_slice(&(au.len() as u32).to_be_bytes());
        framed.extend_from_slice(au);
    }
    std::fs::write(work.join("aus.bin"), framed).unwrap();
    std::fs::write(work.join("audio.aac"), adts).unwrap();

    let out = Command::new(root().join("ios/tests/host_test"))
        .arg(rx.url("live", &unique_key("ios-receiver")))
        .arg(nginx.url(&raw_key))
        .arg(nginx.url(&avcc_key))
        .arg(nginx.url(&close_key))
        .arg(&work)
        .arg(nginx.url(&pause_key))
        .arg(nginx.url(&controls_key))
        .arg(&local_recording)
        .arg(whip.url("objc"))
        .arg("objc-token-7")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "host_test failed ({}):\n{text}", out.status);
    assert!(text.contains(", 0 failed"), "{text}");

    let w = whip.wait_for(Duration::from_secs(10), "the WHIP push's DELETE", |s| s.deletes == 1);
    assert!(w.session().video_frames >= 59 && w.decode_errors == 0, "{}", w.raw);

    let (ended, report) = rx.wait_sessions_ended(1, Duration::from_secs(20));
    assert!(ended, "the receiver's session did not end: {report:?}");
    let report = rx.stop();
    assert_eq!(report.sessions, 1, "{report:?}");
    let p = probe(&receiver_out);
    let v = p.video.expect("video in the receiver's recording");
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 320, 240, 60));
    assert_eq!(p.audio.expect("audio in the receiver's recording").codec, "aac");
    assert_eq!(decode_errors(&receiver_out), "");

    for key in [&raw_key, &avcc_key] {
        let rec = nginx.recording(key);
        nginx.wait_recording_closed(&rec, Duration::from_secs(10));
        let p = probe(&rec);
        let v = p.video.unwrap_or_else(|| panic!("no video recorded for {key}"));
        assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 320, 240, 90), "{key}");
        assert_eq!(p.audio.unwrap_or_else(|| panic!("no audio recorded for {key}")).codec, "aac");
        assert_eq!(decode_errors(&rec), "", "{key}");
    }
    // The controls push's 90 frames, and its local recording (stopped mid-push, so fewer).
    let rec = nginx.recording(&controls_key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let v = probe(&rec).video.expect("no video recorded for the controls push");
    assert_eq!((v.codec.as_str(), v.frames), ("h264", 90));
    // Its -sendMessage: on frame 50, as an SEI in that frame.
    let messages: Vec<(usize, Vec<u8>)> = {
        use kitepush::core::flv::{FileReader, TAG_VIDEO};
        use kitepush::core::{media::Codec, sei};
        let reader = FileReader::new(std::io::BufReader::new(std::fs::File::open(&rec).unwrap())).unwrap();
        let frames = reader.map(Result::unwrap).filter(|t| t.tag_type == TAG_VIDEO && t.body[1] == 1);
        frames
            .enumerate()
            .flat_map(|(i, t)| {
                let found = sei::parse_length_prefixed(Codec::H264, &t.body[5..]);
                found.into_iter().filter(|u| u.uuid == sei::MESSAGE_UUID).map(move |u| (i, u.payload))
            })
            .collect()
    };
    assert_eq!(messages, vec![(50, b"objc-msg 1".to_vec())]);
    assert_eq!(decode_errors(&rec), "");
    let p = probe(&local_recording);
    let v = p.video.expect("no video in the local recording");
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", 320, 240));
    assert!(v.frames > 0 && v.frames <= 90, "local recording: {} frames", v.frames);
    assert_eq!(p.audio.expect("no audio in the local recording").codec, "aac");
    assert_eq!(decode_errors(&local_recording), "");
    // The paused push: the still picture kept the video going, so it spans the pause.
    let rec = nginx.recording(&pause_key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.expect("no video recorded for the paused push");
    assert!(v.frames >= 70, "paused push: {} frames", v.frames);
    assert!(p.format_duration >= 4.0, "paused push lasted {} s", p.format_duration);
    assert_eq!(p.audio.expect("no audio recorded for the paused push").codec, "aac");
    assert_eq!(decode_errors(&rec), "");
    let times = video_packet_times(&rec);
    assert!(times.windows(2).all(|w| w[1].0 > w[0].0), "video times do not increase: {times:?}");
    for round in 0..3 {
        assert!(!nginx.recordings_of(&format!("{close_key}-{round}")).is_empty(), "round {round} never published");
    }
    if std::env::var_os("KP_KEEP_TMP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
}
