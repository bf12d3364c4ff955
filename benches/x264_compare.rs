//! kitepush against FFmpeg on the two paths FFmpeg is the natural reference for, both pushing to
//! the same nginx-rtmp in the same run, measured as child processes with `wait4` (user+system CPU,
//! peak RSS):
//!
//! 1. Encoding: the same raw 720p30 I420 clip through x264 with identical settings (preset veryfast,
//!    tune zerolatency, 2000 kbit/s ABR with VBV 2000/2000, keyint 60 without scene-cut IDRs,
//!    one thread): kitepush's x264 backend (`push_file --encoder x264`) against
//!    `ffmpeg -c:v libx264`. Both link the same system libx264. Targets: CPU ratio <= 0.95,
//!    peak RSS <= 0.5 x FFmpeg's.
//! 2. Pre-encoded: an existing H.264 stream (Annex-B file, 4 Mbit/s) pushed as is: kitepush's
//!    `push_h264` (`push_file --h264`) against `ffmpeg -f h264 -i clip.h264 -c copy -f flv`.
//!    Target: CPU per MB delivered <= 0.6 x FFmpeg's.
//!
//! Both push as fast as they can (no `-re`): CPU per unit of work is the figure, not wall time.
//! Runs are interleaved with a rotating order; medians are reported. Every recording is probed,
//! and a run whose recording lacks frames is marked FAIL (unequal work). Run it through
//! `scripts/bench` (builds `push_file` with the `x264` feature), or
//! `cargo build --release --features x264 --example push_file && cargo bench --features x264 --bench x264_compare -- [--quick] [--runs N] [--copy-only]`
//! (`--copy-only`: the pre-encoded pair alone).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{require_tool, tmp_dir, unique_key, Nginx, NginxOptions};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{example_binary, ffmpeg, measure, median, recorded};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
const RAW_FRAMES: u64 = 300;
const RUN_DEADLINE: Duration = Duration::from_secs(300);

const TARGET_CPU_RATIO: f64 = 0.95;
const TARGET_RSS_RATIO: f64 = 0.5;
const TARGET_CPU_PER_MB_RATIO: f64 = 0.6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    KitepushX264,
    FfmpegX264,
    KitepushCopy,
    FfmpegCopy,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::KitepushX264 => "kitepush x264",
            Who::FfmpegX264 => "ffmpeg libx264",
            Who::KitepushCopy => "kitepush push_h264",
            Who::FfmpegCopy => "ffmpeg -c copy",
        }
    }

    fn command(self, push_file: &Path, raw: &Path, h264: &Path, url: &str) -> Command {
        let size = format!("{WIDTH}x{HEIGHT}");
        let fps = FPS.to_string();
        match self {
            Who::KitepushX264 => {
                let mut c = Command::new(push_file);
                c.arg(url)
                    .arg("--raw")
                    .arg(raw)
                    .args(["--size", &size, "--fps", &fps, "--encoder", "x264"])
                    .args(["--preset", "veryfast", "--tune", "zerolatency"])
                    .args(["--bitrate", "2000", "--vbv", "2000:2000", "--keyint", "60", "--threads", "1"]);
                c
            }
            Who::FfmpegX264 => {
                let mut c = Command::new("ffmpeg");
                c.args(["-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p"])
                    .args(["-s", &size, "-r", &fps, "-i"])
                    .arg(raw)
                    .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"])
                    .args(["-b:v", "2000k", "-maxrate", "2000k", "-bufsize", "2000k"])
                    // kitepush's GOP: fixed, no scene-cut IDRs.
                    .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-threads", "1"])
                    .args(["-f", "flv", url]);
                c
            }
            Who::KitepushCopy => {
                let mut c = Command::new(push_file);
                c.arg(url).arg("--h264").arg(h264).args(["--fps", &fps]);
                c
            }
            Who::FfmpegCopy => {
                let mut c = Command::new("ffmpeg");
                c.args(["-nostdin", "-v", "error", "-f", "h264", "-framerate", &fps, "-i"])
                    .arg(h264)
                    .args(["-c", "copy", "-f", "flv", url]);
                c
            }
        }
    }
}

struct Run {
    who: Who,
    cpu_s: f64,
    rss_mb: f64,
    wall_s: f64,
    mb: f64,
    frames: u64,
    ok: bool,
    note: String,
}

fn main() {
    // Built and run by `cargo test --all-targets` without `--bench`: building is the check there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark not run: use `cargo bench` or scripts/bench");
        return;
    }
    let mut runs_each = 3usize;
    let mut quick = false;
    // The pre-encoded pair alone (e.g. to check the RTMP path after a change to it).
    let mut copy_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => (runs_each, quick) = (1, true),
            "--copy-only" => copy_only = true,
            "--runs" => {
                runs_each = args.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).expect("--runs needs a number")
            }
            _ => {}
        }
    }
    let push_file =
        example_binary("push_file", "KP_PUSH_FILE_BIN", "cargo build --release --features x264 --example push_file");
    require_tool("ffmpeg");
    require_tool("ffprobe");

    let dir = tmp_dir("x264-bench");
    let raw = dir.join("clip.yuv");
    let h264 = dir.join("clip.h264");
    let h264_secs: u64 = if quick { 20 } else { 60 };
    let h264_frames = h264_secs * FPS as u64;
    println!(
        "generating {RAW_FRAMES} frames of {WIDTH}x{HEIGHT}@{FPS} testsrc2 I420 and {h264_secs} s of 4 Mbit/s H.264"
    );
    let src = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}");
    ffmpeg(
        &["-f", "lavfi", "-i", &src, "-frames:v", &RAW_FRAMES.to_string(), "-f", "rawvideo", "-pix_fmt", "yuv420p"]
            .iter()
            .copied()
            .chain([raw.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    ffmpeg(
        &["-f", "lavfi", "-i", &src, "-frames:v", &h264_frames.to_string(), "-c:v", "libx264", "-preset", "ultrafast"]
            .iter()
            .copied()
            .chain(["-b:v", "4M", "-maxrate", "4M", "-bufsize", "4M", "-bf", "0", "-g", "60", "-pix_fmt", "yuv420p"])
            .chain(["-f", "h264", h264.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );

    let nginx = Nginx::start(NginxOptions::default());
    println!("nginx-rtmp on 127.0.0.1:{}; {runs_each} run(s) each, interleaved\n", nginx.port());
    let mut runs = Vec::new();
    for round in 0..runs_each {
        let pairs = [[Who::KitepushX264, Who::FfmpegX264], [Who::KitepushCopy, Who::FfmpegCopy]];
        for pair in pairs.into_iter().skip(usize::from(copy_only)) {
            for i in 0..2 {
                let who = pair[(i + round) % 2];
                let key = unique_key("x264-bench");
                let log = dir.join(format!("{key}.stderr"));
                let (cpu_s, wall_s, rss_mb, exit_ok, mut note) =
                    measure(who.command(&push_file, &raw, &h264, &nginx.url(&key)), &log, RUN_DEADLINE);
                let rec = recorded(&nginx, &key, FPS as f64);
                let want = if matches!(who, Who::KitepushX264 | Who::FfmpegX264) { RAW_FRAMES } else { h264_frames };
                if !rec.note.is_empty() {
                    note = format!("{note} {}", rec.note);
                }
                let ok = exit_ok && rec.frames == want;
                let mb = rec.bytes as f64 / 1e6;
                println!(
                    "round {} {:<19} cpu {:6.2} s  wall {:6.2} s  rss {:6.1} MB  frames {:4}/{want}  {:6.2} MB  {} {note}",
                    round + 1,
                    who.name(),
                    cpu_s,
                    wall_s,
                    rss_mb,
                    rec.frames,
                    mb,
                    if ok { "ok" } else { "FAIL" }
                );
                runs.push(Run { who, cpu_s, rss_mb, wall_s, mb, frames: rec.frames, ok, note });
            }
        }
    }
    drop(nginx);
    if std::env::var_os("KP_KEEP_TMP").is_none() {
        let _ = fs::remove_dir_all(&dir);
    }
    report(&runs, runs_each, h264_secs, copy_only);
}

struct Summary {
    cpu: f64,
    rss: f64,
    wall: f64,
    mb: f64,
    cpu_per_mb: f64,
    ok: bool,
}

fn summary(runs: &[Run], who: Who) -> Summary {
    let mine: Vec<&Run> = runs.iter().filter(|r| r.who == who).collect();
    let m = |f: fn(&Run) -> f64| median(mine.iter().map(|r| f(r)).collect());
    Summary {
        cpu: m(|r| r.cpu_s),
        rss: m(|r| r.rss_mb),
        wall: m(|r| r.wall_s),
        mb: m(|r| r.mb),
        cpu_per_mb: m(|r| r.cpu_s / r.mb),
        ok: mine.iter().all(|r| r.ok),
    }
}

fn report(runs: &[Run], runs_each: usize, h264_secs: u64, copy_only: bool) {
    let verdict = |valid: bool, met: bool| match (valid, met) {
        (false, _) => "UNDECIDED (a run failed: unequal work)",
        (true, true) => "met",
        (true, false) => "MISSED",
    };
    println!("\nmedians of {runs_each} run(s); MB = 10^6 bytes of recording");
    println!("{:<19} {:>8} {:>8} {:>12} {:>9} {:>10}", "", "CPU s", "wall s", "peak RSS MB", "MB sent", "CPU s/MB");
    let all = [Who::KitepushX264, Who::FfmpegX264, Who::KitepushCopy, Who::FfmpegCopy];
    for who in all.into_iter().skip(if copy_only { 2 } else { 0 }) {
        let s = summary(runs, who);
        println!(
            "{:<19} {:>8.3} {:>8.2} {:>12.1} {:>9.2} {:>10.4}  {}",
            who.name(),
            s.cpu,
            s.wall,
            s.rss,
            s.mb,
            s.cpu_per_mb,
            if s.ok { "ok" } else { "FAIL" }
        );
    }
    let (k, f) = (summary(runs, Who::KitepushX264), summary(runs, Who::FfmpegX264));
    let (kc, fc) = (summary(runs, Who::KitepushCopy), summary(runs, Who::FfmpegCopy));
    let valid = k.ok && f.ok;
    let valid_copy = kc.ok && fc.ok;
    if !copy_only {
        println!(
        "\nencode path ({RAW_FRAMES} frames {WIDTH}x{HEIGHT}@{FPS}, x264 veryfast/zerolatency, 2000 kbit/s, VBV 2000/2000, keyint 60, 1 thread):"
    );
        let cpu_ratio = k.cpu / f.cpu;
        let rss_ratio = k.rss / f.rss;
        println!(
            "  CPU kitepush / ffmpeg = {cpu_ratio:.3} (target <= {TARGET_CPU_RATIO}) -> {}",
            verdict(valid, cpu_ratio <= TARGET_CPU_RATIO)
        );
        println!(
            "  peak RSS kitepush / ffmpeg = {rss_ratio:.3} (target <= {TARGET_RSS_RATIO}) -> {}",
            verdict(valid, rss_ratio <= TARGET_RSS_RATIO)
        );
    }
    println!("\npre-encoded path ({h264_secs} s of 4 Mbit/s 720p H.264 from an Annex-B file, as fast as possible):");
    let per_mb = kc.cpu_per_mb / fc.cpu_per_mb;
    println!(
        "  CPU per MB kitepush / ffmpeg = {per_mb:.3} (target <= {TARGET_CPU_PER_MB_RATIO}) -> {}",
        verdict(valid_copy, per_mb <= TARGET_CPU_PER_MB_RATIO)
    );
    for r in runs.iter().filter(|r| !r.ok) {
        println!("  failed: {} frames {} {}", r.who.name(), r.frames, r.note);
    }
}
