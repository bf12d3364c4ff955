//! The core pipeline against real servers: raw media through the encoders and pre-encoded media,
//! to nginx-rtmp and to the built-in receiver, each recording checked with ffprobe and ffmpeg.

mod common;

use common::pushing::{encoded_test_media, push_all, Harnessed, Spec};
use common::*;
use kitepush::pusher::{AudioConfig, AudioEncoderKind, EventKind, PusherState};
use kitepush::receiver::{Receiver, ReceiverConfig};
use kitepush::ResultCode;
use std::path::Path;
use std::time::Duration;

/// The checks the issue asks of every recording.
fn verify(path: &Path, width: u32, height: u32, fps: f64, frames: u64, audio: bool) {
    let p = probe(path);
    let v = p.video.as_ref().unwrap_or_else(|| panic!("no video stream in {}", path.display()));
    assert_eq!(v.codec, "h264");
    assert_eq!((v.width, v.height), (width, height));
    assert_eq!(v.frames, frames, "video frames in {}", path.display());
    let times = video_packet_times(path);
    assert_eq!(times.len() as u64, frames);
    assert!(times[0].1, "the first video packet is a keyframe");
    assert!(times.windows(2).all(|w| w[1].0 > w[0].0), "video timestamps increase");
    let span = times.last().unwrap().0 - times[0].0 + 1.0 / fps;
    let expected = frames as f64 / fps;
    assert!((span - expected).abs() <= 1.0 / fps + 1e-3, "video lasts {span} s, expected {expected} s");
    if audio {
        let a = p.audio.as_ref().expect("an audio stream");
        assert_eq!(a.codec, "aac");
        assert_eq!((a.sample_rate, a.channels), (44100, 2));
        assert!((a.start_time - v.start_time).abs() <= 0.050, "A/V start {} vs {}", a.start_time, v.start_time);
        // Up to one frame may go at the very start: AAC timestamps are moved earlier by the
        // encoder's priming, and a unit that would start before the stream's 0 is dropped (sending
        // it at 0 would make every player run the audio that much late).
        assert!(a.frames as f64 >= expected * 44100.0 / 1024.0 - 2.0, "{} audio frames for {expected} s", a.frames);
    }
    assert_eq!(decode_errors(path), "", "ffmpeg reported decode errors");
}

#[test]
fn raw_media_through_the_encoders_to_nginx() {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("raw");
    let spec = Spec::default();
    let (h, stats) = push_all(&nginx.url(&key), &spec);
    assert_eq!(stats.video_frames_in, spec.frames());
    assert_eq!(stats.video_frames_encoded, spec.frames());
    assert_eq!(stats.video_frames_sent, spec.frames());
    assert_eq!(stats.video_frames_dropped_encoder + stats.frames_dropped_network, 0);
    assert!(stats.audio_frames_sent > 0 && stats.bytes_sent > 100_000, "{stats:?}");
    assert_eq!(
        h.kinds(),
        vec![
            EventKind::KP_EVENT_CONNECTING,
            EventKind::KP_EVENT_CONNECTED,
            EventKind::KP_EVENT_PUBLISHING,
            EventKind::KP_EVENT_STOPPED
        ]
    );
    assert_eq!(h.pusher.state(), PusherState::KP_STATE_STOPPED);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    verify(&rec, spec.width, spec.height, spec.fps, spec.frames(), true);
}

#[test]
fn raw_media_to_the_built_in_receiver() {
    let dir = tmp_dir("receiver-push");
    let out = dir.join("received.flv");
    let receiver = Receiver::start(ReceiverConfig::new(&out)).unwrap();
    let spec = Spec { width: 640, height: 360, seconds: 4.0, ..Spec::default() };
    let (_h, stats) = push_all(&receiver.url("live", "key"), &spec);
    assert_eq!(stats.video_frames_sent, spec.frames());
    let (ended, report) = receiver.wait_sessions_ended(1, Duration::from_secs(10));
    assert!(ended, "{report:?}");
    receiver.stop();
    verify(&out, 640, 360, spec.fps, spec.frames(), true);
}

#[test]
fn video_only_and_audio_only_streams() {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("video-only");
    let spec = Spec { seconds: 2.0, audio: false, ..Spec::default() };
    push_all(&nginx.url(&key), &spec);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    verify(&rec, spec.width, spec.height, spec.fps, spec.frames(), false);
    assert!(probe(&rec).audio.is_none());

    let key = unique_key("audio-only");
    let mut config = spec.config(&nginx.url(&key));
    config.video = None;
    config.audio = Some(AudioConfig::default());
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut tone = kitepush::pattern::Tone::new(44100, 2, 440.0);
    let mut pcm = vec![0i16; 2048];
    for i in 0..86u64 {
        tone.fill(&mut pcm);
        h.pusher.push_audio(&pcm, (i * 1024 * 1_000_000 / 44100) as i64).unwrap();
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    assert!(p.video.is_none());
    let a = p.audio.expect("audio");
    // 86 chunks of 1024 samples plus the encoder's flushed delay: nothing lost at the end.
    assert!(a.frames >= 86, "{} audio frames", a.frames);
    assert_eq!(decode_errors(&rec), "");
}

/// `config_apart`: the first unit's parameter sets go in a call of their own with the first
/// picture's time, as Android's MediaCodec hands out its codec-config buffer.
fn push_pre_encoded(url: &str, aus: &[Vec<u8>], aac: &[u8], config_apart: bool) -> Harnessed {
    let mut config = common::pushing::pre_encoded_h264_320x240(url);
    config.audio =
        Some(AudioConfig { encoder: AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH, ..AudioConfig::default() });
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let frames: Vec<&[u8]> = common::pushing::adts_frames_of(aac);
    let mut a = 0usize;
    for (i, au) in aus.iter().enumerate() {
        let pts = i as i64 * 1_000_000 / 30;
        // ADTS frames go in twos to exercise multi-frame input.
        while a < frames.len() && (a as i64 * 1024 * 1_000_000 / 44100) <= pts {
            let n = 2.min(frames.len() - a);
            let chunk: Vec<u8> = frames[a..a + n].concat();
            h.pusher.push_aac(&chunk, a as i64 * 1024 * 1_000_000 / 44100).unwrap();
            a += n;
        }
        if i == 0 && config_apart {
            let first_slice = (0..au.len() - 3)
                .find(|&j| au[j..j + 3] == [0, 0, 1] && matches!(au[j + 3] & 0x1f, 1 | 5))
                .expect("a slice in the first unit");
            let (config, picture) = au.split_at(first_slice);
            h.pusher.push_h264(config, pts, pts).unwrap();
            h.pusher.push_h264(picture, pts, pts).unwrap();
            continue;
        }
        h.pusher.push_h264(au, pts, pts).unwrap();
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    h
}

/// Pre-encoded 320x240 H.264 (`encoded_test_media`'s) to `url`, no audio track.
fn pre_encoded_video_only(url: &str) -> kitepush::pusher::PusherConfig {
    let mut config = common::pushing::pre_encoded_h264_320x240(url);
    config.audio = None;
    config
}

#[test]
fn pre_encoded_h264_and_adts_to_nginx_and_the_receiver() {
    let dir = tmp_dir("pre-encoded");
    let (aus, aac) = encoded_test_media(&dir, 4, 30);
    assert_eq!(aus.len(), 120);

    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("passthrough");
    let h = push_pre_encoded(&nginx.url(&key), &aus, &aac, false);
    assert_eq!(h.pusher.stats().video_frames_sent, 120);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    verify(&rec, 320, 240, 30.0, 120, true);

    let out = dir.join("received.flv");
    let receiver = Receiver::start(ReceiverConfig::new(&out)).unwrap();
    // MediaCodec's way: the codec config apart, with the first picture's time. It takes no frame
    // time of its own and is not a lost frame.
    let h = push_pre_encoded(&receiver.url("live", "k"), &aus, &aac, true);
    let stats = h.pusher.stats();
    assert_eq!((stats.video_frames_in, stats.video_frames_sent, stats.video_frames_dropped_encoder), (120, 120, 0));
    assert!(receiver.wait_sessions_ended(1, Duration::from_secs(10)).0);
    receiver.stop();
    verify(&out, 320, 240, 30.0, 120, true);
}

/// An app whose hardware encoder was already running joins mid-GOP: its first access units carry
/// no parameter sets and cannot be decoded anywhere. They are dropped and counted, and the app is
/// asked for a keyframe at once (KEYFRAME_NEEDED, once) instead of being left to its next IDR; the
/// stream starts at the IDR it sends.
#[test]
fn pre_encoded_video_joined_mid_gop_asks_for_a_keyframe_at_once() {
    let dir = tmp_dir("mid-gop");
    let (aus, _) = encoded_test_media(&dir, 2, 30);
    let out = dir.join("received.flv");
    let receiver = Receiver::start(ReceiverConfig::new(&out)).unwrap();
    let config = pre_encoded_video_only(&receiver.url("live", "k"));
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    // Pictures 10..29 of the first GOP, then the second GOP from its IDR (picture 30).
    for (i, au) in aus.iter().enumerate().skip(10) {
        let pts = i as i64 * 1_000_000 / 30;
        h.pusher.push_h264(au, pts, pts).unwrap();
        if i == 10 {
            let ev = h.wait_for(EventKind::KP_EVENT_KEYFRAME_NEEDED, Duration::from_secs(2));
            assert_eq!(ev.code, ResultCode::KP_OK);
        }
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let asked = h.kinds().iter().filter(|&&k| k == EventKind::KP_EVENT_KEYFRAME_NEEDED).count();
    assert_eq!(asked, 1, "asked once until the keyframe came: {:?}", h.kinds());
    let stats = h.pusher.stats();
    assert_eq!((stats.video_frames_dropped_encoder, stats.video_frames_sent), (20, 30));
    assert!(receiver.wait_sessions_ended(1, Duration::from_secs(10)).0);
    receiver.stop();
    verify(&out, 320, 240, 30.0, 30, false);
}

/// Frames less than a millisecond apart (bursts stamped by the SDK's clock, or explicit times that
/// close) must not put two video tags on one millisecond: FFmpeg reports "non monotonically
/// increasing dts" for each. The rule moves them forward and counts them.
#[test]
fn video_bursts_and_sub_millisecond_steps_keep_dts_strictly_increasing() {
    let dir = tmp_dir("bursts");
    let (aus, _) = encoded_test_media(&dir, 2, 30);
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("bursts");
    let config = pre_encoded_video_only(&nginx.url(&key));
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    // 30 units in bursts of 3 every 100 ms with pts = -1 (the SDK's clock), then 30 with explicit
    // times 400 us apart, after the clock's last time.
    for burst in aus[..30].chunks(3) {
        for au in burst {
            h.pusher.push_h264(au, -1, -1).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let base = 10_000_000;
    for (i, au) in aus[30..60].iter().enumerate() {
        let t = base + i as i64 * 400;
        h.pusher.push_h264(au, t, t).unwrap();
    }
    let adjusted = h.pusher.stats().video_timestamps_adjusted;
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    // Every burst's 2nd and 3rd unit (20), and 28 or 29 of the 400 us steps after the first.
    assert!((40..=49).contains(&adjusted), "{adjusted} moved");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let times = video_packet_times(&rec);
    assert_eq!(times.len(), 60);
    assert!(times.windows(2).all(|w| w[1].0 > w[0].0), "video timestamps strictly increase: {times:?}");
    assert_eq!(decode_errors(&rec), "", "ffmpeg reported errors");
}

#[test]
fn bad_inputs_mid_stream_get_their_codes_and_the_stream_survives() {
    use kitepush::encode::{PixelFormat, VideoFrame};
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("bad-inputs");
    let spec = Spec { seconds: 3.0, ..Spec::default() };
    let mut h = Harnessed::new(spec.config(&nginx.url(&key)));
    let mut src = common::pushing::Source::new(&spec);
    // Before start.
    let e = h.pusher.push_video(&src.frame(), 0).unwrap_err();
    assert_eq!(e.code(), ResultCode::KP_ERR_NOT_STARTED);
    h.pusher.start().unwrap();
    assert_eq!(h.pusher.start().unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    for i in 0..spec.frames() {
        src.push_one(&h.pusher);
        if i == 30 {
            let good = src.frame();
            // Same timestamp again, and one from the past.
            assert_eq!(
                h.pusher.push_video(&good, src.pts_us(i)).unwrap_err().code(),
                ResultCode::KP_ERR_NON_MONOTONIC_TIMESTAMP
            );
            assert_eq!(h.pusher.push_video(&good, 0).unwrap_err().code(), ResultCode::KP_ERR_NON_MONOTONIC_TIMESTAMP);
            // A plane too short for its stride.
            let short = VideoFrame { planes: [&good.planes[0][..100], good.planes[1], good.planes[2]], ..good };
            assert_eq!(h.pusher.push_video(&short, -1).unwrap_err().code(), ResultCode::KP_ERR_BAD_FRAME_SIZE);
            // A different size than configured, and an odd one.
            let other = VideoFrame { width: 160, height: 120, ..good };
            assert_eq!(h.pusher.push_video(&other, -1).unwrap_err().code(), ResultCode::KP_ERR_BAD_DIMENSIONS);
            let odd = VideoFrame { width: 321, ..good };
            assert_eq!(h.pusher.push_video(&odd, -1).unwrap_err().code(), ResultCode::KP_ERR_BAD_DIMENSIONS);
            let nv12 =
                VideoFrame { format: PixelFormat::KP_PIXEL_FORMAT_NV12, planes: [good.planes[0], &[], &[]], ..good };
            assert_eq!(h.pusher.push_video(&nv12, -1).unwrap_err().code(), ResultCode::KP_ERR_BAD_FRAME_SIZE);
            // Audio: not whole stereo frames; pre-encoded calls on an encoding pusher.
            assert_eq!(h.pusher.push_audio(&[0i16; 3], -1).unwrap_err().code(), ResultCode::KP_ERR_BAD_FRAME_SIZE);
            assert_eq!(
                h.pusher.push_h264(&[0, 0, 1, 0x65], 0, 0).unwrap_err().code(),
                ResultCode::KP_ERR_INVALID_STATE
            );
            assert_eq!(h.pusher.push_aac(&[1, 2], 0).unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
        }
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    assert_eq!(stats.frames_rejected, 9, "{stats:?}");
    assert_eq!(stats.video_frames_sent, spec.frames());
    assert_eq!(h.pusher.push_video(&src.frame(), -1).unwrap_err().code(), ResultCode::KP_ERR_NOT_STARTED);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    verify(&rec, spec.width, spec.height, spec.fps, spec.frames(), true);
}

#[test]
fn rejected_publish_fails_with_the_mapped_error_and_no_hang() {
    // nginx 1.22 with `deny publish` answers publish with NetStream.Publish.Start from its live
    // module and then closes the socket from its access module: to a client that is a publish
    // followed by a dropped connection, reported as DISCONNECTED and an I/O failure.
    // Each such publish is too short-lived to count as working, so the attempt limit ends it.
    let nginx = Nginx::start(NginxOptions { deny_publish: true, ..NginxOptions::default() });
    let mut config = Spec::default().config(&nginx.url(&unique_key("denied")));
    config.reconnect.max_attempts = Some(3);
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    let failed = h.wait_for_failure(Duration::from_secs(20), true);
    assert!(matches!(failed.code, ResultCode::KP_ERR_PUBLISH_REJECTED | ResultCode::KP_ERR_IO), "{failed:?}");
    assert_eq!(h.pusher.state(), PusherState::KP_STATE_FAILED);
    assert_eq!(h.pusher.failure().map(|e| e.code()), Some(failed.code));
    h.pusher.stop(Duration::from_secs(1)).unwrap();

    // A duplicate stream key: the live publisher keeps its stream.
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("dup");
    let spec = Spec { seconds: 2.0, ..Spec::default() };
    let mut first = Harnessed::new(spec.config(&nginx.url(&key)));
    first.pusher.start().unwrap();
    first.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    // BadName is retryable (the server may still hold a dead session of ours): with an attempt
    // limit it ends in FAILED with the mapped code.
    let mut config = spec.config(&nginx.url(&key));
    config.reconnect.max_attempts = Some(2);
    let mut second = Harnessed::new(config);
    second.pusher.start().unwrap();
    let failed = second.wait_for_failure(Duration::from_secs(10), false);
    assert!(second.kinds().contains(&EventKind::KP_EVENT_RECONNECTING), "{:?}", second.kinds());
    assert_eq!(failed.code, ResultCode::KP_ERR_PUBLISH_REJECTED, "{failed:?}");
    assert!(failed.message.contains("BadName") || failed.message.contains("already"), "{}", failed.message);
    assert!(!failed.message.contains(&key), "the stream key leaked into {}", failed.message);
    let mut src = common::pushing::Source::new(&spec);
    for _ in 0..spec.frames() {
        src.push_one(&first.pusher);
    }
    first.pusher.stop(Duration::from_secs(10)).unwrap();
    drop(second);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    verify(&rec, spec.width, spec.height, spec.fps, spec.frames(), true);
}

#[test]
fn unreachable_server_fails_with_connect_error() {
    let port = free_port();
    let mut config = Spec::default().config(&format!("rtmp://127.0.0.1:{port}/live/k"));
    config.connect_timeout = Duration::from_secs(2);
    config.reconnect.max_attempts = Some(3);
    // The quick retries while refused do not count toward max_attempts (core::reconnect tests
    // that); off here, the limit is reached after three attempts.
    config.reconnect.refused_retry = Duration::ZERO;
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    let failed = h.wait_for_failure(Duration::from_secs(10), false);
    assert_eq!(failed.code, ResultCode::KP_ERR_CONNECT);
    let retries: Vec<_> =
        h.seen.iter().filter(|e| e.kind == EventKind::KP_EVENT_RECONNECTING).map(|e| (e.value, e.code)).collect();
    assert_eq!(retries, vec![(2, ResultCode::KP_ERR_CONNECT), (3, ResultCode::KP_ERR_CONNECT)]);
    assert_eq!(h.pusher.state(), PusherState::KP_STATE_FAILED);
}
