//! Timed messages (issue 15): `send_message` SEIs in the video, read back from what real servers
//! recorded, with the crate's own FLV reader and SEI parser and checked against FFmpeg.

mod common;

use common::pushing::{encoded_test_media, Harnessed, Source, Spec};
use common::*;
use kitepush::core::flv::{FileReader, TAG_SCRIPT, TAG_VIDEO};
use kitepush::core::media::Codec;
use kitepush::core::sei;
use kitepush::pusher::{
    AudioConfig, AudioEncoderKind, CaptureTimestamps, EventKind, MessageFlag, PusherConfig, VideoConfig,
    VideoEncoderKind,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A message with a counter and the byte runs emulation prevention must escape.
fn message(k: u32) -> Vec<u8> {
    let mut m = format!("msg {k} ").into_bytes();
    m.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0]);
    m.extend_from_slice(&k.to_be_bytes());
    m
}

/// One video frame of an FLV file: its presentation time (ms) and the user data SEIs in it.
#[derive(Debug)]
struct VideoFrame {
    pts_ms: i64,
    user_data: Vec<sei::UserData>,
}

/// The video frames (not sequence headers) of an FLV recording, AVC or Enhanced-RTMP HEVC, and its
/// script tags' bodies with their times.
fn read_flv(path: &Path) -> (Vec<VideoFrame>, Vec<(u32, Vec<u8>)>) {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut frames = Vec::new();
    let mut scripts = Vec::new();
    for t in FileReader::new(f).unwrap() {
        let t = t.unwrap();
        match t.tag_type {
            TAG_VIDEO if t.body[0] & 0x0f == 7 && t.body[1] == 1 => {
                let cts = i32::from_be_bytes([if t.body[2] & 0x80 != 0 { 0xff } else { 0 }, t.body[2], t.body[3], t.body[4]]);
                let user_data = sei::parse_length_prefixed(Codec::H264, &t.body[5..]);
                frames.push(VideoFrame { pts_ms: t.timestamp_ms as i64 + cts as i64, user_data });
            }
            TAG_VIDEO => {
                if let Some(ex) = kitepush::core::flv::parse_ex_video(&t.body) {
                    use kitepush::core::flv::{EX_PACKET_CODED_FRAMES, EX_PACKET_CODED_FRAMES_X};
                    if matches!(ex.packet_type, EX_PACKET_CODED_FRAMES | EX_PACKET_CODED_FRAMES_X) {
                        let user_data = sei::parse_length_prefixed(Codec::Hevc, ex.payload);
                        frames.push(VideoFrame { pts_ms: t.timestamp_ms as i64 + ex.cts_ms as i64, user_data });
                    }
                }
            }
            TAG_SCRIPT => scripts.push((t.timestamp_ms, t.body)),
            _ => {}
        }
    }
    (frames, scripts)
}

/// Messages (app UUID) per frame index.
fn messages_by_frame(frames: &[VideoFrame], uuid: &[u8; 16]) -> Vec<(usize, Vec<u8>)> {
    frames
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.user_data.iter().filter(|u| &u.uuid == uuid).map(move |u| (i, u.payload.clone())))
        .collect()
}

/// FFmpeg's own SEI parser on the recording: the user data unregistered messages it saw
/// (`trace_headers` prints each SEI payload type), and no error while doing so.
fn ffmpeg_user_data_count(path: &Path) -> usize {
    require_tool("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "trace", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg trace_headers: {}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    // The payload type line of every SEI message, then its UUID bytes.
    log.lines().filter(|l| l.contains("payload_type") && l.trim_end().ends_with("= 5")).count()
}

#[test]
fn messages_ride_on_the_next_encoded_frame_to_nginx() {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("messages");
    let spec = Spec::default();
    let mut h = Harnessed::new(spec.config(&nginx.url(&key)));
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut src = Source::new(&spec);
    let mut sent_on = Vec::new();
    for i in 0..spec.frames() {
        // Every 500 ms of stream time; the message belongs to the picture pushed next.
        if i % 15 == 7 {
            let k = sent_on.len() as u32;
            h.pusher.send_message(&message(k), 0).unwrap();
            sent_on.push(i as usize);
        }
        src.push_one(&h.pusher);
    }
    h.pusher.stop(Duration::from_secs(20)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    assert_eq!(sent_on.len(), 20);
    assert_eq!((stats.messages_accepted, stats.messages_sent, stats.messages_dropped), (20, 20, 0), "{stats:?}");

    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let (frames, _) = read_flv(&rec);
    assert_eq!(frames.len() as u64, spec.frames());
    let got = messages_by_frame(&frames, &sei::MESSAGE_UUID);
    let want: Vec<(usize, Vec<u8>)> = sent_on.iter().enumerate().map(|(k, &i)| (i, message(k as u32))).collect();
    assert_eq!(got, want, "every message once, in order, on the picture pushed after the call");
    assert_eq!(ffmpeg_user_data_count(&rec), 20, "FFmpeg's SEI parser sees every message");
    assert_eq!(decode_errors(&rec), "");
}

fn pre_encoded_config(url: &str, kind: VideoEncoderKind) -> PusherConfig {
    let mut config = Spec::default().config(url);
    config.video = Some(VideoConfig { encoder: kind, width: 320, height: 240, ..VideoConfig::default() });
    config.audio = None;
    config
}

#[test]
fn pre_encoded_h264_messages_with_their_amf_twins_in_both_recordings() {
    let dir = tmp_dir("messages-pre");
    let (aus, _) = encoded_test_media(&dir, 4, 30);
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("messages-pre");
    let mut config = pre_encoded_config(&nginx.url(&key), VideoEncoderKind::KP_ENCODER_PASSTHROUGH);
    config.messages.uuid = *b"0123456789abcdef";
    config.messages.amf_name = "onShopCard".into();
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let local = dir.join("local.flv");
    h.pusher.start_recording(&local).unwrap();
    let text = |k: usize| format!("card {k}: 19.99 EUR");
    let mut sent_on = Vec::new();
    for (i, au) in aus.iter().enumerate() {
        if i % 10 == 3 {
            let k = sent_on.len();
            let r = h.pusher.send_message(text(k).as_bytes(), MessageFlag::KP_MESSAGE_AMF as u32);
            r.unwrap();
            sent_on.push(i);
        }
        let pts = i as i64 * 1_000_000 / 30;
        h.pusher.push_h264(au, pts, pts).unwrap();
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    assert_eq!((stats.messages_accepted, stats.messages_sent, stats.messages_dropped), (12, 12, 0), "{stats:?}");

    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    for path in [&rec, &local] {
        let (frames, scripts) = read_flv(path);
        assert_eq!(frames.len(), aus.len(), "{}", path.display());
        let got = messages_by_frame(&frames, b"0123456789abcdef");
        let want: Vec<(usize, Vec<u8>)> = sent_on.iter().enumerate().map(|(k, &i)| (i, text(k).into_bytes())).collect();
        assert_eq!(got, want, "{}", path.display());
        assert_eq!(decode_errors(path), "", "{}", path.display());
        let amf: Vec<(u32, Vec<u8>)> =
            scripts.into_iter().filter(|s| s.1.windows(10).any(|w| w == b"onShopCard")).collect();
        if path == &local {
            let want_amf: Vec<(u32, Vec<u8>)> = sent_on
                .iter()
                .enumerate()
                .map(|(k, &i)| (frames[i].pts_ms as u32, kitepush::core::text_data::payload("onShopCard", &text(k))))
                .collect();
            assert_eq!(amf, want_amf, "the AMF data messages at their frames' times");
        } else {
            eprintln!("nginx recording: {} onShopCard script tags", amf.len());
        }
    }
}
