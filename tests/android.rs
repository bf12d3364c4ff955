//! The Android shim on the host: the JNI glue (feature `jni`) built for this machine, the Java API
//! (android/src/main/java) compiled with javac for Java 8 as Android needs, and its JUnit 5 suite
//! (android/src/hostTest/java) run on the host JVM under `-Xcheck:jni`. The suite pushes to the built-in
//! receiver and to nginx-rtmp started here; what they recorded is checked here with ffprobe.

mod common;

use common::pushing::encoded_test_media;
use common::*;
use kitepush::receiver::{Receiver, ReceiverConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const JUNIT_CONSOLE: &str = "/usr/share/java/junit-platform-console-standalone.jar";
/// The @Test methods of LivePusherTest: the run must find and pass exactly these.
const JUNIT_TESTS: u32 = 12;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the library with the JNI glue (release, like the other host suites) and returns the
/// directory holding libkitepush.so. The build reuses the release dependencies; only the crate
/// itself is compiled again with the extra feature.
fn build_jni_library() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--release", "--lib", "--features", "jni", "--message-format=json-render-diagnostics"])
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "cargo build --features jni failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let cdylib = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "kitepush")
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "so"))
        .expect("cargo reported no libkitepush.so");
    cdylib.parent().unwrap().to_path_buf()
}

fn java_sources(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "java"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no Java sources in {}", dir.display());
    files
}

fn javac(args: &[&str], sources: &[PathBuf]) {
    let out = Command::new("javac").args(args).args(sources).output().expect("run javac");
    assert!(
        out.status.success(),
        "javac {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The figure before `label` in the console launcher's summary ("[  6 tests successful  ]").
fn summary_count(output: &str, label: &str) -> u32 {
    output
        .lines()
        .find(|l| l.contains(label))
        .and_then(|l| l.trim_start_matches(|c: char| c == '[' || c.is_whitespace()).split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{label}' in the JUnit summary:\n{output}"))
}

#[test]
fn the_java_api_pushes_through_jni_to_the_receiver_and_nginx() {
    // Every server here is on loopback; the WHIP test's WebRTC must not see any other interface.
    if !common::whip::in_loopback_netns("the_java_api_pushes_through_jni_to_the_receiver_and_nginx") {
        return;
    }
    require_tool("java");
    require_tool("javac");
    assert!(
        Path::new(JUNIT_CONSOLE).exists(),
        "{JUNIT_CONSOLE} is missing: install Debian's junit5 (scripts/test does)"
    );
    let lib_dir = build_jni_library();

    let work = tmp_dir("android");
    let main_classes = work.join("main");
    let test_classes = work.join("test");
    // Java 8 is what every supported Android version's desugaring takes: the API must not use more.
    javac(
        &["--release", "8", "-Xlint:all", "-Xlint:-options", "-Werror", "-d", main_classes.to_str().unwrap()],
        &java_sources(&root().join("android/src/main/java/dev/kitepush")),
    );
    let cp = format!("{}:{JUNIT_CONSOLE}", main_classes.display());
    javac(
        &["--release", "17", "-Xlint:all", "-Werror", "-cp", &cp, "-d", test_classes.to_str().unwrap()],
        &java_sources(&root().join("android/src/hostTest/java/dev/kitepush")),
    );

    // The servers and the media the suite pushes.
    let receiver_out = work.join("receiver.flv");
    let rx = Receiver::start(ReceiverConfig::new(&receiver_out)).expect("start the built-in receiver");
    let receiver_key = unique_key("android-receiver");
    let nginx = Nginx::start(NginxOptions::default());
    let direct_key = unique_key("android-direct");
    let encoded_key = unique_key("android-encoded");
    let close_key = unique_key("android-close");
    let pause_key = unique_key("android-pause");
    let controls_key = unique_key("android-controls");
    let whip = common::whip::WhipEndpoint::start(common::whip::WhipOptions {
        bearer: Some("java-token-42".into()),
        ..Default::default()
    });
    let local_recording = work.join("local-recording.flv");
    let media = work.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let (aus, adts) = encoded_test_media(&media, 3, 30);
    assert_eq!(aus.len(), 90);
    let mut framed = Vec::new();
    for au in &aus {
        framed.extend_from_slice(&(au.len() as u32).to_be_bytes());
        framed.extend_from_slice(au);
    }
    std::fs::write(media.join("aus.bin"), framed).unwrap();
    std::fs::write(media.join("audio.aac"), adts).unwrap();

    let out = Command::new("java")
        .arg("-Xcheck:jni")
        .arg(format!("-Djava.library.path={}", lib_dir.display()))
        .arg(format!("-Dkp.receiver.url={}", rx.url("live", &receiver_key)))
        .arg(format!("-Dkp.nginx.url.direct={}", nginx.url(&direct_key)))
        .arg(format!("-Dkp.nginx.url.encoded={}", nginx.url(&encoded_key)))
        .arg(format!("-Dkp.nginx.url.close={}", nginx.url(&close_key)))
        .arg(format!("-Dkp.nginx.url.pause={}", nginx.url(&pause_key)))
        .arg(format!("-Dkp.nginx.url.controls={}", nginx.url(&controls_key)))
        .arg(format!("-Dkp.whip.url={}", whip.url("java")))
        .arg("-Dkp.whip.token=java-token-42")
        .arg(format!("-Dkp.record.path={}", local_recording.display()))
        .arg(format!("-Dkp.media.dir={}", media.display()))
        .args(["-jar", JUNIT_CONSOLE, "--disable-banner", "--details=tree", "--fail-if-no-tests"])
        .arg(format!("--class-path={}:{}", main_classes.display(), test_classes.display()))
        .args(["--select-class", "dev.kitepush.LivePusherTest"])
        .output()
        .expect("run java");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "the JUnit suite failed ({}):\n{text}", out.status);
    // Nothing skipped silently: every test was found, ran and passed.
    assert_eq!(summary_count(&text, "tests found"), JUNIT_TESTS, "{text}");
    assert_eq!(summary_count(&text, "tests successful"), JUNIT_TESTS, "{text}");
    for label in ["tests skipped", "tests aborted", "tests failed"] {
        assert_eq!(summary_count(&text, label), 0, "{label}:\n{text}");
    }
    // -Xcheck:jni reports misuse of JNI (a call inside a critical region, a pending exception,
    // a bad reference) as warnings and carries on: any is a failure here.
    assert!(!text.contains("in native method"), "-Xcheck:jni complained:\n{text}");

    // What the WHIP endpoint decoded from the Java push.
    let w = whip.wait_for(Duration::from_secs(10), "the Java push's DELETE", |s| s.deletes == 1);
    assert!(w.session().video_frames >= 59 && w.decode_errors == 0, "{}", w.raw);

    // What the built-in receiver recorded from the byte[] pushes.
    let (ended, report) = rx.wait_sessions_ended(1, Duration::from_secs(20));
    assert!(ended, "the receiver's session did not end: {report:?}");
    let report = rx.stop();
    assert_eq!(report.sessions, 1, "{report:?}");
    let p = probe(&receiver_out);
    let v = p.video.expect("video in the receiver's recording");
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 320, 240, 60));
    assert_eq!(p.audio.expect("audio in the receiver's recording").codec, "aac");
    assert_eq!(decode_errors(&receiver_out), "");

    // What nginx recorded from the direct-buffer and the pre-encoded pushes.
    for (key, frames) in [(&direct_key, 90), (&encoded_key, 90)] {
        let rec = nginx.recording(key);
        nginx.wait_recording_closed(&rec, Duration::from_secs(10));
        let p = probe(&rec);
        let v = p.video.unwrap_or_else(|| panic!("no video recorded for {key}"));
        assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 320, 240, frames), "{key}");
        assert_eq!(p.audio.unwrap_or_else(|| panic!("no audio recorded for {key}")).codec, "aac");
        assert_eq!(decode_errors(&rec), "", "{key}");
    }
    // The controls test's 90 frames, and its local recording (stopped mid-push, so fewer).
    let rec = nginx.recording(&controls_key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let v = probe(&rec).video.expect("no video recorded for the controls push");
    assert_eq!((v.codec.as_str(), v.frames), ("h264", 90));
    // Its sendMessage on frame 50, as an SEI in that frame.
    let messages: Vec<(usize, Vec<u8>)> = {
        use kitepush::core::flv::{FileReader, TAG_VIDEO};
        use kitepush::core::{media::Codec, sei};
        let reader = FileReader::new(std::io::BufReader::new(std::fs::File::open(&rec).unwrap())).unwrap();
        let frames = reader.map(Result::unwrap).filter(|t| t.tag_type == TAG_VIDEO && t.body[1] == 1);
        frames
            .enumerate()
            .flat_map(|(i, t)| {
                let found = sei::parse_length_prefixed(Codec::H264, &t.body[5..]);
                found.into_iter().filter(|u| u.uuid == sei::MESSAGE_UUID).map(move |u| (i, u.payload))
            })
            .collect()
    };
    assert_eq!(messages, vec![(50, b"java-msg 1".to_vec())]);
    assert_eq!(decode_errors(&rec), "");
    let p = probe(&local_recording);
    let v = p.video.expect("no video in the local recording");
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", 320, 240));
    assert!(v.frames > 0 && v.frames <= 90, "local recording: {} frames", v.frames);
    assert_eq!(p.audio.expect("no audio in the local recording").codec, "aac");
    assert_eq!(decode_errors(&local_recording), "");
    // The paused push: the still picture kept the video going, so it spans the pause.
    let rec = nginx.recording(&pause_key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.expect("no video recorded for the paused push");
    assert!(v.frames >= 70, "paused push: {} frames", v.frames);
    assert!(p.format_duration >= 4.0, "paused push lasted {} s", p.format_duration);
    assert_eq!(p.audio.expect("no audio recorded for the paused push").codec, "aac");
    assert_eq!(decode_errors(&rec), "");
    let times = video_packet_times(&rec);
    assert!(times.windows(2).all(|w| w[1].0 > w[0].0), "video times do not increase: {times:?}");
    // The pushers closed mid-stream published before they were closed.
    for round in 0..3 {
        assert!(!nginx.recordings_of(&format!("{close_key}-{round}")).is_empty(), "round {round} never published");
    }
    if std::env::var_os("KP_KEEP_TMP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
}
