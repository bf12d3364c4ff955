//! Pre-encoded H.265/HEVC over Enhanced RTMP: FFmpeg's libx265 output (with B-frames) pushed
//! through the SDK to the built-in receiver, then taken back out of the received FLV with the
//! crate's own reader and decoded by FFmpeg. (FFmpeg 5.1 cannot demux Enhanced FLV, and
//! nginx-rtmp does not accept it, hence the receiver and the extraction here.)

mod common;

use common::pushing::Harnessed;
use common::{require_tool, tmp_dir};
use kitepush::core::flv::{self, FileReader, FOURCC_HEVC, TAG_SCRIPT, TAG_VIDEO};
use kitepush::core::hevc;
use kitepush::pusher::{EventKind, PusherConfig, VideoConfig, VideoEncoderKind};
use kitepush::receiver::{Receiver, ReceiverConfig};
use kitepush::ResultCode;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const FRAMES: usize = 75;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The hvcC box of an MP4 file (what FFmpeg's muxer wrote), without its box header.
fn hvcc_of(mp4: &Path) -> Vec<u8> {
    let d = std::fs::read(mp4).unwrap();
    let at = d.windows(4).position(|w| w == b"hvcC").expect("hvcC box");
    let size = u32::from_be_bytes(d[at - 4..at].try_into().unwrap()) as usize;
    d[at + 4..at - 4 + size].to_vec()
}

/// The arrays of an hvcC record as (NAL type, NAL units).
fn hvcc_arrays(rec: &[u8]) -> Vec<(u8, Vec<Vec<u8>>)> {
    let mut pos = 23;
    let mut out = vec![];
    for _ in 0..rec[22] {
        let t = rec[pos] & 0x3f;
        let n = u16::from_be_bytes([rec[pos + 1], rec[pos + 2]]);
        pos += 3;
        let mut nals = vec![];
        for _ in 0..n {
            let len = u16::from_be_bytes([rec[pos], rec[pos + 1]]) as usize;
            nals.push(rec[pos + 2..pos + 2 + len].to_vec());
            pos += 2 + len;
        }
        out.push((t, nals));
    }
    out
}

/// Annex-B access units (cut before each AUD; the first has none) with pts/dts in microseconds from the MP4 they came
/// from, shifted so the first dts is 0, keyframe flags, and the hvcC FFmpeg's MP4 muxer wrote.
#[allow(clippy::type_complexity)]
fn encoded_hevc(dir: &Path) -> (Vec<Vec<u8>>, Vec<(i64, i64)>, Vec<bool>, Vec<u8>) {
    require_tool("ffmpeg");
    require_tool("ffprobe");
    let mp4 = dir.join("in.mp4");
    let es = dir.join("in.hevc");
    let (mp4s, ess) = (mp4.to_str().unwrap(), es.to_str().unwrap());
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-frames:v",
            &FRAMES.to_string(),
            "-c:v",
            "libx265",
            "-tag:v",
            "hvc1",
            "-x265-params",
            "log-level=error:keyint=25:min-keyint=25:bframes=3:aud=1",
            mp4s,
        ],
    );
    run("ffmpeg", &["-v", "error", "-y", "-i", mp4s, "-c", "copy", "-bsf:v", "hevc_mp4toannexb", "-f", "hevc", ess]);
    let tb = run("ffprobe", &["-v", "error", "-show_entries", "stream=time_base", "-of", "csv=p=0", mp4s]);
    let den: i64 = tb.trim().trim_start_matches("1/").parse().expect("time base 1/N");
    let packets = run("ffprobe", &["-v", "error", "-show_entries", "packet=pts,dts,flags", "-of", "csv=p=0", mp4s]);
    let mut keys = vec![];
    let mut times: Vec<(i64, i64)> = packets
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            keys.push(f[2].starts_with('K'));
            let us = |v: &str| v.parse::<i64>().unwrap() * 1_000_000 / den;
            (us(f[0]), us(f[1]))
        })
        .collect();
    let shift = -times.iter().map(|t| t.1).min().unwrap();
    for t in &mut times {
        *t = (t.0 + shift, t.1 + shift);
    }
    let stream = std::fs::read(&es).unwrap();
    // The first unit comes without a delimiter (the bitstream filter puts the parameter sets there).
    let aus = common::pushing::access_units(&stream, |n| hevc::nal_type(n) == hevc::NAL_AUD);
    (aus, times, keys, hvcc_of(&mp4))
}

fn config(url: &str) -> PusherConfig {
    PusherConfig {
        url: url.to_string(),
        video: Some(VideoConfig {
            encoder: VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC,
            width: 320,
            height: 240,
            fps: 25.0,
            bitrate_kbps: 300,
            ..VideoConfig::default()
        }),
        audio: None,
        ..PusherConfig::default()
    }
}

/// The frames' decoded pictures as MD5s, in output order.
fn frame_md5s(path: &Path) -> Vec<String> {
    let out = run("ffmpeg", &["-v", "error", "-i", path.to_str().unwrap(), "-f", "framemd5", "-"]);
    out.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit(',').next().unwrap().trim().to_string()).collect()
}

#[test]
fn libx265_stream_through_enhanced_rtmp_to_the_receiver_decodes_identically() {
    let dir = tmp_dir("hevc");
    let (aus, times, keys, ffmpeg_hvcc) = encoded_hevc(&dir);
    assert_eq!(aus.len(), FRAMES);
    assert_eq!(times.len(), FRAMES);
    assert!(times.iter().any(|(p, d)| p != d), "the test stream should have B-frames");
    assert_eq!(keys.iter().filter(|k| **k).count(), 3);

    let out = dir.join("received.flv");
    let receiver = Receiver::start(ReceiverConfig::new(&out)).unwrap();
    let mut h = Harnessed::new(config(&receiver.url("live", "hevc")));
    // Wrong entry point for the configured codec, and garbage: refused, stream unharmed.
    assert_eq!(h.pusher.push_hevc(&aus[0], 0, 0).unwrap_err().code(), ResultCode::KP_ERR_NOT_STARTED);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));
    assert_eq!(h.pusher.push_h264(&aus[0], 0, 0).unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
    assert_eq!(h.pusher.push_hevc(&[1, 2, 3], 0, 0).unwrap_err().code(), ResultCode::KP_ERR_BAD_BITSTREAM);
    for (au, (pts, dts)) in aus.iter().zip(&times) {
        h.pusher.push_hevc(au, *pts, *dts).unwrap();
    }
    h.pusher.stop(Duration::from_secs(20)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    assert_eq!(h.pusher.stats().video_frames_sent, FRAMES as u64);
    assert!(receiver.wait_sessions_ended(1, Duration::from_secs(20)).0);
    receiver.stop();

    // Take the stream apart with the crate's reader: metadata, one sequence start, the frames
    // with their composition times, one sequence end.
    let reader = FileReader::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap())).unwrap();
    let mut record = None;
    let mut frames = vec![];
    let mut packet_types = vec![];
    let mut codec_id = None;
    for tag in reader {
        let tag = tag.unwrap();
        match tag.tag_type {
            TAG_SCRIPT => {
                let values = rml_amf0::deserialize(&mut std::io::Cursor::new(&tag.body)).unwrap();
                if let Some(rml_amf0::Amf0Value::Object(p)) = values.get(1) {
                    codec_id = p.get("videocodecid").cloned();
                }
            }
            TAG_VIDEO => {
                let ex = flv::parse_ex_video(&tag.body).expect("an enhanced video tag");
                assert_eq!(ex.fourcc, FOURCC_HEVC);
                packet_types.push(ex.packet_type);
                match ex.packet_type {
                    flv::EX_PACKET_SEQUENCE_START => record = Some(ex.payload.to_vec()),
                    flv::EX_PACKET_CODED_FRAMES | flv::EX_PACKET_CODED_FRAMES_X => {
                        frames.push((tag.timestamp_ms, ex.cts_ms, ex.keyframe, ex.payload.to_vec(), ex.packet_type))
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    assert_eq!(codec_id, Some(rml_amf0::Amf0Value::Number(1_752_589_105.0)), "videocodecid is 'hvc1'");
    assert_eq!(packet_types.first(), Some(&flv::EX_PACKET_SEQUENCE_START));
    assert_eq!(packet_types.last(), Some(&flv::EX_PACKET_SEQUENCE_END));
    assert_eq!(packet_types.iter().filter(|t| **t == flv::EX_PACKET_SEQUENCE_START).count(), 1);
    assert_eq!(frames.len(), FRAMES);
    for (i, ((ts, cts, key, _, packet_type), (pts, dts))) in frames.iter().zip(&times).enumerate() {
        assert_eq!(*ts as i64, dts / 1000, "frame {i} dts");
        assert_eq!(*cts as i64, (pts - dts) / 1000, "frame {i} composition time");
        assert_eq!(*key, keys[i], "frame {i} keyframe flag");
        // CodedFramesX exactly where the composition time is 0.
        let x = if pts == dts { flv::EX_PACKET_CODED_FRAMES_X } else { flv::EX_PACKET_CODED_FRAMES };
        assert_eq!(*packet_type, x, "frame {i} packet type");
    }

    // The record against FFmpeg's: the fixed part byte for byte (FFmpeg's MP4 muxer also writes
    // 0 for the segmentation/parallelism hints with x265's defaults), and the same parameter sets;
    // FFmpeg's also carries x265's SEI from the encoder headers, which FLV leaves in-band.
    let record = record.expect("a sequence start");
    assert_eq!(&record[..22], &ffmpeg_hvcc[..22]);
    let ours = hvcc_arrays(&record);
    let theirs: Vec<_> = hvcc_arrays(&ffmpeg_hvcc).into_iter().filter(|(t, _)| (32..=34).contains(t)).collect();
    assert_eq!(ours, theirs);

    // Back to Annex-B: parameter sets before each keyframe, 4-byte lengths to start codes.
    let params = hevc::record_parameter_sets(&record).unwrap();
    let mut es = vec![];
    for (_, _, key, payload, _) in &frames {
        if *key {
            for p in &params {
                es.extend_from_slice(&[0, 0, 0, 1]);
                es.extend_from_slice(p);
            }
        }
        let mut rest = &payload[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            es.extend_from_slice(&[0, 0, 0, 1]);
            es.extend_from_slice(&rest[4..4 + len]);
            rest = &rest[4 + len..];
        }
    }
    let received = dir.join("received.hevc");
    std::fs::write(&received, &es).unwrap();
    let errors = Command::new("ffmpeg")
        .args(["-v", "error", "-i", received.to_str().unwrap(), "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(errors.status.success() && errors.stderr.is_empty(), "{}", String::from_utf8_lossy(&errors.stderr));
    let sent = frame_md5s(&dir.join("in.hevc"));
    assert_eq!(sent.len(), FRAMES);
    assert_eq!(frame_md5s(&received), sent, "the received stream decodes to the same pictures");
    let _ = std::fs::remove_dir_all(&dir);
}
