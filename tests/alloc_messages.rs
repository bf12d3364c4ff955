//! Heap allocations of timed messages and capture timestamps in steady state (issue 15), counted
//! per thread by a `#[global_allocator]` wrapper while pushing pre-encoded media to nginx-rtmp: a
//! message every 500 ms and a capture-time SEI on every frame. `send_message` copies into a
//! preallocated store and the SEIs are built in pooled buffers, so the bar is zero, as without
//! messages (tests/alloc_steady_state.rs).
//!
//! One test per binary: the counters are process-wide.

mod common;

use common::alloc_count::{measure, this_thread, Counting};
use common::pushing::{encoded_test_media, pre_encoded_h264_320x240, Harnessed};
use common::{tmp_dir, unique_key, Nginx, NginxOptions};
use kitepush::pusher::{CaptureTimestamps, EventKind, MessageFlag};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn messages_and_capture_times_allocate_nothing_per_frame() {
    let dir = tmp_dir("alloc-messages");
    let (aus, _) = encoded_test_media(&dir, 12, 30);
    let nginx = Nginx::start(NginxOptions::default());
    let mut config = pre_encoded_h264_320x240(&nginx.url(&unique_key("alloc-messages")));
    config.audio = None;
    config.messages.capture_timestamps = CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_EVERY_FRAME;
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let t0 = Instant::now();
    let message = *b"price drop: 19.99 \x00\x00\x00\x01 (emulation prevention on the way)";
    let push = |range: std::ops::Range<usize>| {
        for i in range {
            let pts = i as i64 * 1_000_000 / 30;
            if i % 15 == 0 {
                let flags = if i % 30 == 0 { MessageFlag::KP_MESSAGE_AMF as u32 } else { 0 };
                h.pusher.send_message(&message, flags).unwrap();
            }
            h.pusher.push_h264(&aus[i], pts, pts).unwrap();
            let due = t0 + Duration::from_micros(pts as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    };
    // Warm-up: the pools grow to their working size.
    push(0..90);
    let me = this_thread();
    let table = measure(|| push(90..aus.len()));
    let measured = aus.len() - 90;
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    println!(
        "{measured} frames with capture times and {} messages, allocations per thread: {table:?} (app thread: {me})",
        measured / 15
    );
    assert_eq!((stats.messages_sent, stats.messages_dropped), (stats.messages_accepted, 0), "{stats:?}");
    let total: u64 = table.iter().map(|t| t.1).sum();
    assert_eq!(total, 0, "heap allocations in steady state (thread, count, bytes): {table:?}");
}
