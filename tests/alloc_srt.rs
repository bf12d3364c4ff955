//! Heap allocations per frame in steady state over SRT, counted by a `#[global_allocator]` wrapper,
//! per thread, while pushing pre-encoded H.264 + AAC to a real srt-live-transmit (the twin of
//! `alloc_steady_state.rs`, which pushes over RTMP).
//!
//! Pre-encoded path (push_h264 + push_aac → packetizer → send queue → TS muxer → SRT sender →
//! UDP socket): no encoder involved, so every allocation counted is SDK code; the bar is zero on
//! every thread, the network worker (`kp-network`: TS muxing, SRT packets, ACK/NAK handling,
//! retransmissions) first of all. Through the UDP proxy at 2 % loss, so the repair path (NAKs,
//! retransmissions, the loss list) runs in the measured window too.
//!
//! One test per binary: the counters are process-wide, another test running alongside would
//! count too.

mod common;

use common::alloc_count::{measure, this_thread, Counting};
use common::pushing::{encoded_test_media, Harnessed, Spec};
use common::srt::{SrtListener, SrtOptions};
use common::tmp_dir;
use common::udp_proxy::{UdpFaults, UdpProxy};
use kitepush::pusher::{AudioConfig, AudioEncoderKind, EventKind, VideoConfig, VideoEncoderKind};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_srt_push_allocates_nothing_per_frame() {
    let dir = tmp_dir("alloc-srt");
    // 20 s of 320x240 H.264 with an IDR every second (SPS/PPS in each), and AAC.
    let (aus, aac) = encoded_test_media(&dir, 20, 30);
    let frames: Vec<&[u8]> = common::pushing::adts_frames_of(&aac);
    let mut listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(200));
    let proxy = UdpProxy::start(listener.addr());
    proxy.set(UdpFaults::PASS.with_loss(2.0).with_delay_ms(10));

    let mut config = Spec::default().config(&format!("srt://127.0.0.1:{}?latency=200", proxy.port()));
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
    // Warm-up: buffers, queues, the SRT send buffer and loss list grow to their working size
    // (3 s, 3 keyframes, some repairs).
    push(0..90);
    let me = this_thread();
    let table = measure(|| push(90..aus.len()));
    let measured = aus.len() - 90;
    let stats = h.pusher.stats();
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    listener.stop();
    let d = &stats.destinations[0];
    println!(
        "SRT pre-encoded path, {measured} video frames + their audio ({} retransmitted, {} lost), \
         allocations per thread: {table:?} (app thread: {me})",
        d.packets_retransmitted, d.packets_lost
    );
    assert!(stats.video_frames_sent >= 90 + measured as u64 / 2, "{stats:?}");
    assert!(d.packets_retransmitted > 0, "the repair path did not run: {d:?}");
    let network: Vec<_> = table.iter().filter(|t| t.0.starts_with("kp-network")).collect();
    assert!(network.is_empty(), "heap allocations on the network worker: {table:?}");
    // The fault proxy's threads are the test's (its delay line grows its pool under loss).
    let total: u64 = table.iter().filter(|t| !t.0.starts_with("udp-proxy")).map(|t| t.1).sum();
    assert_eq!(total, 0, "heap allocations in steady state (thread, count, bytes): {table:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
