//! Soak: 720p30 raw frames through the SDK's encoders (pattern + tone) to a real nginx-rtmp
//! behind the fault proxy, with an nginx restart every 30 s (SIGKILL and start: nginx's graceful
//! quit waits out a live RTMP connection, so a planned restart ends up a kill anyway) and a 4 s
//! stall through the proxy in the middle of every cycle. Prints the RSS and open-fd curves every 10 s, then checks:
//! peak RSS after warm-up grows less than 1 MB over the RSS at the end of warm-up (besides whole
//! raw pictures the input pool adds at a new high-water mark of pictures in flight), the fd count
//! after warm-up never exceeds what it was during warm-up, and every recorded segment (one file
//! per publish, nginx `record_unique`) decodes without errors.
//!
//! Run by `scripts/soak` (`--minutes N`, default 3 = the CI mode); ignored by plain `cargo test`.
//! RSS and fds are the whole test process: SDK, encoders, and the in-process proxy.

mod common;

use common::proxy::{Fault, Proxy};
use common::pushing::{Harnessed, Source, Spec};
use common::{decode_errors, probe, unique_key, Nginx, NginxOptions};
use kitepush::pusher::PusherState;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CYCLE: Duration = Duration::from_secs(30);
const STALL_AT: Duration = Duration::from_secs(12);
const STALL_FOR: Duration = Duration::from_secs(4);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Two restart cycles: every reconnect path has run and grown its buffers once.
const WARM_UP: Duration = Duration::from_secs(60);
const MAX_RSS_GROWTH_KB: u64 = 1024;

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Heap bytes the allocator has handed out and not taken back (glibc's `mallinfo2`: arena
/// blocks in use plus mmapped blocks), KB: what the process holds, as against what RSS also
/// counts of freed memory the allocator keeps.
fn heap_in_use_kb() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    ((m.uordblks + m.hblkhd) / 1024) as u64
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

struct Sample {
    at_s: u64,
    rss_kb: u64,
    heap_kb: u64,
    raw_buffers: usize,
    fds: usize,
    state: PusherState,
    frames_sent: u64,
    reconnects: u64,
}

#[test]
#[ignore = "long: run by scripts/soak"]
fn soak_720p30_with_restarts_and_stalls() {
    let minutes: f64 = std::env::var("KP_SOAK_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(3.0);
    let duration = Duration::from_secs_f64(minutes * 60.0);
    assert!(duration > WARM_UP + CYCLE, "a soak needs more than {:?}", WARM_UP + CYCLE);

    let mut nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let upstream: SocketAddr = format!("127.0.0.1:{}", nginx.port()).parse().unwrap();
    let proxy = Proxy::start(upstream);
    let key = unique_key("soak");
    let spec = Spec { width: 1280, height: 720, fps: 30.0, seconds: 1e9, audio: true, bitrate_kbps: 2000 };
    let h = Harnessed::new(spec.config(&proxy.url(nginx.app(), &key)));
    h.pusher.start().unwrap();
    let mut src = Source::new(&spec);

    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut cycle_start = Duration::ZERO;
    let mut stalled = false;
    let (mut restarts, mut stalls) = (0u32, 0u32);
    println!("soak: {minutes} min of 1280x720@30 to nginx via the proxy; restart every {CYCLE:?}, {STALL_FOR:?} stall at {STALL_AT:?} into each cycle");
    println!(
        "{:>6} {:>9} {:>10} {:>8} {:>4} {:>13} {:>11} {:>10}",
        "t (s)", "RSS (KB)", "heap (KB)", "pictures", "fds", "state", "video sent", "reconnects"
    );
    while t0.elapsed() < duration {
        let now = t0.elapsed();
        if now >= next_sample {
            let st = h.pusher.stats();
            let s = Sample {
                at_s: now.as_secs(),
                rss_kb: rss_kb(),
                heap_kb: heap_in_use_kb(),
                raw_buffers: h.pusher.raw_video_buffers(),
                fds: open_fds(),
                state: h.pusher.state(),
                frames_sent: st.video_frames_sent,
                reconnects: st.reconnects,
            };
            println!(
                "{:>6} {:>9} {:>10} {:>8} {:>4} {:>13} {:>11} {:>10}",
                s.at_s,
                s.rss_kb,
                s.heap_kb,
                s.raw_buffers,
                s.fds,
                format!("{:?}", s.state).trim_start_matches("KP_STATE_"),
                s.frames_sent,
                s.reconnects
            );
            samples.push(s);
            next_sample += SAMPLE_EVERY;
        }
        let in_cycle = now - cycle_start;
        if !stalled && in_cycle >= STALL_AT && in_cycle < STALL_AT + STALL_FOR {
            proxy.set(Fault::Stall);
            stalled = true;
            stalls += 1;
        } else if stalled && in_cycle >= STALL_AT + STALL_FOR {
            proxy.set(Fault::Pass);
            stalled = false;
        }
        if in_cycle >= CYCLE {
            nginx.restart();
            restarts += 1;
            cycle_start = now;
        }
        // Real time: the pattern at 30 fps, never ahead of the clock.
        let pts = Duration::from_micros(src.pts_us(src.next_frame) as u64);
        if let Some(wait) = pts.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_millis(50)));
            continue;
        }
        src.push_one(&h.pusher);
    }
    proxy.set(Fault::Pass);
    let _ = h.pusher.stop(Duration::from_secs(10));
    let final_stats = h.pusher.stats();
    drop(h);
    nginx.stop();

    let warm: Vec<&Sample> = samples.iter().filter(|s| s.at_s < WARM_UP.as_secs()).collect();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at_s >= WARM_UP.as_secs()).collect();
    let base = warm.last().unwrap();
    let base_rss = base.rss_kb;
    let peak_rss = after.iter().map(|s| s.rss_kb).max().unwrap();
    // The input pool keeps the raw pictures it made for reuse and makes one more whenever more
    // pictures than ever before wait at once (a forced IDR at a disconnect that takes longer to
    // encode, a busy moment of the machine): a bounded high-water mark, not a leak. Growth by
    // whole pictures of the pool is taken out; everything else counts.
    let picture_kb = (spec.width * spec.height * 3 / 2 / 1024) as u64;
    let pool_growth = |s: &Sample| (s.raw_buffers.saturating_sub(base.raw_buffers)) as u64 * picture_kb;
    let peak_growth = after.iter().map(|s| s.rss_kb as i64 - base_rss as i64 - pool_growth(s) as i64).max().unwrap();
    let pool_added = after.iter().map(|s| s.raw_buffers).max().unwrap().saturating_sub(base.raw_buffers);
    let warm_fds = warm.iter().map(|s| s.fds).max().unwrap();
    let peak_fds = after.iter().map(|s| s.fds).max().unwrap();
    let segments = nginx.recordings_of(&key);
    println!(
        "soak: {restarts} restarts, {stalls} stalls, {} reconnects, {} video frames sent ({} encoded), {} segments",
        final_stats.reconnects,
        final_stats.video_frames_sent,
        final_stats.video_frames_encoded,
        segments.len()
    );
    println!(
        "soak: RSS at end of warm-up {base_rss} KB, peak after {peak_rss} KB; input pool +{pool_added} pictures of {picture_kb} KB; growth less the pool {peak_growth} KB (limit {MAX_RSS_GROWTH_KB}); fds max {warm_fds} in warm-up, {peak_fds} after"
    );
    let mut bad = Vec::new();
    for seg in &segments {
        let errors = decode_errors(seg);
        let frames = probe(seg).video.map_or(0, |v| v.frames);
        println!("segment {}: {frames} video frames, decode errors: {:?}", seg.display(), errors);
        // A publish cut by a restart in its first instants may hold headers only; it still must decode.
        if !errors.is_empty() {
            bad.push(seg.clone());
        }
    }
    assert!(restarts >= 3 && stalls >= 3, "too short to soak anything");
    assert!(final_stats.reconnects >= restarts as u64, "{final_stats:?}");
    assert!(segments.len() > restarts as usize, "one segment per publish: {segments:?}");
    assert!(bad.is_empty(), "segments with decode errors: {bad:?}");
    assert!(
        peak_growth < MAX_RSS_GROWTH_KB as i64,
        "RSS grew from {base_rss} KB to {peak_rss} KB after warm-up ({peak_growth} KB besides the input pool's {pool_added} new pictures)"
    );
    assert!(peak_fds <= warm_fds, "open fds grew from {warm_fds} to {peak_fds} after warm-up");
}
