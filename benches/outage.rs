//! Outage recovery: a real nginx-rtmp is killed (SIGKILL) and restarted on the same port N times
//! (20; 5 with `--quick`) while kitepush publishes a 640x360@30 pattern + 440 Hz tone in real time.
//! For each restart it prints the time from "server accepting again" to the new session's publish
//! and to its first media frame, then p50/p95/max and the target (p95 <= 1.0 s when the
//! outage is shorter than the first backoff step, 0.5 s). Every recording segment (N + 1) is then
//! probed. The same kill/restart is done once each to FFmpeg and GStreamer publishing the same kind
//! of stream, which exit: the bench reports when, and whether they published again.
//!
//! Run it through `scripts/bench` (installs what is missing), or directly:
//! `cargo bench --bench outage -- [--quick] [--restarts N] [--outage-ms MS]`.
//!
//! What is measured, per restart (all instants on this process's monotonic clock):
//! - "accepting": the instant `Nginx::restart()` returned. restart() polls every 20 ms until nginx
//!   logged its worker start and a TCP connect to the port succeeded, so the server may have been
//!   accepting up to ~20 ms (one poll step) earlier than this instant.
//! - "publish": the KP_EVENT_PUBLISHING event of the new session, placed on the clock as
//!   (instant `Pusher::new` returned) + `Event.timestamp_ms`. The SDK stamps events with whole
//!   milliseconds since its creation instant, which lies just before `new` returns: the figure is
//!   within about 1 ms. The network worker writes the sequence headers right after this event, in
//!   the same loop iteration.
//! - "1st frame" / "1st video": the first audio/video frame of the new session counted as sent
//!   (`Stats::{audio,video}_frames_sent`, incremented as the frame enters the RTMP session's
//!   output, which the same thread writes to the socket at once), found by polling `stats()` every
//!   millisecond from the "accepting" instant: up to ~1 ms late. Video restarts at the IDR the
//!   encoder was asked for at the disconnect, queued with the media made during the outage.
//! - "kept" / "lost": the RECONNECTED event's `value3` / `value4`: ms of the media made during the
//!   outage that the new session sends, and that was lost.
//! - "outage": the RECONNECTED event's own figure: from the detected loss to the new publish.

#[path = "../tests/common/mod.rs"]
mod common;

use common::pushing::{Source, Spec};
use common::{probe, require_tool, unique_key, Nginx, NginxOptions};
use kitepush::pusher::{Event, EventKind, Pusher, PusherConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FPS: u32 = 30;
const BITRATE_KBPS: u32 = 800;
/// The SDK's default first reconnect delay (ReconnectPolicy::default().first_delay).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The target for p95(accepting -> first media of the new session).
const TARGET_P95: Duration = Duration::from_millis(1000);
/// Media flowing before each kill.
const MEDIA_BEFORE_KILL: Duration = Duration::from_secs(1);
/// A publish counts as working for the SDK after a server acknowledgement (nginx acks every
/// 128 KiB we receive, the window the SDK announces) or 3 s; one that does not is a failed attempt
/// and the next backoff grows. So before each kill we also wait until 2 ack windows were sent
/// (bounded by this), so every restart starts again from the first backoff step.
const STABLE_BYTES: u64 = 2 * 128 * 1024;
const STABLE_WAIT_MAX: Duration = Duration::from_millis(3200);
/// How long to wait for the pusher to publish again after a restart before calling it a failure.
const RECOVER_DEADLINE: Duration = Duration::from_secs(15);
/// How long FFmpeg/GStreamer are watched after the restart.
const BASELINE_WATCH: Duration = Duration::from_secs(5);

fn main() {
    // `cargo test --all-targets` builds and runs bench targets too, without `--bench`: building
    // them is the check there; measuring is `cargo bench`'s (scripts/bench) job.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark not run: use `cargo bench` or scripts/bench");
        return;
    }
    // `cargo bench` passes `--bench`; ours are `--quick`, `--restarts N`, `--outage-ms MS`.
    let mut restarts = 20usize;
    let mut outage = Duration::from_millis(200);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => restarts = 5,
            "--restarts" => {
                restarts = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .expect("--restarts needs a positive number")
            }
            "--outage-ms" => {
                outage =
                    Duration::from_millis(args.next().and_then(|v| v.parse().ok()).expect("--outage-ms needs a number"))
            }
            _ => {}
        }
    }
    for tool in ["ffmpeg", "ffprobe", "gst-launch-1.0", "gst-inspect-1.0"] {
        require_tool(tool);
    }
    let bench_start = Instant::now();
    let mut nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    println!(
        "nginx-rtmp on 127.0.0.1:{} (record_unique); {restarts} restart(s) of kitepush, then one each of FFmpeg and \
         GStreamer; outage {} ms (SIGKILL of nginx -> sleep -> start on the same port); first backoff step {} ms\n",
        nginx.port(),
        outage.as_millis(),
        FIRST_BACKOFF.as_millis()
    );

    // Timings are wall-clock: on a shared machine other jobs' load shows up in them.
    println!("load average before: {}", loadavg());
    let kp = kitepush_run(&mut nginx, restarts, outage);
    println!("\nload average after the kitepush restarts: {}", loadavg());
    let ff = baseline(&mut nginx, Baseline::Ffmpeg, outage);
    let gst = baseline(&mut nginx, Baseline::Gstreamer, outage);
    drop(nginx);
    report(&kp, &[ff, gst], restarts, outage);
    println!("\n(bench wall time {:.1} s)", bench_start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// kitepush

#[derive(Debug, Clone)]
struct Trial {
    killed_at: Instant,
    /// Media published before the kill: PUBLISHING -> SIGKILL.
    held: Duration,
    /// Duration of Nginx::kill(): SIGKILL to processes gone and port closed.
    kill: Duration,
    /// SIGKILL -> DISCONNECTED event.
    detect: Option<Duration>,
    /// SIGKILL -> accepting again.
    down: Duration,
    /// The delay the first RECONNECTING event announced.
    backoff: Option<Duration>,
    /// accepting -> PUBLISHING event (negative when it came first: then the figures are invalid).
    publish: Option<f64>,
    first_frame: Option<Duration>,
    first_video: Option<Duration>,
    /// PUBLISHING `value`: CONNECTING -> publish accepted (TCP connect, handshake, connect, publish).
    setup: Option<Duration>,
    /// RECONNECTED `value`, `value2`, `value3` (ms of the outage's media kept), `value4` (lost).
    reconnected: Option<(i64, i64, i64, i64)>,
    note: String,
}

struct KitepushResult {
    trials: Vec<Trial>,
    segments: Vec<Segment>,
    frames_pushed: u64,
    frames_sent: u64,
    failed: Option<String>,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    video_frames: u64,
    audio_frames: u64,
    seconds: f64,
    error: Option<String>,
}

struct Events {
    rx: Receiver<Event>,
    created: Instant,
    seen: Vec<Event>,
}

impl Events {
    /// The instant an event was emitted, on our clock.
    fn at(&self, ev: &Event) -> Instant {
        self.created + Duration::from_millis(ev.timestamp_ms)
    }

    fn drain(&mut self) -> Vec<Event> {
        let new: Vec<Event> = self.rx.try_iter().collect();
        self.seen.extend(new.iter().cloned());
        new
    }

    fn wait_for(&mut self, kind: EventKind, timeout: Duration) -> Result<Event, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(ev) => {
                    self.seen.push(ev.clone());
                    if ev.kind == kind {
                        return Ok(ev);
                    }
                    if ev.kind == EventKind::KP_EVENT_FAILED {
                        return Err(format!("pusher failed: {}", ev.message));
                    }
                }
                Err(_) => return Err(format!("no {kind:?} within {timeout:?}")),
            }
        }
    }
}

fn kitepush_run(nginx: &mut Nginx, restarts: usize, outage: Duration) -> KitepushResult {
    let key = unique_key("outage-kitepush");
    let spec =
        Spec { width: WIDTH, height: HEIGHT, fps: FPS as f64, seconds: 0.0, audio: true, bitrate_kbps: BITRATE_KBPS };
    let config: PusherConfig = spec.config(&nginx.url(&key));
    let (tx, rx) = channel();
    let pusher = Pusher::new(config, Some(Box::new(move |ev: &Event| drop(tx.send(ev.clone()))))).expect("Pusher::new");
    // The SDK's creation instant (Event::timestamp_ms counts from it) is taken at the end of new().
    let created = Instant::now();
    let mut ev = Events { rx, created, seen: vec![] };
    println!(
        "kitepush: {WIDTH}x{HEIGHT}@{FPS} pattern + 44.1 kHz stereo tone, OpenH264 {BITRATE_KBPS} kbit/s IDR every 2 s, \
         AAC 128 kbit/s, pushed in real time; default reconnect policy"
    );
    pusher.start().expect("start");
    let stop = AtomicBool::new(false);
    let mut trials = Vec::new();
    let mut failed = None;
    let mut frames_pushed = 0;
    std::thread::scope(|s| {
        let source = s.spawn(|| {
            // Real time: frame i is due at start + i/fps; audio goes up to each frame's time.
            let mut src = Source::new(&spec);
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs_f64(src.next_frame as f64 / FPS as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                src.push_one(&pusher);
            }
            src.next_frame
        });
        let mut run = || -> Result<(), String> {
            let first = ev.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10))?;
            let mut published_at = ev.at(&first);
            println!(
                "\n{:>3} {:>5} {:>5} {:>6} {:>5} {:>7} {:>5} | {:>7} {:>9} {:>9} | {:>6} {:>3} {:>5} {:>5}  note",
                "#",
                "held",
                "kill",
                "detect",
                "down",
                "backoff",
                "setup",
                "publish",
                "1st frame",
                "1st video",
                "outage",
                "att",
                "kept",
                "lost"
            );
            for i in 0..restarts {
                // ~1 s of media, and a publish the SDK counts as working (see STABLE_BYTES).
                let bytes0 = pusher.stats().bytes_sent;
                std::thread::sleep((published_at + MEDIA_BEFORE_KILL).saturating_duration_since(Instant::now()));
                while pusher.stats().bytes_sent < bytes0 + STABLE_BYTES && published_at.elapsed() < STABLE_WAIT_MAX {
                    std::thread::sleep(Duration::from_millis(10));
                }
                ev.drain();
                let mut t = restart_once(nginx, &pusher, &mut ev, outage)?;
                t.held = t.killed_at.saturating_duration_since(published_at);
                print_trial(i + 1, &t);
                let publishing = ev.seen.iter().rev().find(|e| e.kind == EventKind::KP_EVENT_PUBLISHING);
                published_at = publishing.map_or_else(Instant::now, |e| ev.at(e));
                trials.push(t);
            }
            std::thread::sleep((published_at + MEDIA_BEFORE_KILL).saturating_duration_since(Instant::now()));
            Ok(())
        };
        if let Err(e) = run() {
            failed = Some(e);
        }
        stop.store(true, Ordering::Relaxed);
        frames_pushed = source.join().unwrap_or(0);
    });
    let _ = pusher.stop(Duration::from_secs(5));
    if let Err(e) = ev.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10)) {
        failed.get_or_insert(format!("stop: {e}"));
    }
    let frames_sent = pusher.stats().video_frames_sent;
    drop(pusher);
    let segments = check_segments(nginx, &key);
    KitepushResult { trials, segments, frames_pushed, frames_sent, failed }
}

/// One kill + outage + restart; measures the recovery.
fn restart_once(nginx: &mut Nginx, pusher: &Pusher, ev: &mut Events, outage: Duration) -> Result<Trial, String> {
    let seen_before = ev.seen.len();
    let killed_at = Instant::now();
    let mut t = Trial {
        killed_at,
        held: Duration::ZERO,
        kill: Duration::ZERO,
        detect: None,
        down: Duration::ZERO,
        backoff: None,
        publish: None,
        first_frame: None,
        first_video: None,
        setup: None,
        reconnected: None,
        note: String::new(),
    };
    nginx.kill();
    t.kill = killed_at.elapsed();
    std::thread::sleep(outage);
    nginx.restart();
    let accepting = Instant::now();
    t.down = accepting - killed_at;
    // Only now: sent counters cannot move while no session is publishing (checked below).
    let base = pusher.stats();
    let deadline = accepting + RECOVER_DEADLINE;
    let mut publishing_seen = false;
    loop {
        let now = Instant::now();
        for e in ev.drain() {
            if e.kind == EventKind::KP_EVENT_FAILED {
                return Err(format!("pusher failed: {}", e.message));
            }
        }
        let s = pusher.stats();
        if t.first_frame.is_none()
            && (s.video_frames_sent > base.video_frames_sent || s.audio_frames_sent > base.audio_frames_sent)
        {
            t.first_frame = Some(now - accepting);
        }
        if t.first_video.is_none() && s.video_frames_sent > base.video_frames_sent {
            t.first_video = Some(now - accepting);
        }
        publishing_seen |= ev.seen[seen_before..].iter().any(|e| e.kind == EventKind::KP_EVENT_RECONNECTED);
        if publishing_seen && t.first_video.is_some() && t.first_frame.is_some() {
            break;
        }
        if now > deadline {
            return Err(format!(
                "restart: no publish and media within {RECOVER_DEADLINE:?}; events: {:?}",
                &ev.seen[seen_before..]
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let events = &ev.seen[seen_before..];
    let find = |k: EventKind| events.iter().find(|e| e.kind == k);
    let disconnected = find(EventKind::KP_EVENT_DISCONNECTED).ok_or("no DISCONNECTED after the kill")?;
    let detected_at = ev.at(disconnected);
    t.detect = Some(detected_at.saturating_duration_since(killed_at));
    if detected_at > accepting {
        t.note += "loss detected after the restart (figures invalid); ";
    }
    t.backoff = find(EventKind::KP_EVENT_RECONNECTING).map(|e| Duration::from_millis(e.value2.max(0) as u64));
    let publishing = events.iter().rev().find(|e| e.kind == EventKind::KP_EVENT_PUBLISHING).ok_or("no PUBLISHING")?;
    let at = ev.at(publishing);
    t.setup = Some(ms_dur(publishing.value));
    t.publish = Some(if at >= accepting {
        (at - accepting).as_secs_f64()
    } else {
        t.note += "published before restart() returned (figures invalid); ";
        -(accepting - at).as_secs_f64()
    });
    let r = find(EventKind::KP_EVENT_RECONNECTED).ok_or("no RECONNECTED")?;
    t.reconnected = Some((r.value, r.value2, r.value3, r.value4));
    let failed_attempts = events.iter().filter(|e| e.kind == EventKind::KP_EVENT_RECONNECTING).count();
    if failed_attempts > 1 {
        t.note += &format!("{} connect attempt(s) refused; ", failed_attempts - 1);
    }
    Ok(t)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{}", d.as_millis()))
}

fn print_trial(i: usize, t: &Trial) {
    let publish = t.publish.map_or("-".into(), |s| format!("{:.0}", s * 1000.0));
    let (outage, att, kept, lost) =
        t.reconnected.map_or(("-".into(), "-".into(), "-".into(), "-".into()), |(v, a, k, l)| {
            (v.to_string(), a.to_string(), k.to_string(), l.to_string())
        });
    println!(
        "{i:>3} {:>5} {:>5} {:>6} {:>5} {:>7} {:>5} | {:>7} {:>9} {:>9} | {:>6} {:>3} {:>5} {:>5}  {}",
        t.held.as_millis(),
        t.kill.as_millis(),
        ms(t.detect),
        t.down.as_millis(),
        ms(t.backoff),
        ms(t.setup),
        publish,
        ms(t.first_frame),
        ms(t.first_video),
        outage,
        att,
        kept,
        lost,
        t.note.trim_end_matches("; ")
    );
}

/// Probes every recording segment of `key`; the last one is first given time to close.
fn check_segments(nginx: &Nginx, key: &str) -> Vec<Segment> {
    let paths = nginx.recordings_of(key);
    if let Some(last) = paths.last() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            nginx.wait_recording_closed(last, Duration::from_secs(10))
        }));
    }
    paths.into_iter().map(|p| segment(&p)).collect()
}

fn segment(path: &Path) -> Segment {
    let probed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| probe(path)));
    match probed {
        Ok(p) => Segment {
            path: path.to_path_buf(),
            video_frames: p.video.as_ref().map_or(0, |v| v.frames),
            audio_frames: p.audio.as_ref().map_or(0, |a| a.frames),
            seconds: p.video.as_ref().map_or(f64::NAN, |v| v.duration),
            error: None,
        },
        Err(e) => Segment {
            path: path.to_path_buf(),
            video_frames: 0,
            audio_frames: 0,
            seconds: f64::NAN,
            error: Some(
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "ffprobe failed".into())
                    .chars()
                    .take(200)
                    .collect(),
            ),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// FFmpeg and GStreamer

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Baseline {
    Ffmpeg,
    Gstreamer,
}

struct BaselineResult {
    who: Baseline,
    command: String,
    /// Published before the kill (a recording segment with data appeared).
    started: bool,
    /// Exit status and when, after the SIGKILL of nginx.
    exited: Option<(Duration, ExitStatus)>,
    /// A new recording segment appeared after the restart.
    republished: bool,
    stderr_tail: String,
    note: String,
}

fn has_element(name: &str) -> bool {
    Command::new("gst-inspect-1.0")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn baseline_command(who: Baseline, url: &str) -> Command {
    match who {
        Baseline::Ffmpeg => {
            let mut c = Command::new("ffmpeg");
            c.args(["-nostdin", "-hide_banner", "-v", "error", "-re"])
                .args(["-f", "lavfi", "-i", &format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}")])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
                .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"])
                .args(["-b:v", &format!("{BITRATE_KBPS}k"), "-g", &(2 * FPS).to_string()])
                .args(["-c:a", "aac", "-b:a", "128k"])
                .args(["-f", "flv", url]);
            c
        }
        Baseline::Gstreamer => {
            // x264enc is in plugins-ugly, often not installed: fall back to openh264enc (plugins-bad).
            let video: Vec<String> = if has_element("x264enc") {
                vec![
                    "x264enc".into(),
                    "tune=zerolatency".into(),
                    "speed-preset=veryfast".into(),
                    format!("bitrate={BITRATE_KBPS}"),
                    format!("key-int-max={}", 2 * FPS),
                ]
            } else {
                vec!["openh264enc".into(), format!("bitrate={}", BITRATE_KBPS * 1000), format!("gop-size={}", 2 * FPS)]
            };
            let aac = ["voaacenc", "avenc_aac", "fdkaacenc"]
                .into_iter()
                .find(|e| has_element(e))
                .expect("no GStreamer AAC encoder (voaacenc, avenc_aac or fdkaacenc)");
            let mut c = Command::new("gst-launch-1.0");
            c.arg("-q")
                .args(["videotestsrc", "is-live=true", "pattern=smpte", "!"])
                .arg(format!("video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={FPS}/1"))
                .arg("!")
                .args(video)
                .args(["!", "h264parse", "!", "flvmux", "streamable=true", "name=m", "!", "rtmp2sink"])
                .arg(format!("location={url}"))
                .args(["audiotestsrc", "is-live=true", "!", "audioconvert", "!", "audioresample", "!", aac])
                .args(["!", "aacparse", "!", "m."]);
            c
        }
    }
}

fn shell_words(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One kill/restart under FFmpeg or GStreamer: did it exit (when), did it publish again.
fn baseline(nginx: &mut Nginx, who: Baseline, outage: Duration) -> BaselineResult {
    let key = unique_key(&format!("outage-{who:?}").to_lowercase());
    let mut cmd = baseline_command(who, &nginx.url(&key));
    let command = shell_words(&cmd).replace(&key, "KEY");
    let log_dir = common::tmp_dir("outage-baseline");
    let log_path = log_dir.join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("create stderr log");
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().expect("spawn baseline");
    let pid = child.id() as libc::pid_t;
    // A waiter thread takes the exit instant, however busy this thread is with nginx.
    let (exit_tx, exit_rx) = channel();
    std::thread::spawn(move || {
        let mut child = child;
        let status = child.wait();
        let _ = exit_tx.send((Instant::now(), status));
    });
    let mut r = BaselineResult {
        who,
        command,
        started: false,
        exited: None,
        republished: false,
        stderr_tail: String::new(),
        note: String::new(),
    };
    // Publishing: a recording with data, then ~1 s more of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut early_exit = None;
    while Instant::now() < deadline {
        if let Ok(x) = exit_rx.try_recv() {
            early_exit = Some(x);
            break;
        }
        if nginx.recordings_of(&key).iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)) {
            r.started = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if r.started {
        std::thread::sleep(MEDIA_BEFORE_KILL);
        early_exit = exit_rx.try_recv().ok();
    }
    if let Some((_, status)) = early_exit {
        r.note = format!("exited before the kill ({status:?})");
    } else if !r.started {
        r.note = "did not publish within 10 s".into();
    } else {
        let segments_before = nginx.recordings_of(&key).len();
        let killed_at = Instant::now();
        nginx.kill();
        std::thread::sleep(outage);
        nginx.restart();
        let accepting = Instant::now();
        let mut exit = None;
        while accepting.elapsed() < BASELINE_WATCH {
            if let Ok(x) = exit_rx.try_recv() {
                exit = Some(x);
            }
            if nginx.recordings_of(&key).len() > segments_before {
                r.republished = true;
            }
            if exit.is_some() || r.republished {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some((at, status)) = exit {
            let status = status.expect("wait for the baseline");
            r.exited = Some((at.saturating_duration_since(killed_at), status));
        } else if r.republished {
            // It survived; give the new segment a moment of media before stopping it.
            std::thread::sleep(MEDIA_BEFORE_KILL);
        }
    }
    if r.exited.is_none() {
        // SAFETY: plain syscall; the waiter thread has not reaped the child (no exit was reported).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = exit_rx.recv_timeout(Duration::from_secs(5));
    }
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    // The first error line says why it stopped; otherwise the last line.
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let line = lines.iter().find(|l| l.contains("rror")).or(lines.last()).copied().unwrap_or("");
    r.stderr_tail = line.chars().take(200).collect();
    if std::env::var_os("KP_KEEP_TMP").is_none() {
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Report

/// Nearest-rank percentile (p in 0..=100) of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn stats_line(name: &str, mut v: Vec<Duration>) -> Option<Duration> {
    if v.is_empty() {
        println!("  {name:<44} no values");
        return None;
    }
    v.sort();
    let p95 = percentile(&v, 95.0);
    println!(
        "  {name:<44} p50 {:>5} ms   p95 {:>5} ms   max {:>5} ms   (n={})",
        percentile(&v, 50.0).as_millis(),
        p95.as_millis(),
        v.last().unwrap().as_millis(),
        v.len()
    );
    Some(p95)
}

fn report(kp: &KitepushResult, baselines: &[BaselineResult], restarts: usize, outage: Duration) {
    let trials = &kp.trials;
    let valid: Vec<&Trial> = trials.iter().filter(|t| t.note.is_empty() || !t.note.contains("invalid")).collect();
    println!(
        "\ncolumns (ms): held = PUBLISHING -> SIGKILL (media before the kill); kill = Nginx::kill() (SIGKILL -> processes gone, port closed); detect = SIGKILL -> \
         DISCONNECTED event;\n  down = SIGKILL -> accepting again (restart() returned); backoff = delay announced by \
         RECONNECTING;\n  setup = PUBLISHING value (CONNECTING -> publish accepted: TCP, handshake, connect, \
         createStream, publish);\n  publish = accepting -> PUBLISHING event (sequence headers are written right after it); \
         1st frame / 1st video =\n  accepting -> first audio-or-video / first video frame of the new session sent \
         (stats polled every 1 ms);\n  outage = RECONNECTED value (loss -> new publish); att = RECONNECTED value2 \
         (connect attempts);\n  kept / lost = RECONNECTED value3 / value4 (ms of the media made during the outage \
         sent by the new session / lost)"
    );
    if let Some(e) = &kp.failed {
        println!("\nkitepush run FAILED: {e}");
    }
    println!("\nkitepush, {} of {restarts} restart(s) measured, outage {} ms:", trials.len(), outage.as_millis());
    let pick = |f: fn(&Trial) -> Option<Duration>| valid.iter().filter_map(|t| f(t)).collect::<Vec<_>>();
    let p_pub = stats_line(
        "accepting -> PUBLISHING (headers written)",
        pick(|t| t.publish.filter(|s| *s >= 0.0).map(Duration::from_secs_f64)),
    );
    let p_frame = stats_line("accepting -> first media frame sent", pick(|t| t.first_frame));
    stats_line("accepting -> first video frame (IDR) sent", pick(|t| t.first_video));
    stats_line("RECONNECTED outage (loss -> new publish)", pick(|t| t.reconnected.map(|(v, ..)| ms_dur(v))));
    stats_line("server down (SIGKILL -> accepting)", pick(|t| Some(t.down)));
    stats_line("media lost per restart (RECONNECTED value4)", pick(|t| t.reconnected.map(|(.., l)| ms_dur(l))));
    stats_line("media kept per restart (RECONNECTED value3)", pick(|t| t.reconnected.map(|(_, _, k, _)| ms_dur(k))));
    stats_line("CONNECTING -> publish accepted (setup)", pick(|t| t.setup));
    stats_line("SIGKILL -> loss detected (DISCONNECTED)", pick(|t| t.detect));
    stats_line("SIGKILL -> accepting again (server down)", pick(|t| Some(t.down)));
    let backoffs: Vec<u128> = trials.iter().filter_map(|t| t.backoff.map(|b| b.as_millis())).collect();
    if let (Some(lo), Some(hi)) = (backoffs.iter().min(), backoffs.iter().max()) {
        println!("  first backoff announced: {lo}..{hi} ms (policy: {} ms +-10 %)", FIRST_BACKOFF.as_millis());
    }
    let slowest = pick(|t| t.first_frame).into_iter().max();
    if let Some(p95) = p_frame {
        println!(
            "  p95(first media frame) / first backoff step = {:.2}; p95(PUBLISHING) / first backoff step = {:.2}",
            p95.as_secs_f64() / FIRST_BACKOFF.as_secs_f64(),
            p_pub.unwrap_or_default().as_secs_f64() / FIRST_BACKOFF.as_secs_f64()
        );
    }

    let segs = &kp.segments;
    let with_video = segs.iter().filter(|s| s.video_frames > 0).count();
    let with_audio = segs.iter().filter(|s| s.audio_frames > 0).count();
    let expected = trials.len() + 1;
    println!(
        "\nrecordings: {} segment(s) (expected {expected} = 1 + {} restarts), {with_video} with video frames > 0, \
         {with_audio} with audio frames > 0, {} unreadable",
        segs.len(),
        trials.len(),
        segs.iter().filter(|s| s.error.is_some()).count()
    );
    println!(
        "  video frames per segment: [{}]",
        segs.iter().map(|s| s.video_frames.to_string()).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  recorded video frames {} of {} sent by the SDK ({} pushed by the app: the rest were lost to the \
         outages (in flight on the\n  lost connection, or made before the IDR asked for at the disconnect), or still \
         queued at stop); {:.1} s \
         of video recorded",
        segs.iter().map(|s| s.video_frames).sum::<u64>(),
        kp.frames_sent,
        kp.frames_pushed,
        segs.iter().map(|s| if s.seconds.is_nan() { 0.0 } else { s.seconds }).sum::<f64>()
    );
    let recorded = segs.iter().map(|s| s.video_frames).sum::<u64>();
    println!(
        "  frames delivered / frames pushed over the run: {recorded} / {} = {:.3} (FFmpeg and GStreamer exit at \
         the first kill: everything after it is lost)",
        kp.frames_pushed,
        recorded as f64 / kp.frames_pushed.max(1) as f64
    );
    for s in segs.iter().filter(|s| s.error.is_some()) {
        println!("  unreadable {}: {}", s.path.display(), s.error.as_deref().unwrap_or(""));
    }

    let kp_survived = trials
        .iter()
        .filter(|t| t.reconnected.is_some() && t.first_video.is_some() && !t.note.contains("invalid"))
        .count();
    println!("\nFFmpeg / GStreamer, one kill/restart each, same outage:");
    for b in baselines {
        println!("  {:<9} {}", format!("{:?}", b.who).to_lowercase(), b.command);
        let exited = match &b.exited {
            Some((after, status)) => format!("exited {} ms after the SIGKILL ({status})", after.as_millis()),
            None if b.started && b.note.is_empty() => "still running".to_string(),
            None => "-".to_string(),
        };
        println!(
            "            {exited}; published again: {}{}{}",
            if b.republished { "yes" } else { "no" },
            if b.note.is_empty() { String::new() } else { format!("; {}", b.note) },
            if b.stderr_tail.is_empty() { String::new() } else { format!("\n            stderr: {}", b.stderr_tail) }
        );
    }

    let mut summary = format!("\nrestarts survived: kitepush {kp_survived}/{}", trials.len().max(restarts));
    for b in baselines {
        let n = if b.started && b.note.is_empty() { 1 } else { 0 };
        let ok = usize::from(b.republished && b.exited.is_none());
        let how = match &b.exited {
            Some((after, _)) => format!(" (exited after {} ms)", after.as_millis()),
            None if n == 0 => format!(" ({})", b.note),
            None if b.republished => " (published again)".to_string(),
            None => " (still running, did not publish again)".to_string(),
        };
        summary += &format!(", {} {ok}/{n}{how}", format!("{:?}", b.who).to_lowercase());
    }
    println!("{summary}");

    let all_ok = kp.failed.is_none() && kp_survived == restarts && with_video == expected && segs.len() == expected;
    println!("\ntarget (outage {} ms < first backoff {} ms):", outage.as_millis(), FIRST_BACKOFF.as_millis());
    for (what, p) in [("first media frame sent", p_frame), ("PUBLISHING event", p_pub)] {
        let verdict = match p {
            None => "UNDECIDED (no values)".to_string(),
            Some(p) if !all_ok => format!("{} ms -> UNDECIDED (a restart or a recording failed)", p.as_millis()),
            Some(p) if p <= TARGET_P95 => format!("{} ms -> met", p.as_millis()),
            Some(p) => format!("{} ms -> MISSED", p.as_millis()),
        };
        println!("  p95(accepting -> {what}) <= {} ms: {verdict}", TARGET_P95.as_millis());
    }
    if outage >= FIRST_BACKOFF {
        println!("  (this outage is not shorter than the first backoff step: the target does not apply)");
    }
    if let Some(s) = slowest {
        println!("  slowest restart: {} ms to the first media frame", s.as_millis());
    }
}

fn ms_dur(v: i64) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

/// The 1/5/15-minute load averages, from /proc/loadavg.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{} ({cpus} CPUs)", text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}
