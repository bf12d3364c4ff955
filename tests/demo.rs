//! The README's first command: the demo pushes to the built-in receiver with no URL, and to a URL
//! with raw I420 read from a file or stdin.

mod common;

use common::tls::TestCa;
use common::*;
use kitepush::ResultCode;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// target/<profile>/examples/push: scripts/test builds it (`cargo build --release --examples`);
/// `cargo test` alone builds examples only as test harnesses.
fn demo() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let p = dir.join("examples/push");
    assert!(p.exists(), "{} is missing: run `cargo build --release --examples` (scripts/test does)", p.display());
    p
}

#[test]
fn without_a_url_it_pushes_to_the_built_in_receiver() {
    let out = Command::new(demo()).args(["--duration", "2", "--size", "320x240", "--quiet"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(path.exists(), "the demo printed {} ({stderr})", path.display());
    let p = probe(&path);
    let v = p.video.expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 320, 240, 60));
    assert_eq!(p.audio.expect("audio").codec, "aac");
    assert_eq!(decode_errors(&path), "");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn raw_frames_from_stdin_to_nginx() {
    require_tool("ffmpeg");
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("demo-stdin");
    let raw = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-frames:v", "45"])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .unwrap();
    assert!(raw.status.success());
    let mut child = Command::new(demo())
        .arg(nginx.url(&key))
        .args(["--input", "-", "--size", "320x240", "--no-audio", "--quiet"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&raw.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    assert_eq!(p.video.expect("video").frames, 45);
    assert!(p.audio.is_none());
    assert_eq!(decode_errors(&rec), "");
}

#[test]
fn an_srt_url_pushes_mpeg_ts_over_srt() {
    use common::srt::{caller_url, SrtListener, SrtOptions};
    let opts = SrtOptions::latency_ms(120);
    let mut listener = SrtListener::srt_live_transmit(opts.clone());
    let url = caller_url(listener.port(), &opts, Some("#!::r=live/demo,m=publish"));
    let out =
        Command::new(demo()).args([url.as_str(), "--duration", "2", "--size", "320x240", "--quiet"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    listener.stop();
    let p = probe(listener.output());
    let v = p.video.expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 320, 240, 60));
    assert_eq!(p.audio.expect("audio").codec, "aac");
    assert_eq!(decode_errors(listener.output()), "");
}

#[test]
fn a_refused_certificate_ends_the_demo_with_the_pushers_failure_code() {
    // A CA the demo is not told to trust: the pusher fails with KP_ERR_TLS after one attempt, and
    // the demo must say so (not the KP_ERR_INVALID_STATE a push gets once the pusher has failed).
    let ca = TestCa::new("kitepush demo CA");
    let nginx = Nginx::start(NginxOptions { tls: Some(ca.server(&["127.0.0.1"])), ..NginxOptions::default() });
    let out = Command::new(demo())
        .arg(nginx.tls_url("127.0.0.1", &unique_key("demo-tls")))
        .args(["--duration", "10", "--size", "320x240", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(ResultCode::KP_ERR_TLS as i32), "{stderr}");
    assert!(stderr.contains("KP_ERR_TLS"), "{stderr}");
}
