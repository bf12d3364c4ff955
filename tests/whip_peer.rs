//! The WHIP test peer proven with a reference publisher, FFmpeg 9's WHIP muxer: what the endpoint
//! (tests/peers/whip_endpoint.py) counts is what was sent, its HTTP side behaves as its flags say,
//! and frames from kitepush's own test pattern arrive with readable frame codes. The media tests run
//! in a loopback-only network namespace (`common::whip::in_loopback_netns`).

mod common;

use common::srt::ffmpeg9;
use common::whip::{in_loopback_netns, WhipEndpoint, WhipOptions, WhipStats};
use kitepush::encode::I420Buffer;
use kitepush::pattern::VideoPattern;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const FFMPEG_DEADLINE: Duration = Duration::from_secs(25);
const ENDPOINT_DEADLINE: Duration = Duration::from_secs(10);

/// FFmpeg 9 encoding to H.264 baseline the way a WebRTC receiver wants it (no B-frames, a keyframe
/// a second) and publishing over WHIP to `url`. `input` are the input arguments.
fn ffmpeg_whip(input: &[&str], extra: &[&str], url: &str, stdin: Stdio) -> Child {
    ffmpeg_whip_logging("error", input, extra, url, stdin)
}

/// [`ffmpeg_whip`] at another log level (`-v debug` shows each HTTP request it makes).
fn ffmpeg_whip_logging(level: &str, input: &[&str], extra: &[&str], url: &str, stdin: Stdio) -> Child {
    Command::new(ffmpeg9())
        .args(["-hide_banner", "-nostats", "-v", level])
        .args(input)
        .args(["-c:v", "libx264", "-profile:v", "baseline", "-tune", "zerolatency", "-bf", "0", "-g", "30"])
        .args(["-pix_fmt", "yuv420p"])
        .args(extra)
        .args(["-f", "whip", url])
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn FFmpeg 9")
}

/// Waits for FFmpeg to end (killing it past the deadline) and returns its status and stderr.
fn finish(mut child: Child) -> (ExitStatus, String) {
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for FFmpeg") {
            break status;
        }
        if start.elapsed() > FFMPEG_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("FFmpeg did not finish within {FFMPEG_DEADLINE:?}: {}", reader.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap_or_default())
}

/// ICE stayed on loopback: the endpoint sees no other interface and offered 127.0.0.1 only.
fn assert_loopback_only(stats: &WhipStats) {
    assert_eq!(stats.interfaces, ["lo"], "not in a loopback-only namespace: {}", stats.raw);
    let s = stats.session();
    assert!(!s.local_candidates.is_empty(), "the answer has no candidates: {}", stats.raw);
    assert!(s.local_candidates.iter().all(|c| c.starts_with("127.0.0.1:")), "{:?}", s.local_candidates);
}

#[test]
fn ffmpeg_push_is_decoded_by_the_endpoint() {
    if !in_loopback_netns("ffmpeg_push_is_decoded_by_the_endpoint") {
        return;
    }
    let ep = WhipEndpoint::start(WhipOptions::default());
    let input = [
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "5",
    ];
    let (status, log) = finish(ffmpeg_whip(&input, &["-c:a", "libopus", "-ac", "2"], &ep.http_url("x"), Stdio::null()));
    assert!(status.success(), "FFmpeg WHIP push failed ({status}):\n{log}");
    // FFmpeg DELETEs its session as it ends; frames still in the endpoint's decoder are counted by then.
    let stats = ep.wait_for(ENDPOINT_DEADLINE, "the session closed by DELETE", |s| {
        s.sessions.first().is_some_and(|s| s.closed_by.is_some())
    });
    eprintln!("endpoint stats: {}", stats.raw);
    assert_loopback_only(&stats);
    let s = stats.session();
    assert_eq!(s.closed_by.as_deref(), Some("delete"), "{}", stats.raw);
    assert_eq!((stats.posts, stats.deletes), (1, 1), "{}", stats.raw);
    assert!(s.states.iter().any(|st| st == "connected"), "{:?}", s.states);
    assert!(s.video_frames >= 140, "{} of 150 frames decoded: {}", s.video_frames, stats.raw);
    assert_eq!((s.width, s.height), (Some(320), Some(240)));
    assert_eq!(stats.decode_errors, 0, "decode errors: {}", ep.log());
    // 5 s of Opus in 20 ms frames is 250.
    assert!(s.audio_frames >= 200, "{} audio frames: {}", s.audio_frames, stats.raw);
    // testsrc2 carries no frame code: nothing may be misread as one.
    assert_eq!(s.codes.read, 0, "{}", stats.raw);
}

/// Damage the endpoint must see: FFmpeg's `noise` bitstream filter garbles two P-frames (1 byte in
/// 40) before they are packetised. The endpoint counts decode errors for that session, so a
/// kitepush test asserting none would catch a broken packetiser.
#[test]
fn damaged_frames_are_counted_as_decode_errors() {
    if !in_loopback_netns("damaged_frames_are_counted_as_decode_errors") {
        return;
    }
    let ep = WhipEndpoint::start(WhipOptions::default());
    let input = ["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "4"];
    let noise = ["-bsf:v", r"noise=amount=if(eq(n\,45)+eq(n\,75)\,40\,0)"];
    let (status, log) = finish(ffmpeg_whip(&input, &noise, &ep.http_url("x"), Stdio::null()));
    assert!(status.success(), "FFmpeg WHIP push failed ({status}):\n{log}");
    let stats = ep.wait_for(ENDPOINT_DEADLINE, "the session closed by DELETE", |s| {
        s.sessions.first().is_some_and(|s| s.closed_by.is_some())
    });
    let s = stats.session();
    assert!(s.video_decode_errors > 0, "no decode errors counted: {}", stats.raw);
    assert_eq!(s.video_decode_errors, stats.decode_errors, "errors not attributed to the session: {}", stats.raw);
    // The rest of the stream still decodes: the damage is two frames and what refers to them.
    assert!(s.video_frames >= 60, "{}", stats.raw);
}

#[test]
fn refused_push_makes_exactly_the_posts_ffmpeg_sent() {
    if !in_loopback_netns("refused_push_makes_exactly_the_posts_ffmpeg_sent") {
        return;
    }
    let ep = WhipEndpoint::start(WhipOptions { status: Some(401), ..WhipOptions::default() });
    let input = ["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "2"];
    let (status, log) = finish(ffmpeg_whip_logging("debug", &input, &[], &ep.http_url("x"), Stdio::null()));
    assert!(!status.success(), "FFmpeg succeeded against a 401 endpoint:\n{log}");
    let stats = ep.stats();
    let posts_made = log.lines().filter(|l| l.contains("request: POST ")).count() as u64;
    assert_eq!(stats.posts, posts_made, "POSTs counted vs made: {}", stats.raw);
    // FFmpeg's WHIP muxer POSTs once and gives up: no retry.
    assert_eq!(stats.posts, 1, "{}", stats.raw);
    assert_eq!(stats.posts_by_status.get(&401), Some(&1), "{}", stats.raw);
    assert!(stats.sessions.is_empty(), "{}", stats.raw);
}

#[test]
fn bearer_token_is_checked() {
    if !in_loopback_netns("bearer_token_is_checked") {
        return;
    }
    let ep = WhipEndpoint::start(WhipOptions { bearer: Some("s3cret".into()), ..WhipOptions::default() });
    let input = ["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "2"];
    let (status, log) = finish(ffmpeg_whip(&input, &["-authorization", "wrong"], &ep.http_url("x"), Stdio::null()));
    assert!(!status.success(), "FFmpeg succeeded with a wrong token:\n{log}");
    let (status, log) = finish(ffmpeg_whip(&input, &["-authorization", "s3cret"], &ep.http_url("x"), Stdio::null()));
    assert!(status.success(), "FFmpeg with the right token failed ({status}):\n{log}");
    let stats = ep.wait_for(ENDPOINT_DEADLINE, "the session closed", |s| {
        s.sessions.first().is_some_and(|s| s.closed_by.is_some())
    });
    assert_eq!(stats.posts_by_status.get(&401), Some(&1), "{}", stats.raw);
    assert_eq!(stats.posts_by_status.get(&201), Some(&1), "{}", stats.raw);
    assert!(stats.session().video_frames >= 50, "{}", stats.raw);
}

/// FFmpeg 9's WHIP muxer answers no ICE consent checks (RFC 7675) after it connected: with a short
/// consent window the endpoint drops it within seconds and says why. The same check will catch a
/// kitepush build that stops answering.
#[test]
fn a_publisher_that_ignores_consent_checks_is_dropped() {
    if !in_loopback_netns("a_publisher_that_ignores_consent_checks_is_dropped") {
        return;
    }
    let ep = WhipEndpoint::start(WhipOptions { consent: Some((1.0, 3)), ..WhipOptions::default() });
    let input = ["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "20"];
    let mut ff = ffmpeg_whip(&input, &[], &ep.http_url("x"), Stdio::null());
    let stats = ep.wait_for(Duration::from_secs(15), "the session dropped", |s| {
        s.sessions.first().is_some_and(|s| s.closed_by.is_some())
    });
    let _ = ff.kill();
    let _ = ff.wait();
    let s = stats.session();
    assert_eq!(s.closed_by.as_deref(), Some("consent"), "{}", stats.raw);
    assert!(s.video_frames > 0, "{}", stats.raw);
}

/// The endpoint's HTTP answers, without media (and without a namespace: nothing but TCP on loopback).
#[test]
fn endpoint_answers_as_its_flags_say() {
    let sdp = [("Content-Type", "application/sdp")];
    let ep = WhipEndpoint::start(WhipOptions { busy: Some((2, 3)), redirect: true, ..WhipOptions::default() });
    for _ in 0..2 {
        let r = ep.request("POST", "/whip/x", &sdp, b"v=0\r\n");
        assert_eq!((r.status, r.header("retry-after")), (503, Some("3")), "{r:?}");
    }
    let r = ep.request("POST", "/whip/x", &sdp, b"v=0\r\n");
    assert_eq!((r.status, r.header("location")), (307, Some("/whip2/x")), "{r:?}");
    let r = ep.request("POST", "/whip2/x", &[("Content-Type", "text/plain")], b"v=0\r\n");
    assert_eq!(r.status, 415, "{r:?}");
    // Past the flags, the offer itself is looked at: this one is no SDP aiortc accepts.
    let r = ep.request("POST", "/whip2/x", &sdp, b"not sdp\r\n");
    assert_eq!(r.status, 400, "{r:?}");
    let r = ep.request("DELETE", "/whip2/x/session/nope", &[], b"");
    assert_eq!(r.status, 404, "{r:?}");
    let stats = ep.stats();
    assert_eq!(stats.posts, 5, "{}", stats.raw);
    let want = [(307, 1), (400, 1), (415, 1), (503, 2)].into_iter().collect();
    assert_eq!(stats.posts_by_status, want, "{}", stats.raw);
    drop(ep);

    let ep = WhipEndpoint::start(WhipOptions { bearer: Some("t".into()), ..WhipOptions::default() });
    let r = ep.request("POST", "/whip/x", &sdp, b"v=0\r\n");
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("Bearer")), "{r:?}");
    let r = ep.request("POST", "/whip/x", &[sdp[0], ("Authorization", "Bearer t")], b"not sdp\r\n");
    assert_eq!(r.status, 400, "{r:?}");
}

/// kitepush's test pattern, piped raw to FFmpeg at 30 fps and pushed over WHIP at a low bitrate:
/// the endpoint reads the frame code from nearly every decoded picture, in order, and so measures
/// the latency from drawing to decoding.
#[test]
fn pattern_frame_codes_survive_a_whip_push() {
    if !in_loopback_netns("pattern_frame_codes_survive_a_whip_push") {
        return;
    }
    const FRAMES: u64 = 150;
    const FPS: u64 = 30;
    let (w, h) = (320u32, 240u32);
    let ep = WhipEndpoint::start(WhipOptions::default());
    let size = format!("{w}x{h}");
    let fps = FPS.to_string();
    let input = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", &size, "-r", &fps, "-i", "-"];
    let extra = ["-b:v", "250k", "-maxrate", "250k", "-bufsize", "250k"];
    let mut ff = ffmpeg_whip(&input, &extra, &ep.http_url("pattern"), Stdio::piped());
    let mut stdin = ff.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut pattern = VideoPattern::new(w, h);
        let mut pic = I420Buffer::default();
        let start = Instant::now();
        for i in 0..FRAMES {
            // Drawn when due, not ahead: the code's time is the moment a camera would have taken it.
            let due = start + Duration::from_micros(i * 1_000_000 / FPS);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            pattern.fill(i, &mut pic);
            if stdin.write_all(&pic.data).is_err() {
                return i;
            }
        }
        FRAMES
    });
    let (status, log) = finish(ff);
    let written = writer.join().unwrap();
    assert_eq!(written, FRAMES, "FFmpeg stopped reading ({status}):\n{log}");
    assert!(status.success(), "FFmpeg WHIP push failed ({status}):\n{log}");
    let stats = ep.wait_for(ENDPOINT_DEADLINE, "the session closed", |s| {
        s.sessions.first().is_some_and(|s| s.closed_by.is_some())
    });
    eprintln!("endpoint stats: {}", stats.raw);
    assert_loopback_only(&stats);
    let s = stats.session();
    assert!(s.video_frames >= 140, "{} of {FRAMES} frames decoded: {}", s.video_frames, stats.raw);
    assert_eq!(stats.decode_errors, 0, "decode errors: {}", ep.log());
    let c = &s.codes;
    assert!(
        c.read * 100 >= s.video_frames * 95,
        "codes read from {} of {} frames: {}",
        c.read,
        s.video_frames,
        stats.raw
    );
    assert_eq!(c.not_increasing, 0, "{}", stats.raw);
    // Lost pictures show up as gaps; the decoded count already bounds them.
    assert!(c.first.unwrap() < 10 && u64::from(c.last.unwrap()) >= FRAMES - 10, "{}", stats.raw);
    let (p50, p95) = (s.latency.p50.unwrap(), s.latency.p95.unwrap());
    eprintln!("latency draw->decode over {} frames: p50 {p50} ms, p95 {p95} ms", s.latency.count);
    // One machine, one clock: a negative latency is a misread code or a broken clock, never timing.
    assert!(p50 >= 0 && s.latency.max.unwrap() < 10_000, "{}", stats.raw);
}

/// The frame code the tests above read survives H.264 at low bitrates at every size from 320x240 to
/// 1920x1080: the pattern, encoded by libx264 with a tight VBV and decoded again, gives back every
/// frame number and time through kitepush's own reader.
#[test]
fn frame_code_survives_low_bitrate_h264() {
    const FRAMES: u64 = 60;
    const BASE_MS: u64 = 1_796_000_000_000;
    for (w, h, kbps) in [(320u32, 240u32, 100u32), (640, 360, 200), (1280, 720, 500), (1920, 1080, 800)] {
        let dir = common::tmp_dir("frame-code-h264");
        let h264 = dir.join("pattern.h264");
        let (size, rate) = (format!("{w}x{h}"), format!("{kbps}k"));
        let mut enc = Command::new(ffmpeg9())
            .args(["-hide_banner", "-nostats", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", &size])
            .args(["-r", "30", "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30"])
            .args(["-b:v", &rate, "-maxrate", &rate, "-bufsize", &rate, "-y"])
            .arg(&h264)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn FFmpeg 9");
        let mut stdin = enc.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let mut pattern = VideoPattern::new(w, h);
            let mut pic = I420Buffer::default();
            for i in 0..FRAMES {
                pattern.fill_at(i, BASE_MS + i * 33, &mut pic);
                stdin.write_all(&pic.data).expect("feed FFmpeg");
            }
        });
        let (status, log) = finish(enc);
        writer.join().unwrap();
        assert!(status.success(), "encode {size}: {log}");
        let dec = Command::new(ffmpeg9())
            .args(["-hide_banner", "-v", "error", "-i"])
            .arg(&h264)
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
            .output()
            .expect("run FFmpeg 9");
        assert!(dec.status.success(), "decode {size}: {}", String::from_utf8_lossy(&dec.stderr));
        let bytes = std::fs::metadata(&h264).unwrap().len();
        let _ = std::fs::remove_dir_all(&dir);
        let frame_len = I420Buffer::size(w, h);
        assert_eq!(dec.stdout.len(), frame_len * FRAMES as usize, "{size}");
        let (w, h) = (w as usize, h as usize);
        let read: Vec<Option<(u16, u32)>> = dec
            .stdout
            .chunks_exact(frame_len)
            .map(|f| kitepush::pattern::read_frame_code(&f[..w * h], w, w, h))
            .collect();
        let good = read
            .iter()
            .enumerate()
            .filter(|(i, c)| **c == Some((*i as u16, (BASE_MS + *i as u64 * 33) as u32)))
            .count();
        eprintln!(
            "{size} at {kbps} kbit/s ({} kbit/s coded): {good} of {FRAMES} codes read",
            bytes * 8 * 30 / FRAMES / 1000
        );
        // Every code read is its own frame's: no misread passed the CRC, and no picture was an
        // encoder's repeat of the previous one (x264 skips whole pictures far below these rates).
        assert!(read.iter().enumerate().all(|(i, c)| c.is_none() || c.unwrap().0 == i as u16), "{size}: {read:?}");
        assert_eq!(good as u64, FRAMES, "{size}: {read:?}");
    }
}
