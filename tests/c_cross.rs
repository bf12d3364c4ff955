//! ARM Linux, where kiosks live: the C example, cross-compiled with Debian's cross compilers against
//! the cleaned static library scripts/cross built for the target, runs under qemu-user and pushes
//! 5 s of 320x240 to nginx-rtmp on loopback; the recording is checked like the native ones.
//!
//! Targets: `KP_CROSS_TARGETS` (space-separated triples), by default `aarch64-unknown-linux-gnu`,
//! which scripts/test builds (`scripts/cross --build-only aarch64`) before the test run;
//! `scripts/cross armv7` (or `all`) builds armv7-unknown-linux-gnueabihf too and runs this test for it.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's names: the binutils/gcc prefix and the qemu-user binary of a Rust target.
fn debian_names(triple: &str) -> (&'static str, &'static str) {
    match triple {
        "aarch64-unknown-linux-gnu" => ("aarch64-linux-gnu", "qemu-aarch64"),
        "armv7-unknown-linux-gnueabihf" => ("arm-linux-gnueabihf", "qemu-arm"),
        other => panic!("no cross set-up for {other}: scripts/cross knows aarch64 and armv7"),
    }
}

/// Where scripts/cross put the cleaned library of `triple`.
fn lib_dir(triple: &str) -> PathBuf {
    let target =
        std::env::var("KP_CROSS_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target/cross"));
    let dir = target.join(triple).join("release/c");
    assert!(
        dir.join("libkitepush.a").exists() && dir.join("native-static-libs.txt").exists(),
        "{} has no cleaned library: run `scripts/cross --build-only {triple}` first (scripts/test does for aarch64)",
        dir.display()
    );
    dir
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

fn push_under_qemu(triple: &str) {
    let (prefix, qemu) = debian_names(triple);
    let gcc = format!("{prefix}-gcc");
    require_tool(&gcc);
    require_tool(qemu);
    let dir = lib_dir(triple);
    let libs: Vec<String> = std::fs::read_to_string(dir.join("native-static-libs.txt"))
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    let exe = tmp_dir(&format!("cross-{prefix}")).join("push");
    // What a firmware build does: the archive, the system libraries it names, unused sections
    // dropped; the C library and libstdc++ come from the cross sysroot.
    run(
        Command::new(&gcc)
            .args(["-std=c99", "-O2", "-Wall", "-ffunction-sections", "-fdata-sections", "-I"])
            .arg(root().join("include"))
            .arg(root().join("examples/c/push.c"))
            .arg(dir.join("libkitepush.a"))
            .args(&libs)
            .args(["-Wl,--gc-sections", "-o"])
            .arg(&exe),
        &format!("{gcc} examples/c/push.c"),
    );
    let strip = format!("{prefix}-strip");
    let stripped = exe.with_extension("stripped");
    run(Command::new(&strip).arg("-o").arg(&stripped).arg(&exe), "strip");
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    println!(
        "{triple}: cleaned archive {} B; C example {} B, stripped {} B",
        size(&dir.join("libkitepush.a")),
        size(&exe),
        size(&stripped)
    );

    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key(&format!("cross-{prefix}"));
    let started = Instant::now();
    // Real time: under emulation the encoder is several times slower than native, and a push as
    // fast as possible would measure qemu rather than the library.
    let text = run(
        Command::new(qemu).arg("-L").arg(format!("/usr/{prefix}")).arg(&stripped).args([
            &nginx.url(&key),
            "5",
            "--realtime",
            "--size",
            "320x240",
        ]),
        &format!("{qemu} push"),
    );
    println!("{triple}: pushed under {qemu} in {:?}", started.elapsed());
    assert!(text.contains("PUBLISHING"), "{text}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", 320, 240), "{text}");
    // 5 s at 30 fps; an emulated encoder that falls behind drops input (counted by the example).
    assert!(v.frames >= 140, "{} of 150 frames recorded:\n{text}", v.frames);
    assert_eq!(p.audio.expect("audio").codec, "aac");
    assert_eq!(decode_errors(&rec), "");
}

#[test]
fn the_c_example_cross_built_for_arm_pushes_under_qemu() {
    let targets = std::env::var("KP_CROSS_TARGETS").unwrap_or_else(|_| "aarch64-unknown-linux-gnu".into());
    for triple in targets.split_whitespace() {
        push_under_qemu(triple);
    }
}
