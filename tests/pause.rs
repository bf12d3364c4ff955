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
    let mut src = Source::new(&spec);
    let t0 = Instant::now();
    let mut chunk = 0;
    push_realtime(&h.pusher, &mut src, t0, Duration::from_secs(2), true, &mut chunk);
    h.pusher.pause(PauseMode::KP_PAUSE_AUDIO_ONLY).expect("pause");
    h.wait_for(EventKind::KP_EVENT_PAUSED, Duration::from_secs(5));
    push_realtime(&h.pusher, &mut src, t0, Duration::from_secs(8), false, &mut chunk);
    h.pusher.resume().expect("resume");
    h.wait_for(EventKind::KP_EVENT_RESUMED, Duration::from_secs(5));
    let resumed_at = src.next_frame;
    push_realtime(&h.pusher, &mut src, t0, Duration::from_secs(10), true, &mut chunk);
    assert!(src.next_frame - resumed_at > 30);
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

/// Pushes pattern video (unless `video` is false) and a 440 Hz tone in real time until `until`
/// after `t0`.
fn push_realtime(p: &Pusher, src: &mut Source, t0: Instant, until: Duration, video: bool, chunk: &mut u64) {
    while t0.elapsed() < until {
        let now = t0.elapsed();
        // Capture times on the test's clock, on the frame and chunk grid (with the SDK's own
        // clock, scheduling jitter could put two frames into one 1/30 s slot, which ffmpeg's
        // decode check reports).
        if !video {
            // The camera is off: its frame count moves on with the time.
            src.next_frame = now.as_micros() as u64 * 30 / 1_000_000 + 1;
        } else if now.as_micros() as u64 >= src.next_frame * 1_000_000 / 30 {
            let pts = src.pts_us(src.next_frame);
            src.push_one_video_only(p, pts);
        }
        if now >= Duration::from_millis(*chunk * 10) {
            let pcm: Vec<i16> = (0..441u64)
                .flat_map(|n| {
                    let s = ((*chunk * 441 + n) as f64 * 440.0 * std::f64::consts::TAU / 44100.0).sin() * 8000.0;
                    [s as i16, s as i16]
                })
                .collect();
            p.push_audio(&pcm, *chunk as i64 * 10_000).expect("push_audio");
            *chunk += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn silent_pause_shows_the_app_picture_and_silences_the_pushed_audio() {
    let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let key = unique_key("pause-silent");
    let spec = Spec::default();
    let mut h = started(&nginx, &key, &spec);
    // A flat light-grey picture, unlike anything in the moving pattern.
    let (w, hgt) = (spec.width as usize, spec.height as usize);
    let mut grey = vec![128u8; w * hgt * 3 / 2];
    grey[..w * hgt].fill(200);
    let (y, uv) = grey.split_at(w * hgt);
    let (u, v) = uv.split_at(w * hgt / 4);
    let frame = kitepush::encode::VideoFrame {
        format: kitepush::encode::PixelFormat::KP_PIXEL_FORMAT_I420,
        width: spec.width,
        height: spec.height,
        planes: [y, u, v],
        strides: [w, w / 2, w / 2],
    };
    h.pusher.set_pause_image(&frame).expect("set_pause_image");
    let mut src = Source::new(&spec);
    let t0 = Instant::now();
    let mut chunk = 0;
    push_realtime(&h.pusher, &mut src, t0, Duration::from_secs(3), true, &mut chunk);
    h.pusher.pause(PauseMode::KP_PAUSE_STILL_IMAGE_SILENT).expect("pause");
    // The app keeps pushing its tone; the stream must carry silence instead.
    push_realtime(&h.pusher, &mut src, t0, Duration::from_secs(7), false, &mut chunk);
    h.pusher.resume().expect("resume");
    push_realtime(&h.pusher, &mut src, t0, Duration::from_secs(10), true, &mut chunk);
    h.wait_for(EventKind::KP_EVENT_RESUMED, Duration::from_secs(5));
    let rec = finish(h, &nginx, &key);

    let lumas = common::packets::luma_means(&rec);
    let grey_frames: Vec<f64> = lumas.iter().filter(|(_, y)| (*y - 200.0).abs() < 6.0).map(|(t, _)| *t).collect();
    assert!((15..=25).contains(&grey_frames.len()), "{} grey frames in 4 s at 5 fps", grey_frames.len());
    let (g0, g1) = (grey_frames[0], *grey_frames.last().unwrap());
    assert!((3.3..=4.6).contains(&(g1 - g0)), "grey from {g0} to {g1} s");
    let v = packets(&rec, "v");
    let resume = v.iter().position(|p| p.pts > g1 + 1e-3).expect("frames after the pause");
    assert!(v[resume].key, "resume frame at {} s is not a keyframe", v[resume].pts);
    assert!(largest_gap(&v) <= 0.3, "video gap {}", largest_gap(&v));
    let a = packets(&rec, "a");
    assert!(largest_gap(&a) <= 0.05, "audio gap {}", largest_gap(&a));
    let pcm = pcm_on_file_clock(&rec, 44100);
    let paused = rms_between(&pcm, 44100, g0 + 0.3, g1 - 0.3);
    let before = rms_between(&pcm, 44100, g0 - 2.0, g0 - 0.3);
    let after = rms_between(&pcm, 44100, g1 + 0.5, g1 + 2.0);
    assert!(paused < 30.0, "pushed audio during a silent pause: rms {paused}");
    assert!(before > 3000.0 && after > 3000.0, "tone before {before} / after {after}");
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
