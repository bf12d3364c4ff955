//! kitepush demo: push a moving test pattern (or raw I420 from a file or stdin) and a tone.
//!
//! `cargo run --release --example push` starts the built-in receiver on a free loopback port,
//! pushes 10 s of 1280x720 30 fps to it and prints the path of the FLV it received.
//! `cargo run --release --example push -- rtmp://host/app/key` pushes there instead; an
//! `srt://host:port?streamid=...` URL pushes MPEG-TS over SRT; a `whip+http(s)://host/path` URL
//! publishes over WebRTC to that WHIP endpoint (`--bearer TOKEN` for its token).

use kitepush::encode::I420Buffer;
use kitepush::pattern::{Tone, VideoPattern};
use kitepush::pusher::{AudioConfig, EventKind, Pusher, PusherConfig, PusherState, VideoConfig};
use kitepush::receiver::{Receiver, ReceiverConfig};
use kitepush::{Error, ResultCode};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: push [URL] [--duration S] [--size WxH] [--fps N] [--bitrate KBPS] [--keyint FRAMES]
            [--no-audio] [--input FILE|-] [--realtime] [--quiet] [--ca PEMFILE] [--insecure]
            [--bearer TOKEN] [--copy]
Without URL: push to the built-in receiver and write what it receives to an FLV file.
URL: rtmp[s]://host[:port]/app/key, or srt://host:port[?streamid=..&latency=MS&passphrase=..] (libsrt's
syntax, latency in milliseconds), or whip+http[s]://host[:port]/path (a WHIP endpoint; --bearer sends
its token as `Authorization: Bearer`, never printed).
rtmps:// URLs verify the server against the bundled roots; --ca trusts a private CA too,
--insecure accepts any certificate (lab use only: the stream key can be stolen).
--input: raw I420 frames of --size (`-` = stdin), e.g. from `ffmpeg ... -f rawvideo -pix_fmt yuv420p -`.
Frames are read or drawn straight into pictures the pusher lends (video slots); --copy reads them
into the app's own buffer and pushes that (push_video copies it), as a camera app does.";

struct Args {
    url: Option<String>,
    duration: f64,
    width: u32,
    height: u32,
    fps: f64,
    bitrate: u32,
    keyint: u32,
    audio: bool,
    input: Option<String>,
    realtime: Option<bool>,
    quiet: bool,
    ca: Vec<String>,
    insecure: bool,
    bearer: Option<String>,
    copy: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: None,
        duration: 10.0,
        width: 1280,
        height: 720,
        fps: 30.0,
        bitrate: 2000,
        keyint: 0,
        audio: true,
        input: None,
        realtime: None,
        quiet: false,
        ca: Vec::new(),
        insecure: false,
        bearer: None,
        copy: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--duration" => a.duration = val("--duration")?.parse().map_err(|_| "bad --duration")?,
            "--size" => {
                let v = val("--size")?;
                let (w, h) = v.split_once('x').ok_or("--size is WxH")?;
                a.width = w.parse().map_err(|_| "bad --size width")?;
                a.height = h.parse().map_err(|_| "bad --size height")?;
            }
            "--fps" => a.fps = val("--fps")?.parse().map_err(|_| "bad --fps")?,
            "--bitrate" => a.bitrate = val("--bitrate")?.parse().map_err(|_| "bad --bitrate")?,
            "--keyint" => a.keyint = val("--keyint")?.parse().map_err(|_| "bad --keyint")?,
            "--no-audio" => a.audio = false,
            "--input" => a.input = Some(val("--input")?),
            "--realtime" => a.realtime = Some(true),
            "--quiet" => a.quiet = true,
            "--ca" => a.ca.push(val("--ca")?),
            "--insecure" => a.insecure = true,
            "--bearer" => a.bearer = Some(val("--bearer")?),
            "--copy" => a.copy = true,
            "-h" | "--help" => return Err(USAGE.into()),
            s if ["rtmp://", "rtmps://", "srt://", "whip+http://", "whip+https://"]
                .iter()
                .any(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))) =>
            {
                a.url = Some(s.into())
            }
            s => return Err(format!("unknown argument {s}\n{USAGE}")),
        }
    }
    if !(a.duration > 0.0 && a.fps > 0.0) {
        return Err("--duration and --fps must be positive".into());
    }
    if a.keyint == 0 {
        a.keyint = (a.fps * 2.0).round() as u32;
    }
    Ok(a)
}

/// The next frame into `y`, `u`, `v`: read from the input file, or the pattern drawn. False at the
/// end of the input.
fn read_or_draw(
    input: Option<&mut Box<dyn Read>>,
    pattern: Option<&mut VideoPattern>,
    i: u64,
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) -> Result<bool, Error> {
    match input {
        Some(r) => match r.read_exact(y).and_then(|()| r.read_exact(u)).and_then(|()| r.read_exact(v)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Error::Io(format!("reading input: {e}"))),
        },
        None => {
            pattern.expect("no input: pattern").fill_planes(i, y, u, v);
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // The exit status is the kp_result code (1..=255), so scripts can tell a refused
        // certificate (KP_ERR_TLS) from an unreachable server (KP_ERR_CONNECT).
        Err(e) => {
            eprintln!("push failed: {e} ({:?})", e.code());
            ExitCode::from(u8::try_from(e.code() as i32).ok().filter(|&c| c != 0).unwrap_or(1))
        }
    }
}

fn run(args: Args) -> Result<(), Error> {
    let mut receiver = None;
    let url = match &args.url {
        Some(u) => u.clone(),
        None => {
            let out = std::env::temp_dir().join(format!("kitepush-demo-{}.flv", std::process::id()));
            let r = Receiver::start(ReceiverConfig::new(&out)).map_err(|e| Error::Io(format!("receiver: {e}")))?;
            let url = r.url("live", "demo");
            eprintln!("built-in receiver on {} writing {}", r.local_addr(), out.display());
            receiver = Some((r, out));
            url
        }
    };
    let mut config = PusherConfig {
        url,
        video: Some(VideoConfig {
            width: args.width,
            height: args.height,
            fps: args.fps as f32,
            bitrate_kbps: args.bitrate,
            keyframe_interval: args.keyint,
            threads: 1,
            ..VideoConfig::default()
        }),
        audio: args.audio.then(AudioConfig::default),
        ..PusherConfig::default()
    };
    for path in &args.ca {
        let pem = std::fs::read(path).map_err(|e| Error::InvalidArgument(format!("--ca {path}: {e}")))?;
        config.tls.extra_ca_pem.push(pem);
    }
    config.tls.danger_accept_invalid_certs = args.insecure;
    config.whip.bearer_token = args.bearer.clone();
    let (tx, events) = mpsc::channel();
    let quiet = args.quiet;
    let pusher = Pusher::new(
        config,
        Some(Box::new(move |ev| {
            if !quiet || ev.code != ResultCode::KP_OK {
                eprintln!("\r\x1b[2K[{:>6} ms] {:?} {} {}", ev.timestamp_ms, ev.kind, ev.message, ev.value);
            }
            let _ = tx.send(ev.kind);
        })),
    )?;
    pusher.start()?;

    let mut input: Option<Box<dyn Read>> = match args.input.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdin().lock())),
        Some(path) => {
            Some(Box::new(std::fs::File::open(path).map_err(|e| Error::InvalidArgument(format!("{path}: {e}")))?))
        }
    };
    let realtime = args.realtime.unwrap_or(input.is_none());
    let frames = (args.duration * args.fps).round() as u64;
    // The pattern's tables are sized to the picture: only made when there is no input to read.
    let mut pattern = input.is_none().then(|| VideoPattern::new(args.width, args.height));
    // --copy: the app's own picture, copied by push_video.
    let mut picture = args.copy.then(|| I420Buffer::new(args.width, args.height));
    let sample_rate = 44100u64;
    let mut tone = Tone::new(sample_rate as u32, 2, 440.0);
    let mut pcm = vec![0i16; 1024 * 2];
    let mut samples_pushed = 0u64;
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut pushed = 0u64;

    for i in 0..frames {
        if let Ok(EventKind::KP_EVENT_FAILED) = events.try_recv() {
            break;
        }
        let pts_us = (i as f64 * 1e6 / args.fps) as i64;
        if realtime {
            let due = start + Duration::from_micros(pts_us as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        } else {
            // As fast as the encoder goes, without overrunning its input queue.
            while pusher.stats().video_frames_encoded + 1 < pushed && pusher.state() != PusherState::KP_STATE_FAILED {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Audio up to this frame's time, in 1024-sample chunks.
        while args.audio && samples_pushed * 1_000_000 / sample_rate <= pts_us as u64 {
            tone.fill(&mut pcm);
            // Once the pusher has failed, pushes are refused (INVALID_STATE): report why it failed.
            pusher
                .push_audio(&pcm, (samples_pushed * 1_000_000 / sample_rate) as i64)
                .map_err(|e| pusher.failure().unwrap_or(e))?;
            samples_pushed += 1024;
        }
        pushed += 1;
        let pushed_one = match picture.as_mut() {
            Some(picture) => {
                let (y, u, v) = picture.planes_mut();
                if !read_or_draw(input.as_mut(), pattern.as_mut(), i, y, u, v)? {
                    pushed -= 1;
                    break;
                }
                pusher.push_video(&picture.as_frame(), pts_us)
            }
            // Read or drawn straight into a picture the pusher lends: no copy of the frame is made.
            None => match pusher.video_slot() {
                Ok(mut slot) => {
                    let (y, u, v) = slot.planes_mut();
                    if !read_or_draw(input.as_mut(), pattern.as_mut(), i, y, u, v)? {
                        pushed -= 1;
                        break;
                    }
                    pusher.push_video_slot(slot, pts_us)
                }
                Err(e) => Err(e),
            },
        };
        match pushed_one {
            // The encoder is behind: this frame is dropped (and counted).
            Ok(()) | Err(Error::QueueFull(_)) => {}
            Err(e) => return Err(pusher.failure().unwrap_or(e)),
        }
        if !args.quiet && last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = Instant::now();
            let s = pusher.stats();
            let secs = start.elapsed().as_secs_f64();
            eprint!(
                "\r\x1b[2K{:6.1} s | {:5.1} fps | {:5} kbit/s | queue {:4} ms | dropped {}",
                secs,
                s.video_frames_sent as f64 / secs,
                s.video_bitrate_kbps + s.audio_bitrate_kbps,
                s.queue_ms,
                s.video_frames_dropped_encoder + s.frames_dropped_network
            );
            let _ = std::io::stderr().flush();
        }
    }
    pusher.stop(Duration::from_secs(10)).map_err(|e| pusher.failure().unwrap_or(e))?;
    let s = pusher.stats();
    eprintln!(
        "\r\x1b[2Kpushed {} video frames in {:.1} s: {} encoded, {} sent, {} dropped; {} audio frames sent; {} bytes",
        pushed,
        start.elapsed().as_secs_f64(),
        s.video_frames_encoded,
        s.video_frames_sent,
        s.video_frames_dropped_encoder + s.frames_dropped_network,
        s.audio_frames_sent,
        s.bytes_sent
    );
    if let Some(e) = pusher.failure() {
        return Err(e);
    }
    drop(pusher);
    if let Some((r, out)) = receiver {
        let (ended, report) = r.wait_sessions_ended(1, Duration::from_secs(5));
        r.stop();
        if !ended {
            return Err(Error::Timeout("the receiver did not see the publish end".into()));
        }
        println!("{}", out.display());
        eprintln!(
            "received {} video and {} audio tags; play it with: ffplay {}",
            report.video_tags,
            report.audio_tags,
            out.display()
        );
    }
    Ok(())
}
