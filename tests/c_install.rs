//! scripts/install into a temporary prefix, then the C example built against the installed copy
//! the three ways a firmware build would (pkg-config shared, pkg-config static, CMake shared and
//! static), each run against nginx-rtmp with its recording checked. One library build is reused:
//! what scripts/build-c-lib wrote (scripts/test runs it).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn built_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"));
    let dir = std::env::var("KP_C_LIB_DIR").map(PathBuf::from).unwrap_or_else(|_| target.join("release/c"));
    assert!(
        dir.join("libkitepush.so").exists(),
        "{} has no library: run scripts/build-c-lib first (scripts/test does)",
        dir.display()
    );
    dir
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

fn version() -> String {
    let h = std::fs::read_to_string(root().join("include/kitepush.h")).unwrap();
    h.lines().find_map(|l| l.strip_prefix("#define KP_VERSION_STRING \"")?.strip_suffix('"')).unwrap().to_string()
}

/// Defined dynamic symbols of a shared library that are global or weak.
fn exported(so: &Path) -> Vec<String> {
    let out = run(Command::new("readelf").args(["--dyn-syms", "-W"]).arg(so));
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && matches!(f[4], "GLOBAL" | "WEAK") && f[6] != "UND").then(|| f[7].to_string())
        })
        .collect()
}

fn push_and_check(nginx: &Nginx, exe: &Path, libdir: &Path, what: &str) {
    let key = unique_key(&format!("c-install-{what}"));
    let out = run(Command::new(exe).args([&nginx.url(&key), "2"]).env("LD_LIBRARY_PATH", libdir));
    assert!(out.contains("PUBLISHING"), "{what}: {out}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.expect("video");
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 640, 360, 60), "{what}");
    assert_eq!(p.audio.expect("audio").codec, "aac", "{what}");
    assert_eq!(decode_errors(&rec), "", "{what}");
}

fn needs_libkitepush_so(exe: &Path, libdir: &Path) -> bool {
    let ldd = run(Command::new("ldd").arg(exe).env("LD_LIBRARY_PATH", libdir));
    ldd.contains("libkitepush.so.0 => ")
}

#[test]
fn install_then_build_the_example_with_pkg_config_and_cmake() {
    require_tool("pkg-config");
    let cmake = require_tool("cmake");
    let dir = tmp_dir("c-install");
    let prefix = dir.join("usr");
    let libdir = prefix.join("lib/x86_64-linux-gnu");
    let v = version();
    let major = v.split('.').next().unwrap().to_string();
    run(Command::new(root().join("scripts/install"))
        .arg("--prefix")
        .arg(&prefix)
        .args(["--libdir", "lib/x86_64-linux-gnu", "--from"])
        .arg(built_dir()));

    // The files, the links and the shared library's name and exports.
    assert!(prefix.join("include/kitepush.h").exists());
    assert!(libdir.join("libkitepush.a").exists());
    assert_eq!(
        std::fs::read_link(libdir.join("libkitepush.so")).unwrap(),
        Path::new(&format!("libkitepush.so.{major}"))
    );
    assert_eq!(
        std::fs::read_link(libdir.join(format!("libkitepush.so.{major}"))).unwrap(),
        Path::new(&format!("libkitepush.so.{v}"))
    );
    let so = libdir.join(format!("libkitepush.so.{v}"));
    let dynamic = run(Command::new("readelf").arg("-dW").arg(&so));
    assert!(dynamic.contains(&format!("Library soname: [libkitepush.so.{major}]")), "{dynamic}");
    let exports = exported(&so);
    assert!(exports.iter().any(|s| s == "kp_pusher_new"), "{exports:?}");
    let foreign: Vec<&String> = exports.iter().filter(|s| !s.starts_with("kp_")).collect();
    assert!(foreign.is_empty(), "exported besides kp_*: {foreign:?}");

    // pkg-config: the .pc names the prefix given, and its Libs.private is rustc's list.
    let pc_path = libdir.join("pkgconfig");
    let pkg = |args: &[&str]| -> String {
        run(Command::new("pkg-config").args(args).arg("kitepush").env("PKG_CONFIG_PATH", &pc_path)).trim().to_string()
    };
    assert_eq!(pkg(&["--modversion"]), v);
    assert_eq!(pkg(&["--variable=libdir"]), libdir.display().to_string());
    let static_libs = pkg(&["--static", "--libs"]);
    let native = std::fs::read_to_string(built_dir().join("native-static-libs.txt")).unwrap();
    assert!(static_libs.ends_with(native.trim()), "{static_libs} vs {native}");
    let cflags = pkg(&["--cflags"]);
    let src = root().join("examples/c/push.c");
    let strict = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1"];

    let shared = dir.join("push_pc_shared");
    let mut c = Command::new("cc");
    c.args(strict).args(cflags.split_whitespace()).arg(&src).arg("-o").arg(&shared);
    c.args(pkg(&["--libs"]).split_whitespace()).args(["-lm", "-lpthread"]);
    run(&mut c);
    assert!(needs_libkitepush_so(&shared, &libdir));

    // Static: -lkitepush between -Bstatic and -Bdynamic (the .so sits beside the archive), with the
    // size flag the .pc carries.
    let static_exe = dir.join("push_pc_static");
    let size = pkg(&["--variable=size_ldflags"]);
    let libs: Vec<String> = static_libs
        .split_whitespace()
        .map(|a| if a == "-lkitepush" { "-Wl,-Bstatic -lkitepush -Wl,-Bdynamic".to_string() } else { a.to_string() })
        .collect();
    let mut c = Command::new("cc");
    c.args(strict).args(cflags.split_whitespace()).arg(&src).arg("-o").arg(&static_exe);
    c.args(libs.join(" ").split_whitespace()).args(size.split_whitespace()).args(["-lm", "-lpthread"]);
    run(&mut c);
    assert!(!needs_libkitepush_so(&static_exe, &libdir));

    // CMake: find_package(kitepush CONFIG REQUIRED) and its two imported targets.
    let mut cmake_exes = Vec::new();
    for (name, flag) in [("cmake_shared", "OFF"), ("cmake_static", "ON")] {
        let build = dir.join(name);
        run(Command::new(&cmake)
            .arg("-S")
            .arg(root().join("examples/c"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .arg(format!("-DKITEPUSH_STATIC={flag}"))
            .arg("-DCMAKE_BUILD_TYPE=Release"));
        run(Command::new(&cmake).arg("--build").arg(&build));
        let exe = build.join("push");
        assert_eq!(needs_libkitepush_so(&exe, &libdir), flag == "OFF", "{name}");
        cmake_exes.push((name, exe));
    }

    let nginx = Nginx::start(NginxOptions::default());
    push_and_check(&nginx, &shared, &libdir, "pc-shared");
    push_and_check(&nginx, &static_exe, &libdir, "pc-static");
    for (name, exe) in &cmake_exes {
        push_and_check(&nginx, exe, &libdir, name);
    }
}

#[test]
fn destdir_stages_the_files_without_leaking_into_them() {
    let dir = tmp_dir("c-install-destdir");
    let stage = dir.join("stage");
    run(Command::new(root().join("scripts/install"))
        .args(["--prefix", "/opt/kitepush", "--destdir"])
        .arg(&stage)
        .arg("--from")
        .arg(built_dir()));
    let pc = std::fs::read_to_string(stage.join("opt/kitepush/lib/pkgconfig/kitepush.pc")).unwrap();
    assert!(pc.contains("prefix=/opt/kitepush\n") && pc.contains("libdir=${exec_prefix}/lib\n"), "{pc}");
    assert!(!pc.contains(stage.to_str().unwrap()), "{pc}");
    let cmake = std::fs::read_to_string(stage.join("opt/kitepush/lib/cmake/kitepush/kitepushConfig.cmake")).unwrap();
    assert!(!cmake.contains(stage.to_str().unwrap()), "{cmake}");
    assert!(stage.join("opt/kitepush/include/kitepush.h").exists());
}
