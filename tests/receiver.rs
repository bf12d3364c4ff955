//! The built-in receiver against real publishers (the FFmpeg CLI) and hostile clients; every
//! recording is checked with ffprobe, a full ffmpeg decode and the crate's own FLV reader.

use kitepush::core::flv::{classify, FileReader, TagKind, TAG_SCRIPT, TAG_VIDEO};
use kitepush::receiver::{Receiver, ReceiverConfig, ReceiverReport};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const FFMPEG: &str = "/usr/bin/ffmpeg";
const FFPROBE: &str = "/usr/bin/ffprobe";

fn out_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("receiver-{name}.flv"))
}

/// A test-pattern publish of `secs` seconds at 30 fps with AAC; `realtime` paces it (`-re`)
/// so it is still live while something else happens.
fn push(url: &str, secs: u32, realtime: bool) -> Child {
    let mut cmd = Command::new(FFMPEG);
    cmd.args(["-v", "error", "-nostdin"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.args([
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        &secs.to_string(),
        "-c:v",
        "libx264",
        "-g",
        "30",
        "-c:a",
        "aac",
        "-f",
        "flv",
        url,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd.spawn().unwrap_or_else(|e| panic!("{FFMPEG} must be installed: {e}"))
}

/// Waits for a child with a deadline; kills it and fails when it overruns.
fn finish(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("ffmpeg still running after {within:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn push_ok(url: &str, secs: u32) {
    let out = finish(push(url, secs, false), Duration::from_secs(60));
    assert!(out.status.success(), "ffmpeg push failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn wait_ended(rx: &Receiver, n: u32) -> ReceiverReport {
    let (done, report) = rx.wait_sessions_ended(n, Duration::from_secs(30));
    assert!(done, "{n} session(s) did not end in time: {report:?}");
    report
}

/// One stream's fields from ffprobe's JSON, without a JSON parser: the text between one
/// `"index":` and the next.
struct Probe(String);

impl Probe {
    fn run(path: &Path) -> Probe {
        let out = Command::new(FFPROBE)
            .args(["-v", "error", "-count_frames", "-show_streams", "-of", "json"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("{FFPROBE} must be installed: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "ffprobe: {stderr}");
        Probe(String::from_utf8(out.stdout).unwrap())
    }

    fn stream(&self, codec_type: &str) -> &str {
        let needle = format!("\"codec_type\": \"{codec_type}\"");
        self.0
            .split("\"index\":")
            .find(|s| s.contains(&needle))
            .unwrap_or_else(|| panic!("no {codec_type} stream in {}", self.0))
    }

    fn field<'a>(&'a self, codec_type: &str, key: &str) -> &'a str {
        let s = self.stream(codec_type);
        let at = s.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no {key} in {s}"));
        let v = &s[at + key.len() + 4..];
        v[..v.find([',', '\n']).unwrap()].trim_matches('"')
    }
}

/// ffprobe and a full decode: h264 320x240 with `frames` frames, AAC, no decode errors.
fn verify_media(path: &Path, frames: u32) {
    verify_media_with(path, frames, false)
}

/// With `timestamps_restart`, the null muxer's complaint about timestamps going back (a second
/// publish starting again at 0, recorded as received) is the one message allowed.
fn verify_media_with(path: &Path, frames: u32, timestamps_restart: bool) {
    let p = Probe::run(path);
    assert_eq!(p.field("video", "codec_name"), "h264");
    assert_eq!(p.field("video", "width"), "320");
    assert_eq!(p.field("video", "height"), "240");
    assert_eq!(p.field("video", "nb_read_frames"), frames.to_string());
    assert_eq!(p.field("audio", "codec_name"), "aac");
    let decode = Command::new(FFMPEG)
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap_or_else(|e| panic!("{FFMPEG} must be installed: {e}"));
    let noise: String = String::from_utf8_lossy(&decode.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&decode.stdout).lines())
        .filter(|l| !(timestamps_restart && l.contains("non monotonically increasing dts")))
        .collect();
    assert!(decode.status.success() && noise.trim().is_empty(), "decode: {noise}");
}

#[derive(Debug, Default)]
struct TagCounts {
    metadata: usize,
    avc_headers: usize,
    aac_headers: usize,
    video: usize,
}

/// Reads the file with the crate's reader and checks each publish segment: it starts with
/// onMetaData, its first video tag is the AVC sequence header and its first audio tag the AAC
/// sequence header, and its video timestamps do not decrease.
fn verify_tags(path: &Path, report: &ReceiverReport) -> TagCounts {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len() as u64, report.bytes, "report.bytes is the file size");
    let mut counts = TagCounts::default();
    let (mut seen_video, mut seen_audio, mut last_video_ts) = (false, false, 0);
    let (mut video_tags, mut audio_tags) = (0u64, 0u64);
    for tag in FileReader::new(&bytes[..]).unwrap() {
        let tag = tag.unwrap();
        match classify(tag.tag_type, &tag.body) {
            TagKind::Script => {
                assert_eq!(tag.tag_type, TAG_SCRIPT);
                assert!(tag.body.starts_with(b"\x02\x00\x0aonMetaData"), "script tag");
                counts.metadata += 1;
                // A new publish segment: its sequence headers must come first again.
                (seen_video, seen_audio, last_video_ts) = (false, false, 0);
            }
            TagKind::AvcSequenceHeader => {
                counts.avc_headers += 1;
                seen_video = true;
            }
            TagKind::AacSequenceHeader => {
                counts.aac_headers += 1;
                seen_audio = true;
            }
            kind @ (TagKind::AvcKeyframe | TagKind::AvcInterframe) => {
                assert!(seen_video, "{kind:?} before the AVC sequence header");
                assert!(tag.timestamp_ms >= last_video_ts, "video timestamps go back");
                last_video_ts = tag.timestamp_ms;
                counts.video += 1;
            }
            TagKind::AacRaw => assert!(seen_audio, "AAC frame before the sequence header"),
            // FFmpeg ends its publish with one.
            TagKind::AvcEndOfSequence => assert!(seen_video, "end of sequence before the header"),
            kind => panic!("unexpected tag {kind:?}"),
        }
        match tag.tag_type {
            TAG_VIDEO => video_tags += 1,
            8 => audio_tags += 1,
            _ => {}
        }
    }
    assert_eq!(video_tags, report.video_tags);
    assert_eq!(audio_tags, report.audio_tags);
    counts
}

#[test]
fn records_an_ffmpeg_publish() {
    let path = out_path("single");
    let rx = Receiver::start(ReceiverConfig::new(&path)).unwrap();
    push_ok(&rx.url("live", "key1"), 3);
    let report = wait_ended(&rx, 1);
    assert_eq!(report.sessions, 1);
    assert_eq!(report.rejected, 0);
    let report = rx.stop();
    verify_media(&path, 90);
    let counts = verify_tags(&path, &report);
    assert_eq!(counts.metadata, 1);
    assert_eq!(counts.avc_headers, 1);
    assert_eq!(counts.aac_headers, 1);
    assert_eq!(counts.video, 90);
    // The publisher's own onMetaData keys, not only the fields rml_rtmp parses.
    let bytes = std::fs::read(&path).unwrap();
    let script = FileReader::new(&bytes[..]).unwrap().map(Result::unwrap).find(|t| t.tag_type == TAG_SCRIPT).unwrap();
    for key in [&b"width"[..], b"videocodecid", b"audiosamplerate", b"encoder", b"Lavf"] {
        assert!(script.body.windows(key.len()).any(|w| w == key), "onMetaData lacks {}", String::from_utf8_lossy(key));
    }
}

#[test]
fn rejects_a_second_concurrent_publisher() {
    let path = out_path("concurrent");
    let rx = Receiver::start(ReceiverConfig::new(&path)).unwrap();
    let first = push(&rx.url("live", "one"), 4, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx.report().video_tags < 10 {
        assert!(Instant::now() < deadline, "first publisher never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = finish(push(&rx.url("live", "two"), 1, false), Duration::from_secs(20));
    assert!(!second.status.success(), "second publisher was not refused");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("another publisher is live"), "ffmpeg said: {said}");
    let report = rx.report();
    assert_eq!((report.sessions, report.rejected), (1, 1), "{report:?}");

    let first = finish(first, Duration::from_secs(30));
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    wait_ended(&rx, 1);
    let report = rx.stop();
    verify_media(&path, 120);
    assert_eq!(verify_tags(&path, &report).video, 120);
}

#[test]
fn sequential_publishes_append_to_one_file() {
    let path = out_path("sequential");
    let rx = Receiver::start(ReceiverConfig::new(&path)).unwrap();
    push_ok(&rx.url("live", "again"), 2);
    wait_ended(&rx, 1);
    push_ok(&rx.url("live", "again"), 2);
    let report = wait_ended(&rx, 2);
    assert_eq!((report.sessions, report.rejected), (2, 0));
    let report = rx.stop();
    verify_media_with(&path, 120, true);
    let counts = verify_tags(&path, &report);
    assert_eq!(counts.metadata, 2);
    assert_eq!(counts.avc_headers, 2);
    assert_eq!(counts.aac_headers, 2);
    assert_eq!(counts.video, 120);
}

#[test]
fn refuses_a_wrong_stream_key_and_app() {
    let path = out_path("key");
    let mut config = ReceiverConfig::new(&path);
    config.app = Some("live".into());
    config.stream_key = Some("s3cret".into());
    let rx = Receiver::start(config).unwrap();
    for url in [rx.url("live", "wrong"), rx.url("other", "s3cret")] {
        let out = finish(push(&url, 1, false), Duration::from_secs(20));
        assert!(!out.status.success(), "publish to {url} was accepted");
    }
    let report = rx.report();
    assert_eq!((report.sessions, report.rejected), (0, 2), "{report:?}");
    push_ok(&rx.url("live", "s3cret"), 1);
    let report = wait_ended(&rx, 1);
    assert_eq!(report.sessions, 1);
    let report = rx.stop();
    verify_media(&path, 30);
    verify_tags(&path, &report);
}

/// xorshift64*: reproducible garbage without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// An old-style (digest-less) handshake, accepted by rml_rtmp, then `after`.
fn handshake_then(addr: std::net::SocketAddr, after: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    if s.write_all(&c0c1).is_err() {
        return;
    }
    let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
    if s.read_exact(&mut s0s1s2).is_err() {
        return;
    }
    let _ = s.write_all(&s0s1s2[1..1537]); // C2 echoes S1
    let _ = s.write_all(after);
    // Give the server time to parse before the close, so the input is really processed.
    let mut sink = [0u8; 4096];
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    while let Ok(n) = s.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

/// One RTMP message as a single chunk on csid 3 (type-0 header); the chunk size must allow it.
fn chunk(type_id: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = vec![0x03, 0, 0, 0];
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

/// SetChunkSize to `size`, on csid 2.
fn set_chunk_size(size: u32) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
    v.extend_from_slice(&size.to_be_bytes());
    v
}

fn amf0_string(s: &str) -> Vec<u8> {
    let mut v = vec![2];
    v.extend_from_slice(&(s.len() as u16).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

/// Inputs aimed at known weak spots of rml_rtmp; without the receiver's guard the first
/// aborts the whole test process with a stack overflow and the next two panic.
fn hostile_inputs() -> Vec<Vec<u8>> {
    let mut deep = amf0_string("onMetaData");
    for _ in 0..200_000 {
        deep.extend_from_slice(&[3, 0, 1, b'a']);
    }
    let mut nested = set_chunk_size(1 << 20);
    nested.extend(chunk(18, &deep));
    let mut short_frame = set_chunk_size(1 << 20);
    short_frame.extend(chunk(18, &amf0_string("@setDataFrame")));
    let mut short_command = set_chunk_size(1 << 20);
    short_command.extend(chunk(20, &amf0_string("connect")));
    // A 16 MiB message declared, a few bytes sent.
    let huge = vec![0x03, 0, 0, 0, 0xff, 0xff, 0xff, 9, 0, 0, 0, 0, 0x17, 1];
    let zero_chunk_size = set_chunk_size(0);
    // A non-type-0 header on a chunk stream never opened.
    let orphan = vec![0xc5, 1, 2, 3];
    vec![nested, short_frame, short_command, huge, zero_chunk_size, orphan]
}

#[test]
fn survives_garbage_then_records() {
    let path = out_path("garbage");
    let rx = Receiver::start(ReceiverConfig::new(&path)).unwrap();
    let addr = rx.local_addr();
    let hostile = hostile_inputs();
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let hostile = hostile.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
                for i in 0..50 {
                    match i % 5 {
                        // Immediate close.
                        0 => drop(TcpStream::connect(addr)),
                        // Random bytes, including a random C0.
                        1 => {
                            if let Ok(mut s) = TcpStream::connect(addr) {
                                let n = (rng.next() % 5000) as usize;
                                let _ = s.write_all(&rng.bytes(n));
                            }
                        }
                        // Truncated handshake.
                        2 => {
                            if let Ok(mut s) = TcpStream::connect(addr) {
                                let mut c = vec![3u8];
                                let n = (rng.next() % 1536) as usize;
                                c.extend(rng.bytes(n));
                                let _ = s.write_all(&c);
                            }
                        }
                        // Valid handshake, then random chunks.
                        3 => {
                            let n = (rng.next() % 3000) as usize;
                            handshake_then(addr, &rng.bytes(n));
                        }
                        _ => handshake_then(addr, &hostile[(i / 5) % hostile.len()]),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let report = rx.report();
    assert_eq!(report.sessions, 0, "{report:?}");
    assert!(report.last_error.is_some(), "garbage left no error: {report:?}");

    push_ok(&rx.url("live", "after-garbage"), 1);
    let report = wait_ended(&rx, 1);
    assert_eq!(report.sessions, 1);
    let report = rx.stop();
    verify_media(&path, 30);
    verify_tags(&path, &report);
}

#[test]
fn closes_a_silent_client() {
    let rx = Receiver::start(ReceiverConfig::new(out_path("silent"))).unwrap();
    let mut s = TcpStream::connect(rx.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    // The server says nothing before C0 arrives, so the first thing read is the close.
    let n = s.read(&mut buf).expect("the receiver should close, not time out");
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(5), "closed too early: {waited:?}");
    assert!(rx.report().last_error.is_some());
}

#[test]
fn stop_ends_a_live_publish_and_keeps_the_file() {
    let path = out_path("stop-live");
    let rx = Receiver::start(ReceiverConfig::new(&path)).unwrap();
    let pusher = push(&rx.url("live", "cut"), 30, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx.report().video_tags < 31 {
        assert!(Instant::now() < deadline, "publisher never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let report = rx.stop();
    assert!(started.elapsed() < Duration::from_secs(2), "stop took {:?}", started.elapsed());
    let out = finish(pusher, Duration::from_secs(20));
    assert!(!out.status.success(), "the publisher should see the connection go");
    assert_eq!(report.sessions, 1);
    let counts = verify_tags(&path, &report);
    assert!(counts.video >= 30, "{counts:?}");
}
