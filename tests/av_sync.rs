//! A/V sync under realistic capture, measured in a real recording: ten minutes of a pattern whose
//! white flashes and tone bursts happen together every 2 s, captured with jittered timestamps, a
//! microphone whose sample clock runs 0.1 % fast (0.6 s of drift over the run if audio counted
//! samples), the microphone paused for 5 s and the camera stalled for 4 s. Pushed faster than real
//! time (only timestamps matter) to nginx-rtmp; the flashes are found in the decoded luma, the
//! bursts in the decoded PCM, and every pair must be within 40 ms — the last one included.
//!
//! `KP_AV_SYNC_SECONDS` shortens or lengthens the run (default 600).

mod common;

use common::packets::{largest_gap, luma_means, packets, pcm_on_file_clock};
use common::pushing::{Harnessed, Spec};
use common::*;
use kitepush::encode::{I420Buffer, PixelFormat, VideoFrame};
use kitepush::pattern::VideoPattern;
use kitepush::pusher::{AudioConfig, EventKind, Pusher, PusherState};
use std::time::{Duration, Instant};

const FPS: f64 = 15.0;
const RATE: f64 = 44100.0;
/// The microphone's true sample rate relative to its nominal one.
const MIC_CLOCK: f64 = 1.001;
const CHUNK: usize = 1024;
const PERIOD_S: f64 = 2.0;
const BURST_S: f64 = 0.1;
const MIC_PAUSED: (f64, f64) = (200.0, 205.0);
const CAMERA_STALLED: (f64, f64) = (400.0, 404.0);
const MAX_SKEW_S: f64 = 0.040;

/// Deterministic capture jitter in [-4, 4] ms.
struct Jitter(u64);

impl Jitter {
    fn next_us(&mut self) -> i64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % 8001) as i64 - 4000
    }
}

fn within(t: f64, span: (f64, f64)) -> bool {
    t >= span.0 && t < span.1
}

/// The true (real) time of mic sample `s`.
fn mic_time(s: u64) -> f64 {
    s as f64 / (RATE * MIC_CLOCK)
}

fn beep_at(t: f64) -> bool {
    t >= PERIOD_S && t % PERIOD_S < BURST_S
}

fn frame_of(pic: &I420Buffer, w: u32, h: u32) -> VideoFrame<'_> {
    let (wu, hu) = (w as usize, h as usize);
    let (y, rest) = pic.data.split_at(wu * hu);
    let (u, v) = rest.split_at(wu * hu / 4);
    VideoFrame {
        format: PixelFormat::KP_PIXEL_FORMAT_I420,
        width: w,
        height: h,
        planes: [y, u, v],
        strides: [wu, wu / 2, wu / 2],
    }
}

fn wait_video(p: &Pusher, pushed: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.stats().video_frames_encoded + 2 < pushed {
        assert!(Instant::now() < deadline, "encoder stuck: {:?}", p.stats());
        assert_ne!(p.state(), PusherState::KP_STATE_FAILED, "{:?}", p.failure());
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn push_audio(p: &Pusher, pcm: &[i16], pts_us: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match p.push_audio(pcm, pts_us) {
            Ok(()) => return,
            // The encoder is behind: the chunk left the clock untouched, so push it again.
            Err(kitepush::Error::QueueFull(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("push_audio at {pts_us} us: {e}"),
        }
    }
}

/// Onsets of tone bursts: the first loud sample after at least half a period of quiet.
fn burst_onsets(pcm: &[i16]) -> Vec<f64> {
    let quiet = (RATE * PERIOD_S / 2.0) as usize;
    let mut last_loud: Option<usize> = None;
    let mut onsets = Vec::new();
    for (i, &x) in pcm.iter().enumerate() {
        if x.unsigned_abs() > 2000 {
            if last_loud.is_none_or(|l| i - l > quiet) {
                onsets.push(i as f64 / RATE);
            }
            last_loud = Some(i);
        }
    }
    onsets
}

#[test]
fn ten_minutes_of_jittered_capture_with_gaps_stay_in_sync() {
    let seconds: f64 = std::env::var("KP_AV_SYNC_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600.0);
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("avsync");
    let spec = Spec { fps: FPS, seconds, bitrate_kbps: 300, ..Spec::default() };
    let mut cfg = spec.config(&nginx.url(&key));
    cfg.audio = Some(AudioConfig { bitrate_kbps: 64, ..AudioConfig::default() });
    let mut h = Harnessed::new(cfg);
    h.pusher.start().expect("start");
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));

    let (w, hgt) = (spec.width, spec.height);
    let mut pattern = VideoPattern::new(w, hgt);
    let mut picture = I420Buffer::new(w, hgt);
    let mut flash = I420Buffer::new(w, hgt);
    {
        let (y, u, v) = flash.planes_mut();
        y.fill(235);
        u.fill(128);
        v.fill(128);
    }
    let mut jitter = Jitter(7);
    let mut pcm = vec![0i16; CHUNK * 2];
    let (mut frame, mut sample, mut pushed_video) = (0u64, 0u64, 0u64);
    let (mut flashes_sent, mut bursts_sent) = (0, 0);
    loop {
        let tv = frame as f64 / FPS;
        let ta = mic_time(sample);
        if tv >= seconds && ta >= seconds {
            break;
        }
        if tv <= ta {
            frame += 1;
            if within(tv, CAMERA_STALLED) {
                continue;
            }
            let is_flash = tv > 0.0 && (frame - 1) % (FPS * PERIOD_S) as u64 == 0;
            let pic = if is_flash {
                flashes_sent += 1;
                &flash
            } else {
                pattern.fill(frame - 1, &mut picture);
                &picture
            };
            wait_video(&h.pusher, pushed_video);
            let pts = (tv * 1e6) as i64 + jitter.next_us();
            h.pusher.push_video(&frame_of(pic, w, hgt), pts).expect("push_video");
            pushed_video += 1;
        } else {
            let first = sample;
            sample += CHUNK as u64;
            if within(ta, MIC_PAUSED) {
                continue;
            }
            for (n, pair) in pcm.chunks_exact_mut(2).enumerate() {
                let s = first + n as u64;
                let t = mic_time(s);
                let x = if beep_at(t) { ((t * 1000.0 * std::f64::consts::TAU).sin() * 16000.0) as i16 } else { 0 };
                if beep_at(t) && !beep_at(mic_time(s.saturating_sub(1))) {
                    bursts_sent += 1;
                }
                pair[0] = x;
                pair[1] = x;
            }
            push_audio(&h.pusher, &pcm, (ta * 1e6) as i64 + jitter.next_us());
        }
    }
    h.pusher.stop(Duration::from_secs(30)).expect("stop");
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    let stats = h.pusher.stats();
    assert_eq!(stats.frames_dropped_network + stats.video_frames_dropped_encoder, 0, "{stats:?}");
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(30));

    // Audio flows through the mic pause (silence), video has the camera's hole.
    let a = packets(&rec, "a");
    let agap = largest_gap(&a);
    assert!(agap <= 0.05, "audio gap of {agap} s");
    let v = packets(&rec, "v");
    let vgap = largest_gap(&v);
    let stall = CAMERA_STALLED.1 - CAMERA_STALLED.0;
    assert!((vgap - stall).abs() < 0.1, "video gap of {vgap} s for a {stall} s camera stall");

    // On the wire (and so in the file) the tracks are interleaved by timestamp: no tag is older
    // than one already written by more than the send queue's reordering window (500 ms), even
    // around the camera stall and the mic pause.
    let mut newest = 0u32;
    let mut reorder = 0u32;
    let file = std::io::BufReader::new(std::fs::File::open(&rec).unwrap());
    for tag in kitepush::core::flv::FileReader::new(file).unwrap() {
        let tag = tag.unwrap();
        if tag.tag_type == 8 || tag.tag_type == 9 {
            reorder = reorder.max(newest.saturating_sub(tag.timestamp_ms));
            newest = newest.max(tag.timestamp_ms);
        }
    }
    eprintln!("largest step back between interleaved tags: {reorder} ms");
    assert!(reorder <= 500, "a tag {reorder} ms older than one before it");

    let flashes: Vec<f64> = luma_means(&rec).into_iter().filter(|(_, y)| *y > 180.0).map(|(t, _)| t).collect();
    let bursts = burst_onsets(&pcm_on_file_clock(&rec, RATE as u32));
    assert_eq!(flashes.len(), flashes_sent, "flashes found in the recording");
    assert_eq!(bursts.len(), bursts_sent, "tone bursts found in the recording");
    // Pair each flash with the nearest burst; a flash with no burst near it (mic paused) has none.
    let skews: Vec<(f64, f64)> = flashes
        .iter()
        .filter_map(|&f| {
            let b = bursts.iter().copied().min_by(|x, y| (x - f).abs().total_cmp(&(y - f).abs()))?;
            ((b - f).abs() < 0.5).then_some((f, b - f))
        })
        .collect();
    let worst = skews.iter().map(|s| s.1.abs()).fold(0.0, f64::max);
    let mean = skews.iter().map(|s| s.1).sum::<f64>() / skews.len() as f64;
    let (last_t, last_skew) = *skews.last().expect("pairs");
    eprintln!(
        "A/V skew (audio - video) over {} pairs: mean {:.1} ms, worst {:.1} ms, last {:.1} ms at {last_t:.1} s",
        skews.len(),
        mean * 1e3,
        worst * 1e3,
        last_skew * 1e3
    );
    assert!(last_t >= seconds - 2.0 * PERIOD_S - 0.1, "the last pair at {last_t} s");
    assert!(last_skew.abs() <= MAX_SKEW_S, "A/V skew at the end: {last_skew} s");
    assert!(worst <= MAX_SKEW_S, "worst A/V skew {worst} s");
    let missing_mic = ((MIC_PAUSED.1 - MIC_PAUSED.0) / PERIOD_S).ceil() as usize;
    assert!(skews.len() >= flashes.len() - missing_mic, "{} pairs for {} flashes", skews.len(), flashes.len());
}
