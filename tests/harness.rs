//! Self-test of the test harness: proves the real nginx-rtmp server, the recording checks and the
//! server kill/restart behave as the other integration tests assume, using ffmpeg as a known-good
//! publisher.

mod common;

use common::{decode_errors, ffmpeg_push, port_open, probe, unique_key, video_packet_times, Nginx, NginxOptions};
use std::path::Path;
use std::time::Duration;

const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The recording of a 3 s ffmpeg push at 30 fps with a 1 s GOP.
fn assert_reference_recording(path: &Path, seconds: f64) {
    let p = probe(path);
    let v = p.video.as_ref().expect("recording has no video stream");
    assert_eq!(v.codec, "h264");
    assert_eq!((v.width, v.height), (320, 240));
    assert_eq!(v.frames, (seconds * 30.0).round() as u64, "video frames in {p:?}");
    assert!((v.duration - seconds).abs() < 0.2, "video duration {} in {p:?}", v.duration);
    let a = p.audio.as_ref().expect("recording has no audio stream");
    assert_eq!(a.codec, "aac");
    assert_eq!((a.sample_rate, a.channels), (44100, 1));
    assert!(a.frames > 0);
    assert!((p.format_duration - seconds).abs() < 0.2, "{p:?}");
    assert_eq!(decode_errors(path), "");

    let packets = video_packet_times(path);
    assert_eq!(packets.len() as u64, v.frames);
    assert!(packets[0].1, "first video packet is not a keyframe");
    assert!(packets.windows(2).all(|w| w[1].0 > w[0].0), "video pts not increasing");
    let keys: Vec<f64> = packets.iter().filter(|p| p.1).map(|p| p.0).collect();
    assert_eq!(keys.len(), seconds.round() as usize, "keyframes at {keys:?}");
}

#[test]
fn push_is_recorded_and_verified() {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("ref");
    let status = ffmpeg_push(&nginx.url(&key), 3.0);
    assert!(status.success(), "ffmpeg push failed: {status}");
    let path = nginx.recording(&key);
    nginx.wait_recording_closed(&path, CLOSE_TIMEOUT);
    assert_eq!(nginx.recordings(), vec![path.clone()]);
    assert_reference_recording(&path, 3.0);
}

#[test]
fn kill_and_restart_on_the_same_port() {
    let mut nginx = Nginx::start(NginxOptions { record_unique: true, ..Default::default() });
    let port = nginx.port();
    let key = unique_key("restart");
    assert!(ffmpeg_push(&nginx.url(&key), 2.0).success());
    let first = nginx.recording(&key);
    nginx.wait_recording_closed(&first, CLOSE_TIMEOUT);

    nginx.kill();
    assert!(!nginx.is_running());
    assert!(!port_open(port), "port {port} still open after kill");
    nginx.restart();
    assert_eq!(nginx.port(), port);
    assert!(port_open(port));

    assert!(ffmpeg_push(&nginx.url(&key), 2.0).success());
    let second = nginx.recording(&key);
    nginx.wait_recording_closed(&second, CLOSE_TIMEOUT);
    assert_ne!(first, second);
    assert_eq!(nginx.recordings_of(&key), vec![first.clone(), second.clone()]);
    for path in [&first, &second] {
        assert_reference_recording(path, 2.0);
    }

    nginx.stop();
    assert!(!port_open(port), "port {port} still open after stop");
}

#[test]
fn denied_publish_makes_ffmpeg_fail() {
    let nginx = Nginx::start(NginxOptions { deny_publish: true, ..Default::default() });
    let status = ffmpeg_push(&nginx.url(&unique_key("denied")), 2.0);
    assert!(!status.success(), "ffmpeg succeeded against deny publish");
    // nginx-rtmp opens the record file before the access check refuses the publish: an empty file is
    // left behind.
    for path in nginx.recordings() {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert_eq!(size, 0, "denied publish recorded {}", path.display());
    }
}
