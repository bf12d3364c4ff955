//! Per-packet and per-sample views of a recording, for timing checks (A/V sync, pauses, keyframes,
//! bitrate over time): ffprobe packet lists, decoded luma per frame, decoded PCM on the file's clock.

use super::require_tool;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug)]
pub struct Packet {
    /// Seconds, on the file's clock.
    pub pts: f64,
    pub key: bool,
    pub size: u64,
}

fn json(args: &[&str]) -> Value {
    require_tool("ffprobe");
    let out = Command::new("ffprobe").args(["-v", "error"]).args(args).args(["-of", "json"]).output().unwrap();
    assert!(out.status.success(), "ffprobe {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

fn f(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64()).unwrap_or(f64::NAN)
}

/// Packets of the first stream of `kind` ("v" or "a") in file order.
pub fn packets(path: &Path, kind: &str) -> Vec<Packet> {
    let p = path.to_str().unwrap();
    let j = json(&["-select_streams", kind, "-show_entries", "packet=pts_time,flags,size", "-show_packets", p]);
    j["packets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Packet {
            pts: f(&p["pts_time"]),
            key: p["flags"].as_str().is_some_and(|s| s.contains('K')),
            size: f(&p["size"]) as u64,
        })
        .collect()
}

/// (pts in seconds, mean luma 0..255) of every decoded video frame, from ffmpeg's signalstats.
pub fn luma_means(path: &Path) -> Vec<(f64, f64)> {
    let src = format!("movie={},signalstats", path.to_str().unwrap());
    let j = json(&["-f", "lavfi", "-i", &src, "-show_entries", "frame=pts_time:frame_tags=lavfi.signalstats.YAVG"]);
    j["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|fr| (f(&fr["pts_time"]), f(&fr["tags"]["lavfi.signalstats.YAVG"])))
        .collect()
}

/// The audio decoded to mono s16 at `rate`, placed on the file's clock: sample i is at time
/// i / rate (silence before the first packet and in timestamp gaps, as a player would render).
pub fn pcm_on_file_clock(path: &Path, rate: u32) -> Vec<i16> {
    require_tool("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-af", "aresample=async=1:first_pts=0", "-ac", "1", "-ar", &rate.to_string()])
        .args(["-f", "s16le", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg decode: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// Root mean square of `pcm` between two times (seconds).
pub fn rms_between(pcm: &[i16], rate: u32, from: f64, to: f64) -> f64 {
    let a = ((from * f64::from(rate)) as usize).min(pcm.len());
    let b = ((to * f64::from(rate)) as usize).min(pcm.len());
    let s = &pcm[a..b];
    if s.is_empty() {
        return f64::NAN;
    }
    (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
}

/// The largest step between consecutive packet times.
pub fn largest_gap(p: &[Packet]) -> f64 {
    p.windows(2).map(|w| w[1].pts - w[0].pts).fold(0.0, f64::max)
}
