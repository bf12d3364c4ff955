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

/// Builds the C programs once per test binary against the release static library.
fn c_programs() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
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
        for (dir, target) in [("tests/c", "all"), ("examples/c", "push")] {
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
        (root().join("tests/c/bad_inputs"), root().join("examples/c/push"))
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
    let (_, push) = c_programs();
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

#[test]
fn misuse_from_c_gets_documented_codes_and_the_live_stream_survives() {
    let (bad_inputs, _) = c_programs();
    // Without a server: NULLs, bad URLs, wrong sizes, wrong states.
    run(bad_inputs, &[]);
    // With one: the same mid-stream, and the recording of the good frames is intact.
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("c-misuse");
    run(bad_inputs, &[&nginx.url(&key)]);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    assert_eq!(p.video.expect("video").frames, 180);
    assert!(p.audio.is_some());
    assert_eq!(decode_errors(&rec), "");
}
