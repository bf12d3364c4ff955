//! Camera pixel formats and the x264 backend against real components: FFmpeg makes the raw frames
//! (testsrc2) in each format and, with swscale, the I420 reference; kitepush converts them (checked
//! against that reference) and pushes them to nginx-rtmp, whose recording is probed, decoded
//! without errors and compared with the reference picture by picture.

mod common;

use common::pushing::Harnessed;
use common::*;
use kitepush::encode::pixel::copy_to_i420;
use kitepush::encode::{I420Buffer, PixelFormat, VideoFrame};
use kitepush::pusher::{EventKind, PusherConfig, VideoConfig, VideoEncoderKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const W: u32 = 320;
const H: u32 = 240;
const FPS: f64 = 30.0;
const FRAMES: usize = 45;
/// Bytes of padding after each row of the frames pushed, filled with 0xEE so a conversion that
/// reads padding shows up in the picture.
const PAD: usize = 24;

/// FFmpeg's name, bytes per pixel of the single plane (0 = a planar/semi-planar format).
fn ffmpeg_format(f: PixelFormat) -> (&'static str, usize) {
    match f {
        PixelFormat::KP_PIXEL_FORMAT_I420 => ("yuv420p", 0),
        PixelFormat::KP_PIXEL_FORMAT_NV12 => ("nv12", 0),
        PixelFormat::KP_PIXEL_FORMAT_NV21 => ("nv21", 0),
        PixelFormat::KP_PIXEL_FORMAT_YUY2 => ("yuyv422", 2),
        PixelFormat::KP_PIXEL_FORMAT_UYVY => ("uyvy422", 2),
        PixelFormat::KP_PIXEL_FORMAT_RGBA => ("rgba", 4),
        PixelFormat::KP_PIXEL_FORMAT_BGRA => ("bgra", 4),
    }
}

const ALL: [PixelFormat; 7] = [
    PixelFormat::KP_PIXEL_FORMAT_I420,
    PixelFormat::KP_PIXEL_FORMAT_NV12,
    PixelFormat::KP_PIXEL_FORMAT_NV21,
    PixelFormat::KP_PIXEL_FORMAT_YUY2,
    PixelFormat::KP_PIXEL_FORMAT_UYVY,
    PixelFormat::KP_PIXEL_FORMAT_RGBA,
    PixelFormat::KP_PIXEL_FORMAT_BGRA,
];

fn ffmpeg(args: &[&str]) -> Vec<u8> {
    require_tool("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `FRAMES` pictures of testsrc2 in `format`, unpadded, and the same pictures converted by swscale
/// to I420 (its defaults: BT.601 limited range for RGB).
struct Source {
    raw: Vec<u8>,
    reference: Vec<u8>,
}

fn source(format: PixelFormat) -> Source {
    let (name, _) = ffmpeg_format(format);
    let dir = tmp_dir(&format!("formats-{name}"));
    let raw_path = dir.join(format!("src.{name}"));
    let size = format!("{W}x{H}");
    let frames = FRAMES.to_string();
    let lavfi = format!("testsrc2=size={size}:rate={FPS}");
    let raw_str = raw_path.to_str().unwrap();
    ffmpeg(&["-y", "-f", "lavfi", "-i", &lavfi, "-frames:v", &frames, "-pix_fmt", name, "-f", "rawvideo", raw_str]);
    let reference = ffmpeg(&[
        "-f", "rawvideo", "-pix_fmt", name, "-s", &size, "-i", raw_str, "-pix_fmt", "yuv420p", "-f", "rawvideo", "-",
    ]);
    let raw = std::fs::read(&raw_path).unwrap();
    assert_eq!(reference.len(), FRAMES * I420Buffer::size(W, H));
    Source { raw, reference }
}

/// One picture of `src` re-laid with `PAD` bytes after every row, as the planes of a frame.
struct Padded {
    planes: Vec<Vec<u8>>,
    strides: Vec<usize>,
}

fn padded(format: PixelFormat, src: &[u8], index: usize) -> Padded {
    let (w, h) = (W as usize, H as usize);
    let (_, bpp) = ffmpeg_format(format);
    // (row bytes, rows) of each plane in FFmpeg's packed layout.
    let layout: Vec<(usize, usize)> = match format {
        PixelFormat::KP_PIXEL_FORMAT_I420 => vec![(w, h), (w / 2, h / 2), (w / 2, h / 2)],
        PixelFormat::KP_PIXEL_FORMAT_NV12 | PixelFormat::KP_PIXEL_FORMAT_NV21 => vec![(w, h), (w, h / 2)],
        _ => vec![(w * bpp, h)],
    };
    let frame_len: usize = layout.iter().map(|(r, n)| r * n).sum();
    let mut at = index * frame_len;
    let mut planes = Vec::new();
    let mut strides = Vec::new();
    for (row, rows) in layout {
        let stride = row + PAD;
        let mut p = vec![0xEE; stride * rows];
        for r in 0..rows {
            p[r * stride..r * stride + row].copy_from_slice(&src[at + r * row..at + (r + 1) * row]);
        }
        at += row * rows;
        planes.push(p);
        strides.push(stride);
    }
    Padded { planes, strides }
}

fn frame(format: PixelFormat, p: &Padded) -> VideoFrame<'_> {
    let mut planes: [&[u8]; 3] = [&[]; 3];
    let mut strides = [0; 3];
    for i in 0..p.planes.len() {
        planes[i] = &p.planes[i];
        strides[i] = p.strides[i];
    }
    VideoFrame { format, width: W, height: H, planes, strides }
}

/// Mean and maximum absolute difference of two planes.
fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    (sum as f64 / a.len() as f64, a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0))
}

fn planes(i420: &[u8]) -> [&[u8]; 3] {
    let (l, c) = ((W * H) as usize, (W * H / 4) as usize);
    [&i420[..l], &i420[l..l + c], &i420[l + c..l + 2 * c]]
}

/// Tolerances against swscale, per plane (worst per-picture mean, worst single sample), measured
/// on testsrc2 (sharp edges, saturated colours). The YUV formats match exactly (4:2:2 → 4:2:0
/// averages the two chroma rows, as swscale does). RGB → YUV: both BT.601 limited range
/// (Y = 16 + 0.257 R + 0.504 G + 0.098 B, ...); luma differs by rounding (mean 0.02, max 1 measured with the crate's
/// SIMD path), chroma by its 2x2 average against swscale's chroma filter (mean 0.71, max 24 measured).
fn tolerance(format: PixelFormat) -> [(f64, u8); 3] {
    match format {
        PixelFormat::KP_PIXEL_FORMAT_RGBA | PixelFormat::KP_PIXEL_FORMAT_BGRA => [(0.05, 1), (1.0, 32), (1.0, 32)],
        _ => [(0.0, 0); 3],
    }
}

#[test]
fn conversions_match_ffmpeg_swscale() {
    let mut report = String::new();
    let mut results = Vec::new();
    for format in ALL {
        let src = source(format);
        let mut out = I420Buffer::default();
        let mut worst = [(0.0f64, 0u8); 3];
        for i in 0..FRAMES {
            let p = padded(format, &src.raw, i);
            copy_to_i420(&frame(format, &p), &mut out).unwrap();
            let reference = &src.reference[i * out.data.len()..(i + 1) * out.data.len()];
            for (k, (ours, theirs)) in planes(&out.data).iter().zip(planes(reference)).enumerate() {
                let (mean, max) = diff(ours, theirs);
                worst[k] = (worst[k].0.max(mean), worst[k].1.max(max));
            }
        }
        report += &format!("{format:?}: Y/U/V worst (mean, max) {worst:?}\n");
        results.push((format, worst));
    }
    println!("{report}");
    for (format, worst) in results {
        for (k, (got, want)) in worst.iter().zip(tolerance(format)).enumerate() {
            assert!(got.0 <= want.0 && got.1 <= want.1, "{format:?} plane {k}: {got:?} over {want:?}\n{report}");
        }
    }
}

/// Pushes the source frames (padded strides) through a pusher with `video` to nginx and returns the
/// recording.
fn push_to_nginx(nginx: &Nginx, format: PixelFormat, src: &Source, video: VideoConfig) -> PathBuf {
    let key = unique_key(&format!("fmt-{}", ffmpeg_format(format).0));
    let config = PusherConfig {
        url: nginx.url(&key),
        video: Some(VideoConfig { width: W, height: H, fps: FPS as f32, bitrate_kbps: 1500, threads: 1, ..video }),
        audio: None,
        // Room for every frame: the test pushes faster than real time and must lose none.
        input_queue_frames: FRAMES + 1,
        ..PusherConfig::default()
    };
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    for i in 0..FRAMES {
        let p = padded(format, &src.raw, i);
        let pts = (i as f64 * 1e6 / FPS).round() as i64;
        h.pusher.push_video(&frame(format, &p), pts).unwrap_or_else(|e| panic!("{format:?} frame {i}: {e}"));
    }
    h.pusher.stop(Duration::from_secs(30)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    let stats = h.pusher.stats();
    assert_eq!((stats.video_frames_sent, stats.video_frames_dropped_encoder), (FRAMES as u64, 0), "{stats:?}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    rec
}

/// Probes the recording (codec, size, frame count, clean decode) and compares its pictures with
/// swscale's conversion of the source. Returns the video packets' presentation times.
fn verify(rec: &Path, format: PixelFormat, src: &Source) -> Vec<(f64, bool)> {
    let p = probe(rec);
    let v = p.video.as_ref().unwrap_or_else(|| panic!("no video in {}", rec.display()));
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", W, H, FRAMES as u64), "{format:?}");
    assert_eq!(decode_errors(rec), "", "{format:?}: decode errors");
    let times = video_packet_times(rec);
    assert_eq!(times.len(), FRAMES);
    assert!(times[0].1, "first packet is a keyframe");
    let decoded = ffmpeg(&["-i", rec.to_str().unwrap(), "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"]);
    let n = I420Buffer::size(W, H);
    assert_eq!(decoded.len(), FRAMES * n, "{format:?}: decoded picture count");
    // Lossy coding blurs the picture; a real conversion error (swapped chroma, a wrong matrix,
    // stride padding read as pixels) moves it far more. Each check is calibrated against the
    // same picture with its chroma planes swapped.
    let (mut y_err, mut uv_err, mut uv_swapped) = (0.0, 0.0, 0.0);
    for i in 0..FRAMES {
        let [dy, du, dv] = planes(&decoded[i * n..(i + 1) * n]);
        let [ry, ru, rv] = planes(&src.reference[i * n..(i + 1) * n]);
        y_err += diff(dy, ry).0 / FRAMES as f64;
        uv_err += (diff(du, ru).0 + diff(dv, rv).0) / 2.0 / FRAMES as f64;
        uv_swapped += (diff(du, rv).0 + diff(dv, ru).0) / 2.0 / FRAMES as f64;
    }
    assert!(y_err < 4.0, "{format:?}: luma differs from the reference by {y_err:.2} on average");
    assert!(
        uv_err < 3.0 && uv_err * 4.0 < uv_swapped,
        "{format:?}: chroma error {uv_err:.2} (swapped: {uv_swapped:.2})"
    );
    times
}

#[test]
fn every_pixel_format_through_openh264_to_nginx() {
    let nginx = Nginx::start(NginxOptions::default());
    for format in ALL {
        let src = source(format);
        let rec = push_to_nginx(&nginx, format, &src, VideoConfig::default());
        let times = verify(&rec, format, &src);
        assert!(times.windows(2).all(|w| w[1].0 > w[0].0), "{format:?}: presentation times increase");
    }
}

#[cfg(feature = "x264")]
mod x264 {
    use super::*;
    use kitepush::pusher::X264Options;

    fn x264(opts: X264Options) -> VideoConfig {
        VideoConfig {
            encoder: VideoEncoderKind::KP_ENCODER_X264,
            keyframe_interval: 30,
            x264: opts,
            ..VideoConfig::default()
        }
    }

    #[test]
    fn x264_with_native_and_converted_formats_to_nginx() {
        let nginx = Nginx::start(NginxOptions::default());
        for format in [
            PixelFormat::KP_PIXEL_FORMAT_I420,
            PixelFormat::KP_PIXEL_FORMAT_NV12,
            PixelFormat::KP_PIXEL_FORMAT_NV21,
            PixelFormat::KP_PIXEL_FORMAT_BGRA,
        ] {
            let src = source(format);
            let rec = push_to_nginx(&nginx, format, &src, x264(X264Options::default()));
            let times = verify(&rec, format, &src);
            assert!(times.windows(2).all(|w| w[1].0 > w[0].0), "{format:?}: no B-frames, times increase");
            // IDR every 30 frames; the pusher may force one more when the session starts after the
            // first picture was encoded, which restarts x264's GOP.
            let keys: Vec<usize> = (0..FRAMES).filter(|&i| times[i].1).collect();
            assert!(keys[0] == 0 && keys.len() >= 2, "{format:?}: keyframes at {keys:?}");
            assert!(keys.windows(2).all(|w| w[1] - w[0] <= 30), "{format:?}: keyframes at {keys:?}");
            assert!(FRAMES - keys.last().unwrap() <= 30, "{format:?}: keyframes at {keys:?}");
        }
    }

    #[test]
    fn x264_b_frames_carry_composition_times_through_flv() {
        let nginx = Nginx::start(NginxOptions::default());
        let format = PixelFormat::KP_PIXEL_FORMAT_NV21;
        let src = source(format);
        let opts =
            X264Options { bframes: 2, preset: "faster".into(), profile: "main".into(), ..X264Options::default() };
        let rec = push_to_nginx(&nginx, format, &src, x264(opts));
        let times = verify(&rec, format, &src);
        assert!(times.windows(2).any(|w| w[1].0 < w[0].0), "packets not reordered: {times:?}");
        // Presentation times are the app's, each once, whatever the reordering.
        let mut ms: Vec<i64> = times.iter().map(|t| (t.0 * 1000.0).round() as i64).collect();
        ms.sort_unstable();
        let first = ms[0];
        let expected: Vec<i64> = (0..FRAMES).map(|i| first + (i as f64 * 1000.0 / FPS).round() as i64).collect();
        for (got, want) in ms.iter().zip(&expected) {
            assert!((got - want).abs() <= 1, "presentation times {ms:?}");
        }
    }
}

#[cfg(not(feature = "x264"))]
#[test]
fn x264_without_the_feature_is_unsupported_with_a_clear_message() {
    let video = VideoConfig { encoder: VideoEncoderKind::KP_ENCODER_X264, ..VideoConfig::default() };
    let config =
        PusherConfig { url: "rtmp://127.0.0.1:1/live/k".into(), video: Some(video), ..PusherConfig::default() };
    let err = kitepush::pusher::Pusher::new(config, None).err().expect("x264 is not in this build");
    assert_eq!(err.code(), kitepush::ResultCode::KP_ERR_UNSUPPORTED);
    assert!(err.to_string().contains("cargo feature `x264`"), "{err}");
}
