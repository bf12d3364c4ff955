//! Downscaling of raw frames larger than the configured size, against real components: FFmpeg makes
//! the frames (testsrc2) and, with swscale (`flags=bilinear`), the reference pictures; kitepush's
//! scaled pictures are compared with them, then pushed to nginx-rtmp, whose recording is probed
//! and decoded.

mod common;

use common::pushing::Harnessed;
use common::*;
use kitepush::encode::pixel::{convert_scaled, Downscaler};
use kitepush::encode::{I420Buffer, PixelFormat, VideoFrame};
use kitepush::pusher::{EventKind, PusherConfig, VideoConfig, VideoScaling};
use kitepush::{Error, ResultCode};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Bytes of padding after each row of the frames, filled with 0xEE so reading padding shows.
const PAD: usize = 40;

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

/// FFmpeg's name and bytes per pixel of the single plane (0: planar or semi-planar).
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

/// `frames` pictures of testsrc2 at `w` x `h` in `format`, unpadded, written to a file.
fn testsrc(format: PixelFormat, w: u32, h: u32, frames: usize) -> (Vec<u8>, String) {
    let (name, _) = ffmpeg_format(format);
    let dir = tmp_dir(&format!("scaling-{name}-{w}x{h}"));
    let path = dir.join(format!("src.{name}")).to_str().unwrap().to_string();
    let lavfi = format!("testsrc2=size={w}x{h}:rate=30");
    let n = frames.to_string();
    ffmpeg(&["-y", "-f", "lavfi", "-i", &lavfi, "-frames:v", &n, "-pix_fmt", name, "-f", "rawvideo", &path]);
    (std::fs::read(&path).unwrap(), path)
}

/// swscale's I420 pictures of the raw file after the filter chain `vf`.
fn swscale(format: PixelFormat, w: u32, h: u32, path: &str, vf: &str) -> Vec<u8> {
    let (name, _) = ffmpeg_format(format);
    let size = format!("{w}x{h}");
    ffmpeg(&[
        "-f", "rawvideo", "-pix_fmt", name, "-s", &size, "-i", path, "-vf", vf, "-pix_fmt", "yuv420p", "-f",
        "rawvideo", "-",
    ])
}

/// One picture of an unpadded raw file re-laid with `PAD` bytes after every row.
struct Padded {
    planes: Vec<Vec<u8>>,
    strides: Vec<usize>,
}

fn padded(format: PixelFormat, w: u32, h: u32, src: &[u8], index: usize) -> Padded {
    let (w, h) = (w as usize, h as usize);
    let (_, bpp) = ffmpeg_format(format);
    let layout: Vec<(usize, usize)> = match format {
        PixelFormat::KP_PIXEL_FORMAT_I420 => vec![(w, h), (w / 2, h / 2), (w / 2, h / 2)],
        PixelFormat::KP_PIXEL_FORMAT_NV12 | PixelFormat::KP_PIXEL_FORMAT_NV21 => vec![(w, h), (w, h / 2)],
        _ => vec![(w * bpp, h)],
    };
    let frame_len: usize = layout.iter().map(|(r, n)| r * n).sum();
    let mut at = index * frame_len;
    let (mut planes, mut strides) = (Vec::new(), Vec::new());
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

fn frame(format: PixelFormat, w: u32, h: u32, p: &Padded) -> VideoFrame<'_> {
    let mut planes: [&[u8]; 3] = [&[]; 3];
    let mut strides = [0; 3];
    for i in 0..p.planes.len() {
        planes[i] = &p.planes[i];
        strides[i] = p.strides[i];
    }
    VideoFrame { format, width: w, height: h, planes, strides }
}

/// Mean and maximum absolute difference of two planes.
fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a.iter().zip(b).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    (sum as f64 / a.len() as f64, a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0))
}

fn planes(i420: &[u8], w: u32, h: u32) -> [&[u8]; 3] {
    let (l, c) = ((w * h) as usize, (w / 2 * (h / 2)) as usize);
    [&i420[..l], &i420[l..l + c], &i420[l + c..l + 2 * c]]
}

/// Worst per-picture (mean, max) difference per plane between kitepush's scaled pictures and
/// swscale's, over `frames` pictures of testsrc2.
fn compare(format: PixelFormat, src: (u32, u32), dst: (u32, u32), scaling: VideoScaling, vf: &str) -> [(f64, u8); 3] {
    const FRAMES: usize = 3;
    let (raw, path) = testsrc(format, src.0, src.1, FRAMES);
    let reference = swscale(format, src.0, src.1, &path, vf);
    let n = I420Buffer::size(dst.0, dst.1);
    assert_eq!(reference.len(), FRAMES * n, "{vf}");
    let (mut out, mut scaler) = (I420Buffer::default(), Downscaler::default());
    let mut worst = [(0.0f64, 0u8); 3];
    for i in 0..FRAMES {
        let p = padded(format, src.0, src.1, &raw, i);
        convert_scaled(&frame(format, src.0, src.1, &p), &mut out, false, dst, scaling, &mut scaler).unwrap();
        assert_eq!((out.width, out.height), dst);
        let ours = planes(&out.data, dst.0, dst.1);
        let theirs = planes(&reference[i * n..(i + 1) * n], dst.0, dst.1);
        for k in 0..3 {
            let (mean, max) = diff(ours[k], theirs[k]);
            worst[k] = (worst[k].0.max(mean), worst[k].1.max(max));
        }
    }
    worst
}

/// Tolerance against swscale's bilinear scaling, per plane: worst per-picture mean absolute
/// difference 0.25 and no sample more than 4 away. Both use a triangle filter widened to the ratio
/// with 14-bit coefficients; they differ only in intermediate rounding. Measured on testsrc2 (hard
/// edges, saturated colours): means 0.002..0.02 for the YUV formats, up to 0.2 in V from RGB (whose
/// full-size conversion differs from swscale's first), max 1 at 2x, 4 at other ratios.
const MEAN: f64 = 0.25;
const MAX: u8 = 4;

fn assert_close(what: &str, worst: [(f64, u8); 3]) {
    println!("{what}: Y/U/V worst (mean, max) {worst:?}");
    for (k, (mean, max)) in worst.iter().enumerate() {
        assert!(*mean <= MEAN && *max <= MAX, "{what} plane {k}: ({mean:.3}, {max}) over ({MEAN}, {MAX})");
    }
}

#[test]
fn sizes_and_ratios_match_swscale_bilinear() {
    let i420 = PixelFormat::KP_PIXEL_FORMAT_I420;
    // 2x, 1.5x, non-integer ratios (1.502, 3.005 with odd-sized chroma planes), one axis only.
    for (src, dst) in [
        ((1280, 720), (640, 360)),
        ((1920, 1080), (1280, 720)),
        ((1280, 720), (852, 480)),
        ((1282, 722), (426, 240)),
        ((1280, 720), (1280, 360)),
    ] {
        let vf = format!("scale={}:{}:flags=bilinear", dst.0, dst.1);
        // Stretch: these are about the ratios; the aspect (slightly off in all but the first two)
        // is kept by fill, tested below.
        let worst = compare(i420, src, dst, VideoScaling::KP_VIDEO_SCALING_STRETCH, &vf);
        assert_close(&format!("{src:?} -> {dst:?}"), worst);
    }
}

#[test]
fn aspect_mismatch_fill_crops_the_middle_and_stretch_keeps_everything() {
    let i420 = PixelFormat::KP_PIXEL_FORMAT_I420;
    // 4:3 into 16:9: fill keeps the middle 960x540 (60 + 30 rows cut at the top and bottom).
    let worst = compare(
        i420,
        (960, 720),
        (640, 360),
        VideoScaling::KP_VIDEO_SCALING_FILL,
        "crop=960:540:0:90,scale=640:360:flags=bilinear",
    );
    assert_close("4:3 -> 16:9 fill", worst);
    // 16:9 into 4:3: fill keeps the middle 960x720 columns.
    let worst = compare(
        i420,
        (1280, 720),
        (640, 480),
        VideoScaling::KP_VIDEO_SCALING_FILL,
        "crop=960:720:160:0,scale=640:480:flags=bilinear",
    );
    assert_close("16:9 -> 4:3 fill", worst);
    let worst =
        compare(i420, (960, 720), (640, 360), VideoScaling::KP_VIDEO_SCALING_STRETCH, "scale=640:360:flags=bilinear");
    assert_close("4:3 -> 16:9 stretch", worst);
    // A near miss (16:9 into 852x480, 1.7750): two columns cut at the right (offsets stay even).
    let worst = compare(
        i420,
        (1280, 720),
        (852, 480),
        VideoScaling::KP_VIDEO_SCALING_FILL,
        "crop=1278:720:0:0,scale=852:480:flags=bilinear",
    );
    assert_close("16:9 -> 852x480 fill", worst);
}

#[test]
fn every_pixel_format_goes_through_the_same_scaler() {
    use PixelFormat::*;
    for format in [
        KP_PIXEL_FORMAT_I420,
        KP_PIXEL_FORMAT_NV12,
        KP_PIXEL_FORMAT_NV21,
        KP_PIXEL_FORMAT_YUY2,
        KP_PIXEL_FORMAT_UYVY,
        KP_PIXEL_FORMAT_RGBA,
        KP_PIXEL_FORMAT_BGRA,
    ] {
        // The reference converts to I420 at full size first, then scales, as the SDK does.
        let vf = "format=yuv420p,scale=640:360:flags=bilinear";
        let worst = compare(format, (1280, 720), (640, 360), VideoScaling::KP_VIDEO_SCALING_FILL, vf);
        assert_close(&format!("{format:?}"), worst);
    }
}

#[test]
fn scaling_off_and_upscaling_are_refused() {
    let y = vec![0u8; 1280 * 720];
    let c = vec![0u8; 640 * 360];
    let big = VideoFrame {
        format: PixelFormat::KP_PIXEL_FORMAT_I420,
        width: 1280,
        height: 720,
        planes: [&y, &c, &c],
        strides: [1280, 640, 640],
    };
    let (mut out, mut s) = (I420Buffer::default(), Downscaler::default());
    let off = VideoScaling::KP_VIDEO_SCALING_OFF;
    let r = convert_scaled(&big, &mut out, false, (640, 360), off, &mut s);
    assert!(matches!(r, Err(Error::BadDimensions(_))), "{r:?}");
    for (w, h) in [(1920, 1080), (1280, 722), (1282, 720)] {
        let r = convert_scaled(&big, &mut out, false, (w, h), VideoScaling::KP_VIDEO_SCALING_FILL, &mut s);
        assert!(matches!(r, Err(Error::BadDimensions(_))), "{w}x{h}: {r:?}");
    }
}

/// 1280x720 NV12 frames with padded strides into a 640x360 stream: nginx records 640x360 with every
/// frame, decoding cleanly and close to swscale's scaling of the same frames. A frame smaller than
/// the stream in the middle is refused with BAD_DIMENSIONS and the stream goes on.
#[test]
fn camera_720p_into_a_360p_stream_to_nginx() {
    const FRAMES: usize = 30;
    const FPS: f64 = 30.0;
    let format = PixelFormat::KP_PIXEL_FORMAT_NV12;
    let (src, dst) = ((1280, 720), (640, 360));
    let (raw, path) = testsrc(format, src.0, src.1, FRAMES);
    let reference = swscale(format, src.0, src.1, &path, "format=yuv420p,scale=640:360:flags=bilinear");
    let (small, _) = testsrc(format, 320, 180, 1);

    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("scale-720p-360p");
    let config = PusherConfig {
        url: nginx.url(&key),
        video: Some(VideoConfig {
            width: dst.0,
            height: dst.1,
            fps: FPS as f32,
            bitrate_kbps: 1500,
            threads: 1,
            ..VideoConfig::default()
        }),
        audio: None,
        // Room for every frame: the test pushes faster than real time and must lose none.
        input_queue_frames: FRAMES + 1,
        ..PusherConfig::default()
    };
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    for i in 0..FRAMES {
        let p = padded(format, src.0, src.1, &raw, i);
        let pts = (i as f64 * 1e6 / FPS).round() as i64;
        h.pusher.push_video(&frame(format, src.0, src.1, &p), pts).unwrap_or_else(|e| panic!("frame {i}: {e}"));
        if i == FRAMES / 2 {
            let p = padded(format, 320, 180, &small, 0);
            let e = h.pusher.push_video(&frame(format, 320, 180, &p), pts + 1000).unwrap_err();
            assert_eq!(e.code(), ResultCode::KP_ERR_BAD_DIMENSIONS, "{e}");
            assert!(e.to_string().contains("smaller than the configured 640x360"), "{e}");
        }
    }
    h.pusher.stop(Duration::from_secs(30)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    let stats = h.pusher.stats();
    assert_eq!((stats.video_frames_sent, stats.video_frames_dropped_encoder), (FRAMES as u64, 0), "{stats:?}");
    assert_eq!(stats.frames_rejected, 1, "{stats:?}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));

    let p = probe(&rec);
    let v = p.video.as_ref().unwrap_or_else(|| panic!("no video in {}", rec.display()));
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", dst.0, dst.1, FRAMES as u64));
    assert_eq!(decode_errors(&rec), "", "decode errors");
    let decoded = ffmpeg(&["-i", rec.to_str().unwrap(), "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"]);
    let n = I420Buffer::size(dst.0, dst.1);
    assert_eq!(decoded.len(), FRAMES * n, "decoded picture count");
    // Lossy coding blurs; a scaling error (wrong crop, swapped chroma, padding read as pixels)
    // moves the picture far more. Calibrated against the reference shifted by one picture.
    let (mut err, mut shifted) = (0.0, 0.0);
    for i in 0..FRAMES - 1 {
        let ours = planes(&decoded[i * n..(i + 1) * n], dst.0, dst.1);
        let same = planes(&reference[i * n..(i + 1) * n], dst.0, dst.1);
        let next = planes(&reference[(i + 1) * n..(i + 2) * n], dst.0, dst.1);
        for k in 0..3 {
            err += diff(ours[k], same[k]).0 / (3 * (FRAMES - 1)) as f64;
            shifted += diff(ours[k], next[k]).0 / (3 * (FRAMES - 1)) as f64;
        }
    }
    println!("decoded vs swscale: mean abs diff {err:.2} (vs the next picture: {shifted:.2})");
    assert!(
        err < 4.0 && err * 2.0 < shifted,
        "decoded differs from swscale's by {err:.2} (next picture: {shifted:.2})"
    );
}
