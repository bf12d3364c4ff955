//! Side-by-side push benchmark: the same raw 720p30 clip pushed to a real nginx-rtmp as fast as
//! possible by kitepush (the `push` example, reading each frame straight into a picture the pusher
//! lends; and with `--copy`, into its own buffer that `push_video` copies, as a camera app's frames
//! go), GStreamer (openh264enc ! flvmux ! rtmp2sink, reading the file into its buffers) and FFmpeg
//! (libx264), each measured as a child process with `wait4` (user+system CPU, peak RSS) and
//! a wall clock.
//!
//! Run it through `scripts/bench` (installs what is missing, builds the `push` example, then runs
//! `cargo bench --bench push_compare -- [--quick] [--runs N]`). Runs are interleaved, in an order
//! that rotates each round, and the median of each figure is reported. As CONVENTIONS.md asks, the
//! headline figures are ratios against the GStreamer baseline measured in the same run; FFmpeg is a
//! second reference. Every run's nginx recording is probed: a contestant whose recording does not
//! hold all the frames is marked FAIL, because a benchmark comparing unequal work means nothing.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{require_tool, tmp_dir, unique_key, Nginx, NginxOptions};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{example_binary, measure, median, recorded};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
const FRAMES: u64 = 300;
const BITRATE_KBPS: u32 = 2000;
const KEYINT: u32 = 60;
/// A contestant still running after this long is killed and reported as failed.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// Targets from the issue (17, "Leaner").
const TARGET_CPU_RATIO_VS_GST: f64 = 0.9;
const TARGET_KITEPUSH_RSS_MB: f64 = 16.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    /// The example reading each frame straight into a picture the pusher lends (video slots).
    Kitepush,
    /// The same reading into its own buffer and pushing that (`push_video` copies it), as a
    /// camera app's frames go: beside the headline, for what the copy costs.
    KitepushCopy,
    Gstreamer,
    Ffmpeg,
}

const ALL: [Who; 4] = [Who::Kitepush, Who::KitepushCopy, Who::Gstreamer, Who::Ffmpeg];

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Kitepush => "kitepush",
            Who::KitepushCopy => "kitepush --copy",
            Who::Gstreamer => "gstreamer",
            Who::Ffmpeg => "ffmpeg",
        }
    }

    /// What each side is configured with, printed with the results so nobody has to guess.
    fn settings(self) -> &'static str {
        match self {
            Who::KitepushCopy => "as kitepush; frames read into the app's buffer and copied by push_video",
            Who::Kitepush => {
                "OpenH264 bundled by openh264-sys2 0.9 (2.7.0 when written; built from source, nasm \
                 asm with the AVX2 kernels, see .cargo/config.toml), set in src/encode/openh264.rs: \
                 camera usage, complexity medium, RC bitrate, frame skip off, scene-change detection \
                 off, adaptive quant on, background detection on, denoise off, 1 thread, 1 slice"
            }
            Who::Gstreamer => {
                "the system libopenh264 (Debian 12: 2.3.1) via openh264enc: usage-type=camera \
                 complexity=medium rate-control=bitrate enable-frame-skip=false \
                 scene-change-detection=false adaptive-quantization=true background-detection=true \
                 enable-denoise=false multi-thread=1 slice-mode=n-slices num-slices=1; rawvideoparse, \
                 h264parse, flvmux streamable=true, rtmp2sink sync=false"
            }
            Who::Ffmpeg => {
                "libx264 -preset veryfast -tune zerolatency -b:v 2M -g 60 -threads 1 \
                 (a different encoder: reference only)"
            }
        }
    }

    fn command(self, push_bin: &Path, clip: &Path, url: &str) -> Command {
        let size = format!("{WIDTH}x{HEIGHT}");
        match self {
            Who::Kitepush | Who::KitepushCopy => {
                let mut c = Command::new(push_bin);
                if self == Who::KitepushCopy {
                    c.arg("--copy");
                }
                c.arg(url)
                    .arg("--input")
                    .arg(clip)
                    .args(["--size", &size, "--fps", &FPS.to_string()])
                    .args(["--bitrate", &BITRATE_KBPS.to_string()])
                    .args(["--keyint", &KEYINT.to_string()])
                    .args(["--no-audio", "--quiet"])
                    .args(["--duration", &(FRAMES / FPS as u64).to_string()]);
                c
            }
            Who::Gstreamer => {
                let mut c = Command::new("gst-launch-1.0");
                c.arg("-q")
                    .arg("filesrc")
                    .arg(format!("location={}", clip.display()))
                    .arg("!")
                    .arg("rawvideoparse")
                    .arg(format!("width={WIDTH}"))
                    .arg(format!("height={HEIGHT}"))
                    .arg("format=i420")
                    .arg(format!("framerate={FPS}/1"))
                    .arg("!")
                    .arg("openh264enc")
                    .arg(format!("bitrate={}", BITRATE_KBPS * 1000))
                    .arg(format!("gop-size={KEYINT}"))
                    .args(["rate-control=bitrate", "usage-type=camera", "complexity=medium"])
                    .args(["enable-frame-skip=false", "scene-change-detection=false"])
                    .args(["adaptive-quantization=true", "background-detection=true"])
                    .args(["enable-denoise=false", "multi-thread=1"])
                    .args(["slice-mode=n-slices", "num-slices=1"])
                    .args(["!", "h264parse", "!", "flvmux", "streamable=true", "!"])
                    .arg("rtmp2sink")
                    .arg(format!("location={url}"))
                    .arg("sync=false");
                c
            }
            Who::Ffmpeg => {
                let mut c = Command::new("ffmpeg");
                c.args(["-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p"])
                    .args(["-s", &size, "-r", &FPS.to_string(), "-i"])
                    .arg(clip)
                    .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"])
                    .args(["-b:v", "2M", "-g", &KEYINT.to_string(), "-threads", "1"])
                    .args(["-f", "flv", url]);
                c
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Run {
    who: Who,
    cpu_s: f64,
    wall_s: f64,
    rss_mb: f64,
    exit_ok: bool,
    frames: u64,
    /// Bit rate of the recording (file size over the frames' duration), to see that the encoders did
    /// comparable work.
    kbps: f64,
    note: String,
}

struct Summary {
    cpu: f64,
    wall: f64,
    rss: f64,
    kbps: f64,
    frames_min: u64,
    all_ok: bool,
}

fn summarize(runs: &[Run], who: Who) -> Summary {
    let mine: Vec<&Run> = runs.iter().filter(|r| r.who == who).collect();
    Summary {
        cpu: median(mine.iter().map(|r| r.cpu_s).collect()),
        wall: median(mine.iter().map(|r| r.wall_s).collect()),
        rss: median(mine.iter().map(|r| r.rss_mb).collect()),
        kbps: median(mine.iter().map(|r| r.kbps).collect()),
        frames_min: mine.iter().map(|r| r.frames).min().unwrap_or(0),
        all_ok: mine.iter().all(|r| r.exit_ok && r.frames == FRAMES),
    }
}

fn main() {
    // `cargo test --all-targets` builds and runs bench targets too, without `--bench`: building
    // them is the check there; measuring is `cargo bench`'s (scripts/bench) job.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark not run: use `cargo bench` or scripts/bench");
        return;
    }
    // `cargo bench` passes `--bench`; ours are `--quick` (one run each) and `--runs N`.
    let mut runs_each = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => runs_each = 1,
            "--runs" => {
                runs_each =
                    args.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).expect("--runs needs a positive number")
            }
            _ => {}
        }
    }

    let push_bin = example_binary("push", "KP_PUSH_BIN", "cargo build --release --example push");
    for tool in ["ffmpeg", "ffprobe", "gst-launch-1.0", "gst-inspect-1.0"] {
        require_tool(tool);
    }
    let gst_ok = Command::new("gst-inspect-1.0")
        .arg("openh264enc")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(gst_ok, "GStreamer element openh264enc missing (Debian: gstreamer1.0-plugins-bad)");

    let dir = tmp_dir("bench");
    let clip = dir.join("clip.yuv");
    println!("generating {FRAMES} frames of {WIDTH}x{HEIGHT}@{FPS} testsrc2 I420 in {}", dir.display());
    let gen = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}"))
        .args(["-frames:v", &FRAMES.to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("run ffmpeg");
    assert!(gen.success(), "ffmpeg could not generate the clip");

    let nginx = Nginx::start(NginxOptions::default());
    println!(
        "nginx-rtmp on 127.0.0.1:{}; {runs_each} run(s) each, interleaved, order rotating per round\n",
        nginx.port()
    );

    let mut runs = Vec::new();
    for round in 0..runs_each {
        for i in 0..ALL.len() {
            let who = ALL[(i + round) % ALL.len()];
            let key = unique_key(who.name());
            let cmd = who.command(&push_bin, &clip, &nginx.url(&key));
            let log = dir.join(format!("{key}.stderr"));
            let (cpu_s, wall_s, rss_mb, exit_ok, mut note) = measure(cmd, &log, RUN_DEADLINE);
            let rec = recorded(&nginx, &key, FPS as f64);
            let (frames, kbps, rec_note) = (rec.frames, rec.kbps, rec.note);
            if !rec_note.is_empty() {
                note = if note.is_empty() { rec_note } else { format!("{note}; {rec_note}") };
            }
            let status =
                if exit_ok && frames == FRAMES { "ok".to_string() } else { format!("FAIL ({frames}/{FRAMES} frames)") };
            println!(
                "round {} {:<10} cpu {:6.2} s  wall {:6.2} s  rss {:6.1} MB  frames {:3}  {:5.0} kbit/s  {status} {note}",
                round + 1,
                who.name(),
                cpu_s,
                wall_s,
                rss_mb,
                frames,
                kbps
            );
            runs.push(Run { who, cpu_s, wall_s, rss_mb, exit_ok, frames, kbps, note });
        }
    }
    drop(nginx);
    if std::env::var_os("KP_KEEP_TMP").is_none() {
        let _ = fs::remove_dir_all(&dir);
    }

    report(&runs, runs_each);
}

fn report(runs: &[Run], runs_each: usize) {
    let k = summarize(runs, Who::Kitepush);
    let kc = summarize(runs, Who::KitepushCopy);
    let g = summarize(runs, Who::Gstreamer);
    let f = summarize(runs, Who::Ffmpeg);

    println!(
        "\n{FRAMES} frames {WIDTH}x{HEIGHT}@{FPS}, {BITRATE_KBPS} kbit/s, IDR every {KEYINT}, one encoder thread, \
         as fast as possible; median of {runs_each} run(s); MB = 10^6 bytes"
    );
    println!(
        "{:<16} {:>8} {:>8} {:>13} {:>10} {:>12}  status",
        "", "CPU s", "wall s", "peak RSS MB", "frames", "rec kbit/s"
    );
    for (who, s) in [(Who::Kitepush, &k), (Who::KitepushCopy, &kc), (Who::Gstreamer, &g), (Who::Ffmpeg, &f)] {
        let status = if s.all_ok {
            "ok".to_string()
        } else {
            format!("FAIL (worst run {}/{FRAMES} frames or bad exit)", s.frames_min)
        };
        println!(
            "{:<16} {:>8.2} {:>8.2} {:>13.1} {:>10} {:>12.0}  {status}",
            who.name(),
            s.cpu,
            s.wall,
            s.rss,
            format!("{}/{FRAMES}", s.frames_min),
            s.kbps
        );
    }

    println!("\nratios (lower is better for kitepush):");
    println!("{:<22} {:>8} {:>8} {:>8}", "", "CPU", "wall", "RSS");
    println!("{:<22} {:>8.2} {:>8.2} {:>8.2}", "kitepush / gstreamer", k.cpu / g.cpu, k.wall / g.wall, k.rss / g.rss);
    println!(
        "{:<22} {:>8.2} {:>8.2} {:>8.2}   (frames copied by push_video, as a camera app's are)",
        "kitepush --copy / gst",
        kc.cpu / g.cpu,
        kc.wall / g.wall,
        kc.rss / g.rss
    );
    println!(
        "{:<22} {:>8.2} {:>8.2} {:>8.2}   (reference: x264 is a different encoder)",
        "kitepush / ffmpeg",
        k.cpu / f.cpu,
        k.wall / f.wall,
        k.rss / f.rss
    );

    let valid = k.all_ok && g.all_ok;
    let verdict = |met: bool| {
        if !valid {
            "UNDECIDED (a contestant failed: unequal work)"
        } else if met {
            "met"
        } else {
            "MISSED"
        }
    };
    let cpu_ratio = k.cpu / g.cpu;
    println!("\ntargets:");
    println!(
        "  CPU kitepush / gstreamer-openh264 <= {TARGET_CPU_RATIO_VS_GST:.2}: {cpu_ratio:.2} -> {}",
        verdict(cpu_ratio <= TARGET_CPU_RATIO_VS_GST)
    );
    println!(
        "  kitepush peak RSS <= {TARGET_KITEPUSH_RSS_MB:.0} MB: {:.1} MB -> {}",
        k.rss,
        verdict(k.rss <= TARGET_KITEPUSH_RSS_MB)
    );

    println!("\nconfigured with:");
    for who in ALL {
        println!("  {:<10} {}", who.name(), who.settings());
    }
    let failed: Vec<&Run> = runs.iter().filter(|r| !(r.exit_ok && r.frames == FRAMES)).collect();
    if !failed.is_empty() {
        println!("\nfailed runs:");
        for r in failed {
            println!("  {:<10} frames {}/{FRAMES} {}", r.who.name(), r.frames, r.note);
        }
    }
}
