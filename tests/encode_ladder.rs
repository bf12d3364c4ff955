//! The encode ladder on an emulated low-end CPU: the encode worker's thread is moved into a
//! cgroup v1 `cpu` group limited to a fraction of one core, and 720p30 is pushed in real time to
//! nginx-rtmp (recording on). With the ladder on, the stream settles on a rung it can keep, the
//! recording decodes and carries the size changes with their sequence headers, input drops stop;
//! with the quota lifted the ladder climbs back. With the ladder off, the same CPU stutters.
//!
//! Only the encode thread is limited (a thread moves into a group by its TID): the test's own
//! frame generator and nginx keep real time, as a camera and a server would.
//!
//! The group's period is 20 ms rather than the default 100 ms (see `common::cpu_limit`).
//!
//! `KP_LADDER_LONG=1` runs longer (3 minutes of a settled stream) and at 5, 10 and 20 % of a core.

mod common;

use common::cpu_limit::{thread_id, CpuLimit};
use common::pushing::{flv_tags, Harnessed, RealTimeSource, Source, Spec};
use common::srt::{SrtListener, SrtOptions};
use common::{decode_errors, tmp_dir, unique_key, Nginx, NginxOptions};
use kitepush::pusher::{EventKind, LadderSettings, PauseMode, PusherState};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests of this file one at a time: they share the CPU they limit, and each finds its
/// pusher's encode thread by name.
static SERIAL: Mutex<()> = Mutex::new(());

/// One poll of the stats, `at` seconds after the push started.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    sent: u64,
    queue_full: u64,
    rung: u32,
    fps: f32,
    width: u32,
}

struct Run {
    samples: Vec<Sample>,
    /// (seconds after start, rung size, fps in thousandths) of each ENCODE_RUNG_CHANGED.
    changes: Vec<(f64, (i64, i64), i64)>,
    nginx_file: PathBuf,
    sdk_file: PathBuf,
    _nginx: Nginx,
}

impl Run {
    /// Sent frames per second and input frames refused between `from` and `to` seconds.
    fn between(&self, from: f64, to: f64) -> (f64, u64) {
        let a = self.samples.iter().find(|s| s.at >= from).expect("a sample at the window's start");
        let b = self.samples.iter().rev().find(|s| s.at <= to).expect("a sample at the window's end");
        ((b.sent - a.sent) as f64 / (b.at - a.at).max(0.001), b.queue_full - a.queue_full)
    }
}

/// Pushes 720p30 in real time for `seconds` with the encode thread held to `percent` of a core,
/// lifted after `lift_at` seconds.
fn push(name: &str, ladder: bool, percent: u32, lift_at: Option<f64>, seconds: f64, until_up: bool) -> Option<Run> {
    let limit = CpuLimit::new(name)?;
    limit.set(Some(percent));
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key(name);
    let spec = Spec { width: 1280, height: 720, fps: 30.0, seconds, audio: true, bitrate_kbps: 2500 };
    let mut config = spec.config(&nginx.url(&key));
    // The floor an app on a 5 %-of-a-core kiosk would set: the default one (640x360@15) needs
    // ~4 % of a core here alone but loses a frame a second or two when the other core is busy
    // (a CI run's builds, a hyperthread sibling), and then only a smaller rung is smooth.
    config.ladder = LadderSettings { enabled: ladder, lowest_height: 180, ..LadderSettings::default() };
    let mut h = Harnessed::new(config);
    let sdk_file = tmp_dir(name).join("sdk.flv");
    h.pusher.start_recording(&sdk_file).unwrap();
    h.pusher.start().unwrap();
    // The thread names itself once it runs.
    let mut tid = None;
    common::wait_until(Duration::from_secs(5), "the pusher's encode thread", || {
        tid = thread_id("kp-encode");
        tid.is_some()
    });
    let tid = tid.unwrap();
    limit.add_thread(tid);
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));
    let Harnessed { pusher, events, mut seen } = h;
    let pusher = Arc::new(pusher);
    let t0 = Instant::now();
    let source = RealTimeSource::start(pusher.clone(), spec);
    let (mut samples, mut changes, mut lifted) = (Vec::new(), Vec::new(), false);
    while t0.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(500));
        let at = t0.elapsed().as_secs_f64();
        if lift_at.is_some_and(|l| at >= l) && !lifted {
            limit.set(None);
            lifted = true;
        }
        let s = pusher.stats();
        samples.push(Sample {
            at,
            sent: s.video_frames_sent,
            queue_full: s.video_frames_dropped_encoder,
            rung: s.encode_rung,
            fps: s.encode_fps,
            width: s.encode_width,
        });
        while let Ok(ev) = events.try_recv() {
            if ev.kind == EventKind::KP_EVENT_ENCODE_RUNG_CHANGED {
                changes.push((at, (ev.value, ev.value2), ev.value3));
                eprintln!("{at:5.1} s: {}", ev.message);
            }
            seen.push(ev);
        }
        if until_up && lifted && s.encode_rung == 0 && changes.len() >= 2 {
            // Back at the top: a few seconds of it in the files, then stop.
            std::thread::sleep(Duration::from_secs(3));
            break;
        }
    }
    source.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    drop(limit);
    let nginx_file = nginx.recording(&key);
    nginx.wait_recording_closed(&nginx_file, Duration::from_secs(20));
    Some(Run { samples, changes, nginx_file, sdk_file, _nginx: nginx })
}

/// Each frame's size in decode order, as ffprobe sees it.
fn frame_sizes(path: &Path) -> Vec<(u32, u32)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "frame=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',').map(|v| v.trim().parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .collect()
}

/// The sizes a file goes through (runs of equal sizes collapsed), and its video sequence headers.
fn size_runs_and_headers(path: &Path) -> (Vec<(u32, u32)>, usize) {
    let mut runs = frame_sizes(path);
    runs.dedup();
    let headers = flv_tags(path).iter().filter(|t| t.1 == "avc-header").count();
    (runs, headers)
}

fn check_files(run: &Run) {
    for file in [&run.nginx_file, &run.sdk_file] {
        assert_eq!(decode_errors(file), "", "{} decodes cleanly", file.display());
        let (runs, headers) = size_runs_and_headers(file);
        eprintln!("{}: sizes {runs:?}, {headers} sequence headers", file.display());
        assert_eq!(runs.first(), Some(&(1280, 720)), "{}: starts at the configured size", file.display());
        // Every size change came with its own sequence header (the first is the stream's).
        assert!(headers > runs.len() - 1, "{}: {} sizes but {headers} sequence headers", file.display(), runs.len());
    }
}

fn long() -> bool {
    std::env::var("KP_LADDER_LONG").is_ok_and(|v| v == "1")
}

#[test]
fn a_starved_encoder_steps_down_keeps_its_rate_and_climbs_back_when_the_cpu_returns() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    common::require_tool("nginx");
    let percent = 5;
    // The ladder off: today's stutter, for comparison.
    let Some(off) = push("ladder-off", false, percent, None, 20.0, false) else {
        return;
    };
    let (off_fps, off_drops) = off.between(8.0, 19.0);
    // Settle (down within 15 s), hold with the CPU limited, lift it; a step up needs a minute
    // since the last change (no oscillation) and 20 s of room, so it comes 60-70 s in.
    let (lift, seconds) = if long() { (180.0, 300.0) } else { (30.0, 95.0) };
    let on = push("ladder-on", true, percent, Some(lift), seconds, true).unwrap();
    let downs: Vec<_> = on.changes.iter().filter(|c| c.0 < lift).collect();
    assert!(!downs.is_empty(), "the ladder stepped down: {:?}", on.samples.last());
    let settled_at = downs.last().unwrap().0;
    assert!(settled_at <= 15.0, "settled within 15 s, not {settled_at:.1} s: {:?}", on.changes);
    // Measured from the settle time (2 s) after the last change to the lift.
    let (on_fps, on_drops) = on.between(settled_at + 3.0, lift);
    let rung = on.samples.iter().rev().find(|s| s.at <= lift).unwrap();
    eprintln!(
        "\n{percent} % of a core, 720p30: ladder off: sent {off_fps:.1} fps of 30, {off_drops} input frames \
         dropped in 11 s; ladder on: rung {} ({} wide, {} fps) after {settled_at:.1} s, sent {on_fps:.1} fps, \
         {on_drops} input frames dropped in {:.0} s\n",
        rung.rung,
        rung.width,
        rung.fps,
        lift - settled_at - 3.0
    );
    assert!(off_drops > 0 && off_fps < 27.0, "without the ladder the starved encoder drops frames");
    assert!(f64::from(rung.fps) * 0.9 <= on_fps, "sent {on_fps:.1} fps at a {} fps rung", rung.fps);
    // Drops stop: none would be the rule on a quiet machine; a CI machine that runs builds beside
    // the test takes the odd slice (a frame now and then, 3 in 16 s seen here), nowhere near the
    // ladder's 3 s of steady drops nor the stutter without it.
    let settled_secs = lift - settled_at - 3.0;
    assert!(
        (on_drops as f64) <= 30.0 * settled_secs * 0.02 && on_drops * 10 <= off_drops,
        "input drops stop once settled: {on_drops} in {settled_secs:.0} s: {:?}",
        on.samples
    );
    // Quota lifted: back to the top within the hold time (a minute since the last change, 20 s
    // of room), never more than 2 changes in a minute.
    let up = on.changes.iter().find(|c| c.0 >= lift).unwrap_or_else(|| panic!("no step up: {:?}", on.changes));
    assert_eq!(up.1, (1280, 720), "back at the configured size: {:?}", on.changes);
    let due = (settled_at + 60.0).max(lift + 20.0);
    assert!(up.0 <= due + 3.0, "up at {:.1} s, due by {due:.1} s: {:?}", up.0, on.changes);
    for c in &on.changes {
        let n = on.changes.iter().filter(|d| d.0 >= c.0 && d.0 < c.0 + 60.0).count();
        assert!(n <= 2, "{n} changes in the minute from {:.1} s: {:?}", c.0, on.changes);
    }
    check_files(&on);
}

#[test]
fn a_pause_on_a_lower_rung_repeats_its_picture_and_changes_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    common::require_tool("nginx");
    let Some(limit) = CpuLimit::new("ladder-pause") else {
        return;
    };
    limit.set(Some(5));
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("ladder-pause");
    let spec = Spec { width: 1280, height: 720, fps: 30.0, seconds: 20.0, audio: true, bitrate_kbps: 2500 };
    let mut config = spec.config(&nginx.url(&key));
    config.ladder = LadderSettings { enabled: true, ..LadderSettings::default() };
    // And over SRT (MPEG-TS): the new size's parameter sets must reach that transport too.
    let mut srt = SrtListener::srt_live_transmit(SrtOptions::latency_ms(200));
    config.extra_destinations = vec![vec![srt.url()]];
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    let mut tid = None;
    common::wait_until(Duration::from_secs(5), "the pusher's encode thread", || {
        tid = thread_id("kp-encode");
        tid.is_some()
    });
    limit.add_thread(tid.unwrap());
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));
    let mut src = Source::new(&spec);
    // The app's capture clock: it stands still while paused (its timestamps go on from before).
    let mut push_for = |h: &Harnessed, seconds: f64| {
        let (t0, first) = (Instant::now(), src.pts_us(src.next_frame));
        while t0.elapsed().as_secs_f64() < seconds {
            let due = t0 + Duration::from_micros((src.pts_us(src.next_frame) - first) as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            src.push_one_nowait(&h.pusher);
        }
    };
    // Settled: a first step ~5.5 s in, a second (if the first fell short) 5 s later at the earliest.
    push_for(&h, 12.0);
    h.pusher.pause(PauseMode::KP_PAUSE_STILL_IMAGE).unwrap();
    let paused = h.wait_for(EventKind::KP_EVENT_PAUSED, Duration::from_secs(5)).timestamp_ms;
    std::thread::sleep(Duration::from_secs(4));
    h.pusher.resume().unwrap();
    let resumed = h.wait_for(EventKind::KP_EVENT_RESUMED, Duration::from_secs(5)).timestamp_ms;
    push_for(&h, 5.0);
    assert_ne!(h.pusher.state(), PusherState::KP_STATE_FAILED, "{:?}", h.pusher.failure());
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    let stopped = h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10)).timestamp_ms;
    drop(limit);
    let changes: Vec<_> = h.seen.iter().filter(|e| e.kind == EventKind::KP_EVENT_ENCODE_RUNG_CHANGED).collect();
    println!(
        "rung changes (ms, size): {:?}; paused {paused}, resumed {resumed}, stopped {stopped}",
        changes.iter().map(|e| (e.timestamp_ms, e.value, e.value2)).collect::<Vec<_>>()
    );
    assert!(!changes.is_empty() && changes[0].timestamp_ms < paused, "stepped down before the pause: {changes:?}");
    assert!(
        changes.iter().all(|e| e.timestamp_ms < paused || e.timestamp_ms > resumed),
        "no change while paused: {changes:?}"
    );
    let mut sizes = vec![(1280, 720)];
    sizes.extend(changes.iter().map(|e| (e.value as u32, e.value2 as u32)));
    sizes.dedup();
    assert!(sizes.len() >= 2, "a smaller size at 5 % of a core: {changes:?}");
    let file = nginx.recording(&key);
    nginx.wait_recording_closed(&file, Duration::from_secs(20));
    assert_eq!(decode_errors(&file), "", "{} decodes cleanly", file.display());
    let (runs, headers) = size_runs_and_headers(&file);
    // A step announced just before the stop may have had no picture left to apply to: the
    // encoder takes a new rung with its next picture, which at 5 % of a core (less on a loaded
    // CI machine) can be a second or more away. Seen once in CI: a third step, no 640x360 picture.
    let last = changes.last().unwrap();
    if runs.len() + 1 == sizes.len() && stopped.saturating_sub(last.timestamp_ms) < 3000 {
        println!("the last step ({} ms before the stop) had no picture", stopped - last.timestamp_ms);
        sizes.pop();
    }
    // The pause repeats the last picture at the rung's size: the file changes size with the
    // ladder only, each time with a sequence header.
    assert_eq!(runs, sizes, "{headers} sequence headers");
    assert!(headers >= sizes.len(), "{headers} sequence headers for {sizes:?}");
    srt.stop();
    assert_eq!(decode_errors(srt.output()), "", "the SRT listener's TS decodes cleanly");
    let mut ts_runs = frame_sizes(srt.output());
    ts_runs.dedup();
    assert_eq!(ts_runs, sizes, "the TS changes size at the same place");
}
