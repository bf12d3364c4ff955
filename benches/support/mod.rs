//! Measuring helpers shared by the benches that race kitepush against other pushers: run a child
//! process and read its CPU time and peak RSS from `wait4`, check what nginx recorded, take medians.
//! A bench using this declares `mod common;` (tests/common) at its root as well.
#![allow(dead_code)]

use crate::common::{probe, Nginx};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spawns `cmd`, reaps it with `wait4` and returns (CPU s, wall s, peak RSS in MB = 10^6 bytes,
/// exit ok, a note on failure). A watchdog kills it after `deadline`.
pub fn measure(cmd: Command, stderr_log: &Path, deadline: Duration) -> (f64, f64, f64, bool, String) {
    measure_sampled(cmd, stderr_log, deadline, |_| {}).0
}

/// [`measure`], with `sample` run on a thread of its own with the child's pid while the child
/// runs (e.g. reading its CPU over a window from [`process_cpu_s`]); its result is returned beside.
pub fn measure_sampled<T: Send>(
    mut cmd: Command,
    stderr_log: &Path,
    deadline: Duration,
    sample: impl FnOnce(u32) -> T + Send,
) -> ((f64, f64, f64, bool, String), T) {
    let log = fs::File::create(stderr_log).expect("create stderr log");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    let start = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let pid = child.id() as libc::pid_t;
    std::thread::scope(|scope| {
        let sampler = scope.spawn(move || sample(pid as u32));
        let measured = reap(child, pid, start, stderr_log, deadline);
        (measured, sampler.join().expect("sampler thread"))
    })
}

fn reap(
    child: std::process::Child,
    pid: libc::pid_t,
    start: Instant,
    stderr_log: &Path,
    deadline: Duration,
) -> (f64, f64, f64, bool, String) {
    let reaped = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = {
        let reaped = reaped.clone();
        std::thread::spawn(move || {
            if done_rx.recv_timeout(deadline).is_err() && !reaped.load(Ordering::SeqCst) {
                // SAFETY: plain syscall; the child is not reaped yet, so the pid is still ours.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return true;
            }
            false
        })
    };
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `ru` are valid out-pointers. The `Child` is not
    // waited on afterwards (dropping it does not wait).
    let rc = loop {
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break rc;
    };
    reaped.store(true, Ordering::SeqCst);
    let wall = start.elapsed().as_secs_f64();
    let _ = done_tx.send(());
    let killed = watchdog.join().unwrap_or(false);
    drop(child);
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
    let rss_mb = ru.ru_maxrss as f64 * 1024.0 / 1e6;
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let mut note = String::new();
    if killed {
        note = format!("killed after {deadline:?}");
    } else if !exited_ok {
        let tail: String =
            fs::read_to_string(stderr_log).unwrap_or_default().lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        note = format!("exit status {status:#x}: {tail}");
    }
    (cpu, wall, rss_mb, exited_ok, note)
}

/// User+system CPU seconds a live process has used so far, all its threads (/proc/PID/stat, in
/// clock ticks of 1/100 s); `None` once it is gone.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces: fields 3.. follow the last ')'.
    let f: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// What nginx recorded of one publish.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub frames: u64,
    /// File size over the frames' duration at `fps`.
    pub kbps: f64,
    pub bytes: u64,
    /// Empty when the recording was there and readable.
    pub note: String,
}

/// Waits for nginx to close the recording of `key`, counts its video frames, and deletes it.
pub fn recorded(nginx: &Nginx, key: &str, fps: f64) -> Recorded {
    let path = nginx.recording(key);
    let appear = Instant::now();
    while !path.exists() && appear.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !path.exists() {
        return Recorded { note: "no recording".into(), ..Recorded::default() };
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        nginx.wait_recording_closed(&path, Duration::from_secs(20));
        let frames = probe(&path).video.map(|v| v.frames).unwrap_or(0);
        let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let secs = frames as f64 / fps;
        let kbps = if secs > 0.0 { bytes as f64 * 8.0 / secs / 1000.0 } else { 0.0 };
        Recorded { frames, kbps, bytes, note: String::new() }
    }));
    let _ = fs::remove_file(&path);
    result.unwrap_or_else(|_| Recorded { note: "recording unreadable".into(), ..Recorded::default() })
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// An example binary of this crate next to the running bench: target/<profile>/deps/<bench>-* →
/// target/release/examples/`name`. `env` (e.g. `KP_PUSH_BIN`) overrides; `build` is the command
/// that makes it, said when it is missing (scripts/bench runs it first).
pub fn example_binary(name: &str, env: &str, build: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe
        .parent()
        .and_then(|deps| deps.parent())
        .and_then(|profile| profile.parent())
        .expect("bench binary lives in target/<profile>/deps");
    let bin = target.join("release").join("examples").join(name);
    assert!(bin.is_file(), "{} not found: run `{build}` first (scripts/bench does)", bin.display());
    bin
}

/// Runs FFmpeg quietly (test media generation); panics if it fails.
pub fn ffmpeg(args: &[&str]) {
    let st = Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-y"]).args(args).status().expect("run ffmpeg");
    assert!(st.success(), "ffmpeg {args:?} failed");
}

/// Splits an Annex-B stream at each SPS or at each slice with first_mb_in_slice = 0 that follows a
/// slice (x264 without B-frames: one slice per picture, SPS+PPS before each IDR).
pub fn access_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut has_slice = false;
    let mut i = 0;
    while i + 4 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let t = data[i + 3] & 0x1f;
            let first_mb0 = data.get(i + 4).is_some_and(|b| b & 0x80 != 0);
            let begins = t == 7 || ((t == 1 || t == 5) && first_mb0 && has_slice);
            if begins && (has_slice || starts.is_empty()) {
                let at = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
                starts.push(at);
                has_slice = false;
            }
            has_slice |= t == 1 || t == 5;
            i += 3;
        } else {
            i += 1;
        }
    }
    starts.push(data.len());
    starts.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}
