//! Pushes a file as fast as the pipeline takes it, for benchmarks (benches/x264_compare.rs):
//! either raw video frames through an encoder, or an H.264 Annex-B stream pre-encoded
//! (`push_h264`, no encoder), to an `rtmp[s]://` or `srt://` URL. Video only. Prints what was sent
//! on stderr.
//!
//! `push_file URL --raw FILE --size WxH [--format i420|nv12|nv21|yuy2|uyvy|rgba|bgra] [--encoder openh264|x264]
//!  [--fps N] [--bitrate KBPS] [--keyint N] [--threads N] [--preset P] [--tune T] [--vbv MAXRATE:BUFSIZE]`
//! `push_file URL --h264 FILE [--fps N] [--realtime]`
//!
//! `--realtime` pushes each access unit at its time (as `ffmpeg -re`) instead of as fast as the
//! pipeline takes them: SRT's receiver plays packets out at the rate they were sent, and a live
//! stream pushed faster than real time overruns it.

use kitepush::core::annexb::{nal_type, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SEI, NAL_SLICE, NAL_SPS};
use kitepush::encode::{PixelFormat, VideoFrame};
use kitepush::pusher::{Pusher, PusherConfig, PusherState, VideoConfig, VideoEncoderKind, X264Options};
use kitepush::Error;
use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    url: String,
    raw: Option<String>,
    h264: Option<String>,
    width: u32,
    height: u32,
    format: PixelFormat,
    encoder: VideoEncoderKind,
    fps: f64,
    realtime: bool,
    bitrate: u32,
    keyint: u32,
    threads: u32,
    x264: X264Options,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        raw: None,
        h264: None,
        width: 1280,
        height: 720,
        format: PixelFormat::KP_PIXEL_FORMAT_I420,
        encoder: VideoEncoderKind::KP_ENCODER_OPENH264,
        fps: 30.0,
        realtime: false,
        bitrate: 2000,
        keyint: 60,
        threads: 1,
        x264: X264Options::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or(format!("{arg} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|_| format!("bad number {v}"));
        match arg.as_str() {
            "--raw" => a.raw = Some(val()?),
            "--h264" => a.h264 = Some(val()?),
            "--size" => {
                let v = val()?;
                let (w, h) = v.split_once('x').ok_or("--size is WxH")?;
                (a.width, a.height) = (num(w.into())? as u32, num(h.into())? as u32);
            }
            "--format" => {
                use PixelFormat::*;
                a.format = match val()?.as_str() {
                    "i420" => KP_PIXEL_FORMAT_I420,
                    "nv12" => KP_PIXEL_FORMAT_NV12,
                    "nv21" => KP_PIXEL_FORMAT_NV21,
                    "yuy2" => KP_PIXEL_FORMAT_YUY2,
                    "uyvy" => KP_PIXEL_FORMAT_UYVY,
                    "rgba" => KP_PIXEL_FORMAT_RGBA,
                    "bgra" => KP_PIXEL_FORMAT_BGRA,
                    f => return Err(format!("unknown format {f}")),
                }
            }
            "--encoder" => {
                a.encoder = match val()?.as_str() {
                    "openh264" => VideoEncoderKind::KP_ENCODER_OPENH264,
                    "x264" => VideoEncoderKind::KP_ENCODER_X264,
                    e => return Err(format!("unknown encoder {e}")),
                }
            }
            "--fps" => a.fps = num(val()?)?,
            "--realtime" => a.realtime = true,
            "--bitrate" => a.bitrate = num(val()?)? as u32,
            "--keyint" => a.keyint = num(val()?)? as u32,
            "--threads" => a.threads = num(val()?)? as u32,
            "--preset" => a.x264.preset = val()?,
            "--tune" => a.x264.tune = val()?,
            "--vbv" => {
                let v = val()?;
                let (m, b) = v.split_once(':').ok_or("--vbv is MAXRATE:BUFSIZE")?;
                (a.x264.vbv_maxrate_kbps, a.x264.vbv_bufsize_kbit) = (num(m.into())? as u32, num(b.into())? as u32);
            }
            s if ["rtmp://", "rtmps://", "srt://"].iter().any(|scheme| s.starts_with(scheme)) => a.url = s.into(),
            s => return Err(format!("unknown argument {s}")),
        }
    }
    if a.url.is_empty() || a.raw.is_some() == a.h264.is_some() {
        return Err("usage: push_file URL (--raw FILE --size WxH [options] | --h264 FILE) (see the source)".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("push_file failed: {e} ({:?})", e.code());
            ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> Result<(), Error> {
    let encoder = if a.h264.is_some() { VideoEncoderKind::KP_ENCODER_PASSTHROUGH } else { a.encoder };
    let config = PusherConfig {
        url: a.url.clone(),
        video: Some(VideoConfig {
            encoder,
            width: a.width,
            height: a.height,
            fps: a.fps as f32,
            bitrate_kbps: a.bitrate,
            keyframe_interval: a.keyint,
            threads: a.threads,
            x264: a.x264.clone(),
            ..VideoConfig::default()
        }),
        audio: None,
        ..PusherConfig::default()
    };
    let pusher = Pusher::new(config, None)?;
    pusher.start()?;
    let start = Instant::now();
    let connected = Instant::now() + Duration::from_secs(10);
    while pusher.state() != PusherState::KP_STATE_PUBLISHING {
        if Instant::now() > connected || pusher.state() == PusherState::KP_STATE_FAILED {
            return Err(pusher.failure().unwrap_or(Error::Timeout("not publishing after 10 s".into())));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let frames = match (&a.raw, &a.h264) {
        (Some(path), _) => push_raw(&pusher, &a, path)?,
        (_, Some(path)) => push_h264(&pusher, a.fps, a.realtime, path)?,
        _ => unreachable!("checked by parse"),
    };
    pusher.stop(Duration::from_secs(30))?;
    let s = pusher.stats();
    eprintln!(
        "pushed {frames} frames in {:.2} s: {} sent, {} dropped, {} bytes",
        start.elapsed().as_secs_f64(),
        s.video_frames_sent,
        s.video_frames_dropped_encoder + s.frames_dropped_network,
        s.bytes_sent
    );
    pusher.failure().map_or(Ok(()), Err)
}

fn pts_us(i: u64, fps: f64) -> i64 {
    (i as f64 * 1e6 / fps).round() as i64
}

/// Raw frames of the format's packed size, back to back.
fn push_raw(pusher: &Pusher, a: &Args, path: &str) -> Result<u64, Error> {
    let (w, h) = (a.width as usize, a.height as usize);
    use PixelFormat::*;
    let (frame_len, bpp) = match a.format {
        KP_PIXEL_FORMAT_I420 | KP_PIXEL_FORMAT_NV12 | KP_PIXEL_FORMAT_NV21 => (w * h * 3 / 2, 0),
        KP_PIXEL_FORMAT_YUY2 | KP_PIXEL_FORMAT_UYVY => (w * h * 2, 2),
        KP_PIXEL_FORMAT_RGBA | KP_PIXEL_FORMAT_BGRA => (w * h * 4, 4),
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::InvalidArgument(format!("{path}: {e}")))?;
    let mut buf = vec![0u8; frame_len];
    let mut i = 0u64;
    loop {
        match file.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(i),
            Err(e) => return Err(Error::Io(format!("{path}: {e}"))),
        }
        // As fast as the encoder goes, without overrunning its input queue (3 frames: no frame is
        // dropped). A few millisecond sleeps per frame keep this loop's own CPU out of the figures.
        while pusher.stats().video_frames_encoded + 2 <= i && pusher.state() != PusherState::KP_STATE_FAILED {
            std::thread::sleep(Duration::from_millis(3));
        }
        let frame = match a.format {
            KP_PIXEL_FORMAT_I420 => {
                let (y, rest) = buf.split_at(w * h);
                let (u, v) = rest.split_at(w * h / 4);
                VideoFrame {
                    format: a.format,
                    width: a.width,
                    height: a.height,
                    planes: [y, u, v],
                    strides: [w, w / 2, w / 2],
                }
            }
            KP_PIXEL_FORMAT_NV12 | KP_PIXEL_FORMAT_NV21 => {
                let (y, uv) = buf.split_at(w * h);
                VideoFrame {
                    format: a.format,
                    width: a.width,
                    height: a.height,
                    planes: [y, uv, &[]],
                    strides: [w, w, 0],
                }
            }
            _ => VideoFrame {
                format: a.format,
                width: a.width,
                height: a.height,
                planes: [&buf, &[], &[]],
                strides: [w * bpp, 0, 0],
            },
        };
        pusher.push_video(&frame, pts_us(i, a.fps))?;
        i += 1;
    }
}

/// The index just after the next `00 00 01` at or after `from`.
fn next_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        // The third byte of a start code is 1: anything above skips three bytes at once.
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// Splits an Annex-B stream into access units (a new one starts at an AUD, SPS, PPS or SEI, or at a
/// slice with first_mb_in_slice = 0, once the current one has a slice) and pushes each, reading
/// the file in blocks. Each byte is scanned once here (push_h264 scans it again to convert it).
fn push_h264(pusher: &Pusher, fps: f64, realtime: bool, path: &str) -> Result<u64, Error> {
    let began = Instant::now();
    let mut file = std::fs::File::open(path).map_err(|e| Error::InvalidArgument(format!("{path}: {e}")))?;
    let mut buf: Vec<u8> = Vec::with_capacity(2 << 20);
    let mut block = vec![0u8; 1 << 20];
    let (mut start, mut scan, mut frames) = (0usize, 0usize, 0u64);
    let mut has_slice = false;
    let mut eof = false;
    loop {
        // `scan`: where the search for the next start code resumes; everything before it belongs
        // to the access unit that starts at `start`.
        let boundary = loop {
            let Some(after) = next_start_code(&buf, scan) else { break None };
            if after >= buf.len() - 1 {
                // The NAL header (and the byte after it) are not read yet.
                break None;
            }
            let (t, next) = (nal_type(&buf[after..]), buf[after + 1]);
            let begins_picture = match t {
                NAL_AUD | NAL_SPS | NAL_PPS | NAL_SEI => true,
                NAL_SLICE | NAL_IDR => next & 0x80 != 0,
                _ => false,
            };
            if has_slice && begins_picture {
                let mut at = after - 3;
                if at > start && buf[at - 1] == 0 {
                    at -= 1; // a 4-byte start code
                }
                break Some((at, after));
            }
            has_slice |= t == NAL_SLICE || t == NAL_IDR;
            scan = after;
        };
        match boundary {
            Some((end, after)) => {
                if realtime {
                    let due = began + Duration::from_micros(pts_us(frames, fps) as u64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                pusher.push_h264(&buf[start..end], pts_us(frames, fps), -1)?;
                frames += 1;
                // push_h264 never blocks, and media pushed faster than real time is not late, so
                // nothing would stop the whole file from queueing in memory. Keep about half a
                // megabyte queued, as a blocking socket write would.
                if frames % 15 == 0 {
                    while pusher.stats().queue_bytes > 512 * 1024 && pusher.state() != PusherState::KP_STATE_FAILED {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                // The new unit's first NAL was examined already.
                let t = nal_type(&buf[after..]);
                (start, scan, has_slice) = (end, after, t == NAL_SLICE || t == NAL_IDR);
            }
            None if eof => {
                if start < buf.len() {
                    pusher.push_h264(&buf[start..], pts_us(frames, fps), -1)?;
                    frames += 1;
                }
                return Ok(frames);
            }
            None => {
                // Keep the unfinished unit, read the next block, resume the scan a little before
                // the old end (a start code, or the NAL header after it, may straddle it).
                buf.drain(..start);
                scan = scan.saturating_sub(start).max(buf.len().saturating_sub(4));
                start = 0;
                let n = file.read(&mut block).map_err(|e| Error::Io(format!("{path}: {e}")))?;
                eof = n == 0;
                buf.extend_from_slice(&block[..n]);
            }
        }
    }
}
