//! kitepush over SRT against FFmpeg 9, and the latency from `push_h264` to the wire for RTMP and SRT.
//!
//! 1. CPU: the same pre-encoded H.264 file (Annex-B, 60 s of 720p30 at 4 Mbit/s, video only:
//!    `push_file` has no audio input) pushed over SRT by kitepush (`push_file srt://... --h264 FILE
//!    --realtime`) and by `ffmpeg -re -f h264 -i FILE -c copy -f mpegts srt://...` (FFmpeg 9 from the
//!    imageio-ffmpeg wheel: Debian's 5.1 has no libsrt) to `srt-live-transmit` listening on loopback,
//!    TSBPD latency 120 ms on both sides. Real time, not as fast as possible as the RTMP benches do:
//!    SRT's receiver plays packets out at the pace they were sent, and pushed flat out (`--fast`)
//!    FFmpeg's stream arrives with frames missing and decode errors, so the work would be unequal.
//!    Each pusher is measured as a child process with `wait4` (user+system CPU, peak RSS); the two
//!    run side by side (each to its own listener) since real time leaves the cores idle. The
//!    received TS is counted with ffprobe and decoded (`ffmpeg -v error`); a run short of frames is
//!    FAIL (unequal work), decode errors are reported beside it. CPU per MB is per MB of the H.264 file (the same work for both;
//!    their TS overheads differ a little). Target: kitepush CPU <= 0.6 x FFmpeg's. Medians of the
//!    runs are reported.
//! 2. Latency: in this process, a pusher gets one access unit every 1/30 s in real time with
//!    `push_h264`, the time of each call recorded just before it. Between the pusher and its peer sits
//!    a relay in this process that reads what the pusher's socket sent and timestamps it on arrival:
//!    for RTMP a TCP relay in front of the crate's built-in receiver, parsing the chunk stream (each
//!    video message's arrival is the read that completed it); for SRT a UDP relay in front of
//!    srt-live-transmit, parsing the TS in the SRT data packets (a unit has arrived with the last TS
//!    packet of its PES, seen when the next PES starts; retransmissions are ignored). The figure is
//!    push_h264 -> the unit's last byte read from loopback: everything kitepush does (queue, worker
//!    wake-up, muxing, SRT pacing, the socket write) plus the loopback hop and the relay's own wake-up
//!    (tens of µs). The library carries no measuring hook. Units are matched by order (the pusher
//!    drops nothing here; the counts are checked).
//!
//! Run it through `scripts/bench`, or `cargo build --release --example push_file &&
//! cargo bench --bench srt_compare -- [--quick] [--runs N] [--fast] [--no-latency] [--no-cpu]`
//! (`--quick`: one run, 20 s file, 10 s of latency samples).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::srt::{caller_url, ffmpeg9, ffmpeg_caller_url, SrtListener, SrtOptions};
use common::{decode_errors, probe, require_tool, tmp_dir};
use kitepush::pusher::{Pusher, PusherConfig, PusherState, VideoConfig, VideoEncoderKind};
use kitepush::receiver::{Receiver, ReceiverConfig};
use rml_rtmp::chunk_io::ChunkDeserializer;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::{access_units, example_binary, ffmpeg, measure, median};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
const LATENCY_MS: u32 = 120;
/// How long past real time a run may take (flat out: how long it may take at all).
const RUN_SLACK: Duration = Duration::from_secs(60);
const TARGET_CPU_RATIO: f64 = 0.6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Kitepush,
    Ffmpeg,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Kitepush => "kitepush srt",
            Who::Ffmpeg => "ffmpeg9 -c copy srt",
        }
    }

    fn command(self, push_file: &Path, h264: &Path, port: u16, realtime: bool) -> Command {
        let opts = SrtOptions::latency_ms(LATENCY_MS);
        match self {
            Who::Kitepush => {
                let mut c = Command::new(push_file);
                c.arg(caller_url(port, &opts, None)).arg("--h264").arg(h264).args(["--fps", &FPS.to_string()]);
                if realtime {
                    c.arg("--realtime");
                }
                c
            }
            Who::Ffmpeg => {
                // linger: FFmpeg's caller otherwise closes before the last packets are acknowledged
                // (libsrt's live-mode default is 0) and the listener loses the tail.
                let url = format!("{}&linger=1", ffmpeg_caller_url(port, &opts, None));
                let mut c = Command::new(ffmpeg9());
                c.args(["-nostdin", "-hide_banner", "-v", "error"]);
                if realtime {
                    c.arg("-re");
                }
                c.args(["-f", "h264", "-framerate", &FPS.to_string()])
                    .arg("-i")
                    .arg(h264)
                    .args(["-c", "copy", "-f", "mpegts", &url]);
                c
            }
        }
    }
}

struct Run {
    who: Who,
    cpu_s: f64,
    rss_mb: f64,
    wall_s: f64,
    ts_mb: f64,
    frames: u64,
    ok: bool,
    note: String,
}

fn main() {
    // Built and run by `cargo test --all-targets` without `--bench`: building is the check there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark not run: use `cargo bench` or scripts/bench");
        return;
    }
    let (mut runs_each, mut quick, mut cpu, mut latency, mut fast) = (3usize, false, true, true, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => (runs_each, quick) = (1, true),
            "--runs" => {
                runs_each = args.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).expect("--runs needs a number")
            }
            "--no-cpu" => cpu = false,
            "--no-latency" => latency = false,
            "--fast" => fast = true,
            _ => {}
        }
    }
    require_tool("ffmpeg");
    require_tool("ffprobe");
    require_tool("srt-live-transmit");

    let dir = tmp_dir("srt-bench");
    let h264 = dir.join("clip.h264");
    let secs: u64 = if quick { 20 } else { 60 };
    println!(
        "generating {secs} s of 4 Mbit/s {WIDTH}x{HEIGHT}@{FPS} H.264 (testsrc2, x264 ultrafast, GOP 60, no B-frames)"
    );
    let src = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}");
    let frames = (secs * u64::from(FPS)).to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src,
        "-frames:v",
        &frames,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-b:v",
        "4M",
        "-maxrate",
        "4M",
        "-bufsize",
        "4M",
        "-bf",
        "0",
        "-g",
        "60",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "h264",
        h264.to_str().unwrap(),
    ]);

    if cpu {
        cpu_compare(&dir, &h264, secs, runs_each, !fast);
    }
    if latency {
        let lat_secs = if quick { 10 } else { 20 };
        latency_compare(&dir, &h264, lat_secs);
    }
    if std::env::var_os("KP_KEEP_TMP").is_none() {
        let _ = fs::remove_dir_all(&dir);
    } else {
        println!("KP_KEEP_TMP: keeping {}", dir.display());
    }
}

// ---------------------------------------------------------------------------------------------
// CPU per MB over SRT

fn cpu_compare(dir: &Path, h264: &Path, secs: u64, runs_each: usize, realtime: bool) {
    let push_file = example_binary("push_file", "KP_PUSH_FILE_BIN", "cargo build --release --example push_file");
    ffmpeg9();
    let want = secs * u64::from(FPS);
    let clip_mb = fs::metadata(h264).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    let mode = if realtime {
        "in real time (-re / --realtime), side by side"
    } else {
        "as fast as possible, one after the other"
    };
    println!("\n== SRT push {mode}, to srt-live-transmit (latency {LATENCY_MS} ms); {runs_each} run(s) each");
    // Flat out, FFmpeg was seen to hang once its receiver had dropped packets: bound the wait.
    let deadline = if realtime { Duration::from_secs(secs) + RUN_SLACK } else { RUN_SLACK };
    let mut runs = Vec::new();
    for round in 0..runs_each {
        let order = if round % 2 == 0 { [Who::Kitepush, Who::Ffmpeg] } else { [Who::Ffmpeg, Who::Kitepush] };
        let one = |who: Who| {
            let mut listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(LATENCY_MS));
            let log = dir.join(format!("{}-{round}.stderr", if who == Who::Kitepush { "kitepush" } else { "ffmpeg" }));
            let (cpu_s, wall_s, rss_mb, exit_ok, mut note) =
                measure(who.command(&push_file, h264, listener.port(), realtime), &log, deadline);
            // srt-live-transmit -a:no ends when its caller has gone: the file is complete then.
            let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                listener.wait_exit(Duration::from_secs(10));
            }));
            if ended.is_err() {
                listener.stop();
                note += " listener did not end by itself";
            }
            let ts_mb = listener.output_len() as f64 / 1e6;
            let (frames, errors) = if listener.output_len() > 0 {
                let frames = probe(listener.output()).video.map(|v| v.frames).unwrap_or(0);
                (frames, decode_errors(listener.output()).lines().count())
            } else {
                (0, 0)
            };
            // Every frame there is equal work; a decode error means a packet was lost on the way
            // (the file muxed without SRT decodes clean), reported beside.
            if errors > 0 {
                note += &format!(" DAMAGED: {errors} decode error line(s)");
            }
            let ok = exit_ok && frames == want;
            Run { who, cpu_s, rss_mb, wall_s, ts_mb, frames, ok, note }
        };
        let results: Vec<Run> = if realtime {
            // Real time leaves the machine idle: running both at once halves the wall time and
            // leaves each one's CPU (its own rusage) as it is.
            std::thread::scope(|sc| {
                let handles: Vec<_> = order.iter().map(|&who| sc.spawn(move || one(who))).collect();
                handles.into_iter().map(|h| h.join().expect("run thread")).collect()
            })
        } else {
            order.iter().map(|&who| one(who)).collect()
        };
        for r in results {
            println!(
                "round {} {:<20} cpu {:6.3} s  wall {:6.2} s  rss {:6.1} MB  frames {:5}/{want}  TS {:6.2} MB  {} {}",
                round + 1,
                r.who.name(),
                r.cpu_s,
                r.wall_s,
                r.rss_mb,
                r.frames,
                r.ts_mb,
                if r.ok { "ok" } else { "FAIL" },
                r.note
            );
            runs.push(r);
        }
    }

    println!("\nmedians of {runs_each} run(s); MB = 10^6 bytes of the H.264 file ({clip_mb:.2} MB, {want} frames)");
    println!(
        "{:<20} {:>8} {:>8} {:>12} {:>9} {:>10} {:>8}",
        "", "CPU s", "wall s", "peak RSS MB", "TS MB", "CPU s/MB", "frames"
    );
    let summary = |who: Who| {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.who == who).collect();
        let m = |f: fn(&Run) -> f64| median(mine.iter().map(|r| f(r)).collect());
        let frames = median(mine.iter().map(|r| r.frames as f64).collect());
        (m(|r| r.cpu_s), m(|r| r.wall_s), m(|r| r.rss_mb), m(|r| r.ts_mb), frames, mine.iter().all(|r| r.ok))
    };
    for who in [Who::Kitepush, Who::Ffmpeg] {
        let (cpu, wall, rss, ts, frames, ok) = summary(who);
        println!(
            "{:<20} {:>8.3} {:>8.2} {:>12.1} {:>9.2} {:>10.4} {:>8.0}  {}",
            who.name(),
            cpu,
            wall,
            rss,
            ts,
            cpu / clip_mb,
            frames,
            if ok { "ok" } else { "FAIL" }
        );
    }
    let (k, f) = (summary(Who::Kitepush), summary(Who::Ffmpeg));
    let valid = k.5 && f.5;
    let cpu_ratio = k.0 / f.0;
    let verdict = match (valid, cpu_ratio <= TARGET_CPU_RATIO) {
        (false, _) => "UNDECIDED (a run failed: unequal work)",
        (true, true) => "met",
        (true, false) => "MISSED",
    };
    println!("  CPU per MB kitepush / ffmpeg = {cpu_ratio:.3} (target <= {TARGET_CPU_RATIO}) -> {verdict}");
    println!("  peak RSS kitepush / ffmpeg = {:.3}", k.2 / f.2);
    println!("  wall kitepush / ffmpeg = {:.3} (real time would be {secs} s)", k.1 / f.1);
    for r in runs.iter().filter(|r| !r.ok) {
        println!("  failed: {} frames {} {}", r.who.name(), r.frames, r.note);
    }
}

// ---------------------------------------------------------------------------------------------
// Latency from push_h264 to the wire

/// Arrival times of the units the relay saw, in order.
type Arrivals = Arc<Mutex<Vec<Instant>>>;

fn latency_compare(dir: &Path, h264: &Path, secs: u64) {
    let data = fs::read(h264).expect("read clip");
    let units: Vec<&[u8]> = access_units(&data).into_iter().take((secs * u64::from(FPS)) as usize).collect();
    println!(
        "\n== latency push_h264 -> last byte of the unit off loopback, {} units in real time at {FPS} fps",
        units.len()
    );
    println!(
        "{:<6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "units", "p50 ms", "p90 ms", "p99 ms", "max ms", "IDR p50"
    );

    // RTMP: kitepush -> TCP relay -> built-in receiver.
    let rx = Receiver::start(ReceiverConfig::new(dir.join("latency.flv"))).expect("start receiver");
    let relay = TcpRelay::start(rx.local_addr());
    let url = format!("rtmp://127.0.0.1:{}/live/latency", relay.port());
    let pushed = push_real_time(&url, &units);
    let arrivals = relay.finish();
    rx.stop();
    report_latency("RTMP", &units, &pushed, &arrivals);

    // SRT: kitepush -> UDP relay -> srt-live-transmit.
    let mut listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(LATENCY_MS));
    let relay = UdpRelay::start(listener.addr());
    let url = caller_url(relay.port(), &SrtOptions::latency_ms(LATENCY_MS), None);
    let pushed = push_real_time(&url, &units);
    let arrivals = relay.finish();
    listener.stop();
    report_latency("SRT", &units, &pushed, &arrivals);
}

fn report_latency(name: &str, units: &[&[u8]], pushed: &[Instant], arrivals: &[Instant]) {
    if arrivals.len() != pushed.len() {
        println!("{name:<6} FAIL: {} units pushed, {} seen on the wire", pushed.len(), arrivals.len());
        return;
    }
    let ms: Vec<f64> =
        pushed.iter().zip(arrivals).map(|(p, a)| a.saturating_duration_since(*p).as_secs_f64() * 1e3).collect();
    let idr: Vec<f64> = ms.iter().zip(units).filter(|(_, u)| is_idr(u)).map(|(m, _)| *m).collect();
    let mut sorted = ms.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1];
    println!(
        "{name:<6} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        ms.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        sorted[sorted.len() - 1],
        median(idr)
    );
}

/// Publishes `units` with `push_h264` at their real-time instants and returns when each call began.
fn push_real_time(url: &str, units: &[&[u8]]) -> Vec<Instant> {
    let config = PusherConfig {
        url: url.to_string(),
        video: Some(VideoConfig {
            encoder: VideoEncoderKind::KP_ENCODER_PASSTHROUGH,
            width: WIDTH,
            height: HEIGHT,
            fps: FPS as f32,
            bitrate_kbps: 4000,
            keyframe_interval: 60,
            ..VideoConfig::default()
        }),
        audio: None,
        ..PusherConfig::default()
    };
    let pusher = Pusher::new(config, None).expect("pusher");
    pusher.start().expect("start");
    common::wait_until(Duration::from_secs(10), "PUBLISHING", || pusher.state() == PusherState::KP_STATE_PUBLISHING);
    let mut pushed = Vec::with_capacity(units.len());
    let period = Duration::from_secs(1) / FPS;
    let start = Instant::now();
    for (i, unit) in units.iter().enumerate() {
        let due = start + period * i as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let pts = (i as i64) * 1_000_000 / i64::from(FPS);
        pushed.push(Instant::now());
        pusher.push_h264(unit, pts, -1).expect("push_h264");
    }
    pusher.stop(Duration::from_secs(10)).expect("stop");
    let s = pusher.stats();
    assert_eq!(s.frames_dropped_network, 0, "the pusher dropped units: latency figures would not match");
    pushed
}

fn is_idr(unit: &[u8]) -> bool {
    unit.windows(4).any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 5)
}

/// Forwards one TCP connection to `upstream`, timestamping each video message of the publisher's
/// RTMP chunk stream when its last byte is read.
struct TcpRelay {
    port: u16,
    arrivals: Arrivals,
    thread: Option<JoinHandle<()>>,
}

/// C0 + C1 + C2: what a client sends before its first chunk.
const RTMP_HANDSHAKE: usize = 1 + 1536 + 1536;

impl TcpRelay {
    fn start(upstream: SocketAddr) -> TcpRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().unwrap().port();
        let arrivals: Arrivals = Arc::default();
        let thread = {
            let arrivals = arrivals.clone();
            std::thread::spawn(move || {
                let (mut client, _) = listener.accept().expect("accept");
                client.set_nodelay(true).ok();
                let mut server = TcpStream::connect(upstream).expect("connect to receiver");
                server.set_nodelay(true).ok();
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let back = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(Shutdown::Write);
                });
                let mut de = ChunkDeserializer::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut skipped = 0usize;
                loop {
                    let n = match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let now = Instant::now();
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let skip = (RTMP_HANDSHAKE - skipped).min(n);
                    skipped += skip;
                    let mut input = &buf[skip..n];
                    while let Ok(Some(m)) = de.get_next_message(input) {
                        input = &[];
                        match m.type_id {
                            1 if m.data.len() >= 4 => {
                                let size = u32::from_be_bytes([m.data[0], m.data[1], m.data[2], m.data[3]]);
                                de.set_max_chunk_size(size as usize).expect("chunk size");
                            }
                            // AVC NALU packets; the sequence header (packet type 0) is no unit.
                            9 if m.data.len() > 1 && m.data[1] == 1 => arrivals.lock().unwrap().push(now),
                            _ => {}
                        }
                    }
                }
                // Both ways: the receiver's side then ends too and the copying thread returns.
                let _ = server.shutdown(Shutdown::Both);
                let _ = back.join();
            })
        };
        TcpRelay { port, arrivals, thread: Some(thread) }
    }

    fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the publisher's connection to end (the pusher has stopped) and returns the arrivals.
    fn finish(mut self) -> Vec<Instant> {
        if let Some(t) = self.thread.take() {
            t.join().expect("relay thread");
        }
        std::mem::take(&mut *self.arrivals.lock().unwrap())
    }
}

/// Forwards SRT datagrams between the pusher and `upstream`, timestamping each video PES in the
/// data packets when its last TS packet arrives.
struct UdpRelay {
    port: u16,
    stop: Arc<AtomicBool>,
    arrivals: Arrivals,
    thread: Option<JoinHandle<()>>,
}

impl UdpRelay {
    fn start(upstream: SocketAddr) -> UdpRelay {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind relay");
        let port = socket.local_addr().unwrap().port();
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let arrivals: Arrivals = Arc::default();
        let thread = {
            let (stop, arrivals) = (stop.clone(), arrivals.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 2048];
                let mut pusher: Option<SocketAddr> = None;
                let mut next_seq: Option<u32> = None;
                let mut video_pid: Option<u16> = None;
                let mut last_video: Option<Instant> = None;
                while !stop.load(Ordering::SeqCst) {
                    let (n, from) = match socket.recv_from(&mut buf) {
                        Ok(x) => x,
                        Err(_) => continue,
                    };
                    let now = Instant::now();
                    if from == upstream {
                        if let Some(p) = pusher {
                            let _ = socket.send_to(&buf[..n], p);
                        }
                        continue;
                    }
                    pusher = Some(from);
                    let _ = socket.send_to(&buf[..n], upstream);
                    // Data packets only (control packets have the top bit set), each sequence once.
                    if n < 16 || buf[0] & 0x80 != 0 {
                        continue;
                    }
                    let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    // 31-bit sequence numbers: "behind" is half the space back, across a wrap too.
                    if next_seq.is_some_and(|s| seq.wrapping_sub(s) & 0x7FFF_FFFF > 0x4000_0000) {
                        continue; // older than what was seen: a retransmission
                    }
                    next_seq = Some(seq.wrapping_add(1) & 0x7FFF_FFFF);
                    for ts in buf[16..n].chunks_exact(188) {
                        if ts[0] != 0x47 {
                            continue;
                        }
                        let pid = u16::from_be_bytes([ts[1] & 0x1f, ts[2]]);
                        let pusi = ts[1] & 0x40 != 0;
                        let afc = (ts[3] >> 4) & 3;
                        let at = if afc & 2 != 0 { 5 + ts[4] as usize } else { 4 };
                        let payload = ts.get(at..).unwrap_or(&[]);
                        let video_start = pusi && payload.len() >= 4 && payload[..4] == [0, 0, 1, 0xe0];
                        if video_start {
                            video_pid = Some(pid);
                            if let Some(t) = last_video.take() {
                                arrivals.lock().unwrap().push(t);
                            }
                        }
                        if video_pid == Some(pid) && afc & 1 != 0 {
                            last_video = Some(now);
                        }
                    }
                }
                if let Some(t) = last_video {
                    arrivals.lock().unwrap().push(t);
                }
            })
        };
        UdpRelay { port, stop, arrivals, thread: Some(thread) }
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn finish(mut self) -> Vec<Instant> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("relay thread");
        }
        std::mem::take(&mut *self.arrivals.lock().unwrap())
    }
}
