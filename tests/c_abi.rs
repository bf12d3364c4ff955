//! The C ABI from C: the example program and the misuse suite (both built with
//! `-std=c99 -Wall -Wextra -pedantic -Werror -fsanitize=address,undefined`) publish to a real
//! nginx-rtmp, and what nginx recorded is checked like every other recording.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Programs {
    bad_inputs: PathBuf,
    reconnect: PathBuf,
    threads: PathBuf,
    formats: PathBuf,
    sigpipe: PathBuf,
    transports: PathBuf,
    messages: PathBuf,
    push: PathBuf,
    /// The example and the threads suite without sanitizers, for valgrind.
    push_plain: PathBuf,
    threads_plain: PathBuf,
}

/// Builds the C programs once per test binary against the release static library.
fn c_programs() -> &'static Programs {
    static BUILT: OnceLock<Programs> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_tool("make");
        require_tool("cc");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"));
        let lib_dir = std::env::var("KP_LIB_DIR").map(PathBuf::from).unwrap_or_else(|_| target.join("release"));
        let lib = lib_dir.join("libkitepush.a");
        assert!(
            lib.exists(),
            "{} is missing: run `cargo build --release --lib` first (scripts/test does)",
            lib.display()
        );
        // The WHIP test re-runs this binary in a network namespace (`common::whip`), a process of
        // its own with its own OnceLock: a `make -B` there rewrote the programs under the tests
        // running here (valgrind once found threads_plain half-linked: "Permission denied"). That
        // test builds them before it re-runs itself, and the re-run builds nothing.
        let in_netns_rerun = std::env::var("KP_NETNS").as_deref() == Ok("1");
        let targets =
            [("tests/c", "all"), ("tests/c", "push_plain"), ("tests/c", "threads_plain"), ("examples/c", "push")];
        for (dir, target) in targets.into_iter().filter(|_| !in_netns_rerun) {
            let out = Command::new("make")
                .arg("-C")
                .arg(root().join(dir))
                .args(["-B", target])
                .arg(format!("LIBDIR={}", lib_dir.display()))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "make {dir}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Programs {
            bad_inputs: root().join("tests/c/bad_inputs"),
            reconnect: root().join("tests/c/reconnect"),
            threads: root().join("tests/c/threads"),
            formats: root().join("tests/c/formats"),
            sigpipe: root().join("tests/c/sigpipe"),
            transports: root().join("tests/c/transports"),
            messages: root().join("tests/c/messages"),
            push: root().join("examples/c/push"),
            push_plain: root().join("tests/c/push_plain"),
            threads_plain: root().join("tests/c/threads_plain"),
        }
    })
}

fn run(program: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} {args:?} failed ({}):\n{text}", program.display(), out.status);
    text
}

#[test]
fn the_c_example_publishes_to_nginx() {
    let push = &c_programs().push;
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("c-example");
    let out = run(push, &[&nginx.url(&key), "5"]);
    assert!(out.contains("PUBLISHING"), "{out}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 640, 360, 150));
    assert_eq!(p.audio.expect("audio").codec, "aac");
    assert_eq!(decode_errors(&rec), "");
}

/// From C: an SRT primary that never answers (UDP black-holed) fails over to an RTMP backup, and
/// kp_pusher_network_changed gets the pusher publishing again within a second (tests/c/transports.c).
#[test]
fn mixed_transport_failover_and_network_changed_from_c() {
    use common::udp_proxy::{UdpFaults, UdpProxy};
    let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    // Nothing behind the proxy matters: it drops everything.
    let proxy = UdpProxy::start(([127, 0, 0, 1], common::srt::free_udp_port()).into());
    proxy.set(UdpFaults::BLACK_HOLE);
    let key = unique_key("c-transports");
    let srt = format!("srt://127.0.0.1:{}?streamid=%23!::r=live/{key},m=publish", proxy.port());
    let out = run(&c_programs().transports, &[&srt, &nginx.url(&key)]);
    assert!(out.contains("publishing again"), "{out}");
    let recs = nginx.recordings_of(&key);
    assert_eq!(recs.len(), 2, "before and after the network change: {recs:?}");
    for rec in &recs {
        nginx.wait_recording_closed(rec, Duration::from_secs(10));
        assert!(probe(rec).video.expect("video").frames > 10, "{}", rec.display());
        assert_eq!(decode_errors(rec), "", "{}", rec.display());
    }
}

/// The same example, unchanged, pushing over SRT: the URL's scheme picks the transport.
#[test]
fn the_c_example_publishes_over_srt() {
    use common::srt::{caller_url, SrtListener, SrtOptions};
    let push = &c_programs().push;
    let opts = SrtOptions::latency_ms(120);
    let mut listener = SrtListener::srt_live_transmit(opts.clone());
    let out = run(push, &[&caller_url(listener.port(), &opts, Some("#!::r=live/c,m=publish")), "5"]);
    assert!(out.contains("PUBLISHING"), "{out}");
    listener.stop();
    let ts = listener.output();
    let p = probe(ts);
    let v = p.video.expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 640, 360, 150));
    assert_eq!(p.audio.expect("audio").codec, "aac");
    assert_eq!(decode_errors(ts), "");
}

/// The C example over WHIP, with its bearer token, to the aiortc endpoint (in a loopback-only
/// network namespace, like every WebRTC test).
#[test]
fn the_c_example_publishes_over_whip() {
    use common::whip::{in_loopback_netns, WhipEndpoint, WhipOptions};
    // Built in this process, before the namespaced re-run (which builds nothing: see c_programs).
    let programs = c_programs();
    if !in_loopback_netns("the_c_example_publishes_over_whip") {
        return;
    }
    let ep = WhipEndpoint::start(WhipOptions { bearer: Some("c-token-123".into()), ..WhipOptions::default() });
    let out = run(&programs.push, &[&ep.url("c"), "5", "--realtime", "--bearer", "c-token-123"]);
    assert!(out.contains("PUBLISHING"), "{out}");
    assert!(!out.contains("c-token-123"), "the token was printed: {out}");
    let stats = ep.wait_for(Duration::from_secs(10), "the DELETE", |s| s.deletes == 1);
    let s = stats.session();
    assert_eq!((s.width, s.height), (Some(640), Some(360)), "{}", stats.raw);
    assert!(s.video_frames >= 148, "{}", stats.raw);
    assert_eq!(stats.decode_errors, 0, "{}", stats.raw);
}

#[test]
fn misuse_from_c_gets_documented_codes_and_the_live_stream_survives() {
    let bad_inputs = &c_programs().bad_inputs;
    // Without a server: NULLs, bad URLs, wrong sizes, wrong states.
    run(bad_inputs, &[]);
    // With one: the same mid-stream, and the recording of the good frames is intact.
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("c-misuse");
    run(bad_inputs, &[&nginx.url(&key)]);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    // The 180 frames pushed, plus the still frames of its one-second pause (5 fps).
    let frames = p.video.expect("video").frames;
    assert!((184..=186).contains(&frames), "{frames} video frames");
    assert!(p.audio.is_some());
    assert_eq!(decode_errors(&rec), "");
}

#[test]
fn the_url_refresh_callback_moves_a_c_pusher_from_a_dead_url_to_nginx() {
    let reconnect = &c_programs().reconnect;
    // Port 1 needs root to listen on and no test does: connects are refused, every time. (A port
    // from free_port() could be taken by an nginx another test starts meanwhile.)
    assert!(!port_open(1), "something listens on 127.0.0.1:1");
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("c-reconnect");
    let dead_key = unique_key("c-reconnect-dead");
    // The program checks the event order (CONNECTING to the dead URL, RECONNECTING, CONNECTING to
    // the refreshed one, CONNECTED, PUBLISHING), the callback's arguments and the destination stats.
    let out = run(reconnect, &[&format!("rtmp://127.0.0.1:1/{}/{dead_key}", nginx.app()), &nginx.url(&key)]);
    assert!(out.contains("url refresh: destination 0, URL 0, buffer 2048 bytes"), "{out}");
    assert!(out.contains(", 0 failed"), "{out}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", 320, 240));
    // 3 s at 30 fps, queued while the pusher reconnected; the encoder may drop a few if behind.
    assert!((60..=90).contains(&v.frames), "{} video frames:\n{out}", v.frames);
    assert_eq!(p.audio.expect("audio").codec, "aac");
    assert_eq!(decode_errors(&rec), "");
    assert!(nginx.recordings_of(&dead_key).is_empty());
}

#[test]
fn eight_threads_on_one_pusher_then_stop_join_free() {
    let threads = &c_programs().threads;
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("c-threads");
    let out = run(threads, &[&nginx.url(&key)]);
    assert!(out.contains(", 0 failed"), "{out}");
    assert!(out.contains("8 threads: "), "{out}");
    // What the racing video threads got accepted was published and decodes.
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    assert!(p.video.expect("video").frames > 30, "{out}");
    assert!(p.audio.is_some());
    assert_eq!(decode_errors(&rec), "");
}

/// Valgrind memcheck over the release static library (no sanitizers in these builds: valgrind
/// cannot run ASan binaries): zero errors and zero definitely-lost bytes. No suppressions.
fn valgrind(program: &PathBuf, args: &[&str]) -> String {
    let valgrind = require_tool("valgrind");
    let out = Command::new(valgrind)
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite",
            "--fair-sched=yes",
        ])
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let summary: Vec<&str> =
        text.lines().filter(|l| l.contains("ERROR SUMMARY") || l.contains("definitely lost")).collect();
    println!("valgrind {}: {summary:?}", program.display());
    assert!(out.status.success(), "{} {args:?} under valgrind failed ({}):\n{text}", program.display(), out.status);
    assert!(text.contains("ERROR SUMMARY: 0 errors"), "{text}");
    // With nothing definitely lost valgrind prints no "definitely lost" line, or one with 0 bytes.
    assert!(summary.iter().filter(|l| l.contains("definitely lost")).all(|l| l.contains(" 0 bytes")), "{text}");
    text
}

#[test]
fn valgrind_memcheck_of_the_example_and_the_threads_suite() {
    let programs = c_programs();
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("c-valgrind");
    let out = valgrind(&programs.push_plain, &[&nginx.url(&key), "2"]);
    assert!(out.contains("PUBLISHING"), "{out}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    assert_eq!(decode_errors(&rec), "");
    let out = valgrind(&programs.threads_plain, &[]);
    assert!(out.contains(", 0 failed"), "{out}");
}

#[test]
fn packed_rgb_and_in_place_frames_from_c_reach_nginx_and_x264_is_configurable() {
    let formats = &c_programs().formats;
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("c-formats");
    let out = run(formats, &[&nginx.url(&key)]);
    assert!(out.contains(", 0 failed"), "{out}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.expect("video");
    // 20 frames each of YUY2, UYVY, RGBA, BGRA and NV21, then 20 written in place into video
    // slots, in one stream.
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 320, 240, 120));
    assert!(p.audio.is_none());
    assert_eq!(decode_errors(&rec), "");
}

#[test]
fn a_c_host_with_the_default_sigpipe_action_survives_a_failed_destination() {
    use std::os::unix::process::ExitStatusExt;
    let sigpipe = &c_programs().sigpipe;
    assert!(!port_open(1), "something listens on 127.0.0.1:1");
    // Rust's test harness ignores SIGPIPE, and an ignored signal stays ignored across exec: the
    // program sets the default action itself.
    let out = Command::new(sigpipe)
        .arg("rtmp://127.0.0.1:1/live/sigpipe")
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.signal(), Some(libc::SIGPIPE), "killed by SIGPIPE:\n{text}");
    assert!(out.status.success(), "{}: {text}", out.status);
    assert!(text.contains(", 0 failed"), "{text}");
}

/// kp_pusher_send_message from C (tests/c/messages.c): its errors and counters there, and here both
/// messages in nginx's recording, byte-identical, with the UUID the C program set.
#[test]
fn messages_from_c_reach_the_recording() {
    use kitepush::core::flv::{FileReader, TAG_VIDEO};
    use kitepush::core::{media::Codec, sei};
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("c-messages");
    run(&c_programs().messages, &[&nginx.url(&key)]);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let uuid = *b"c-abi-messages!!";
    let mut found = Vec::new();
    let (mut capture_stamps, mut keyframes, mut pictures) = (Vec::new(), Vec::new(), 0);
    for t in FileReader::new(std::io::BufReader::new(std::fs::File::open(&rec).unwrap())).unwrap() {
        let t = t.unwrap();
        if t.tag_type == TAG_VIDEO && t.body[1] == 1 {
            pictures += 1;
            if t.body[0] >> 4 == 1 {
                keyframes.push(t.timestamp_ms);
            }
            for u in sei::parse_length_prefixed(Codec::H264, &t.body[5..]) {
                if u.uuid == uuid {
                    found.push(u.payload);
                } else if u.uuid == sei::CAPTURE_TIME_UUID {
                    capture_stamps.push(t.timestamp_ms);
                }
            }
        }
    }
    let first: &[u8] = &[b'c', b'-', b'm', b's', b'g', b' ', b'1', 0, 0, 0, 1, 0, 0, 3];
    assert_eq!(found, vec![vec![0u8], first.to_vec(), b"c-msg 2: price 19.99".to_vec()]);
    // Keyframes every 30 frames: 2 in 60 frames, each with its capture time.
    assert_eq!(pictures, 60);
    assert_eq!(capture_stamps, keyframes);
    assert_eq!(keyframes.len(), 2, "keyframes at {keyframes:?}");
    assert_eq!(decode_errors(&rec), "");
}
