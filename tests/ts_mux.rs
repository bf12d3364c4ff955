//! The MPEG-TS muxer against a real decoder: FFmpeg encodes H.264 (with B-frames) or HEVC and
//! AAC, the streams are split and converted to the muxer's input (length-prefixed access units
//! with their decoder configuration record, raw AAC frames with their AudioSpecificConfig), muxed
//! to a .ts file, and FFmpeg/ffprobe must read it back exactly: codecs, size, every frame, no
//! decode errors, audio and video starting together. A counting allocator checks that a warm
//! muxer allocates nothing per unit.

mod common;

use common::{decode_errors, probe, require_tool, tmp_dir};
use kitepush::core::ts::{TsMuxer, TsVideo, TS_PACKET};
use kitepush::core::{adts, annexb, hevc};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::process::Command;

/// Counts allocations made by the current thread while enabled (tests run on parallel threads).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note_alloc() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards to the system allocator unchanged; the counters are thread-locals without
// destructors and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const FPS: u32 = 30;
const SECONDS: u32 = 3;
const FRAMES: usize = (FPS * SECONDS) as usize;

fn run(cmd: &str, args: &[&str]) -> String {
    require_tool(cmd);
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// One encoded video unit as the send queue will carry it.
struct VideoUnit {
    dts_ms: u64,
    cts_ms: i32,
    keyframe: bool,
    /// 4-byte length-prefixed NAL units, no parameter sets or delimiters.
    data: Vec<u8>,
}

/// Encodes 3 s of `testsrc2` with `codec` (B-frames on, a keyframe every second, AUDs to split
/// on) into an MP4 for the timestamps and an Annex-B file for the bytes; returns the units
/// (times shifted so the first DTS is 0) and the decoder configuration record built from the
/// first unit's parameter sets with the crate's record builders.
fn encoded_video(dir: &Path, video: TsVideo) -> (Vec<VideoUnit>, Vec<u8>) {
    let mp4 = dir.join("v.mp4");
    let es = dir.join("v.es");
    let (mp4s, ess) = (mp4.to_str().unwrap(), es.to_str().unwrap());
    let (codec, params_key, params, bsf, format) = match video {
        TsVideo::H264 => {
            ("libx264", "-x264-params", "aud=1:keyint=30:min-keyint=30:bframes=3", "h264_mp4toannexb", "h264")
        }
        TsVideo::Hevc => (
            "libx265",
            "-x265-params",
            "log-level=error:aud=1:keyint=30:min-keyint=30:bframes=3",
            "hevc_mp4toannexb",
            "hevc",
        ),
    };
    let frames = FRAMES.to_string();
    let size = "testsrc2=size=320x240:rate=30";
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            size,
            "-frames:v",
            &frames,
            "-c:v",
            codec,
            params_key,
            params,
            mp4s,
        ],
    );
    run("ffmpeg", &["-v", "error", "-y", "-i", mp4s, "-c", "copy", "-bsf:v", bsf, "-f", format, ess]);

    let tb = run("ffprobe", &["-v", "error", "-show_entries", "stream=time_base", "-of", "csv=p=0", mp4s]);
    let den: i64 = tb.trim().trim_start_matches("1/").parse().expect("time base 1/N");
    let packets = run("ffprobe", &["-v", "error", "-show_entries", "packet=pts,dts,flags", "-of", "csv=p=0", mp4s]);
    let times: Vec<(i64, i64, bool)> = packets
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].starts_with('K'))
        })
        .collect();
    let first_dts = times.iter().map(|t| t.1).min().unwrap();
    let ms = |ticks: i64| ((ticks - first_dts) * 1000 / den) as u64;

    let stream = std::fs::read(&es).unwrap();
    let is_aud = |n: &[u8]| match video {
        TsVideo::H264 => annexb::nal_type(n) == annexb::NAL_AUD,
        TsVideo::Hevc => hevc::nal_type(n) == hevc::NAL_AUD,
    };
    let mut cuts = common::pushing::start_codes_of(&stream, is_aud);
    // The bitstream filter puts the record's NAL units before the first delimiter: with x265 the
    // whole first unit comes without one, with x264 only its SEI comes before it.
    let is_slice = |n: &[u8]| match video {
        TsVideo::H264 => (1..=5).contains(&annexb::nal_type(n)),
        TsVideo::Hevc => hevc::nal_type(n) < 32,
    };
    match cuts.first() {
        Some(&0) => {}
        Some(&first) if !annexb::nal_units(&stream[..first]).any(is_slice) => cuts[0] = 0,
        _ => cuts.insert(0, 0),
    }
    cuts.push(stream.len());
    assert_eq!(cuts.len() - 1, FRAMES, "access units in the elementary stream");
    assert_eq!(times.len(), FRAMES);

    let mut record = None;
    let mut units = vec![];
    for (w, &(pts, dts, key)) in cuts.windows(2).zip(&times) {
        let au = &stream[w[0]..w[1]];
        let mut data = vec![];
        let keyframe = match video {
            TsVideo::H264 => {
                let info = annexb::annexb_to_avcc(au, &mut data).unwrap();
                if let (None, Some(sps), Some(pps)) = (&record, info.sps, info.pps) {
                    record = Some(annexb::avc_decoder_configuration_record(&au[sps], &au[pps]).unwrap());
                }
                info.keyframe
            }
            TsVideo::Hevc => {
                let info = hevc::annexb_to_length_prefixed(au, &mut data).unwrap();
                if let (None, Some(vps), Some(sps), Some(pps)) = (&record, info.vps, info.sps, info.pps) {
                    record = Some(hevc::decoder_configuration_record(&au[vps], &au[sps], &au[pps]).unwrap());
                }
                info.keyframe
            }
        };
        assert_eq!(keyframe, key, "keyframe flags of the MP4 and the bitstream agree");
        let (dts_ms, pts_ms) = (ms(dts), ms(pts));
        units.push(VideoUnit { dts_ms, cts_ms: (pts_ms - dts_ms) as i32, keyframe, data });
    }
    assert!(units.iter().any(|u| u.cts_ms > 0), "the test stream should have B-frames");
    assert!(units.windows(2).all(|w| w[1].dts_ms > w[0].dts_ms), "DTS strictly increasing in ms");
    (units, record.expect("parameter sets in the first access unit"))
}

/// 3 s of a 1 kHz tone from FFmpeg's AAC encoder: the raw frames and the ASC of their ADTS
/// headers.
fn encoded_audio(dir: &Path) -> (Vec<Vec<u8>>, [u8; 2]) {
    let aac = dir.join("a.aac");
    let t = SECONDS.to_string();
    let src = "sine=frequency=1000:sample_rate=44100";
    run(
        "ffmpeg",
        &["-v", "error", "-y", "-f", "lavfi", "-i", src, "-t", &t, "-c:a", "aac", "-f", "adts", aac.to_str().unwrap()],
    );
    let data = std::fs::read(&aac).unwrap();
    let mut asc = None;
    let frames: Vec<Vec<u8>> = adts::adts_frames(&data)
        .map(|f| {
            let (h, raw) = f.unwrap();
            asc.get_or_insert(h.audio_specific_config());
            raw.to_vec()
        })
        .collect();
    (frames, asc.unwrap())
}

/// Stream time of AAC frame `i` at 44.1 kHz, on the video's clock (`offset_ms`).
fn audio_ms(i: usize, offset_ms: u64) -> u64 {
    offset_ms + i as u64 * 1024 * 1000 / 44100
}

/// Muxes the units in time order (as the send queue interleaves them) into one buffer, reusing
/// `out` per unit like a destination worker does; returns the TS and the number of heap
/// allocations made on this thread while muxing.
fn mux(
    m: &mut TsMuxer,
    video: &[VideoUnit],
    audio: &[Vec<u8>],
    audio_offset_ms: u64,
    out: &mut Vec<u8>,
) -> (Vec<u8>, u64) {
    let mut ts = Vec::with_capacity(4 << 20);
    let (mut v, mut a) = (0, 0);
    let mut allocs = 0;
    while v < video.len() || a < audio.len() {
        out.clear();
        let video_next = a == audio.len() || (v < video.len() && video[v].dts_ms <= audio_ms(a, audio_offset_ms));
        ALLOCS.with(|c| c.set(0));
        COUNTING.with(|c| c.set(true));
        if video_next {
            let u = &video[v];
            m.write_video(u.dts_ms, u.cts_ms, u.keyframe, &u.data, out).unwrap();
            v += 1;
        } else {
            m.write_audio(audio_ms(a, audio_offset_ms), &audio[a], out).unwrap();
            a += 1;
        }
        COUNTING.with(|c| c.set(false));
        allocs += ALLOCS.with(Cell::get);
        assert_eq!(out.len() % TS_PACKET, 0, "whole packets per unit");
        ts.extend_from_slice(out);
    }
    (ts, allocs)
}

fn check_file(path: &Path, codec: &str, audio_frames: Option<usize>) {
    let p = probe(path);
    let v = p.video.expect("a video stream");
    assert_eq!((v.codec.as_str(), v.width, v.height), (codec, 320, 240));
    assert_eq!(v.frames, FRAMES as u64, "decoded video frames");
    if let Some(n) = audio_frames {
        let a = p.audio.expect("an audio stream");
        assert_eq!((a.codec.as_str(), a.sample_rate, a.channels), ("aac", 44100, 1));
        assert_eq!(a.frames, n as u64, "decoded audio frames");
        let gap = (a.start_time - v.start_time).abs();
        assert!(gap <= 0.050, "A/V start {:.3} s vs {:.3} s", a.start_time, v.start_time);
        eprintln!("{codec}: video start {:.3} s, audio start {:.3} s", v.start_time, a.start_time);
    } else {
        assert!(p.audio.is_none());
    }
    let errors = decode_errors(path);
    assert!(errors.is_empty(), "ffmpeg decode errors:\n{errors}");
}

fn av_round_trip(video: TsVideo, codec: &str) {
    let dir = tmp_dir(&format!("ts-{codec}"));
    let (units, record) = encoded_video(&dir, video);
    let (frames, asc) = encoded_audio(&dir);
    let mut m = TsMuxer::new(Some(video), true);
    m.set_video_config(&record).unwrap();
    m.set_audio_config(&asc).unwrap();
    // Audio and video share one clock: the shift that made the first DTS 0 applies to audio too,
    // so the first audio frame sits at the first picture's presentation time.
    let first_pts = units.iter().map(|u| u.dts_ms + u.cts_ms as u64).min().unwrap();
    let mut out = Vec::new();
    let (ts, warmup_allocs) = mux(&mut m, &units, &frames, first_pts, &mut out);
    // The counter works: the cold muxer and buffer grew while muxing.
    assert!(warmup_allocs > 0);
    let path = dir.join("out.ts");
    std::fs::write(&path, &ts).unwrap();
    check_file(&path, codec, Some(frames.len()));

    // A second connection: reset, then the same media again (as after a reconnect) decodes the
    // same, and the warm muxer allocates nothing per unit.
    m.reset();
    let (ts2, allocs) = mux(&mut m, &units, &frames, first_pts, &mut out);
    assert_eq!(allocs, 0, "heap allocations while muxing with a warm muxer and buffer");
    assert_eq!(ts2, ts, "after reset the output is the one a fresh muxer writes");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn h264_with_b_frames_and_aac_decode_exactly() {
    av_round_trip(TsVideo::H264, "h264");
}

#[test]
fn hevc_with_b_frames_and_aac_decode_exactly() {
    av_round_trip(TsVideo::Hevc, "hevc");
}

#[test]
fn h264_without_audio_decodes_exactly() {
    let dir = tmp_dir("ts-h264-only");
    let (units, record) = encoded_video(&dir, TsVideo::H264);
    let mut m = TsMuxer::new(Some(TsVideo::H264), false);
    m.set_video_config(&record).unwrap();
    let (ts, _) = mux(&mut m, &units, &[], 0, &mut Vec::new());
    let path = dir.join("out.ts");
    std::fs::write(&path, &ts).unwrap();
    check_file(&path, "h264", None);
    std::fs::remove_dir_all(&dir).ok();
}
