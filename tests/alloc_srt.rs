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

use common::pushing::{encoded_test_media, Harnessed, Spec};
use common::srt::{SrtListener, SrtOptions};
use common::tmp_dir;
use common::udp_proxy::{UdpFaults, UdpProxy};
use kitepush::core::adts;
use kitepush::pusher::{AudioConfig, AudioEncoderKind, EventKind, VideoConfig, VideoEncoderKind};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

const SLOTS: usize = 64;

struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static BYTES: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// Kernel thread id per slot, to name the thread afterwards (/proc/self/task/TID/comm).
static TIDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// The first sizes allocated per slot, to tell what allocated.
static SIZES: [[AtomicU64; 8]; SLOTS] = [const { [const { AtomicU64::new(0) }; 8] }; SLOTS];

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn count(size: usize) {
    if !ENABLED.load(Relaxed) {
        return;
    }
    // `try_with`: allocations during thread teardown happen after the slot is gone.
    let _ = SLOT.try_with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SLOT.fetch_add(1, Relaxed).min(SLOTS - 1);
            // SAFETY: gettid has no preconditions.
            TIDS[i].store(unsafe { libc::gettid() }, Relaxed);
            s.set(i);
        }
        let n = COUNTS[i].fetch_add(1, Relaxed);
        if n < 8 {
            SIZES[i][n as usize].store(size as u64, Relaxed);
        }
        BYTES[i].fetch_add(size as u64, Relaxed);
    });
}

// SAFETY: forwards to the system allocator unchanged; counting touches only atomics and a
// const-initialised thread local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (thread name, allocations, bytes) per thread that allocated while counting was on.
fn measure(f: impl FnOnce()) -> Vec<(String, u64, u64)> {
    for i in 0..SLOTS {
        COUNTS[i].store(0, Relaxed);
        BYTES[i].store(0, Relaxed);
    }
    ENABLED.store(true, Relaxed);
    f();
    ENABLED.store(false, Relaxed);
    let mut out = Vec::new();
    for i in 0..NEXT_SLOT.load(Relaxed).min(SLOTS) {
        let n = COUNTS[i].load(Relaxed);
        if n > 0 {
            let tid = TIDS[i].load(Relaxed);
            let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| format!("tid {tid} (exited)"));
            let sizes: Vec<u64> = SIZES[i].iter().map(|s| s.load(Relaxed)).take(n as usize).collect();
            out.push((format!("{name} (first sizes {sizes:?})"), n, BYTES[i].load(Relaxed)));
        }
    }
    out
}

/// The measuring thread's own name in the table.
fn this_thread() -> String {
    std::fs::read_to_string("/proc/thread-self/comm").unwrap().trim().to_string()
}

#[test]
fn steady_state_srt_push_allocates_nothing_per_frame() {
    let dir = tmp_dir("alloc-srt");
    // 20 s of 320x240 H.264 with an IDR every second (SPS/PPS in each), and AAC.
    let (aus, aac) = encoded_test_media(&dir, 20, 30);
    let frames: Vec<&[u8]> = adts::adts_frames(&aac)
        .map(|f| {
            let (hd, raw) = f.unwrap();
            let start = raw.as_ptr() as usize - aac.as_ptr() as usize - hd.header_len;
            &aac[start..start + hd.frame_len]
        })
        .collect();
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
