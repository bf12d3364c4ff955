//! Background mode against a real nginx-rtmp: pause (still picture or audio only) and resume keep
//! one publish alive — one recording, continuous timestamps, an IDR at the resume, a clean decode.

mod common;

use common::packets::{largest_gap, packets, pcm_on_file_clock, rms_between, Packet};
use common::pushing::{Harnessed, Source, Spec};
use common::*;
use kitepush::pusher::{EventKind, PauseMode, Pusher};
use kitepush::ResultCode;
use std::time::{Duration, Instant};

fn started(nginx: &Nginx, key: &str, spec: &Spec) -> Harnessed {
    let mut h = Harnessed::new(spec.config(&nginx.url(key)));
    h.pusher.start().expect("start");
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));
    h
}

fn wait_encoded(p: &Pusher, frames: u64) {
    wait_until(Duration::from_secs(60), "the encoder to catch up", || p.stats().video_frames_encoded >= frames);
}

/// Stops, waits for the recording, and checks what every pause test needs: one recording (no
/// reconnect), no disconnect event, a clean decode.
fn finish(mut h: Harnessed, nginx: &Nginx, key: &str) -> std::path::PathBuf {
    h.pusher.stop(Duration::from_secs(20)).expect("stop");
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    let kinds = h.kinds();
    assert!(
        !kinds.contains(&EventKind::KP_EVENT_DISCONNECTED) && !kinds.contains(&EventKind::KP_EVENT_RECONNECTING),
        "{kinds:?}"
    );
    assert_eq!(h.pusher.stats().reconnects, 0);
    let recs = nginx.recordings_of(key);
    assert_eq!(recs.len(), 1, "one publish, one recording: {recs:?}");
    nginx.wait_recording_closed(&recs[0], Duration::from_secs(20));
    assert_eq!(decode_errors(&recs[0]), "", "ffmpeg reported decode errors");
    recs[0].clone()
}

/// The packets from the first one after the last gap of at least `min_gap` seconds.
fn after_last_gap(v: &[Packet], min_gap: f64) -> usize {
    v.windows(2).rposition(|w| w[1].pts - w[0].pts >= min_gap).map_or(0, |i| i + 1)
}

#[test]
fn still_image_for_30_s_then_resume_keeps_one_continuous_recording() {
    let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let key = unique_key("pause-still");
    let spec = Spec { seconds: 3.0, ..Spec::default() };
    let mut h = started(&nginx, &key, &spec);
    let mut src = Source::new(&spec);
    for _ in 0..90 {
        src.push_one(&h.pusher);
    }
    wait_encoded(&h.pusher, 90);

    h.pusher.pause(PauseMode::KP_PAUSE_STILL_IMAGE).expect("pause");
    let ev = h.wait_for(EventKind::KP_EVENT_PAUSED, Duration::from_secs(5));
    assert_eq!(ev.value, PauseMode::KP_PAUSE_STILL_IMAGE as i64);
    // Frames pushed while paused are refused with their own code, and change nothing.
    let r = h.pusher.push_video(&src.frame(), src.pts_us(src.next_frame));
    assert_eq!(r.unwrap_err().code(), ResultCode::KP_ERR_PAUSED);
    // 30 s in the background; the app pushes nothing (the SDK makes the silence). The
    // connection must stay up the whole time.
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        assert!(h.events.try_recv().map_or(true, |e| e.kind != EventKind::KP_EVENT_DISCONNECTED));
        std::thread::sleep(Duration::from_millis(200));
    }
    h.pusher.resume().expect("resume");
    let ev = h.wait_for(EventKind::KP_EVENT_RESUMED, Duration::from_secs(5));
    assert!(ev.value >= 30_000, "paused for {} ms", ev.value);
    assert_eq!(h.pusher.resume().unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
    // The app's capture clock stood still: its timestamps continue from before the pause.
    // (Pause frames count as encoded: pace against the count at the resume.)
    let e0 = h.pusher.stats().video_frames_encoded;
    for k in 0..90 {
        wait_encoded(&h.pusher, (e0 + k).saturating_sub(1));
        src.push_one(&h.pusher);
    }
    let rec = finish(h, &nginx, &key);

    let v = packets(&rec, "v");
    let a = packets(&rec, "a");
    // Before the pause 90 frames, then ~5 fps for 30 s, then 90 again.
    let pause_frames = v.len() - 180;
    assert!((120..=160).contains(&pause_frames), "{pause_frames} pause frames for 30 s at 5 fps");
    let gap = largest_gap(&v);
    assert!(gap <= 0.3, "video gap of {gap} s");
    assert!(v.windows(2).all(|w| w[1].pts > w[0].pts), "video timestamps increase");
    // The resume restarts with an IDR: the first frame after the pause run (the last pause
    // frame is the last one reached by a 200 ms step; the app's clock was re-based to just
    // after it).
    let resume = after_last_gap(&v, 0.15) + 1;
    assert_eq!(v.len() - resume, 90, "frames after the resume");
    assert!(v[resume].key, "resume frame at {} s is not a keyframe", v[resume].pts);
    // Keyframes during the pause too (about every 2 s), for viewers joining then.
    let pause_keys = v[90..resume].iter().filter(|p| p.key).count();
    assert!((12..=18).contains(&pause_keys), "{pause_keys} keyframes during the pause");
    let span = v.last().unwrap().pts - v[0].pts;
    assert!((35.5..=38.0).contains(&span), "video spans {span} s");
    // Audio is continuous through the pause (SDK silence) and lasts as long as the video.
    let agap = largest_gap(&a);
    assert!(agap <= 0.05, "audio gap of {agap} s");
    let aspan = a.last().unwrap().pts - a[0].pts;
    assert!((aspan - span).abs() < 0.5, "audio spans {aspan} s, video {span} s");
    let pcm = pcm_on_file_clock(&rec, 44100);
    let t0 = v[90].pts;
    assert!(rms_between(&pcm, 44100, t0 + 1.0, t0 + 29.0) < 30.0, "the pause is silent");
    assert!(rms_between(&pcm, 44100, 0.5, 2.5) > 3000.0, "the tone before the pause");
    let t1 = v[resume].pts;
    assert!(rms_between(&pcm, 44100, t1 + 0.5, t1 + 2.5) > 3000.0, "the tone after the resume");
}

#[test]
fn audio_only_pause_keeps_the_app_audio_flowing() {
    let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let key = unique_key("pause-audio");
    let spec = Spec { seconds: 2.0, ..Spec::default() };
    let mut h = started(&nginx, &key, &spec);
    // Real-time timestamps from the SDK's clock (pts < 0), as a phone app would use.
    let mut src = Source::new(&spec);
    let t0 = Instant::now();
    let tone = |i: u64| -> Vec<i16> {
        (0..441)
            .flat_map(|n| {
                let s = ((i * 441 + n) as f64 * 440.0 * std::f64::consts::TAU / 44100.0).sin() * 8000.0;
                [s as i16, s as i16]
            })
            .collect()
    };
    let mut chunk = 0u64;
    let push_audio_until = |p: &Pusher, until: Duration, chunk: &mut u64| {
        while t0.elapsed() < until {
            if t0.elapsed() >= Duration::from_millis(*chunk * 10) {
                p.push_audio(&tone(*chunk), -1).expect("push_audio");
                *chunk += 1;
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    let mut frame = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        if t0.elapsed() >= Duration::from_millis(frame * 33) {
            src.push_one_video_only(&h.pusher, -1);
            frame += 1;
        }
        push_audio_until(&h.pusher, t0.elapsed() + Duration::from_millis(5), &mut chunk);
    }
    h.pusher.pause(PauseMode::KP_PAUSE_AUDIO_ONLY).expect("pause");
    h.wait_for(EventKind::KP_EVENT_PAUSED, Duration::from_secs(5));
    push_audio_until(&h.pusher, Duration::from_secs(8), &mut chunk);
    h.pusher.resume().expect("resume");
    h.wait_for(EventKind::KP_EVENT_RESUMED, Duration::from_secs(5));
    let resumed_frames = frame;
    while t0.elapsed() < Duration::from_secs(10) {
        if t0.elapsed() >= Duration::from_millis(frame * 33) {
            src.push_one_video_only(&h.pusher, -1);
            frame += 1;
        }
        push_audio_until(&h.pusher, t0.elapsed() + Duration::from_millis(5), &mut chunk);
    }
    assert!(frame - resumed_frames > 30);
    let rec = finish(h, &nginx, &key);

    let v = packets(&rec, "v");
    let a = packets(&rec, "a");
    // No video for the ~6 s of the pause, then an IDR.
    let resume = after_last_gap(&v, 1.0);
    let hole = v[resume].pts - v[resume - 1].pts;
    assert!((5.0..=7.5).contains(&hole), "video hole of {hole} s");
    assert!(v[resume].key, "resume frame at {} s is not a keyframe", v[resume].pts);
    // Audio kept going, and it is the app's tone, not silence.
    let agap = largest_gap(&a);
    assert!(agap <= 0.05, "audio gap of {agap} s");
    let pcm = pcm_on_file_clock(&rec, 44100);
    let p0 = v[resume - 1].pts;
    assert!(rms_between(&pcm, 44100, p0 + 0.5, p0 + 5.0) > 3000.0, "the app's audio during the pause");
}

#[test]
fn pause_and_controls_refuse_bad_states() {
    // No server needed: a pusher that is connecting accepts controls.
    let spec = Spec::default();
    let url = format!("rtmp://127.0.0.1:{}/live/x", free_port());
    let h = Harnessed::new(spec.config(&url));
    let p = &h.pusher;
    assert_eq!(p.pause(PauseMode::KP_PAUSE_STILL_IMAGE).unwrap_err().code(), ResultCode::KP_ERR_NOT_STARTED);
    assert_eq!(p.resume().unwrap_err().code(), ResultCode::KP_ERR_NOT_STARTED);
    assert_eq!(p.request_keyframe().unwrap_err().code(), ResultCode::KP_ERR_NOT_STARTED);
    // Before start these are stored for later.
    p.set_video_bitrate(800).unwrap();
    p.set_audio_muted(true).unwrap();
    assert_eq!(p.set_video_bitrate(0).unwrap_err().code(), ResultCode::KP_ERR_INVALID_ARGUMENT);
    assert_eq!(p.set_video_bitrate(200_001).unwrap_err().code(), ResultCode::KP_ERR_INVALID_ARGUMENT);
    p.start().unwrap();
    assert_eq!(p.resume().unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
    p.pause(PauseMode::KP_PAUSE_AUDIO_ONLY).unwrap();
    p.pause(PauseMode::KP_PAUSE_STILL_IMAGE_SILENT).unwrap();
    let src = Source::new(&spec);
    assert_eq!(p.push_video(&src.frame(), 0).unwrap_err().code(), ResultCode::KP_ERR_PAUSED);
    p.push_audio(&[0; 882], 0).expect("audio is taken while paused");
    p.resume().unwrap();
    p.request_keyframe().unwrap();
    p.push_video(&src.frame(), 10_000).expect("video after resume");
    let _ = p.stop(Duration::ZERO);
    assert_eq!(p.pause(PauseMode::KP_PAUSE_STILL_IMAGE).unwrap_err().code(), ResultCode::KP_ERR_NOT_STARTED);
    assert_eq!(p.set_video_bitrate(500).unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
    assert_eq!(p.set_audio_muted(false).unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);

    // Pre-encoded video cannot show a still picture; no audio track cannot be muted.
    let mut cfg = spec.config(&url);
    cfg.video.as_mut().unwrap().encoder = kitepush::pusher::VideoEncoderKind::KP_ENCODER_PASSTHROUGH;
    cfg.audio = None;
    let h = Harnessed::new(cfg);
    h.pusher.start().unwrap();
    let e = h.pusher.pause(PauseMode::KP_PAUSE_STILL_IMAGE).unwrap_err();
    assert_eq!(e.code(), ResultCode::KP_ERR_UNSUPPORTED);
    h.pusher.pause(PauseMode::KP_PAUSE_AUDIO_ONLY).unwrap();
    assert_eq!(h.pusher.push_h264(&[0, 0, 0, 1, 0x65, 0x88], 0, 0).unwrap_err().code(), ResultCode::KP_ERR_PAUSED);
    assert_eq!(h.pusher.set_video_bitrate(500).unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
    assert_eq!(h.pusher.set_audio_muted(true).unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
}
