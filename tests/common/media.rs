//! ffprobe/ffmpeg checks of recordings, and ffmpeg as a reference publisher.

use super::require_tool;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct StreamInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Decoded frame count (`nb_read_frames` from `-count_frames`), not a header estimate.
    pub frames: u64,
    pub start_time: f64,
    /// ffprobe's stream duration; FLV has none, so it is then computed from the packets
    /// (last pts + last duration - first pts).
    pub duration: f64,
    pub sample_rate: u32,
    pub channels: u32,
}

#[derive(Clone, Debug)]
pub struct Probe {
    pub video: Option<StreamInfo>,
    pub audio: Option<StreamInfo>,
    pub format_duration: f64,
    /// The whole ffprobe JSON, for checks the fields above do not cover.
    pub raw: Value,
}

/// Probes a media file; panics (with ffprobe's message) if ffprobe cannot read it.
pub fn probe(path: &Path) -> Probe {
    require_tool("ffprobe");
    let json = ffprobe_json(path, &["-count_frames", "-show_streams", "-show_format"]);
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let mut video = None;
    let mut audio = None;
    let mut need_packet_durations = false;
    for s in &streams {
        let info = StreamInfo {
            codec: s["codec_name"].as_str().unwrap_or_default().to_string(),
            width: num(&s["width"]) as u32,
            height: num(&s["height"]) as u32,
            frames: num(&s["nb_read_frames"]),
            start_time: float(&s["start_time"]),
            duration: float(&s["duration"]),
            sample_rate: num(&s["sample_rate"]) as u32,
            channels: num(&s["channels"]) as u32,
        };
        need_packet_durations |= info.duration.is_nan();
        match s["codec_type"].as_str() {
            Some("video") if video.is_none() => video = Some((s["index"].as_u64(), info)),
            Some("audio") if audio.is_none() => audio = Some((s["index"].as_u64(), info)),
            _ => {}
        }
    }
    if need_packet_durations {
        let spans = packet_spans(path);
        for (index, info) in video.iter_mut().chain(audio.iter_mut()) {
            if info.duration.is_nan() {
                if let Some(span) = index.and_then(|i| spans.get(i as usize)).copied().flatten() {
                    info.duration = span;
                }
            }
        }
    }
    Probe {
        video: video.map(|(_, i)| i),
        audio: audio.map(|(_, i)| i),
        format_duration: float(&json["format"]["duration"]),
        raw: json,
    }
}

/// What `ffmpeg -v error` says while decoding the whole file (empty means clean), plus its exit status
/// if that was a failure.
///
/// The decoded video is timed for the null muxer in the file's own time base (FLV: milliseconds):
/// on ffmpeg's default 1/frame-rate grid, a file whose first packet is audio a fraction of a frame
/// before the video (a segment nginx starts after a reconnect, say) has its whole video shifted by
/// that fraction, and the millisecond times then land two frames in one slot every third frame,
/// reported as non-increasing dts although the file's times all increase. Times that do not
/// increase in the file are still reported.
pub fn decode_errors(path: &Path) -> String {
    require_tool("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-enc_time_base:v", "-1", "-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let mut errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        errors += &format!("\nffmpeg exited with {}", out.status);
    }
    errors.trim().to_string()
}

/// Video packets in file order: (pts in seconds, keyframe).
pub fn video_packet_times(path: &Path) -> Vec<(f64, bool)> {
    require_tool("ffprobe");
    let json = ffprobe_json(path, &["-select_streams", "v", "-show_packets", "-show_entries", "packet=pts_time,flags"]);
    json["packets"]
        .as_array()
        .map(|ps| {
            ps.iter().map(|p| (float(&p["pts_time"]), p["flags"].as_str().is_some_and(|f| f.contains('K')))).collect()
        })
        .unwrap_or_default()
}

/// Publishes `seconds` of a 320x240@30 test pattern with a 440 Hz tone (H.264 + AAC, keyframe every
/// second) to `url` in real time, as a reference client would. Blocks; returns ffmpeg's status. Never
/// hangs: killed (and reported as a failure) if it runs far past `seconds`.
pub fn ffmpeg_push(url: &str, seconds: f64) -> ExitStatus {
    let (status, log, _) = ffmpeg_pattern_push(&require_tool("ffmpeg"), "flv", url, seconds);
    if !log.trim().is_empty() {
        // Shown by the test harness only when the test fails.
        eprintln!("ffmpeg push to {url} ({status}):\n{}", log.trim());
    }
    status
}

/// `ffmpeg` (any build: Debian's, or FFmpeg 9 for SRT) publishing the test pattern and tone of
/// [`ffmpeg_push`] as `format` to `url` in real time (libx264 ultrafast/zerolatency, keyframe every
/// second; AAC 64 kbit/s). Returns its status, its stderr and how long it ran; killed if it runs far
/// past `seconds`.
pub fn ffmpeg_pattern_push(ffmpeg: &Path, format: &str, url: &str, seconds: f64) -> (ExitStatus, String, Duration) {
    let stderr_path = super::tmp_dir("ffmpeg-push").join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).expect("create ffmpeg log");
    let secs = format!("{seconds}");
    let start = Instant::now();
    let mut child = Command::new(ffmpeg)
        .args(["-nostdin", "-hide_banner", "-v", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &secs])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
        .args(["-g", "30", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-f", format, url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn ffmpeg");
    let deadline = Duration::from_secs_f64(seconds + 20.0);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait ffmpeg") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            eprintln!("ffmpeg push to {url} still running after {deadline:?}; killed");
            break child.wait().expect("wait ffmpeg");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if let Some(dir) = stderr_path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    (status, log, start.elapsed())
}

fn ffprobe_json(path: &Path, args: &[&str]) -> Value {
    let run = || {
        Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .args(["-of", "json"])
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .expect("run ffprobe")
    };
    let mut out = run();
    // Debian's ffprobe 5.1 once died of SIGSEGV on a soak segment in a CI run with builds beside
    // it; the same files probed 48 times since never did. A crash of the tool is not a verdict on
    // the file: probe once more (an error exit is, and is not retried).
    if std::os::unix::process::ExitStatusExt::signal(&out.status).is_some() {
        eprintln!("ffprobe {args:?} {} died ({}); probing again", path.display(), out.status);
        out = run();
    }
    if !out.status.success() {
        panic!(
            "ffprobe {args:?} {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).expect("ffprobe printed invalid JSON")
}

/// Per stream index: the time spanned by its packets, if it has any.
fn packet_spans(path: &Path) -> Vec<Option<f64>> {
    let json = ffprobe_json(path, &["-show_packets", "-show_entries", "packet=stream_index,pts_time,duration_time"]);
    let mut spans: Vec<Option<(f64, f64)>> = Vec::new();
    for p in json["packets"].as_array().into_iter().flatten() {
        let Some(i) = p["stream_index"].as_u64().map(|i| i as usize) else {
            continue;
        };
        let pts = float(&p["pts_time"]);
        if pts.is_nan() {
            continue;
        }
        let dur = float(&p["duration_time"]);
        let end = pts + if dur.is_nan() { 0.0 } else { dur };
        if spans.len() <= i {
            spans.resize(i + 1, None);
        }
        spans[i] = Some(match spans[i] {
            Some((first, last)) => (first.min(pts), last.max(end)),
            None => (pts, end),
        });
    }
    spans.into_iter().map(|s| s.map(|(a, b)| b - a)).collect()
}

/// ffprobe prints most numbers as strings; absent or "N/A" becomes NaN so no check passes by accident.
fn float(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

fn num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}
