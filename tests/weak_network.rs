//! A weak uplink, for real: kitepush pushes to nginx-rtmp through the fault-injecting proxy throttled
//! to half of what the stream needs, then the bandwidth comes back. The latency budget, the ABR's
//! step down and recovery, memory and the recording's integrity are checked on the real pipeline.

mod common;

use common::proxy::{Fault, Proxy};
use common::pushing::{Harnessed, Source, Spec};
use common::*;
use kitepush::pusher::{Event, EventKind, Pusher, Stats};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pushes the pattern and tone in real time on a thread until told to stop.
struct RealTime {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RealTime {
    fn start(pusher: Arc<Pusher>, spec: Spec) -> RealTime {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut src = Source::new(&spec);
            let t0 = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                let due = t0 + Duration::from_micros(src.pts_us(src.next_frame) as u64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                src.push_one_nowait(&pusher);
            }
        });
        RealTime { stop, thread: Some(thread) }
    }
}

impl Drop for RealTime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn p99(mut v: Vec<u32>) -> u32 {
    v.sort_unstable();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Next stats snapshot, with a deadline.
fn next_stats(rx: &Receiver<Stats>) -> Stats {
    rx.recv_timeout(Duration::from_secs(10)).expect("no stats callback within 10 s")
}

/// The BITRATE_CHANGED events as (ms after `since_ms`, kbit/s); events are stamped in ms since
/// the pusher was created, like uptime_ms.
fn bitrate_changes(events: &[Event], since_ms: u64) -> Vec<(i64, i64)> {
    events
        .iter()
        .filter(|e| e.kind == EventKind::KP_EVENT_BITRATE_CHANGED)
        .map(|e| (e.timestamp_ms as i64 - since_ms as i64, e.value))
        .collect()
}

#[test]
fn throttled_to_half_the_bitrate_then_restored() {
    const VIDEO_KBPS: u32 = 1000;
    const THROTTLED_S: u64 = 60;
    let nginx = Nginx::start(NginxOptions::default());
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], nginx.port())));
    let key = unique_key("weak");
    let spec = Spec { width: 640, height: 360, bitrate_kbps: VIDEO_KBPS, ..Spec::default() };
    let mut config = spec.config(&proxy.url(nginx.app(), &key));
    // The ABR reacts within two seconds, before the default NET_BUSY (congestion 0.5 for 3 s) would
    // fire; the app's own, more sensitive threshold shows the alert path.
    config.alerts.net_busy_congestion = 0.2;
    config.alerts.net_busy_ms = 1000;
    let budget = config.send_queue_ms;
    assert_eq!(budget, 2000, "the default latency budget");
    let mut h = Harnessed::new(config);
    let (stats_tx, stats_rx) = channel();
    h.pusher
        .set_stats_handler(Duration::from_secs(1), Box::new(move |s: &Stats| drop(stats_tx.send(s.clone()))))
        .unwrap();
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));
    let events = std::mem::replace(&mut h.events, channel().1);
    let pusher = Arc::new(h.pusher);
    let source = RealTime::start(pusher.clone(), spec.clone());

    // Warm up at full bandwidth: the target stays put and the queue stays short.
    let warm_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < warm_until {
        let s = next_stats(&stats_rx);
        assert_eq!(s.target_video_kbps, VIDEO_KBPS, "no congestion yet: {s:?}");
    }
    let warm = next_stats(&stats_rx);
    assert!(warm.sent_fps > 20.0 && warm.throughput_kbps > 300, "not streaming: {warm:?}");
    let stream_kbps = VIDEO_KBPS + warm.target_audio_kbps;

    // Half of what the stream needs, for a minute.
    let link_kbps = stream_kbps / 2;
    let rss_before = rss_kb();
    let throttled_at = Instant::now();
    // Events are stamped in ms since the pusher was created, like uptime_ms.
    let throttled_ms = pusher.stats().uptime_ms;
    proxy.set(Fault::Throttle { kbit_per_s: link_kbps });
    let mut queue_ms = Vec::new();
    let mut rss_max = rss_before;
    let mut lowest_target = VIDEO_KBPS;
    while throttled_at.elapsed() < Duration::from_secs(THROTTLED_S) {
        let s = next_stats(&stats_rx);
        queue_ms.push(s.queue_ms);
        rss_max = rss_max.max(rss_kb());
        lowest_target = lowest_target.min(s.target_video_kbps);
    }
    let seen: Vec<Event> = events.try_iter().collect();
    let first_down = seen
        .iter()
        .find(|e| e.kind == EventKind::KP_EVENT_BITRATE_CHANGED && e.value < VIDEO_KBPS as i64)
        .unwrap_or_else(|| panic!("no step down in {THROTTLED_S} s: {seen:?}"));
    let step_down_after = first_down.timestamp_ms.saturating_sub(throttled_ms);
    let mid = next_stats(&stats_rx);
    let throttled_changes = bitrate_changes(&seen, throttled_ms);
    eprintln!(
        "throttled to {link_kbps} kbit/s: first step down after {step_down_after} ms to {} kbit/s, lowest {lowest_target}, \
         queue p99 {} ms (max {}), RSS {} -> max {} KiB, dropped {} video / {} audio, congestion now {:.2}, \
         changes (ms after the throttle, kbit/s): {throttled_changes:?}",
        first_down.value,
        p99(queue_ms.clone()),
        queue_ms.iter().max().unwrap(),
        rss_before,
        rss_max,
        mid.video_frames_dropped_congestion,
        mid.audio_frames_dropped_congestion,
        mid.congestion
    );
    assert!(step_down_after <= 5000, "the bitrate stepped down {step_down_after} ms after the throttle");
    assert!(p99(queue_ms.clone()) <= budget, "queue p99 over the {budget} ms budget: {queue_ms:?}");
    assert!(
        (lowest_target + mid.target_audio_kbps) <= link_kbps,
        "the target never came under the link's {link_kbps} kbit/s: lowest {lowest_target}"
    );
    assert!(rss_max <= rss_before + 20 * 1024, "memory grew from {rss_before} to {rss_max} KiB under the throttle");
    assert!(seen.iter().any(|e| e.kind == EventKind::KP_EVENT_NET_BUSY), "no NET_BUSY alert: {seen:?}");

    // The bandwidth comes back: the target returns to the configured bitrate. Only a probe can
    // show that the link got faster, and a steady link gets one probe a minute at most (no
    // oscillation), so the bound is the ABR's longest probe wait plus the probe's hold and the
    // ramp, whatever the phase of the probing at the restore (core::abr's
    // a_restored_link_is_found_within_one_full_probe_wait: 73 s worst, 28 s median; plus a
    // stats period).
    const BACK_WITHIN: Duration = Duration::from_secs(75);
    let restored_at = Instant::now();
    let restored_ms = pusher.stats().uptime_ms;
    proxy.set(Fault::Pass);
    let mut back = None;
    while restored_at.elapsed() < BACK_WITHIN {
        let s = next_stats(&stats_rx);
        if s.target_video_kbps == VIDEO_KBPS {
            back = Some(restored_at.elapsed());
            break;
        }
    }
    let after: Vec<Event> = events.try_iter().collect();
    let changes = bitrate_changes(&after, restored_ms);
    let back = back.unwrap_or_else(|| {
        panic!(
            "not back at {VIDEO_KBPS} kbit/s within {BACK_WITHIN:?} of the restore; changes (ms, kbit/s): {changes:?}"
        )
    });
    eprintln!(
        "back at {VIDEO_KBPS} kbit/s {:.1} s after the restore; changes (ms after the restore, kbit/s): {changes:?}",
        back.as_secs_f64()
    );

    drop(source);
    let pusher = Arc::try_unwrap(pusher).ok().expect("the source thread released the pusher");
    pusher.stop(Duration::from_secs(10)).expect("stop");
    let final_stats = pusher.stats();
    assert!(final_stats.rtt_ms > 0, "nginx answers RTMP pings: {final_stats:?}");
    assert!(final_stats.cpu_time_ms > 0, "{final_stats:?}");
    drop(pusher);

    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(20));
    let errors = decode_errors(&rec);
    assert!(errors.is_empty(), "the recording does not decode cleanly: {errors}");
    let p = probe(&rec);
    let v = p.video.expect("video in the recording");
    assert!(v.frames > 30 * 60, "only {} video frames recorded", v.frames);
    assert!(p.audio.is_some(), "audio in the recording");
}
