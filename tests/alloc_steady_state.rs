//! Heap allocations per frame in steady state, counted by a `#[global_allocator]` wrapper, per
//! thread, while pushing to a real nginx-rtmp.
//!
//! Pre-encoded path (push_h264 + push_aac → packetizer → send queue → RTMP session → socket): no
//! encoder involved, so every allocation counted is SDK code; the bar is zero.
//! Raw path (push_video + push_audio → input pool → OpenH264 / FDK AAC, and libopus from the same
//! PCM at 44.1 kHz through the resampler (the WebRTC output's audio, `also_opus`) → the same path): the
//! encode worker thread runs both SDK code and the encoders, which cannot be told apart here; the
//! bar of zero is applied to it anyway, encoder internals included (they allocate nothing per
//! frame either, as measured). The app thread is left out on this path: the test's pacing helper
//! (`Source::push_one`) polls `stats()`, which builds a `Vec`.
//!
//! In-place path (video_slot → pattern drawn into the lent picture → push_video_slot → the same
//! encoders): the bar of zero holds for every thread, the app's included.
//!
//! One test per binary: the counters are process-wide, another test running alongside would
//! count too.

mod common;

use common::alloc_count::{measure, this_thread, Counting};
use common::pushing::{encoded_test_media, Harnessed, Source, Spec};
use common::{tmp_dir, unique_key, Nginx, NginxOptions};
use kitepush::pusher::{AudioConfig, AudioEncoderKind, EventKind, VideoConfig, VideoEncoderKind};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_push_allocates_nothing_per_frame() {
    let dir = tmp_dir("alloc");
    // 20 s of 320x240 H.264 with an IDR every second (SPS/PPS in each), and AAC.
    let (aus, aac) = encoded_test_media(&dir, 20, 30);
    let frames: Vec<&[u8]> = common::pushing::adts_frames_of(&aac);
    let nginx = Nginx::start(NginxOptions::default());

    // --- pre-encoded path ---
    let mut config = Spec::default().config(&nginx.url(&unique_key("alloc-pre")));
    config.video = Some(VideoConfig {
        encoder: VideoEncoderKind::KP_ENCODER_PASSTHROUGH,
        width: 320,
        height: 240,
        ..VideoConfig::default()
    });
    config.audio =
        Some(AudioConfig { encoder: AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH, ..AudioConfig::default() });
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let t0 = Instant::now();
    let mut a = 0usize;
    let mut push = |range: std::ops::Range<usize>| {
        for i in range {
            let pts = i as i64 * 1_000_000 / 30;
            while a < frames.len() && (a as i64 * 1024 * 1_000_000 / 44100) <= pts {
                h.pusher.push_aac(frames[a], a as i64 * 1024 * 1_000_000 / 44100).unwrap();
                a += 1;
            }
            h.pusher.push_h264(&aus[i], pts, pts).unwrap();
            // Real time, so the network keeps up as it would live.
            let due = t0 + Duration::from_micros(pts as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    };
    // Warm-up: buffers, queues and the pools grow to their working size (3 s, 3 keyframes).
    push(0..90);
    let me = this_thread();
    let table = measure(|| push(90..aus.len()));
    let measured = aus.len() - 90;
    let sent_before_stop = h.pusher.stats();
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    println!(
        "pre-encoded path, {measured} video frames + their audio, allocations per thread: {table:?} (app thread: {me})"
    );
    assert!(sent_before_stop.video_frames_sent >= 90, "{sent_before_stop:?}");
    let total: u64 = table.iter().map(|t| t.1).sum();
    assert_eq!(total, 0, "heap allocations in steady state (thread, count, bytes): {table:?}");

    // --- raw path (encoders) ---
    let spec = Spec { seconds: 8.0, ..Spec::default() };
    let mut config = spec.config(&nginx.url(&unique_key("alloc-raw")));
    // With the encode ladder's measuring and asking, which run for every frame (320x240 needs a
    // few % of a core: it never changes rung here, and only a change may allocate).
    config.ladder.enabled = true;
    config.audio.as_mut().expect("the spec has audio").also_opus = true;
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut src = Source::new(&spec);
    let t0 = Instant::now();
    let mut push_raw = |n: u64| {
        for _ in 0..n {
            let pts = src.pts_us(src.next_frame);
            src.push_one(&h.pusher);
            std::thread::sleep((t0 + Duration::from_micros(pts as u64)).saturating_duration_since(Instant::now()));
        }
    };
    push_raw(90);
    let frames_raw = spec.frames() - 90;
    // `Source::push_one` polls `stats()` (which builds a Vec) for pacing: its allocations are on
    // the app thread and are the test's, so the bar below is for the SDK's own threads.
    let table = measure(|| push_raw(frames_raw));
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    println!("raw path, {frames_raw} frames, allocations per thread: {table:?} (app thread: {me})");
    let sdk_threads: Vec<_> = table.iter().filter(|t| !t.0.starts_with(&me)).collect();
    assert!(sdk_threads.is_empty(), "heap allocations on SDK threads: {table:?}");

    // --- written in place (video slots: the pattern drawn straight into the lent picture) ---
    // The app thread counts too: borrowing a slot, drawing and pushing it allocate nothing (the
    // slot's cell and picture come back to the pusher and are reused).
    let spec = Spec { seconds: 8.0, audio: false, ..Spec::default() };
    let mut h = Harnessed::new(spec.config(&nginx.url(&unique_key("alloc-slots"))));
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut pattern = kitepush::pattern::VideoPattern::new(spec.width, spec.height);
    let t0 = Instant::now();
    let mut next = 0u64;
    let mut push_in_place = |n: u64| {
        for _ in 0..n {
            let pts = (next as f64 * 1e6 / spec.fps) as i64;
            std::thread::sleep((t0 + Duration::from_micros(pts as u64)).saturating_duration_since(Instant::now()));
            let mut slot = h.pusher.video_slot().unwrap();
            let (y, u, v) = slot.planes_mut();
            pattern.fill_planes(next, y, u, v);
            h.pusher.push_video_slot(slot, pts).unwrap();
            next += 1;
        }
    };
    push_in_place(90);
    let in_place = spec.frames() - 90;
    let table = measure(|| push_in_place(in_place));
    let sent = h.pusher.stats().video_frames_sent;
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    println!("in-place path, {in_place} frames, allocations per thread: {table:?} (app thread: {me})");
    assert!(sent >= 90, "{sent} sent");
    assert!(table.is_empty(), "heap allocations, app thread included: {table:?}");
}
