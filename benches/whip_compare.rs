//! kitepush's WHIP output against FFmpeg 9's WHIP muxer, and glass-to-glass latency over WHIP, SRT
//! and RTMP side by side. The whole body runs in a network namespace that has only loopback (the
//! bench re-runs itself under `unshare -n`, as `common::whip::in_loopback_netns` does for tests), so
//! ICE never leaves 127.0.0.1.
//!
//! 1. CPU: one pre-encoded H.264 file (FFmpeg `testsrc2` 1280x720 30 fps, libx264 baseline, no
//!    B-frames, GOP 60, 2000 kbit/s, Annex B) and one pre-encoded Opus file of the same length
//!    (FFmpeg `sine` 440 Hz, libopus 48 kHz stereo 64 kbit/s, 20 ms packets, Ogg) pushed in real time
//!    to the aiortc endpoint (tests/peers/whip_endpoint.py) by kitepush (this bench binary re-run as
//!    a child in its pusher mode: a `Pusher` with the passthrough encoders, one access unit every
//!    1/30 s with `push_h264` and one Opus packet every 20 ms with `push_opus`; `examples/push_file`
//!    takes no WHIP URLs) and by `ffmpeg -re -i MKV -c copy -f whip URL` (the same packets muxed into
//!    one Matroska file), one after the other. Each pusher is a child process measured with `wait4`: CPU is user+system of
//!    the whole process, peak RSS its maximum resident set (kitepush's includes the file read into
//!    memory, ~5 MB). The kitepush child also prints its CPU and wake-ups by thread just before
//!    `stop` (from /proc/self/task), and both pushers' CPU over a window of the connected session
//!    (2 s after ICE connected, for the clip's length less 6 s) is read from /proc/PID/stat: the
//!    steady state, setup and teardown left out. Frames are those the endpoint decoded. Target: CPU kitepush /
//!    FFmpeg <= 0.8. FFmpeg's muxer only packetises, encrypts and sends (no congestion control, no
//!    NACK repair, no pacing); kitepush runs str0m's bandwidth estimation, pacer and RTX cache too.
//!    Then kitepush from raw frames (`examples/push` with the test pattern, openh264, 1280x720 real
//!    time): the endpoint reads the pattern's frame code in each decoded picture, latency p50/p95
//!    (targets <= 150 / 300 ms).
//! 2. 5 % loss: the same two file pushes through the UDP fault proxy (tests/common/udp_proxy.rs,
//!    loss in both directions, set once the session is connected): frames decoded out of those in
//!    the file. Target kitepush >= 98 %; FFmpeg's beside it.
//! 3. Latency side by side, `examples/push` with the pattern to each receiver: WHIP (the endpoint's
//!    figure), SRT (FFmpeg 9 as listener, TSBPD latency 120 ms) and RTMP (FFmpeg `-listen 1`). For
//!    SRT and RTMP the listener decodes (`-threads 1`, gray rawvideo, packets flushed) to a pipe read
//!    here; each picture's frame code is read with `kitepush::pattern::frame_code` and its latency is
//!    the wall clock when its last byte was read minus the code's. All three: drawn -> encoded ->
//!    sent -> received -> decoded, on one clock. The listeners probe little and drop what they
//!    probed (`-fflags nobuffer`), so they start decoding at the second IDR (frame 60): a startup
//!    backlog would otherwise be a queue they take seconds to drain. SRT's figure holds its TSBPD
//!    latency (120 ms), and FFmpeg's TS demuxer ends a video PES only when the next one begins.
//!
//! Run it through `scripts/bench`, or `cargo build --release --example push &&
//! cargo bench --bench whip_compare -- [--quick] [--runs N] [--no-cpu] [--no-loss] [--no-latency]`
//! (`--quick`: one run, 10 s clips).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::srt::{caller_url, ffmpeg9, free_udp_port, SrtOptions};
use common::udp_proxy::{UdpFaults, UdpProxy};
use common::whip::{WhipEndpoint, WhipOptions, WhipStats};
use common::{free_port, require_tool, tmp_dir, wait_until};
use kitepush::pattern::frame_code;
use kitepush::pusher::{
    AudioConfig, AudioEncoderKind, Pusher, PusherConfig, PusherState, VideoConfig, VideoEncoderKind,
};
use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{access_units, measure, measure_sampled, median, process_cpu_s};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
const BITRATE_KBPS: u32 = 2000;
const SRT_LATENCY_MS: u32 = 120;
const TARGET_CPU_RATIO: f64 = 0.8;
const TARGET_P50_MS: i64 = 150;
const TARGET_P95_MS: i64 = 300;
const TARGET_DELIVERED_PERCENT: f64 = 98.0;
const LOSS_PERCENT: f32 = 5.0;
/// How long past real time a push may take before the watchdog kills it.
const RUN_SLACK: Duration = Duration::from_secs(40);
/// How long after ICE connected the steady-state CPU window opens.
const STEADY_AFTER: Duration = Duration::from_secs(2);
/// How the pusher child's stderr line with its CPU by thread begins.
const THREADS_LINE: &str = "CPU by thread before stop (user+sys, voluntary context switches):";
/// The argument that makes this binary a kitepush pusher child: `--kp-push-h264 URL H264 OGG`.
const PUSHER_MODE: &str = "--kp-push-h264";
/// The Opus clip's packets: 20 ms, 48 kHz stereo.
const OPUS_PACKET_US: i64 = 20_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(PUSHER_MODE) {
        return match (args.get(1), args.get(2), args.get(3)) {
            (Some(url), Some(h264), Some(ogg)) => {
                push_files(url, &Clip { h264: h264.into(), ogg: ogg.into(), mkv: PathBuf::new() })
            }
            _ => {
                eprintln!("usage: {PUSHER_MODE} URL H264 OGG");
                ExitCode::from(2)
            }
        };
    }
    // Built and run by `cargo test --all-targets` without `--bench`: building is the check there.
    if !args.iter().any(|a| a == "--bench") {
        println!("benchmark not run: use `cargo bench` or scripts/bench");
        return ExitCode::SUCCESS;
    }
    if std::env::var("KP_NETNS").as_deref() != Ok("1") {
        return rerun_in_loopback_netns(&args);
    }
    let (mut runs_each, mut quick, mut cpu, mut loss, mut latency) = (3usize, false, true, true, true);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => (runs_each, quick) = (1, true),
            "--runs" => {
                runs_each = it.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).expect("--runs needs a number")
            }
            "--no-cpu" => cpu = false,
            "--no-loss" => loss = false,
            "--no-latency" => latency = false,
            _ => {}
        }
    }
    require_tool("ffmpeg");
    ffmpeg9();
    let push = push_example_binary();
    let secs: u64 = if quick { 10 } else { 20 };
    println!("load average before: {}", load_average());

    let dir = tmp_dir("whip-bench");
    let clip = Clip { h264: dir.join("clip.h264"), ogg: dir.join("clip.ogg"), mkv: dir.join("clip.mkv") };
    println!(
        "generating {secs} s of {BITRATE_KBPS} kbit/s {WIDTH}x{HEIGHT}@{FPS} H.264 (testsrc2, libx264 baseline, GOP 60, \
         no B-frames) and of Opus (sine 440 Hz, libopus 48 kHz stereo 64 kbit/s, 20 ms packets)"
    );
    make_clip(&clip, secs);

    let whip_latency = if cpu { cpu_compare(&dir, &clip, &push, secs, runs_each) } else { None };
    if loss {
        loss_compare(&dir, &clip, secs);
    }
    if latency {
        latency_side_by_side(&dir, &push, secs, whip_latency);
    }
    println!("\nload average after: {}", load_average());
    if std::env::var_os("KP_KEEP_TMP").is_none() {
        let _ = fs::remove_dir_all(&dir);
    } else {
        println!("KP_KEEP_TMP: keeping {}", dir.display());
    }
    ExitCode::SUCCESS
}

/// Re-runs this binary with the same arguments as `unshare -n -- sh -c 'ip link set lo up && exec
/// "$0" "$@"' EXE ARGS...` (`KP_NETNS=1`), its output going straight to ours.
fn rerun_in_loopback_netns(args: &[String]) -> ExitCode {
    let exe = std::env::current_exe().expect("current_exe");
    let status = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(&exe)
        .args(args)
        .env("KP_NETNS", "1")
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("spawn `unshare -n` (util-linux; needs root or user namespaces): {e}"));
    if status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("whip_compare failed inside the loopback-only namespace: {status}");
        ExitCode::FAILURE
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The pre-encoded media both pushers send: kitepush's child reads the two elementary files,
/// FFmpeg the same packets muxed into one Matroska file (with two `-re` inputs its muxer fell
/// behind real time and the endpoint dropped it for missed consent checks).
struct Clip {
    h264: PathBuf,
    ogg: PathBuf,
    mkv: PathBuf,
}

fn make_clip(clip: &Clip, secs: u64) {
    let src = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}");
    let frames = (secs * u64::from(FPS)).to_string();
    let rate = format!("{BITRATE_KBPS}k");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &src, "-frames:v", &frames])
        .args(["-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast", "-b:v", &rate, "-maxrate", &rate])
        .args(["-bufsize", &rate, "-bf", "0", "-g", "60", "-pix_fmt", "yuv420p", "-f", "h264"])
        .arg(&clip.h264)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg could not make the video clip");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string(), "-ac", "2", "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20"])
        .args(["-f", "ogg"])
        .arg(&clip.ogg)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg could not make the Opus clip");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "h264", "-framerate", &FPS.to_string(), "-i"])
        .arg(&clip.h264)
        .arg("-i")
        .arg(&clip.ogg)
        .args(["-map", "0:v", "-map", "1:a", "-c", "copy", "-f", "matroska"])
        .arg(&clip.mkv)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg could not mux the clip");
}

/// The packets of an Ogg stream in order (RFC 3533: each page's segment table laces them; a
/// segment of 255 bytes continues the packet, on the next page if it is the page's last), the
/// Opus header packets (OpusHead, OpusTags) left out. Hand-written for the bench: the one-stream
/// file FFmpeg wrote, no CRC check or seeking needed.
fn ogg_opus_packets(data: &[u8]) -> Vec<Vec<u8>> {
    let (mut packets, mut packet, mut i) = (Vec::new(), Vec::new(), 0usize);
    while i + 27 <= data.len() && &data[i..i + 4] == b"OggS" {
        let segments = usize::from(data[i + 26]);
        let Some(table) = data.get(i + 27..i + 27 + segments) else { break };
        let mut at = i + 27 + segments;
        for &len in table {
            let Some(segment) = data.get(at..at + usize::from(len)) else { break };
            packet.extend_from_slice(segment);
            at += usize::from(len);
            if len < 255 {
                packets.push(std::mem::take(&mut packet));
            }
        }
        i = at;
    }
    packets.retain(|p: &Vec<u8>| !p.starts_with(b"OpusHead") && !p.starts_with(b"OpusTags"));
    packets
}

fn push_example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe.parent().and_then(|d| d.parent()).and_then(|p| p.parent()).expect("target/<profile>/deps");
    let bin = target.join("release").join("examples").join("push");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build --release --example push` first (scripts/bench does)",
        bin.display()
    );
    bin
}

// ---------------------------------------------------------------------------------------------
// The two file pushers

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Kitepush,
    Ffmpeg,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Kitepush => "kitepush whip",
            Who::Ffmpeg => "ffmpeg9 -c copy whip",
        }
    }

    fn command(self, clip: &Clip, ep: &WhipEndpoint, name: &str) -> Command {
        match self {
            Who::Kitepush => {
                let mut c = Command::new(std::env::current_exe().expect("current_exe"));
                c.arg(PUSHER_MODE).arg(ep.url(name)).arg(&clip.h264).arg(&clip.ogg);
                c
            }
            Who::Ffmpeg => {
                let mut c = Command::new(ffmpeg9());
                c.args(["-nostdin", "-hide_banner", "-v", "error", "-re", "-i"]).arg(&clip.mkv).args([
                    "-c",
                    "copy",
                    "-f",
                    "whip",
                    &ep.http_url(name),
                ]);
                c
            }
        }
    }
}

struct Run {
    who: Who,
    cpu_s: f64,
    wall_s: f64,
    rss_mb: f64,
    frames: u64,
    /// Opus frames the endpoint decoded.
    audio: u64,
    decode_errors: u64,
    ok: bool,
    note: String,
    /// CPU ms per second of media over a window of the connected session (from 2 s after ICE
    /// connected to 4 s before the clip's end), read from /proc: each pusher's setup (process start,
    /// HTTP, ICE, DTLS, crypto library initialisation) and teardown left out.
    steady_ms_per_s: Option<f64>,
    /// kitepush's own account of where its CPU went (the child's last stderr line), else empty.
    threads: String,
}

/// The pusher child: the files' access units with `push_h264` and Opus packets with `push_opus`
/// at their real-time instants, once the session is publishing (FFmpeg's muxer too sends nothing
/// before its session is up).
fn push_files(url: &str, clip: &Clip) -> ExitCode {
    let data = fs::read(&clip.h264).expect("read the H.264 clip");
    let units = access_units(&data);
    let opus = ogg_opus_packets(&fs::read(&clip.ogg).expect("read the Opus clip"));
    let config = PusherConfig {
        url: url.to_string(),
        video: Some(VideoConfig {
            encoder: VideoEncoderKind::KP_ENCODER_PASSTHROUGH,
            width: WIDTH,
            height: HEIGHT,
            fps: FPS as f32,
            bitrate_kbps: BITRATE_KBPS,
            keyframe_interval: 60,
            ..VideoConfig::default()
        }),
        audio: Some(AudioConfig {
            encoder: AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS,
            sample_rate: 48000,
            channels: 2,
            ..AudioConfig::default()
        }),
        ..PusherConfig::default()
    };
    let pusher = Pusher::new(config, None).expect("pusher");
    pusher.start().expect("start");
    wait_until(Duration::from_secs(15), "PUBLISHING", || pusher.state() == PusherState::KP_STATE_PUBLISHING);
    let start = Instant::now();
    let (mut v, mut a) = (0usize, 0usize);
    // Video and audio interleaved by time, each unit at its instant.
    while v < units.len() || a < opus.len() {
        let video_pts = (v < units.len()).then(|| v as i64 * 1_000_000 / i64::from(FPS));
        let audio_pts = (a < opus.len()).then(|| a as i64 * OPUS_PACKET_US);
        let audio_next = match (video_pts, audio_pts) {
            (Some(vp), Some(ap)) => ap < vp,
            (None, _) => true,
            (_, None) => false,
        };
        let pts = if audio_next { audio_pts } else { video_pts }.unwrap_or(0);
        std::thread::sleep((start + Duration::from_micros(pts as u64)).saturating_duration_since(Instant::now()));
        let r = if audio_next {
            a += 1;
            pusher.push_opus(&opus[a - 1], pts)
        } else {
            v += 1;
            pusher.push_h264(units[v - 1], pts, -1)
        };
        if let Err(e) = r {
            eprintln!("{}: {e}", if audio_next { "push_opus" } else { "push_h264" });
            return ExitCode::FAILURE;
        }
    }
    // Where the CPU went, while the pusher's threads are still there to ask.
    let threads = thread_cpu();
    pusher.stop(Duration::from_secs(10)).expect("stop");
    let s = pusher.stats();
    eprintln!(
        "{} units, {} Opus packets; sent {} / {}, dropped {}",
        units.len(),
        opus.len(),
        s.video_frames_sent,
        s.audio_frames_sent,
        s.frames_dropped_network
    );
    eprintln!("{THREADS_LINE} {threads}");
    ExitCode::SUCCESS
}

/// `name=seconds` for each thread of this process (from /proc/self/task/*/stat, in clock ticks of
/// 1/100 s: Linux's USER_HZ everywhere it runs).
fn thread_cpu() -> String {
    let mut out = Vec::new();
    for task in fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else { continue };
        // The name is in parentheses and may hold spaces: the fields follow the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // utime and stime are fields 14 and 15; f[0] is field 3.
        let ticks: u64 =
            f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        // Voluntary context switches: how often the thread slept and was woken.
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let wakeups = status.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:")).map_or("?", str::trim);
        out.push(format!("{}={:.2}s/{wakeups}wakeups", &stat[open + 1..close], ticks as f64 / 100.0));
    }
    out.join(" ")
}

/// Waits until the newest session has closed (a DELETE, or consent lost) or its decoded frames
/// have not moved for 2 s, at most `timeout`, and returns the stats then.
fn settled(ep: &WhipEndpoint, timeout: Duration) -> WhipStats {
    let start = Instant::now();
    let (mut last, mut since) = (u64::MAX, Instant::now());
    loop {
        let s = ep.stats();
        let frames = s.video_frames();
        if s.sessions.last().is_some_and(|x| x.closed_by.is_some()) || start.elapsed() >= timeout {
            return s;
        }
        if frames != last {
            (last, since) = (frames, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(2) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn one_push(who: Who, dir: &Path, clip: &Clip, secs: u64, tag: &str, ep: &WhipEndpoint) -> Run {
    let log = dir.join(format!("{}-{tag}.stderr", if who == Who::Kitepush { "kitepush" } else { "ffmpeg" }));
    let deadline = Duration::from_secs(secs) + RUN_SLACK;
    let window = Duration::from_secs(window_s(secs));
    let sample = |pid: u32| {
        let up = Instant::now();
        while ep.stats().sessions.last().is_none_or(|s| s.connected_after_ms.is_none()) {
            if up.elapsed() > Duration::from_secs(15) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(STEADY_AFTER);
        let (c0, t0) = (process_cpu_s(pid)?, Instant::now());
        std::thread::sleep(window);
        let (c1, t1) = (process_cpu_s(pid)?, Instant::now());
        Some((c1 - c0) * 1000.0 / (t1 - t0).as_secs_f64())
    };
    let ((cpu_s, wall_s, rss_mb, exit_ok, mut note), steady_ms_per_s) =
        measure_sampled(who.command(clip, ep, tag), &log, deadline, sample);
    let stats = settled(ep, Duration::from_secs(15));
    let frames = stats.video_frames();
    let audio = stats.sessions.iter().map(|s| s.audio_frames).sum();
    if let Some(s) = stats.sessions.last() {
        note += &format!(" closed_by {:?}", s.closed_by);
    } else {
        note += " no session";
    }
    let threads = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(THREADS_LINE).map(str::trim).map(String::from))
        .unwrap_or_default();
    Run {
        who,
        cpu_s,
        wall_s,
        rss_mb,
        frames,
        audio,
        decode_errors: stats.decode_errors,
        ok: exit_ok,
        note,
        steady_ms_per_s,
        threads,
    }
}

/// Part 1; returns the WHIP latency (p50, p95, count) of the pattern push for part 3.
fn cpu_compare(dir: &Path, clip: &Clip, push: &Path, secs: u64, runs_each: usize) -> Option<(i64, i64, u64)> {
    let want = secs * u64::from(FPS);
    let want_audio = secs as i64 * 1_000_000 / OPUS_PACKET_US;
    let clip_mb = fs::metadata(&clip.h264).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "\n== WHIP push of the pre-encoded file ({clip_mb:.2} MB, {want} frames) in real time to the aiortc endpoint, \
         one after the other; {runs_each} run(s) each; CPU = user+sys of the whole pusher process"
    );
    let mut runs = Vec::new();
    for round in 0..runs_each {
        let order = if round % 2 == 0 { [Who::Kitepush, Who::Ffmpeg] } else { [Who::Ffmpeg, Who::Kitepush] };
        for who in order {
            let ep = WhipEndpoint::start(WhipOptions::default());
            let r = one_push(who, dir, clip, secs, &format!("cpu{round}"), &ep);
            println!(
                "round {} {:<22} cpu {:6.3} s  steady {} ms/s  wall {:6.2} s  rss {:6.1} MB  decoded {:4}/{want}  \
                 Opus {:4}/{want_audio}  decode errors {:3}  {} {}",
                round + 1,
                r.who.name(),
                r.cpu_s,
                r.steady_ms_per_s.map_or("-".into(), |v| format!("{v:5.2}")),
                r.wall_s,
                r.rss_mb,
                r.frames,
                r.audio,
                r.decode_errors,
                if r.ok { "ok" } else { "FAIL" },
                r.note.trim()
            );
            if !r.threads.is_empty() {
                println!("        by thread: {}", r.threads);
            }
            runs.push(r);
        }
    }
    println!("\nmedians of {runs_each} run(s)");
    println!(
        "{:<22} {:>8} {:>14} {:>8} {:>12} {:>9} {:>6}",
        "", "CPU s", "steady ms/s", "wall s", "peak RSS MB", "decoded", "Opus"
    );
    let summary = |who: Who| {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.who == who).collect();
        let m = |f: fn(&Run) -> f64| median(mine.iter().map(|r| f(r)).collect());
        let steady = median(mine.iter().filter_map(|r| r.steady_ms_per_s).collect());
        let all_ok = mine.iter().all(|r| r.ok);
        (
            m(|r| r.cpu_s),
            m(|r| r.wall_s),
            m(|r| r.rss_mb),
            m(|r| r.frames as f64),
            all_ok,
            steady,
            m(|r| r.audio as f64),
        )
    };
    for who in [Who::Kitepush, Who::Ffmpeg] {
        let (cpu, wall, rss, frames, ok, steady, audio) = summary(who);
        println!(
            "{:<22} {:>8.3} {:>14.2} {:>8.2} {:>12.1} {:>9.0} {:>6.0}  {}",
            who.name(),
            cpu,
            steady,
            wall,
            rss,
            frames,
            audio,
            if ok { "ok" } else { "FAIL" }
        );
    }
    let (k, f) = (summary(Who::Kitepush), summary(Who::Ffmpeg));
    let ratio = k.0 / f.0;
    let verdict = match (k.4 && f.4, ratio <= TARGET_CPU_RATIO) {
        (false, _) => "UNDECIDED (a run failed)",
        (true, true) => "met",
        (true, false) => "MISSED",
    };
    println!("  CPU kitepush / ffmpeg = {ratio:.3} (target <= {TARGET_CPU_RATIO}) -> {verdict}");
    println!(
        "  steady-state CPU (a {}-s window of the connected session) kitepush / ffmpeg = {:.3} (beside the target; \
         setup and teardown left out)",
        window_s(secs),
        k.5 / f.5
    );
    println!("  peak RSS kitepush / ffmpeg = {:.3}", k.2 / f.2);
    println!(
        "  decoded kitepush {:.0} / ffmpeg {:.0} of {want}; Opus {:.0} / {:.0} of {want_audio}",
        k.3, f.3, k.6, f.6
    );

    // kitepush from raw frames with the test pattern: the endpoint's latency.
    println!("\n== kitepush from raw frames (examples/push, pattern, openh264, {WIDTH}x{HEIGHT}@{FPS}, real time) to the endpoint");
    let ep = WhipEndpoint::start(WhipOptions::default());
    let log = dir.join("kitepush-pattern.stderr");
    let (cpu_s, wall_s, rss_mb, ok, note) =
        measure(pattern_push(push, &ep.url("pattern"), secs), &log, Duration::from_secs(secs) + RUN_SLACK);
    let stats = settled(&ep, Duration::from_secs(15));
    let Some(s) = stats.sessions.last() else {
        println!("  FAIL: no session ({note})");
        return None;
    };
    println!(
        "  cpu {cpu_s:.3} s (encode included)  wall {wall_s:.2} s  rss {rss_mb:.1} MB  decoded {}/{want}  codes read {} \
         (missing {}, unreadable {})  {}",
        s.video_frames,
        s.codes.read,
        s.codes.missing,
        s.codes.unreadable,
        if ok { "ok".to_string() } else { format!("FAIL {note}") }
    );
    let (Some(p50), Some(p95)) = (s.latency.p50, s.latency.p95) else {
        println!("  no latency: no frame code was read");
        return None;
    };
    println!(
        "  latency p50 {p50} ms (target <= {TARGET_P50_MS}) -> {}, p95 {p95} ms (target <= {TARGET_P95_MS}) -> {}, max {:?} ms",
        if p50 <= TARGET_P50_MS { "met" } else { "MISSED" },
        if p95 <= TARGET_P95_MS { "met" } else { "MISSED" },
        s.latency.max
    );
    Some((p50, p95, s.latency.count))
}

/// The steady-state window: from `STEADY_AFTER` past ICE connected to ~4 s before the end.
fn window_s(secs: u64) -> u64 {
    secs.saturating_sub(6).max(2)
}

fn pattern_push(push: &Path, url: &str, secs: u64) -> Command {
    let mut c = Command::new(push);
    c.arg(url)
        .args(["--size", &format!("{WIDTH}x{HEIGHT}"), "--fps", &FPS.to_string()])
        .args(["--bitrate", &BITRATE_KBPS.to_string(), "--keyint", "60", "--duration", &secs.to_string()])
        .args(["--no-audio", "--realtime", "--quiet"]);
    c
}

// ---------------------------------------------------------------------------------------------
// 5 % loss

/// An endpoint whose media goes through a UDP fault proxy (as `behind_proxy` in tests/whip.rs): the
/// answer names the proxy, the offer's candidates are read as the proxy's other side, and a thread
/// points the proxy at the session's real candidate, then sets the loss once it has connected.
fn behind_lossy_proxy<R>(test: impl FnOnce(&WhipEndpoint) -> R) -> (R, u64) {
    let proxy = UdpProxy::start("127.0.0.1:9".parse().unwrap());
    let ep = WhipEndpoint::start(WhipOptions {
        media_via: Some(proxy.addr()),
        offer_via: Some(proxy.upstream_side_addr()),
        ..WhipOptions::default()
    });
    let done = AtomicBool::new(false);
    let r = std::thread::scope(|scope| {
        scope.spawn(|| {
            let (mut current, mut lossy) = (None, false);
            while !done.load(Ordering::SeqCst) {
                let stats = ep.stats();
                if let Some(s) = stats.sessions.last() {
                    if let Some(c) = s.local_candidates.first().filter(|c| current.as_ref() != Some(*c)) {
                        let addr: SocketAddr = c.trim_end_matches("/udp").parse().expect("candidate address");
                        proxy.set_upstream(addr);
                        current = Some(c.clone());
                    }
                    if !lossy && s.connected_after_ms.is_some() {
                        proxy.set(UdpFaults::PASS.with_loss(LOSS_PERCENT));
                        lossy = true;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _done = Done(&done);
        test(&ep)
    });
    (r, proxy.c2s().dropped)
}

fn loss_compare(dir: &Path, clip: &Clip, secs: u64) {
    let want = secs * u64::from(FPS);
    println!(
        "\n== {LOSS_PERCENT} % loss both ways (UDP fault proxy), the same file in real time; frames decoded of {want}"
    );
    for who in [Who::Kitepush, Who::Ffmpeg] {
        let (r, dropped) = behind_lossy_proxy(|ep| one_push(who, dir, clip, secs, "loss", ep));
        let pct = r.frames as f64 * 100.0 / want as f64;
        let verdict = match who {
            Who::Kitepush if pct >= TARGET_DELIVERED_PERCENT => {
                format!("(target >= {TARGET_DELIVERED_PERCENT} %) -> met")
            }
            Who::Kitepush => format!("(target >= {TARGET_DELIVERED_PERCENT} %) -> MISSED"),
            Who::Ffmpeg => String::new(),
        };
        println!(
            "  {:<22} decoded {:4}/{want} = {pct:5.1} % {verdict}  Opus {}  decode errors {}  proxy dropped {dropped} \
             datagrams publisher->endpoint  cpu {:.3} s  {} {}",
            r.who.name(),
            r.frames,
            r.audio,
            r.decode_errors,
            r.cpu_s,
            if r.ok { "ok" } else { "FAIL" },
            r.note.trim()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Latency side by side

fn latency_side_by_side(dir: &Path, push: &Path, secs: u64, whip: Option<(i64, i64, u64)>) {
    println!(
        "\n== glass-to-glass latency on loopback, examples/push with the pattern ({WIDTH}x{HEIGHT}@{FPS}, \
         {BITRATE_KBPS} kbit/s, openh264), drawn -> decoded by the receiver"
    );
    println!("{:<6} {:>7} {:>8} {:>8} {:>8}  receiver", "", "frames", "p50 ms", "p95 ms", "max ms");
    match whip {
        Some((p50, p95, n)) => {
            println!("{:<6} {n:>7} {p50:>8} {p95:>8} {:>8}  aiortc endpoint (PyAV decode)", "WHIP", "-")
        }
        None => println!("WHIP   no figure (see above)"),
    }
    // SRT: FFmpeg 9 listening and decoding.
    let port = free_udp_port();
    let mut listener = Command::new(ffmpeg9());
    listener
        .args(["-nostdin", "-hide_banner", "-v", "error"])
        .args(LOW_DELAY_INPUT)
        .arg("-i")
        .arg(format!("srt://127.0.0.1:{port}?mode=listener&latency={}", SRT_LATENCY_MS * 1000));
    let url = caller_url(port, &SrtOptions::latency_ms(SRT_LATENCY_MS), None);
    let srt = decoded_latency(listener, || bound(port, "udp"), push, &url, secs, &dir.join("srt-listener.stderr"));
    report("SRT", &srt, &format!("FFmpeg 9 listener, TSBPD {SRT_LATENCY_MS} ms"));

    // RTMP: FFmpeg (Debian's) listening and decoding.
    let port = free_port();
    let mut listener = Command::new("ffmpeg");
    listener
        .args(["-nostdin", "-hide_banner", "-v", "error", "-listen", "1"])
        .args(LOW_DELAY_INPUT)
        .arg("-i")
        .arg(format!("rtmp://127.0.0.1:{port}/live/latency"));
    let url = format!("rtmp://127.0.0.1:{port}/live/latency");
    // Not `port_open`: FFmpeg's -listen takes one connection, and a probe would be it.
    let rtmp = decoded_latency(listener, || bound(port, "tcp"), push, &url, secs, &dir.join("rtmp-listener.stderr"));
    report("RTMP", &rtmp, "ffmpeg -listen 1");
}

/// Whether a socket of `proto` ("tcp": listening, "udp": bound) has 127.0.0.1:`port`, from
/// /proc/net: asked without connecting to it.
fn bound(port: u16, proto: &str) -> bool {
    let table = fs::read_to_string(format!("/proc/net/{proto}")).unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&local.as_str()) && (proto != "tcp" || f.get(3) == Some(&"0A"))
    })
}

/// The listeners' input options: no probing backlog (it would be a decode queue the receiver
/// catches up on for seconds), no input buffering, one decoder thread (frame threads hold pictures
/// back), low-delay decoding.
const LOW_DELAY_INPUT: [&str; 10] =
    ["-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32768", "-analyzeduration", "0", "-threads", "1"];

/// What a listener decoded: (frame number, latency ms) of each picture whose code was readable.
struct Decoded {
    lat: Vec<(u16, i64)>,
    unreadable: u64,
}

fn report(name: &str, decoded: &Result<Decoded, String>, receiver: &str) {
    match decoded {
        Ok(d) if !d.lat.is_empty() => {
            let mut s: Vec<i64> = d.lat.iter().map(|&(_, ms)| ms).collect();
            s.sort_unstable();
            let pct = |p: f64| s[((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1];
            println!(
                "{name:<6} {:>7} {:>8} {:>8} {:>8}  {receiver}; first code read: frame {}, unreadable {}",
                s.len(),
                pct(0.50),
                pct(0.95),
                s[s.len() - 1],
                d.lat[0].0,
                d.unreadable
            );
        }
        Ok(_) => println!("{name:<6} FAIL: no frame code read ({receiver})"),
        Err(e) => println!("{name:<6} FAIL: {e} ({receiver})"),
    }
}

fn unix_ms() -> u32 {
    // Truncation is the frame code's layout: the low 32 bits of the ms.
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u32).unwrap_or(0)
}

/// Starts `listener` (an FFmpeg input command) decoding to gray rawvideo on a pipe, pushes the
/// pattern to `url` with examples/push once `ready` holds, and returns the latency of each decoded
/// picture whose frame code was readable.
fn decoded_latency(
    mut listener: Command,
    ready: impl Fn() -> bool,
    push: &Path,
    url: &str,
    secs: u64,
    log: &Path,
) -> Result<Decoded, String> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    listener
        .args(["-an", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-flush_packets", "1", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(log).map_err(|e| e.to_string())?);
    let mut child = listener.spawn().map_err(|e| format!("spawn listener: {e}"))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut frame = vec![0u8; w * h];
        let (mut lat, mut unreadable) = (Vec::new(), 0u64);
        while out.read_exact(&mut frame).is_ok() {
            let now = unix_ms();
            match frame_code::read_frame_code(&frame, w, w, h) {
                Some((n, ms)) => lat.push((n, i64::from(now.wrapping_sub(ms) as i32))),
                None => unreadable += 1,
            }
        }
        Decoded { lat, unreadable }
    });
    let up = Instant::now();
    while !ready() && up.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // A UDP listener cannot be probed: the pusher's reconnects cover a listener not yet bound.
    let (_, _, _, ok, note) = measure(
        pattern_push(push, url, secs),
        &log.with_extension("push.stderr"),
        Duration::from_secs(secs) + RUN_SLACK,
    );
    // The listener ends when its input does; bounded, in case it does not notice.
    let end = Instant::now();
    while child.try_wait().ok().flatten().is_none() && end.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let decoded = reader.join().map_err(|_| "reader panicked".to_string())?;
    if std::env::var_os("KP_KEEP_TMP").is_some() {
        let text: String = decoded.lat.iter().map(|(n, ms)| format!("{n} {ms}\n")).collect();
        let _ = fs::write(log.with_extension("latency.txt"), text);
    }
    if !ok {
        return Err(format!("push failed: {note}; {} codes read", decoded.lat.len()));
    }
    Ok(decoded)
}
