//! Weak network: the same throttle (the test suite's proxy, tests/common/proxy.rs) at half of what a
//! 640x360 30 fps stream of 1000 kbit/s video + 128 kbit/s AAC needs, for 60 s, in front of nginx-rtmp.
//!
//! kitepush (its moving test pattern and a 440 Hz tone, encoded by OpenH264, ABR and drop policy on):
//! queue delay p50/p99 (its stats: send queue + socket), time to converge (throttle -> the target plus
//! audio fits the link), bitrate delivered through the throttle / available, frames dropped.
//! FFmpeg (testsrc2 and a 440 Hz sine, libx264 veryfast/zerolatency at the same bitrates and GOP,
//! `-re`): how far behind live it falls over the minute, from its `-progress` output:
//! delay = (wall time - media time it has muxed) + (bytes it wrote - bytes through the throttle) /
//! its mean byte rate. The two encode different pictures of the same size, rate and bitrate.
//!
//! `cargo bench --bench weak_network` (scripts/bench runs it).

#[path = "../tests/common/mod.rs"]
mod common;

use common::proxy::{Fault, Proxy};
use common::pushing::{Source, Spec};
use common::{require_tool, unique_key, Nginx, NginxOptions};
use kitepush::pusher::{Pusher, Stats};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const VIDEO_KBPS: u32 = 1000;
const AUDIO_KBPS: u32 = 128;
const SECONDS: u64 = 60;

fn pct(v: &[u32], p: usize) -> u32 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).copied().unwrap_or(0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark not run: use `cargo bench` or scripts/bench");
        return;
    }
    for tool in ["ffmpeg", "ffprobe"] {
        require_tool(tool);
    }
    let link = (VIDEO_KBPS + AUDIO_KBPS) / 2;
    let nginx = Nginx::start(NginxOptions::default());
    let upstream = SocketAddr::from(([127, 0, 0, 1], nginx.port()));
    println!(
        "weak network: {VIDEO_KBPS}+{AUDIO_KBPS} kbit/s stream, link throttled to {link} kbit/s (50 %) for {SECONDS} s"
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));

    // kitepush
    let proxy = Proxy::start(upstream);
    let spec = Spec { width: 640, height: 360, bitrate_kbps: VIDEO_KBPS, ..Spec::default() };
    let key = unique_key("bench-weak");
    let pusher = Pusher::new(spec.config(&proxy.url(nginx.app(), &key)), None).expect("Pusher::new");
    let (tx, rx) = mpsc::channel::<Stats>();
    pusher.set_stats_handler(Duration::from_secs(1), Box::new(move |s: &Stats| drop(tx.send(s.clone())))).unwrap();
    pusher.start().unwrap();
    let pusher = Arc::new(pusher);
    let stop = Arc::new(AtomicBool::new(false));
    let source = {
        let (pusher, stop, spec) = (pusher.clone(), stop.clone(), spec.clone());
        std::thread::spawn(move || {
            let mut src = Source::new(&spec);
            let t0 = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let due = t0 + Duration::from_micros(src.pts_us(src.next_frame) as u64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                src.push_one_nowait(&pusher);
            }
        })
    };
    // Five seconds unthrottled, then the throttle.
    let warm = Instant::now() + Duration::from_secs(5);
    while Instant::now() < warm {
        let _ = rx.recv_timeout(Duration::from_secs(2));
    }
    let before = pusher.stats();
    let up0 = proxy.bytes_upstream();
    let t0 = Instant::now();
    proxy.set(Fault::Throttle { kbit_per_s: link });
    let (mut queue, mut converged) = (Vec::new(), None);
    let mut last = before.clone();
    while t0.elapsed() < Duration::from_secs(SECONDS) {
        let Ok(s) = rx.recv_timeout(Duration::from_secs(5)) else { continue };
        queue.push(s.queue_ms);
        if converged.is_none() && s.target_video_kbps + s.target_audio_kbps <= link {
            converged = Some(t0.elapsed());
        }
        last = s;
    }
    let delivered = (proxy.bytes_upstream() - up0) as f64 * 8.0 / 1000.0 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let _ = source.join();
    let pusher = Arc::try_unwrap(pusher).ok().expect("source ended");
    let _ = pusher.stop(Duration::from_secs(2));
    drop(pusher);
    drop(proxy);
    let dropped_v = last.video_frames_dropped_congestion - before.video_frames_dropped_congestion;
    let dropped_a = last.audio_frames_dropped_congestion - before.audio_frames_dropped_congestion;
    let sent_v = last.video_frames_sent - before.video_frames_sent;
    println!("\nkitepush (ABR + drop policy, budget 2000 ms):");
    println!(
        "  queue delay p50 {} ms, p99 {} ms, max {} ms (stats each second, send queue + socket)",
        pct(&queue, 50),
        pct(&queue, 99),
        queue.iter().max().copied().unwrap_or(0)
    );
    match converged {
        Some(c) => println!("  converged (target + audio <= link) after {:.1} s", c.as_secs_f64()),
        None => println!("  did not converge within {SECONDS} s"),
    }
    println!(
        "  delivered through the throttle {delivered:.0} kbit/s of {link} available = {:.2} (target >= 0.80)",
        delivered / link as f64
    );
    println!(
        "  frames dropped: {dropped_v} video of {} ({:.1} %), {dropped_a} audio; final target {} kbit/s",
        sent_v + dropped_v,
        100.0 * dropped_v as f64 / (sent_v + dropped_v).max(1) as f64,
        last.target_video_kbps
    );

    // FFmpeg through the same throttle.
    let proxy = Proxy::start(upstream);
    proxy.set(Fault::Throttle { kbit_per_s: link });
    let url = proxy.url(nginx.app(), &unique_key("bench-weak-ff"));
    let t0 = Instant::now();
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &SECONDS.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"])
        .args(["-b:v", "1000k", "-maxrate", "1000k", "-bufsize", "1000k", "-g", "60"])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2"])
        .args(["-progress", "pipe:1", "-f", "flv", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ffmpeg");
    let out = BufReader::new(child.stdout.take().unwrap());
    let (mut size, mut media_s) = (0u64, 0.0f64);
    let mut delays: Vec<(f64, f64)> = Vec::new();
    for line in out.lines() {
        let Ok(line) = line else { break };
        if let Some(v) = line.strip_prefix("total_size=") {
            size = v.parse().unwrap_or(size);
        } else if let Some(v) = line.strip_prefix("out_time_us=") {
            media_s = v.parse::<f64>().map(|us| us / 1e6).unwrap_or(media_s);
        } else if line.starts_with("progress=") && media_s > 1.0 {
            let wall = t0.elapsed().as_secs_f64();
            let rate = size as f64 / media_s;
            let in_flight = size.saturating_sub(proxy.bytes_upstream()) as f64 / rate;
            delays.push((wall, (wall - media_s).max(0.0) + in_flight));
        }
        if t0.elapsed() > Duration::from_secs(SECONDS + 30) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let at = |t: f64| delays.iter().min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs())).map_or(0.0, |d| d.1);
    let growth = at(SECONDS as f64) - at(10.0);
    println!("\nFFmpeg (libx264, no adaptation) through the same throttle:");
    println!(
        "  behind live at 10 s: {:.1} s, 30 s: {:.1} s, {SECONDS} s: {:.1} s; growth {:.1} s over the last {} s ({:.2} s/s)",
        at(10.0),
        at(30.0),
        at(SECONDS as f64),
        growth,
        SECONDS - 10,
        growth / (SECONDS - 10) as f64
    );
    println!(
        "\nkitepush p99 {} ms vs FFmpeg {:.1} s behind live after {SECONDS} s",
        pct(&queue, 99),
        at(SECONDS as f64)
    );
}
