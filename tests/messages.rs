//! Timed messages (issue 15): `send_message` SEIs in the video, read back from what real servers
//! recorded, with the crate's own FLV reader and SEI parser and checked against FFmpeg.

mod common;

use common::pushing::{encoded_test_media, Harnessed, Source, Spec};
use common::*;
use kitepush::core::flv::{FileReader, TAG_SCRIPT, TAG_VIDEO};
use kitepush::core::media::Codec;
use kitepush::core::sei;
use kitepush::pusher::{CaptureTimestamps, EventKind, MessageFlag, PusherConfig, VideoConfig, VideoEncoderKind};
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
                let cts =
                    i32::from_be_bytes([if t.body[2] & 0x80 != 0 { 0xff } else { 0 }, t.body[2], t.body[3], t.body[4]]);
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

/// What FFmpeg's H.264 decoder hands to filters: (frame number, payload) of each
/// user_data_unregistered SEI with `uuid` (showinfo prints the decoded frames' side data).
fn ffmpeg_decoded_user_data(path: &Path, uuid: &[u8; 16]) -> Vec<(usize, Vec<u8>)> {
    require_tool("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-vf", "showinfo", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg showinfo: {}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    let h = uuid.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let uuid_text = format!("UUID={}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
    let (mut frame, mut ours, mut found) = (None, false, Vec::new());
    for line in log.lines() {
        let text = line.split("] ").nth(1).unwrap_or("").trim();
        if let Some(n) = text.strip_prefix("n:") {
            frame = n.split_whitespace().next().and_then(|n| n.parse::<usize>().ok());
        } else if text.starts_with("UUID=") {
            ours = text == uuid_text;
        } else if let (true, Some(hex)) = (ours, text.strip_prefix("User Data=")) {
            let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            found.push((frame.expect("a frame line before its side data"), bytes));
            ours = false;
        }
    }
    found
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
    assert_eq!(ffmpeg_decoded_user_data(&rec, &sei::MESSAGE_UUID), want, "FFmpeg's decoder sees the same");
    assert_eq!(decode_errors(&rec), "");
}

/// x264 with B-frames (feature `x264`; run by scripts/test's x264 step): pictures leave the encoder
/// in decode order, and a message rides on the first one whose presentation time follows the
/// call. In presentation order that is the picture pushed next or, when that one is a B-frame
/// still held for reordering, a later one, at most `bframes` pictures later. Each message still
/// arrives once and in order.
#[cfg(feature = "x264")]
#[test]
fn x264_b_frames_carry_each_message_once_within_the_reorder_depth() {
    use kitepush::pusher::X264Options;
    const BFRAMES: u32 = 2;
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("messages-x264");
    let spec = Spec::default();
    let mut config = spec.config(&nginx.url(&key));
    let video = config.video.as_mut().unwrap();
    video.encoder = VideoEncoderKind::KP_ENCODER_X264;
    video.x264 =
        X264Options { bframes: BFRAMES, preset: "faster".into(), profile: "main".into(), ..X264Options::default() };
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut src = Source::new(&spec);
    let mut sent_on = Vec::new();
    for i in 0..spec.frames() {
        if i % 7 == 3 {
            h.pusher.send_message(&message(sent_on.len() as u32), 0).unwrap();
            sent_on.push(i as i64);
        }
        src.push_one(&h.pusher);
    }
    h.pusher.stop(Duration::from_secs(20)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    let n = sent_on.len() as u64;
    assert_eq!((stats.messages_accepted, stats.messages_sent, stats.messages_dropped), (n, n, 0), "{stats:?}");

    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let (frames, _) = read_flv(&rec);
    assert_eq!(frames.len() as u64, spec.frames());
    let pts_step = |f: &VideoFrame| (f.pts_ms * 30 + 500) / 1000;
    let out_of_order = frames.windows(2).filter(|w| w[1].pts_ms < w[0].pts_ms).count();
    assert!(out_of_order > 0, "no B-frames were made: the test would not exercise reordering");
    let got = messages_by_frame(&frames, &sei::MESSAGE_UUID);
    let counters: Vec<u32> =
        got.iter().map(|(_, m)| u32::from_be_bytes(m[m.len() - 4..].try_into().unwrap())).collect();
    assert_eq!(counters, (0..n as u32).collect::<Vec<_>>(), "each message once, in order");
    let mut later = 0;
    for ((i, m), &k) in got.iter().zip(&counters) {
        assert_eq!(m, &message(k));
        let (planned, on) = (sent_on[k as usize], pts_step(&frames[*i]));
        assert!((planned..=planned + BFRAMES as i64).contains(&on), "message {k}: planned for {planned}, on {on}");
        later += (on > planned) as u32;
    }
    eprintln!("x264 with {BFRAMES} B-frames: {n} messages, {later} on a picture after the planned one");
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

/// Annex-B HEVC access units from libx265 (no B-frames, an IDR every 25 frames, 25 fps), cut
/// before each access unit delimiter.
fn encoded_hevc(dir: &Path, frames: usize) -> Vec<Vec<u8>> {
    use kitepush::core::hevc;
    require_tool("ffmpeg");
    let es = dir.join("in.hevc");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v"])
        .arg(frames.to_string())
        .args(["-c:v", "libx265", "-x265-params", "log-level=error:keyint=25:min-keyint=25:bframes=0:aud=1"])
        .args(["-f", "hevc"])
        .arg(&es)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let stream = std::fs::read(&es).unwrap();
    common::pushing::access_units(&stream, |n| hevc::nal_type(n) == hevc::NAL_AUD)
}

/// The access units of an Annex-B elementary stream (cut at each delimiter), each as its NAL
/// units (without start codes).
fn access_units(es: &[u8], codec: Codec) -> Vec<Vec<Vec<u8>>> {
    let mut aus: Vec<Vec<Vec<u8>>> = Vec::new();
    for nal in sei::annexb_nals(es) {
        let aud = match codec {
            Codec::Hevc => (nal[0] >> 1) & 0x3f == 35,
            _ => nal[0] & 0x1f == 9,
        };
        if aud || aus.is_empty() {
            aus.push(Vec::new());
        }
        aus.last_mut().unwrap().push(nal.to_vec());
    }
    aus
}

#[test]
fn pre_encoded_hevc_messages_over_srt_follow_the_parameter_sets_in_the_ts() {
    use common::srt::{SrtListener, SrtOptions};
    const FRAMES: usize = 100;
    let dir = tmp_dir("messages-hevc-srt");
    let aus = encoded_hevc(&dir, FRAMES);
    assert_eq!(aus.len(), FRAMES);
    let mut listener = SrtListener::srt_live_transmit(SrtOptions::default());
    let mut h = Harnessed::new(pre_encoded_config(&listener.url(), VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC));
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut sent_on = Vec::new();
    for (i, au) in aus.iter().enumerate() {
        // Every 500 ms, and on a keyframe too (frame 25), where the TS muxer adds the parameter sets.
        if i % 12 == 1 || i == 25 {
            let k = sent_on.len() as u32;
            // The AMF flag is ignored on SRT: the SEI still goes.
            h.pusher.send_message(&message(k), k % 2 * MessageFlag::KP_MESSAGE_AMF as u32).unwrap();
            sent_on.push(i);
        }
        let pts = i as i64 * 40_000;
        h.pusher.push_hevc(au, pts, pts).unwrap();
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    listener.wait_exit(Duration::from_secs(10));
    let stats = h.pusher.stats();
    assert_eq!((stats.messages_sent, stats.messages_dropped), (sent_on.len() as u64, 0), "{stats:?}");

    // The elementary stream as FFmpeg demuxes it from the TS.
    let es = dir.join("out.hevc");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(listener.output())
        .args(["-map", "0:v", "-c", "copy", "-f", "hevc"])
        .arg(&es)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let units = access_units(&std::fs::read(&es).unwrap(), Codec::Hevc);
    assert_eq!(units.len(), FRAMES);
    let mut got = Vec::new();
    for (i, nals) in units.iter().enumerate() {
        let types: Vec<u8> = nals.iter().map(|n| (n[0] >> 1) & 0x3f).collect();
        for (j, nal) in nals.iter().enumerate() {
            for u in sei::parse_nal(Codec::Hevc, nal).into_iter().filter(|u| u.uuid == sei::MESSAGE_UUID) {
                // After the delimiter and parameter sets, before the first slice (types 0..=31).
                assert!(types[..j].iter().all(|&t| t >= 32), "SEI after a slice in unit {i}: {types:?}");
                assert!(types[j..].iter().any(|&t| t < 32), "no slice after the SEI in unit {i}: {types:?}");
                got.push((i, u.payload));
            }
        }
        if i == 25 {
            assert_eq!(&types[..4], &[35, 32, 33, 34], "AUD, VPS, SPS, PPS first in the keyframe: {types:?}");
        }
    }
    let want: Vec<(usize, Vec<u8>)> = sent_on.iter().enumerate().map(|(k, &i)| (i, message(k as u32))).collect();
    assert_eq!(got, want);
    assert_eq!(ffmpeg_decoded_user_data(listener.output(), &sei::MESSAGE_UUID), want, "FFmpeg's HEVC decoder");
    assert_eq!(decode_errors(listener.output()), "");
}

#[test]
fn amf_twins_reach_an_rtmp_player_that_keeps_data_messages() {
    // nginx-rtmp (arut's module, Debian's) passes no data message to players or recordings (its
    // issues #481/#706); FFmpeg as the RTMP server turns onTextData into a text stream and writes
    // it back as onTextData script tags.
    require_tool("ffmpeg");
    let dir = tmp_dir("messages-amf");
    let (aus, _) = encoded_test_media(&dir, 3, 30);
    let port = free_port();
    let out = dir.join("ffmpeg.flv");
    let url = format!("rtmp://127.0.0.1:{port}/live/amf");
    let mut server = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-listen", "1", "-i", &url, "-map", "0", "-c", "copy"])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // No probe of the port: FFmpeg's one-shot listener would take the probe as its client. The
    // pusher's reconnects wait for it instead.
    let mut h = Harnessed::new(pre_encoded_config(&url, VideoEncoderKind::KP_ENCODER_PASSTHROUGH));
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));
    let text = |k: usize| format!("lottery draw {k}");
    let mut sent_on = Vec::new();
    for (i, au) in aus.iter().enumerate() {
        if i % 15 == 2 {
            h.pusher.send_message(text(sent_on.len()).as_bytes(), MessageFlag::KP_MESSAGE_AMF as u32).unwrap();
            sent_on.push(i);
        }
        let pts = i as i64 * 1_000_000 / 30;
        h.pusher.push_h264(au, pts, pts).unwrap();
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let status = server.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "ffmpeg server: {err}");

    let (frames, scripts) = read_flv(&out);
    let texts: Vec<(u32, Vec<u8>)> =
        scripts.into_iter().filter(|s| s.1.windows(10).any(|w| w == b"onTextData")).collect();
    assert_eq!(texts.len(), sent_on.len(), "{texts:?}");
    for (k, (ts, body)) in texts.iter().enumerate() {
        let t = text(k);
        assert!(body.windows(t.len()).any(|w| w == t.as_bytes()), "message {k} in {body:?}");
        assert_eq!(*ts as i64, frames[sent_on[k]].pts_ms, "message {k} at its frame's time");
    }
    // The SEIs went too.
    assert_eq!(messages_by_frame(&frames, &sei::MESSAGE_UUID).len(), sent_on.len());
}

/// Pushes pre-encoded access units at their real-time pace (30 fps); before unit `i`, `before(i)`.
fn push_real_time(pusher: &kitepush::pusher::Pusher, aus: &[Vec<u8>], mut before: impl FnMut(usize)) {
    let t0 = std::time::Instant::now();
    for (i, au) in aus.iter().enumerate() {
        let due = t0 + Duration::from_micros(i as u64 * 1_000_000 / 30);
        std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
        before(i);
        let pts = i as i64 * 1_000_000 / 30;
        pusher.push_h264(au, pts, pts).unwrap();
    }
}

#[test]
fn messages_of_frames_dropped_for_congestion_move_on_or_are_counted() {
    use common::proxy::{Fault, Proxy};
    use std::net::SocketAddr;
    let dir = tmp_dir("messages-congestion");
    let (aus, _) = encoded_test_media(&dir, 10, 30);
    let nginx = Nginx::start(NginxOptions::default());
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], nginx.port())));
    let key = unique_key("messages-congestion");
    let mut config = pre_encoded_config(&proxy.url(nginx.app(), &key), VideoEncoderKind::KP_ENCODER_PASSTHROUGH);
    // A short budget: the queue drops video within a second of the throttle.
    config.send_queue_ms = 600;
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut sent_on = Vec::new();
    push_real_time(&h.pusher, &aus, |i| {
        if i == 30 {
            // A third of what the stream needs, from its second second on.
            proxy.set(Fault::Throttle { kbit_per_s: 60 });
        }
        if i % 15 == 7 {
            h.pusher.send_message(&message(sent_on.len() as u32), 0).unwrap();
            sent_on.push(i);
        }
    });
    proxy.set(Fault::Pass);
    h.pusher.stop(Duration::from_secs(20)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    eprintln!(
        "congestion: {} video frames dropped; messages accepted {}, sent {}, dropped {}",
        stats.video_frames_dropped_congestion, stats.messages_accepted, stats.messages_sent, stats.messages_dropped
    );
    assert!(stats.video_frames_dropped_congestion > 30, "the throttle must make the queue drop: {stats:?}");
    assert_eq!(stats.messages_accepted, sent_on.len() as u64);
    assert_eq!(
        stats.messages_sent + stats.messages_dropped,
        stats.messages_accepted,
        "every message counted: {stats:?}"
    );

    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let (frames, _) = read_flv(&rec);
    let got = messages_by_frame(&frames, &sei::MESSAGE_UUID);
    assert_eq!(got.len() as u64, stats.messages_sent, "what was counted sent arrived");
    // In order, each once; a message whose frame was dropped comes on a later frame, never an earlier one.
    let counters: Vec<u32> =
        got.iter().map(|(_, m)| u32::from_be_bytes(m[m.len() - 4..].try_into().unwrap())).collect();
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "order: {counters:?}");
    let moved = got
        .iter()
        .zip(&counters)
        .filter(|((i, m), &k)| {
            assert_eq!(m, &message(k), "message {k} intact");
            let planned_pts = (sent_on[k as usize] as i64 * 1000 + 15) / 30;
            assert!(frames[*i].pts_ms >= planned_pts, "message {k} on a frame before its call");
            frames[*i].pts_ms > planned_pts + 1
        })
        .count();
    eprintln!("{moved} messages moved past dropped frames");
    assert!(moved > 0, "no message had to move: the test did not exercise the carry");
    assert_eq!(decode_errors(&rec), "");
}

/// A connection that stalls with messages in its socket buffer (written, never acknowledged):
/// when the stall ends it, those messages go back to the queue and ride on the new session's
/// first picture. Every message is in one of the two recordings exactly once, in order; none is
/// counted sent and missing.
#[test]
fn messages_a_broken_connection_had_in_flight_ride_on_the_next_session() {
    use common::proxy::{Fault, Proxy};
    use kitepush::core::reconnect::ReconnectPolicy;
    use kitepush::pusher::PusherState;
    let dir = tmp_dir("messages-in-flight");
    let (aus, _) = encoded_test_media(&dir, 10, 30);
    let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let proxy = Proxy::start(([127, 0, 0, 1], nginx.port()).into());
    let key = unique_key("messages-in-flight");
    let mut config = pre_encoded_config(&proxy.url(nginx.app(), &key), VideoEncoderKind::KP_ENCODER_PASSTHROUGH);
    config.stall_timeout = Duration::from_secs(3);
    config.reconnect = ReconnectPolicy { first_delay: Duration::from_millis(100), ..ReconnectPolicy::default() };
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    // The stall begins at frame 90 (3 s). The proxy's own socket buffer takes (and acknowledges)
    // a few tens of KB before the pusher's writes back up: messages in that stretch would be
    // lost with the proxy's connection without either side knowing, as with a server that dies
    // holding unread data, so none is sent in the stall's first 1.5 s. The messages sent after
    // it wait unacknowledged in the pusher's socket until the stall timeout (frame ~180) ends
    // the connection: those are what this test is about.
    const STALL_AT: usize = 90;
    let ambiguous = STALL_AT..STALL_AT + 45;
    let mut sent_on = Vec::new();
    let mut in_flight_on = Vec::new();
    let mut cut = false;
    push_real_time(&h.pusher, &aus, |i| {
        if i == STALL_AT {
            proxy.set(Fault::Stall);
        }
        let state = h.pusher.stats().destinations[0].state;
        if i > STALL_AT && !cut && state != Some(PusherState::KP_STATE_PUBLISHING) {
            // The stall was seen: the dead connection goes, the path is back for the next one.
            proxy.set(Fault::Cut);
            cut = true;
        }
        if i % 10 == 5 && !ambiguous.contains(&i) {
            if i > STALL_AT && !cut {
                in_flight_on.push(i);
            }
            h.pusher.send_message(&message(sent_on.len() as u32), 0).unwrap();
            sent_on.push(i);
        }
    });
    if !cut {
        let events: Vec<_> = h.events.try_iter().map(|e| (e.timestamp_ms, e.kind)).collect();
        panic!("the stall was never detected: {events:?} {:?}", h.pusher.stats().destinations[0]);
    }
    h.pusher.stop(Duration::from_secs(20)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    eprintln!(
        "in flight: messages accepted {}, sent {}, dropped {}; {} sent while the connection was stalled \
         (frames {in_flight_on:?}); video lost to the outage {}",
        stats.messages_accepted,
        stats.messages_sent,
        stats.messages_dropped,
        in_flight_on.len(),
        stats.video_frames_lost_outage
    );
    assert!(in_flight_on.len() >= 3, "too few messages sent into the stalled connection: {in_flight_on:?}");
    assert_eq!(stats.messages_accepted, sent_on.len() as u64);
    assert_eq!((stats.messages_sent, stats.messages_dropped), (stats.messages_accepted, 0), "{stats:?}");

    let recs = nginx.recordings_of(&key);
    assert_eq!(recs.len(), 2, "one recording per session: {recs:?}");
    let mut counters = Vec::new();
    let mut first_of_second = Vec::new();
    for (n, rec) in recs.iter().enumerate() {
        nginx.wait_recording_closed(rec, Duration::from_secs(10));
        assert_eq!(decode_errors(rec), "", "{}", rec.display());
        let (frames, _) = read_flv(rec);
        for (i, m) in messages_by_frame(&frames, &sei::MESSAGE_UUID) {
            let k = u32::from_be_bytes(m[m.len() - 4..].try_into().unwrap());
            assert_eq!(m, message(k), "message {k} intact");
            if n == 1 && i == 0 {
                first_of_second.push(k);
            }
            counters.push(k);
        }
    }
    eprintln!("messages on the second session's first picture: {first_of_second:?}");
    let want: Vec<u32> = (0..sent_on.len() as u32).collect();
    assert_eq!(counters, want, "every message exactly once, in order, across both sessions");
    // The stalled connection's messages came over on the new session's first picture (with the
    // ones of the frames skipped to reach its keyframe).
    let stalled: Vec<u32> = in_flight_on.iter().map(|i| sent_on.iter().position(|s| s == i).unwrap() as u32).collect();
    assert!(stalled.iter().all(|k| first_of_second.contains(k)), "{stalled:?} not in {first_of_second:?}");
}

/// stop() whose deadline passes while the connection is stalled: the messages the connection had
/// written but the server never acknowledged count as dropped, not sent, and what counts as sent
/// is exactly what the recording has. (With the requeue at the stop deadline left out, the
/// stalled messages count as sent and are missing from the recording.)
#[test]
fn messages_undelivered_when_the_stop_deadline_passes_count_as_dropped() {
    use common::proxy::{Fault, Proxy};
    let dir = tmp_dir("messages-stop-deadline");
    let (aus, _) = encoded_test_media(&dir, 6, 30);
    let nginx = Nginx::start(NginxOptions::default());
    let proxy = Proxy::start(([127, 0, 0, 1], nginx.port()).into());
    let key = unique_key("messages-stop-deadline");
    let mut config = pre_encoded_config(&proxy.url(nginx.app(), &key), VideoEncoderKind::KP_ENCODER_PASSTHROUGH);
    // Longer than the test: the stop, not the stall detector, ends this connection.
    config.stall_timeout = Duration::from_secs(30);
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    // As in the in-flight test above: no message in the stall's first 1.5 s, which the proxy's own
    // socket buffer acknowledges and loses with it.
    const STALL_AT: usize = 60;
    let ambiguous = STALL_AT..STALL_AT + 45;
    let mut sent_on = Vec::new();
    let mut stalled = 0;
    push_real_time(&h.pusher, &aus, |i| {
        if i == STALL_AT {
            proxy.set(Fault::Stall);
        }
        if i % 10 == 5 && !ambiguous.contains(&i) {
            stalled += usize::from(i > STALL_AT);
            h.pusher.send_message(&message(sent_on.len() as u32), 0).unwrap();
            sent_on.push(i);
        }
    });
    h.pusher.stop(Duration::from_millis(1500)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    // The dead path stays dead: what the pusher's kernel still held dies with the proxy's sockets.
    proxy.set(Fault::Cut);
    let stats = h.pusher.stats();
    eprintln!(
        "stop deadline: messages accepted {}, sent {}, dropped {}; {stalled} sent into the stalled connection",
        stats.messages_accepted, stats.messages_sent, stats.messages_dropped
    );
    assert!(stalled >= 3, "too few messages sent into the stalled connection: {sent_on:?}");
    assert_eq!(stats.messages_accepted, sent_on.len() as u64);
    assert_eq!(stats.messages_sent + stats.messages_dropped, stats.messages_accepted, "{stats:?}");

    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    assert_eq!(decode_errors(&rec), "");
    let (frames, _) = read_flv(&rec);
    let got = messages_by_frame(&frames, &sei::MESSAGE_UUID);
    let counters: Vec<u32> =
        got.iter().map(|(_, m)| u32::from_be_bytes(m[m.len() - 4..].try_into().unwrap())).collect();
    eprintln!(
        "recording: {} frames, messages {:?}; sent on {sent_on:?}",
        frames.len(),
        got.iter().map(|(i, _)| *i).zip(&counters).collect::<Vec<_>>()
    );
    assert!(stats.messages_dropped >= stalled as u64, "the stalled connection's messages count as dropped: {stats:?}");
    let want: Vec<u32> = (0..stats.messages_sent as u32).collect();
    assert_eq!(counters, want, "the recording holds exactly the messages counted sent");
}

#[test]
fn capture_timestamps_measure_the_push_to_receive_latency_over_srt() {
    use common::srt::{SrtListener, SrtOptions};
    let dir = tmp_dir("messages-capture");
    let (aus, _) = encoded_test_media(&dir, 5, 30);
    let listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(20));
    let mut config = pre_encoded_config(&listener.url(), VideoEncoderKind::KP_ENCODER_PASSTHROUGH);
    config.messages.capture_timestamps = CaptureTimestamps::KP_CAPTURE_TIMESTAMPS_EVERY_FRAME;
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));

    // srt-live-transmit writes each packet as it gets it: tail its output, noting when bytes came.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tail = {
        let (path, stop) = (listener.output().to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let mut arrivals: Vec<(usize, u64)> = Vec::new();
            let mut data = Vec::new();
            let mut f = std::fs::File::open(&path).unwrap();
            loop {
                let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                let n = std::io::Read::read_to_end(&mut f, &mut data).unwrap();
                if n > 0 {
                    arrivals.push((data.len(), wall_us()));
                }
                if done {
                    return (data, arrivals);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut queue_ms = 0;
    // Messages too: over SRT they ride in the same access units, before the capture time.
    let mut sent = 0u32;
    push_real_time(&h.pusher, &aus, |i| {
        queue_ms = queue_ms.max(h.pusher.stats().queue_ms);
        if i % 15 == 5 {
            h.pusher.send_message(&message(sent), 0).unwrap();
            sent += 1;
        }
    });
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let srt_latency_ms = h.pusher.stats().destinations[0].latency_ms;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ts, arrivals) = tail.join().unwrap();

    // The video PID's payload bytes, each with the time the TS packet holding it arrived.
    let mut es = Vec::new();
    let mut es_arrival = Vec::new();
    for (k, p) in ts.chunks_exact(188).enumerate() {
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        if pid != kitepush::core::ts::PID_VIDEO || p[3] & 0x10 == 0 {
            continue;
        }
        let start = if p[3] & 0x20 != 0 { 5 + p[4] as usize } else { 4 };
        let end_of_packet = (k + 1) * 188;
        let at = arrivals.iter().find(|a| a.0 >= end_of_packet).expect("arrival").1;
        es.extend_from_slice(&p[start.min(188)..]);
        es_arrival.resize(es.len(), at);
    }
    let mut latencies = Vec::new();
    let mut last_pts = None;
    let mut messages = Vec::new();
    for nal in sei::annexb_nals(&es) {
        for u in sei::parse_nal(Codec::H264, nal) {
            if u.uuid == sei::MESSAGE_UUID {
                messages.push(u.payload);
                continue;
            }
            if u.uuid != sei::CAPTURE_TIME_UUID {
                continue;
            }
            let (capture, pts) = sei::parse_capture_time(&u.payload).unwrap();
            assert!(last_pts.is_none_or(|l| pts > l), "pts increase: {pts} after {last_pts:?}");
            last_pts = Some(pts);
            let end = nal.as_ptr() as usize - es.as_ptr() as usize + nal.len();
            latencies.push(es_arrival[end - 1] as i64 - capture as i64);
        }
    }
    assert_eq!(messages, (0..sent).map(message).collect::<Vec<_>>(), "messages over SRT, in order");
    assert!(latencies.len() as f64 >= aus.len() as f64 * 0.95, "{} stamps for {} frames", latencies.len(), aus.len());
    latencies.sort_unstable();
    let bound_us = (queue_ms as i64 + srt_latency_ms as i64 + 100) * 1000;
    let p = |q: usize| latencies[(latencies.len() * q / 100).min(latencies.len() - 1)];
    eprintln!(
        "capture-to-receive latency over SRT on loopback: min {} ms, median {} ms, p95 {} ms, max {} ms \
         (queue max {queue_ms} ms, SRT latency {srt_latency_ms} ms)",
        latencies[0] / 1000,
        p(50) / 1000,
        p(95) / 1000,
        latencies.last().unwrap() / 1000
    );
    assert!(latencies[0] > 0, "a frame received before it was pushed: {} us", latencies[0]);
    // The typical frame (a loaded 2-core machine may hold a few back longer; printed above).
    assert!(
        p(50) < bound_us,
        "median {} us over the queue's {queue_ms} ms + SRT's {srt_latency_ms} ms + 100 ms",
        p(50)
    );
}

fn wall_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}
