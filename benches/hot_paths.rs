//! Hot-path timings: raw-frame conversion, the test pattern, muxing (Annex-B → AVCC, FLV tags,
//! RTMP chunking) and the software encoders (Opus: CPU per second of audio, with and without
//! the 44.1 -> 48 kHz resampler, beside FDK AAC on the same PCM).
//!
//! `cargo bench --bench hot_paths`. A plain `main` (no criterion) timing thread CPU time: every
//! figure is printed next to a baseline measured in the same run, as CONVENTIONS.md asks, since
//! absolute times on a shared machine mean little on their own.

use std::hint::black_box;
use std::time::Duration;

use kitepush::encode::pixel::copy_to_i420;
use kitepush::encode::{I420Buffer, PixelFormat, VideoFrame};
use kitepush::pattern::VideoPattern;

const W: u32 = 1280;
const H: u32 = 720;

/// CPU time of the calling thread: on a shared machine wall time mostly measures the neighbours.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux and Android.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` repeatedly for about `budget` of CPU time (after a warm-up) and returns the CPU
/// time per call.
fn time_per_op(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let start = thread_cpu_time();
    let mut n = 0u32;
    while thread_cpu_time() - start < budget {
        f();
        n += 1;
    }
    (thread_cpu_time() - start) / n
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo test --all-targets` builds and runs bench targets too, without `--bench`: building
    // them is the check there; measuring is `cargo bench`'s (scripts/bench) job.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark not run: use `cargo bench` or scripts/bench");
        return;
    }
    let budget = Duration::from_millis(1500);

    // Camera-like NV12 with a padded stride (64-byte aligned rows plus padding).
    let stride = W as usize + 64;
    let y = vec![100u8; stride * H as usize];
    let uv = vec![128u8; stride * H as usize / 2];
    let frame = VideoFrame {
        format: PixelFormat::KP_PIXEL_FORMAT_NV12,
        width: W,
        height: H,
        planes: [&y, &uv, &[]],
        strides: [stride, stride, 0],
    };
    let mut out = I420Buffer::new(W, H);

    // Baseline: one plain memcpy of the same number of bytes, the floor any conversion has.
    let src = vec![7u8; I420Buffer::size(W, H)];
    let mut dst = vec![0u8; src.len()];
    let memcpy = time_per_op(budget, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&dst);
    });
    println!("memcpy {}x{} I420-sized   {:8.3} ms  (baseline)", W, H, ms(memcpy));

    let nv12 = time_per_op(budget, || {
        copy_to_i420(black_box(&frame), &mut out).unwrap();
        black_box(&out);
    });
    println!(
        "NV12 -> I420 {}x{}         {:8.3} ms  {:5.2}x memcpy",
        W,
        H,
        ms(nv12),
        nv12.as_secs_f64() / memcpy.as_secs_f64()
    );

    // Same stride, planar chroma: isolates the cost of the NV12 de-interleave.
    let (u, v) = uv.split_at(uv.len() / 2);
    let i420_frame = VideoFrame {
        format: PixelFormat::KP_PIXEL_FORMAT_I420,
        planes: [&y, u, v],
        strides: [stride, stride / 2, stride / 2],
        ..frame
    };
    let i420 = time_per_op(budget, || {
        copy_to_i420(black_box(&i420_frame), &mut out).unwrap();
        black_box(&out);
    });
    println!(
        "I420 -> I420 {}x{}         {:8.3} ms  {:5.2}x memcpy",
        W,
        H,
        ms(i420),
        i420.as_secs_f64() / memcpy.as_secs_f64()
    );

    let mut pattern = VideoPattern::new(W, H);
    let mut i = 0u64;
    let fill = time_per_op(budget, || {
        pattern.fill(black_box(i), &mut out);
        i += 1;
        black_box(&out);
    });
    println!(
        "pattern fill {}x{}         {:8.3} ms  {:5.2}x memcpy",
        W,
        H,
        ms(fill),
        fill.as_secs_f64() / memcpy.as_secs_f64()
    );

    scale_bench(budget, &pattern_frame(&mut pattern));

    mux_bench(budget);
    #[cfg(feature = "openh264")]
    openh264_bench(budget);
    #[cfg(feature = "aac")]
    aac_bench();
    #[cfg(feature = "opus")]
    opus_bench();
}

/// A 720p test-pattern picture (planar), so the scaler sees real detail rather than flat planes.
fn pattern_frame(pattern: &mut VideoPattern) -> I420Buffer {
    let mut b = I420Buffer::new(W, H);
    pattern.fill(12, &mut b);
    b
}

/// 1280x720 -> 640x360 bilinear (what push_video does for a 720p camera into a 360p stream), from
/// I420 read in place and from padded NV12 (converted at full size first), against FFmpeg's swscale
/// doing the same I420 scaling (`-vf scale=640:360:flags=bilinear`, one thread) on the same picture
/// in the same run: its CPU time (`-benchmark` utime) over 300 frames, minus the same command with
/// no scaling (`-vf null`), per frame.
fn scale_bench(budget: Duration, src: &I420Buffer) {
    use kitepush::encode::pixel::{convert_scaled, Downscaler};
    use kitepush::pusher::VideoScaling;
    let (dw, dh) = (W / 2, H / 2);
    let fill = VideoScaling::KP_VIDEO_SCALING_FILL;
    let i420 = VideoFrame {
        format: PixelFormat::KP_PIXEL_FORMAT_I420,
        width: W,
        height: H,
        planes: [src.y(), src.u(), src.v()],
        strides: [W as usize, W as usize / 2, W as usize / 2],
    };
    let (mut out, mut scaler) = (I420Buffer::default(), Downscaler::default());
    let ours = time_per_op(budget, || {
        convert_scaled(black_box(&i420), &mut out, false, (dw, dh), fill, &mut scaler).unwrap();
        black_box(&out);
    });
    let stride = W as usize + 64;
    let mut y = vec![0u8; stride * H as usize];
    let mut uv = vec![0u8; stride * H as usize / 2];
    for r in 0..H as usize {
        y[r * stride..r * stride + W as usize].copy_from_slice(&src.y()[r * W as usize..(r + 1) * W as usize]);
    }
    for r in 0..H as usize / 2 {
        let cw = W as usize / 2;
        for x in 0..cw {
            uv[r * stride + 2 * x] = src.u()[r * cw + x];
            uv[r * stride + 2 * x + 1] = src.v()[r * cw + x];
        }
    }
    let nv12 = VideoFrame {
        format: PixelFormat::KP_PIXEL_FORMAT_NV12,
        planes: [&y, &uv, &[]],
        strides: [stride, stride, 0],
        ..i420
    };
    let ours_nv12 = time_per_op(budget, || {
        convert_scaled(black_box(&nv12), &mut out, false, (dw, dh), fill, &mut scaler).unwrap();
        black_box(&out);
    });
    let ffmpeg = swscale_per_frame(src, &format!("scale={dw}:{dh}:flags=bilinear"));
    let ratio = |ours: Duration| match ffmpeg {
        Some(f) => format!("{:5.2}x swscale ({:.3} ms)", ours.as_secs_f64() / f.as_secs_f64(), ms(f)),
        None => "(ffmpeg not found: no swscale baseline)".into(),
    };
    // The same I420 planes through the portable loops alone (the fallback on CPUs without the
    // SIMD passes, and what every CPU ran before them).
    use kitepush::encode::scale::{Plane, PlaneScaler};
    let (w, h, dwu, dhu) = (W as usize, H as usize, dw as usize, dh as usize);
    let mut luma = PlaneScaler::new_scalar((w, h), (dwu, dhu));
    let mut chroma = PlaneScaler::new_scalar((w / 2, h / 2), (dwu / 2, dhu / 2));
    let mut dst = I420Buffer::new(dw, dh);
    let scalar = time_per_op(budget, || {
        let (oy, ou, ov) = dst.planes_mut();
        luma.scale(&Plane { data: src.y(), stride: w, width: w, height: h }, oy);
        chroma.scale(&Plane { data: src.u(), stride: w / 2, width: w / 2, height: h / 2 }, ou);
        chroma.scale(&Plane { data: src.v(), stride: w / 2, width: w / 2, height: h / 2 }, ov);
        black_box(&dst);
    });
    println!("scale I420 {}x{} -> {dw}x{dh}  {:8.3} ms  {}", W, H, ms(ours), ratio(ours));
    println!("scale NV12 {}x{} -> {dw}x{dh}  {:8.3} ms  {}", W, H, ms(ours_nv12), ratio(ours_nv12));
    println!("  (scalar fallback, I420)         {:8.3} ms  {}", ms(scalar), ratio(scalar));
}

/// swscale's CPU time per frame for the filter `vf` on `src`, or None without ffmpeg.
fn swscale_per_frame(src: &I420Buffer, vf: &str) -> Option<Duration> {
    use std::process::Command;
    const FRAMES: u32 = 300;
    let path = std::env::temp_dir().join(format!("kitepush-scale-bench-{}.yuv", std::process::id()));
    std::fs::write(&path, &src.data).ok()?;
    let utime = |vf: &str| -> Option<f64> {
        let size = format!("{W}x{H}");
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-benchmark", "-threads", "1", "-filter_threads", "1"])
            .args(["-stream_loop", &(FRAMES - 1).to_string(), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", &size])
            .arg("-i")
            .arg(&path)
            .args(["-vf", vf, "-f", "null", "-"])
            .output()
            .ok()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let field = err.split("utime=").nth(1)?;
        field.trim_start().split('s').next()?.trim().parse().ok()
    };
    let (with, without) = (utime(vf), utime("null"));
    let _ = std::fs::remove_file(&path);
    Some(Duration::from_secs_f64(((with? - without?) / f64::from(FRAMES)).max(0.0)))
}

/// The per-frame work between the encoder and the socket, on a 20 KB access unit (a 720p P-frame
/// at ~5 Mbit/s): Annex-B → AVCC, the whole FLV tag, and RTMP chunking at 4096 bytes.
fn mux_bench(budget: Duration) {
    use kitepush::core::annexb::annexb_to_avcc;
    use kitepush::pusher::AvcPacketizer;
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    // SPS, PPS, IDR slice with 3-byte start codes inside, like x264 output; payload bytes avoid 0-2
    // so no false start codes appear.
    let sps: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
        0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
    ];
    let mut au = vec![0, 0, 0, 1];
    au.extend_from_slice(sps);
    au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xcb, 0x83, 0xcb, 0x20, 0, 0, 1, 0x65]);
    let mut x = 0x2545_f491u32;
    au.extend((0..20_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        3 + (x % 253) as u8
    }));
    let mut dst = Vec::with_capacity(au.len() + 64);
    let memcpy = time_per_op(budget, || {
        dst.clear();
        dst.extend_from_slice(black_box(&au));
        black_box(&dst);
    });
    println!("memcpy 20 KB access unit        {:8.4} ms  (baseline)", ms(memcpy));
    let avcc = time_per_op(budget, || {
        dst.clear();
        black_box(annexb_to_avcc(black_box(&au), &mut dst).unwrap());
    });
    println!(
        "Annex-B -> AVCC 20 KB          {:8.4} ms  {:5.2}x memcpy",
        ms(avcc),
        avcc.as_secs_f64() / memcpy.as_secs_f64()
    );
    let mut packetizer = AvcPacketizer::default();
    let tag = time_per_op(budget, || {
        black_box(packetizer.packetize(black_box(&au), 0).unwrap());
    });
    println!(
        "FLV video tag 20 KB (+record)  {:8.4} ms  {:5.2}x memcpy",
        ms(tag),
        tag.as_secs_f64() / memcpy.as_secs_f64()
    );
    let mut serializer = ChunkSerializer::new();
    serializer.set_max_chunk_size(4096, RtmpTimestamp::new(0)).unwrap();
    let mut ts = 0u32;
    let data = bytes::Bytes::from(au.clone());
    let chunk = time_per_op(budget, || {
        ts += 33;
        let p =
            MessagePayload { timestamp: RtmpTimestamp::new(ts), type_id: 9, message_stream_id: 1, data: data.clone() };
        black_box(serializer.serialize(&p, false, false).unwrap());
    });
    println!(
        "RTMP chunking 20 KB @4096      {:8.4} ms  {:5.2}x memcpy",
        ms(chunk),
        chunk.as_secs_f64() / memcpy.as_secs_f64()
    );
}

#[cfg(feature = "openh264")]
fn openh264_bench(budget: Duration) {
    use kitepush::encode::openh264::OpenH264Encoder;
    use kitepush::encode::{VideoEncoder, VideoEncoderConfig};

    let fps = 30.0;
    let mut enc = OpenH264Encoder::new(&VideoEncoderConfig {
        width: W,
        height: H,
        fps,
        bitrate_kbps: 2500,
        keyframe_interval: 60,
        threads: 1,
    })
    .unwrap();
    // Pre-render the pictures so only the encoder is timed.
    let mut pattern = VideoPattern::new(W, H);
    let pics: Vec<I420Buffer> = (0..60)
        .map(|i| {
            let mut p = I420Buffer::default();
            pattern.fill(i, &mut p);
            p
        })
        .collect();
    let mut au = Vec::with_capacity(1 << 20);
    let mut n = 0usize;
    let mut bytes = 0usize;
    let per_frame = time_per_op(budget * 4, || {
        au.clear();
        enc.encode(&pics[n % pics.len()], &mut au).unwrap();
        bytes += au.len();
        n += 1;
    });
    let frame_budget = Duration::from_secs_f64(1.0 / f64::from(fps));
    println!(
        "openh264 720p 2500k 1 thread {:8.3} ms  {:6.1} fps  {:5.2}x real time ({} frames, {:.0} kbit/s)",
        ms(per_frame),
        1.0 / per_frame.as_secs_f64(),
        frame_budget.as_secs_f64() / per_frame.as_secs_f64(),
        n,
        bytes as f64 * 8.0 / (n as f64 / f64::from(fps)) / 1000.0,
    );
}

#[cfg(feature = "aac")]
fn aac_bench() {
    use kitepush::encode::fdk_aac::FdkAacEncoder;
    use kitepush::encode::{AudioEncoder, AudioEncoderConfig};
    use kitepush::pattern::Tone;

    let (rate, channels) = (44100u32, 2u32);
    let mut enc = FdkAacEncoder::new(&AudioEncoderConfig { sample_rate: rate, channels, bitrate_kbps: 128 }).unwrap();
    let seconds = 20;
    let mut pcm = vec![0i16; (rate * channels * seconds) as usize];
    Tone::new(rate, channels, 440.0).fill(&mut pcm);
    let mut aus = 0usize;
    let start = thread_cpu_time();
    // 10 ms chunks, as a capture callback delivers them.
    for chunk in pcm.chunks((rate / 100 * channels) as usize) {
        enc.encode(chunk, &mut |_| aus += 1).unwrap();
    }
    enc.flush(&mut |_| aus += 1).unwrap();
    let took = thread_cpu_time() - start;
    println!(
        "fdk-aac 44.1k stereo 128k      {:8.3} ms per AU  {:6.0}x real time ({aus} AUs)",
        ms(took) / aus as f64,
        f64::from(seconds) / took.as_secs_f64()
    );
}

/// CPU per second of audio: Opus (the WebRTC output's audio) at the shipped complexity and at
/// libopus's default 10, from 48 kHz and from 44.1 kHz (resampled), and the resampler alone;
/// FDK AAC on the same PCM as the baseline.
#[cfg(feature = "opus")]
fn opus_bench() {
    use kitepush::encode::opus::{OpusEncoder, COMPLEXITY};
    use kitepush::encode::resample::Resampler;
    use kitepush::encode::{AudioEncoder, AudioEncoderConfig};
    use kitepush::pattern::Tone;

    let seconds = 20u32;
    let pcm_at = |rate: u32| {
        let mut pcm = vec![0i16; (rate * 2 * seconds) as usize];
        Tone::new(rate, 2, 440.0).fill(&mut pcm);
        pcm
    };
    // CPU ms per second of audio, fed in 10 ms chunks as a capture callback delivers them.
    let per_second = |rate: u32, enc: &mut dyn AudioEncoder| {
        let pcm = pcm_at(rate);
        let mut packets = 0usize;
        let start = thread_cpu_time();
        for chunk in pcm.chunks((rate / 100 * 2) as usize) {
            enc.encode(black_box(chunk), &mut |p| packets += black_box(p).len().min(1)).unwrap();
        }
        enc.flush(&mut |_| packets += 1).unwrap();
        (ms(thread_cpu_time() - start) / f64::from(seconds), packets)
    };
    let cfg = |rate| AudioEncoderConfig { sample_rate: rate, channels: 2, bitrate_kbps: 128 };

    #[cfg(feature = "aac")]
    {
        let mut aac = kitepush::encode::fdk_aac::FdkAacEncoder::new(&cfg(44100)).unwrap();
        let (cpu, _) = per_second(44100, &mut aac);
        println!("fdk-aac 44.1k stereo 128k      {cpu:8.3} ms CPU per s of audio  (baseline)");
    }
    for (rate, complexity) in [(48000, COMPLEXITY), (44100, COMPLEXITY), (48000, 10), (44100, 10)] {
        let mut enc = OpusEncoder::with_complexity(&cfg(rate), complexity).unwrap();
        let (cpu, packets) = per_second(rate, &mut enc);
        let path = if rate == 48000 { "48k     " } else { "44.1k rs" };
        println!(
            "opus {path} stereo 128k c{complexity:<2}  {cpu:8.3} ms CPU per s of audio  {:6.0}x real time ({packets} packets)",
            1000.0 / cpu
        );
    }
    let pcm = pcm_at(44100);
    let mut r = Resampler::new(44100, 48000, 2).unwrap();
    let mut out = 0usize;
    let start = thread_cpu_time();
    for chunk in pcm.chunks(441 * 2) {
        r.process(black_box(chunk), &mut |o| out += black_box(o).len());
    }
    let cpu = ms(thread_cpu_time() - start) / f64::from(seconds);
    println!("resample 44.1k -> 48k stereo   {cpu:8.3} ms CPU per s of audio  ({} frames out)", out / 2);
}
