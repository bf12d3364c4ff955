//! The cleaned static archive (scripts/build-c-lib) links into what firmware builds bring along:
//! C files that define names the bundled OpenH264 also defines, a second Rust static library from
//! another compiler, and the system OpenH264. Each program is the C example (examples/c/push.c
//! behind tests/c/link_wrap.c) and pushes to nginx-rtmp; the recording is checked. Cargo's own
//! archive is linked too where it fails, to show what the cleaning fixes.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"))
}

/// What scripts/build-c-lib wrote (scripts/test runs it after `cargo build --release --lib`).
fn clean_dir() -> PathBuf {
    let dir = std::env::var("KP_C_LIB_DIR").map(PathBuf::from).unwrap_or_else(|_| target_dir().join("release/c"));
    assert!(
        dir.join("libkitepush.a").exists() && dir.join("native-static-libs.txt").exists(),
        "{} has no cleaned library: run scripts/build-c-lib first (scripts/test does)",
        dir.display()
    );
    dir
}

fn native_libs() -> Vec<String> {
    let text = std::fs::read_to_string(clean_dir().join("native-static-libs.txt")).unwrap();
    text.split_whitespace().map(String::from).collect()
}

fn cc(args: &[&str], what: &str) -> Result<(), String> {
    let out = Command::new("cc").args(args).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// examples/c/push.c with its main renamed, compiled once.
fn example_object() -> &'static Path {
    static OBJ: OnceLock<PathBuf> = OnceLock::new();
    OBJ.get_or_init(|| {
        require_tool("cc");
        let obj = tmp_dir("c-link").join("push.o");
        let inc = format!("-I{}", root().join("include").display());
        let src = root().join("examples/c/push.c");
        cc(
            &["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1", &inc, "-Dmain=kp_example_main", "-c"]
                .into_iter()
                .chain([src.to_str().unwrap(), "-o", obj.to_str().unwrap()])
                .collect::<Vec<_>>(),
            "compile push.c",
        )
        .unwrap();
        obj
    })
}

/// Links tests/c/link_wrap.c (with `defines`), the example and `archive`, then `extra` (objects,
/// libraries) and the archive's system libraries.
fn link(name: &str, defines: &[&str], archive: &Path, extra: &[&str]) -> Result<PathBuf, String> {
    let dir = tmp_dir("c-link");
    let wrap = dir.join(format!("{name}.o"));
    let exe = dir.join(name);
    let inc = format!("-I{}", root().join("include").display());
    let mut args: Vec<String> =
        vec!["-std=c99".into(), "-Wall".into(), "-Werror".into(), "-O1".into(), inc, "-c".into()];
    args.extend(defines.iter().map(|d| format!("-D{d}")));
    args.extend([root().join("tests/c/link_wrap.c").display().to_string(), "-o".into(), wrap.display().to_string()]);
    cc(&args.iter().map(String::as_str).collect::<Vec<_>>(), "compile link_wrap.c")?;
    let mut args: Vec<String> = vec![
        "-o".into(),
        exe.display().to_string(),
        wrap.display().to_string(),
        example_object().display().to_string(),
        archive.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(native_libs());
    cc(&args.iter().map(String::as_str).collect::<Vec<_>>(), &format!("link {name}"))?;
    Ok(exe)
}

/// Pushes 2 s of the example to a fresh nginx, checks the recording; returns the program's output.
fn push_and_check(exe: &Path, key_prefix: &str) -> String {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key(key_prefix);
    let out = Command::new(exe).args([&nginx.url(&key), "2"]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} failed ({}):\n{text}", exe.display(), out.status);
    assert!(text.contains("PUBLISHING"), "{text}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 640, 360, 60));
    assert_eq!(p.audio.expect("audio").codec, "aac");
    assert_eq!(decode_errors(&rec), "");
    text
}

/// Cargo's archive, as it comes: the "before" of each test (skipped when it is not there).
fn raw_archive() -> Option<PathBuf> {
    Some(target_dir().join("release/libkitepush.a")).filter(|p| p.exists())
}

#[test]
fn a_firmware_defining_threadcreate_and_friends_links_and_pushes() {
    let defines = ["COLLIDE"];
    if let Some(raw) = raw_archive() {
        let e = link("link_collide_raw", &defines, &raw, &[]).expect_err("cargo's archive links with ThreadCreate");
        assert!(e.contains("multiple definition of `ThreadCreate'"), "{e}");
    }
    let exe = link("link_collide", &defines, &clean_dir().join("libkitepush.a"), &[]).unwrap();
    let out = push_and_check(&exe, "c-link-collide");
    assert!(out.contains("firmware helpers: 1 2 3 8"), "{out}");
}

#[test]
fn a_second_rust_static_library_from_the_nightly_toolchain_links_beside_it() {
    require_tool("rustup");
    let target = target_dir().join("nightly-lib");
    // The outer cargo's variables would point the nested one at this build's toolchain.
    let out = Command::new("cargo")
        .args(["+nightly", "build", "--release", "--quiet", "--manifest-path"])
        .arg(root().join("tests/c/nightly_lib/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .output()
        .unwrap();
    assert!(out.status.success(), "nightly build: {}", String::from_utf8_lossy(&out.stderr));
    let nightly = target.join("release/libnightly_lib.a");
    let version = Command::new("rustup").args(["run", "nightly", "rustc", "--version"]).output().unwrap();
    println!("second library built by {}", String::from_utf8_lossy(&version.stdout).trim());
    let nightly = nightly.to_str().unwrap();
    let defines = ["NIGHTLY"];
    if let Some(raw) = raw_archive() {
        let e = link("link_nightly_raw", &defines, &raw, &[nightly]).expect_err("two Rust std copies link");
        assert!(e.contains("multiple definition of `"), "{e}");
    }
    let exe = link("link_nightly", &defines, &clean_dir().join("libkitepush.a"), &[nightly]).unwrap();
    let out = push_and_check(&exe, "c-link-nightly");
    assert!(out.contains("nightly library: 42"), "{out}");
}

#[test]
fn the_system_openh264_and_the_bundled_one_each_answer_their_own_calls() {
    assert!(
        Path::new("/usr/include/wels/codec_api.h").exists(),
        "the system OpenH264 is missing: apt-get install libopenh264-dev (scripts/test does)"
    );
    let system = Command::new("pkg-config").args(["--modversion", "openh264"]).output().unwrap();
    let system = String::from_utf8_lossy(&system.stdout).trim().to_string();
    assert!(!system.is_empty(), "pkg-config knows no openh264");
    let exe = link("link_openh264", &["SYSTEM_OPENH264"], &clean_dir().join("libkitepush.a"), &["-lopenh264"]).unwrap();
    let out = push_and_check(&exe, "c-link-openh264");
    // The program's own call reaches the system library...
    assert!(out.contains(&format!("system OpenH264 {system}\n")), "system {system}:\n{out}");
    // ...and kitepush's encoder reports the bundled one (its log line at encoder creation).
    let ours = out
        .lines()
        .find_map(|l| l.split("OpenH264 ").nth(1).and_then(|r| r.strip_suffix(" encoder")))
        .unwrap_or_else(|| panic!("no encoder version in the log:\n{out}"));
    println!("system OpenH264 {system}, kitepush's {ours}");
    assert_ne!(ours, system, "{out}");
    assert!(ours.starts_with("2.7."), "{out}");
}
