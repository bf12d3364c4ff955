//! The encode ladder on an emulated low-end CPU (tests/common/cpu_limit.rs: a cgroup v1 `cpu`
//! group, 20 ms period), at 5, 10 and 20 % of one core: 720p30 pushed in real time to nginx-rtmp.
//!
//! kitepush (its moving test pattern and a 440 Hz tone, OpenH264, the encode ladder on; only its
//! encode thread is limited, as the camera and the app are not the encoder's): the rung it settles
//! on, when, and the frames it sends per second over the last 20 s against that rung's rate.
//! FFmpeg (testsrc2 and a sine, libx264 veryfast/zerolatency at the same bitrate and GOP, `-re`,
//! one thread, no ladder; the whole process limited, its source included): frames delivered per
//! second of wall time, and how far its stream fell behind live (it never drops: it lags).
//!
//! `cargo bench --bench ladder_compare [-- --quick]` (scripts/bench runs it); needs root for the
//! cgroup, and skips with a message otherwise.

#[path = "../tests/common/mod.rs"]
mod common;

use common::cpu_limit::{thread_id, CpuLimit};
use common::pushing::{RealTimeSource, Spec};
use common::{require_tool, unique_key, Nginx, NginxOptions};
use kitepush::pusher::{EventKind, LadderSettings, Pusher};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const KBPS: u32 = 2500;

struct Kitepush {
    rung: String,
    settled_at: f64,
    changes: usize,
    sent_fps: f64,
    rung_fps: f32,
    drops: u64,
}

fn kitepush(nginx: &Nginx, percent: u32, seconds: f64) -> Option<Kitepush> {
    let limit = CpuLimit::new(&format!("bench-kp-{percent}"))?;
    limit.set(Some(percent));
    let spec = Spec { width: 1280, height: 720, fps: 30.0, seconds, audio: true, bitrate_kbps: KBPS };
    let mut config = spec.config(&nginx.url(&unique_key("bench-ladder")));
    config.ladder = LadderSettings { enabled: true, ..LadderSettings::default() };
    let (tx, rx) = mpsc::channel();
    let pusher = Pusher::new(config, Some(Box::new(move |e: &kitepush::pusher::Event| drop(tx.send(e.clone())))))
        .expect("Pusher::new");
    pusher.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(5);
    let tid = loop {
        if let Some(t) = thread_id("kp-encode") {
            break t;
        }
        assert!(Instant::now() < deadline, "no encode thread");
        std::thread::sleep(Duration::from_millis(10));
    };
    limit.add_thread(tid);
    let pusher = Arc::new(pusher);
    let t0 = Instant::now();
    let source = RealTimeSource::start(pusher.clone(), spec);
    let mut at_window = None;
    while t0.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(250));
        if at_window.is_none() && t0.elapsed().as_secs_f64() >= seconds - 20.0 {
            at_window = Some((Instant::now(), pusher.stats()));
        }
    }
    let end = pusher.stats();
    let (w0, s0) = at_window.expect("a window");
    let sent_fps = (end.video_frames_sent - s0.video_frames_sent) as f64 / w0.elapsed().as_secs_f64();
    source.finish();
    pusher.stop(Duration::from_secs(5)).ok();
    let changes: Vec<_> = rx.try_iter().filter(|e| e.kind == EventKind::KP_EVENT_ENCODE_RUNG_CHANGED).collect();
    // Event times count from the pusher's creation, a moment before the push began.
    let settled_at = changes.last().map_or(0.0, |e| e.timestamp_ms as f64 / 1000.0);
    Some(Kitepush {
        rung: format!("{}: {}x{}@{}", end.encode_rung, end.encode_width, end.encode_height, end.encode_fps),
        settled_at,
        changes: changes.len(),
        sent_fps,
        rung_fps: end.encode_fps,
        drops: end.video_frames_dropped_encoder - s0.video_frames_dropped_encoder,
    })
}

/// (frames per wall second, seconds behind live at the end)
fn ffmpeg(nginx: &Nginx, percent: u32, seconds: f64) -> Option<(f64, f64)> {
    let limit = CpuLimit::new(&format!("bench-ff-{percent}"))?;
    limit.set(Some(percent));
    let key = unique_key("bench-ladder-ff");
    let (kbps, gop) = (format!("{KBPS}k"), "60");
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-threads", "1"])
        .args(["-b:v", &kbps, "-maxrate", &kbps, "-bufsize", &kbps, "-g", gop, "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "flv", &nginx.url(&key)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    limit.add_process(child.id());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let wall = t0.elapsed().as_secs_f64();
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let _ = child.wait();
    drop(limit);
    let file = nginx.recording(&key);
    nginx.wait_recording_closed(&file, Duration::from_secs(20));
    let times = common::video_packet_times(&file);
    let last = times.iter().map(|t| t.0).fold(0.0, f64::max);
    Some((times.len() as f64 / wall, wall - last))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark not run: use `cargo bench` or scripts/bench");
        return;
    }
    for tool in ["ffmpeg", "ffprobe", "nginx"] {
        require_tool(tool);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 30.0 } else { 45.0 };
    let nginx = Nginx::start(NginxOptions::default());
    println!("encode ladder: 720p30 in real time for {seconds} s, the encoder held to a share of one core");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    for percent in [5, 10, 20] {
        let Some(k) = kitepush(&nginx, percent, seconds) else {
            println!("skipped: the cgroup v1 cpu controller is not writable (run as root)");
            return;
        };
        let f = ffmpeg(&nginx, percent, seconds);
        println!(
            "{percent:>3} % of a core: kitepush ladder rung {} after {:.1} s ({} changes), sent {:.1} fps over the \
             last 20 s ({:.0} % of the rung), {} input drops | FFmpeg libx264 veryfast, no ladder: {}",
            k.rung,
            k.settled_at,
            k.changes,
            k.sent_fps,
            100.0 * k.sent_fps / f64::from(k.rung_fps.max(0.1)),
            k.drops,
            f.map_or("not run".into(), |(fps, behind)| format!(
                "{fps:.1} frames per second of wall time, {behind:.1} s behind live at the end"
            )),
        );
    }
}
