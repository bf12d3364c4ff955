//! A picture of kitepush on a changing uplink: pushes a real-time test pattern and tone through the
//! test suite's throttling proxy (tests/common/proxy.rs) to the built-in receiver under a bandwidth
//! schedule, records the stats callback every second to a CSV and draws a PNG (bandwidth, target
//! and actual bitrate, queue latency, drops). Run it through `scripts/netsim`.
//!
//! `cargo run --release --example netsim -- [--schedule 0:4000,30:1000,60:300,90:4000,120]
//!  [--bitrate KBPS] [--size WxH] [--out DIR]`

#[allow(dead_code)]
#[path = "../tests/common/proxy.rs"]
mod proxy;

use kitepush::encode::{I420Buffer, PixelFormat, VideoFrame};
use kitepush::pattern::{Tone, VideoPattern};
use kitepush::pusher::{AudioConfig, EventKind, Pusher, PusherConfig, Stats, VideoConfig};
use kitepush::receiver::{Receiver, ReceiverConfig};
use plotters::prelude::*;
use proxy::{Fault, Proxy};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// A plotted line: its label, colour and value of a row.
type Line = (&'static str, RGBColor, fn(&Row) -> f64);

struct Row {
    t: f64,
    link: u32,
    s: Stats,
}

fn parse_schedule(s: &str) -> Result<Vec<(f64, u32)>, String> {
    // "0:4000,30:1000,...,120": from second T the link carries K kbit/s; a bare last T ends the run.
    s.split(',')
        .map(|p| match p.split_once(':') {
            Some((t, k)) => {
                Ok((t.parse().map_err(|_| format!("bad time {t}"))?, k.parse().map_err(|_| format!("bad rate {k}"))?))
            }
            None => Ok((p.parse().map_err(|_| format!("bad end time {p}"))?, 0)),
        })
        .collect()
}

fn main() -> Result<(), String> {
    let mut schedule = parse_schedule("0:4000,30:1000,60:300,90:4000,120")?;
    let (mut width, mut height, mut bitrate) = (640u32, 360u32, 2000u32);
    let mut out = PathBuf::from("target/netsim");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--schedule" => schedule = parse_schedule(&val()?)?,
            "--bitrate" => bitrate = val()?.parse().map_err(|_| "bad --bitrate")?,
            "--size" => {
                let v = val()?;
                let (w, h) = v.split_once('x').ok_or("--size WxH")?;
                (width, height) = (w.parse().map_err(|_| "bad width")?, h.parse().map_err(|_| "bad height")?);
            }
            "--out" => out = PathBuf::from(val()?),
            "--bench" => {} // cargo passes it to benches only; harmless here
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let end = schedule.last().map(|s| s.0).unwrap_or(0.0);

    let receiver = Receiver::start(ReceiverConfig::new(out.join("netsim.flv"))).map_err(|e| e.to_string())?;
    let proxy = Proxy::start(receiver.local_addr());
    let config = PusherConfig {
        url: proxy.url("live", "netsim"),
        video: Some(VideoConfig {
            width,
            height,
            fps: 30.0,
            bitrate_kbps: bitrate,
            threads: 1,
            ..VideoConfig::default()
        }),
        audio: Some(AudioConfig::default()),
        ..PusherConfig::default()
    };
    let (ev_tx, ev_rx) = mpsc::channel();
    let pusher = Pusher::new(config, Some(Box::new(move |e: &kitepush::pusher::Event| drop(ev_tx.send(e.clone())))))
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel::<Stats>();
    pusher.set_stats_handler(Duration::from_secs(1), Box::new(move |s: &Stats| drop(tx.send(s.clone())))).unwrap();
    pusher.start().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match ev_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(e) if e.kind == EventKind::KP_EVENT_PUBLISHING => break,
            Ok(_) => {}
            Err(_) => return Err("not publishing within 15 s".into()),
        }
    }

    let pusher = Arc::new(pusher);
    let stop = Arc::new(AtomicBool::new(false));
    let source = {
        let (pusher, stop) = (pusher.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut pattern = VideoPattern::new(width, height);
            let mut pic = I420Buffer::new(width, height);
            let mut tone = Tone::new(44100, 2, 440.0);
            let mut pcm = vec![0i16; 2048];
            let (t0, mut frame, mut samples) = (Instant::now(), 0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                let pts = frame * 1_000_000 / 30;
                std::thread::sleep((t0 + Duration::from_micros(pts)).saturating_duration_since(Instant::now()));
                while samples * 1_000_000 / 44100 <= pts {
                    tone.fill(&mut pcm);
                    let _ = pusher.push_audio(&pcm, (samples * 1_000_000 / 44100) as i64);
                    samples += 1024;
                }
                pattern.fill(frame, &mut pic);
                let (w, h) = (width as usize, height as usize);
                let (y, rest) = pic.data.split_at(w * h);
                let (u, v) = rest.split_at(w * h / 4);
                let f = VideoFrame {
                    format: PixelFormat::KP_PIXEL_FORMAT_I420,
                    width,
                    height,
                    planes: [y, u, v],
                    strides: [w, w / 2, w / 2],
                };
                let _ = pusher.push_video(&f, pts as i64);
                frame += 1;
            }
        })
    };

    let link = Arc::new(AtomicU32::new(0));
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut csv = std::fs::File::create(out.join("netsim.csv")).map_err(|e| e.to_string())?;
    writeln!(csv, "t_s,link_kbps,target_video_kbps,video_kbps,audio_kbps,throughput_kbps,queue_ms,congestion,video_dropped,audio_dropped,sent_fps,rtt_ms,cpu_ms").unwrap();
    while t0.elapsed().as_secs_f64() < end {
        let t = t0.elapsed().as_secs_f64();
        let k = schedule.iter().rev().find(|s| s.0 <= t).map_or(0, |s| s.1);
        if k != link.swap(k, Ordering::SeqCst) {
            proxy.set(Fault::Throttle { kbit_per_s: k });
            eprintln!("{t:6.1} s: link {k} kbit/s");
        }
        let Ok(s) = rx.recv_timeout(Duration::from_secs(5)) else { continue };
        let t = t0.elapsed().as_secs_f64();
        writeln!(
            csv,
            "{t:.2},{k},{},{},{},{},{},{:.3},{},{},{:.1},{},{}",
            s.target_video_kbps,
            s.video_bitrate_kbps,
            s.audio_bitrate_kbps,
            s.throughput_kbps,
            s.queue_ms,
            s.congestion,
            s.video_frames_dropped_congestion,
            s.audio_frames_dropped_congestion,
            s.sent_fps,
            s.rtt_ms,
            s.cpu_time_ms
        )
        .unwrap();
        rows.push(Row { t, link: k, s });
    }
    stop.store(true, Ordering::SeqCst);
    let _ = source.join();
    let pusher = Arc::try_unwrap(pusher).ok().expect("source thread ended");
    let _ = pusher.stop(Duration::from_secs(5));
    drop(pusher);
    let report = receiver.stop();
    let changes: Vec<_> = ev_rx
        .try_iter()
        .filter(|e| e.kind == EventKind::KP_EVENT_BITRATE_CHANGED)
        .map(|e| (e.timestamp_ms, e.value))
        .collect();
    eprintln!("bitrate changes (ms since start, kbit/s): {changes:?}");
    eprintln!("receiver: {} video / {} audio tags", report.video_tags, report.audio_tags);
    plot(&rows, &out.join("netsim.png"))?;
    println!("{}", out.join("netsim.csv").display());
    println!("{}", out.join("netsim.png").display());
    Ok(())
}

fn plot(rows: &[Row], path: &std::path::Path) -> Result<(), String> {
    let font = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e} (install fonts-dejavu-core)"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font).map_err(|_| "bad font")?;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let root = BitMapBackend::new(path, (1000, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let panels = root.split_evenly((3, 1));
    let t_end = rows.last().map_or(1.0, |r| r.t);

    let top = rows.iter().map(|r| r.link.max(r.s.throughput_kbps)).max().unwrap_or(1000) as f64 * 1.1;
    let mut c = ChartBuilder::on(&panels[0])
        .caption("kitepush through a throttled link", ("sans-serif", 20))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, 0.0..top)
        .map_err(e)?;
    c.configure_mesh().y_desc("kbit/s").x_desc("s").label_style(("sans-serif", 12)).draw().map_err(e)?;
    let series: [Line; 4] = [
        ("link", BLACK, |r| r.link as f64),
        ("ABR target (video)", BLUE, |r| r.s.target_video_kbps as f64),
        ("sent video", GREEN, |r| r.s.video_bitrate_kbps as f64),
        ("throughput (all)", RED, |r| r.s.throughput_kbps as f64),
    ];
    for (name, color, f) in series {
        c.draw_series(LineSeries::new(rows.iter().map(|r| (r.t, f(r))), color.stroke_width(2)))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(e)?;

    let qmax = rows.iter().map(|r| r.s.queue_ms).max().unwrap_or(0).max(2200) as f64;
    let mut c = ChartBuilder::on(&panels[1])
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, 0.0..qmax)
        .map_err(e)?;
    c.configure_mesh().y_desc("queue ms").label_style(("sans-serif", 12)).draw().map_err(e)?;
    c.draw_series(LineSeries::new(rows.iter().map(|r| (r.t, r.s.queue_ms as f64)), MAGENTA.stroke_width(2)))
        .map_err(e)?
        .label("queue latency (incl. socket)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], MAGENTA.stroke_width(2)));
    c.draw_series(LineSeries::new([(0.0, 2000.0), (t_end, 2000.0)], BLACK.mix(0.5)))
        .map_err(e)?
        .label("budget")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.5)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(e)?;

    // Drops per second (differences of the counters) and the sent frame rate.
    let per_sec: Vec<(f64, f64, f64)> = rows
        .windows(2)
        .map(|w| {
            let dv = w[1].s.video_frames_dropped_congestion - w[0].s.video_frames_dropped_congestion;
            let da = w[1].s.audio_frames_dropped_congestion - w[0].s.audio_frames_dropped_congestion;
            (w[1].t, dv as f64, da as f64)
        })
        .collect();
    let mut c = ChartBuilder::on(&panels[2])
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, 0.0..35.0)
        .map_err(e)?;
    c.configure_mesh().y_desc("frames/s").x_desc("seconds").label_style(("sans-serif", 12)).draw().map_err(e)?;
    c.draw_series(LineSeries::new(rows.iter().map(|r| (r.t, r.s.sent_fps as f64)), GREEN.stroke_width(2)))
        .map_err(e)?
        .label("video frames sent/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREEN.stroke_width(2)));
    c.draw_series(LineSeries::new(per_sec.iter().map(|p| (p.0, p.1)), RED.stroke_width(2)))
        .map_err(e)?
        .label("video dropped/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
    c.draw_series(LineSeries::new(per_sec.iter().map(|p| (p.0, p.2)), BLUE.stroke_width(2)))
        .map_err(e)?
        .label("audio dropped/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
