//! Driving the SDK in tests: push generated media through a real `Pusher` and collect its events.

use kitepush::encode::{I420Buffer, PixelFormat, VideoFrame};
use kitepush::pattern::{Tone, VideoPattern};
use kitepush::pusher::{AudioConfig, Event, EventKind, Pusher, PusherConfig, PusherState, Stats, VideoConfig};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Spec {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub seconds: f64,
    pub audio: bool,
    pub bitrate_kbps: u32,
}

impl Default for Spec {
    fn default() -> Self {
        Spec { width: 320, height: 240, fps: 30.0, seconds: 10.0, audio: true, bitrate_kbps: 500 }
    }
}

impl Spec {
    pub fn frames(&self) -> u64 {
        (self.seconds * self.fps).round() as u64
    }

    pub fn config(&self, url: &str) -> PusherConfig {
        PusherConfig {
            url: url.to_string(),
            video: Some(VideoConfig {
                width: self.width,
                height: self.height,
                fps: self.fps as f32,
                bitrate_kbps: self.bitrate_kbps,
                keyframe_interval: (self.fps * 2.0) as u32,
                threads: 1,
                ..VideoConfig::default()
            }),
            audio: self.audio.then(AudioConfig::default),
            ..PusherConfig::default()
        }
    }
}

/// A pusher whose events land in a channel.
pub struct Harnessed {
    pub pusher: Pusher,
    pub events: Receiver<Event>,
    pub seen: Vec<Event>,
}

impl Harnessed {
    pub fn new(config: PusherConfig) -> Harnessed {
        let (tx, rx) = channel();
        let pusher =
            Pusher::new(config, Some(Box::new(move |ev: &Event| drop(tx.send(ev.clone()))))).expect("Pusher::new");
        Harnessed { pusher, events: rx, seen: vec![] }
    }

    /// Wait for an event of `kind`; panics with the events seen so far on timeout or on FAILED.
    pub fn wait_for(&mut self, kind: EventKind, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    self.seen.push(ev.clone());
                    if ev.kind == kind {
                        return ev;
                    }
                    if ev.kind == EventKind::KP_EVENT_FAILED {
                        panic!("pusher failed while waiting for {kind:?}: {:?}", self.seen);
                    }
                }
                Err(_) => panic!("no {kind:?} within {timeout:?}; events so far: {:?}", self.seen),
            }
        }
    }

    /// Every event until the channel goes quiet for `quiet`.
    pub fn drain_events(&mut self, quiet: Duration) -> &[Event] {
        while let Ok(ev) = self.events.recv_timeout(quiet) {
            self.seen.push(ev);
        }
        &self.seen
    }

    pub fn kinds(&self) -> Vec<EventKind> {
        self.seen.iter().map(|e| e.kind).collect()
    }
}

/// Generates the pattern and tone and pushes them with explicit timestamps, as fast as the
/// encoder takes them (never overrunning its input queue, so no frame is dropped).
pub struct Source {
    spec: Spec,
    pattern: VideoPattern,
    picture: I420Buffer,
    tone: Tone,
    pcm: Vec<i16>,
    samples: u64,
    pub next_frame: u64,
}

impl Source {
    pub fn new(spec: &Spec) -> Source {
        Source {
            spec: spec.clone(),
            pattern: VideoPattern::new(spec.width, spec.height),
            picture: I420Buffer::new(spec.width, spec.height),
            tone: Tone::new(44100, 2, 440.0),
            pcm: vec![0; 2048],
            samples: 0,
            next_frame: 0,
        }
    }

    pub fn pts_us(&self, frame: u64) -> i64 {
        (frame as f64 * 1e6 / self.spec.fps).round() as i64
    }

    /// Push the next video frame and the audio up to its time.
    pub fn push_one(&mut self, p: &Pusher) {
        let i = self.next_frame;
        let pts = self.pts_us(i);
        let deadline = Instant::now() + Duration::from_secs(30);
        // At most two frames in flight, so the third fits the default input queue of three.
        while p.stats().video_frames_encoded + 2 < i {
            assert!(Instant::now() < deadline, "encoder stuck: {:?}", p.stats());
            assert_ne!(p.state(), PusherState::KP_STATE_FAILED, "pusher failed: {:?}", p.failure());
            std::thread::sleep(Duration::from_millis(1));
        }
        while self.spec.audio && (self.samples * 1_000_000 / 44100) as i64 <= pts {
            self.tone.fill(&mut self.pcm);
            p.push_audio(&self.pcm, (self.samples * 1_000_000 / 44100) as i64).expect("push_audio");
            self.samples += 1024;
        }
        self.pattern.fill(i, &mut self.picture);
        p.push_video(&self.frame(), pts).expect("push_video");
        self.next_frame += 1;
    }

    pub fn frame(&self) -> VideoFrame<'_> {
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let (y, rest) = self.picture.data.split_at(w * h);
        let (u, v) = rest.split_at(w * h / 4);
        VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_I420,
            width: self.spec.width,
            height: self.spec.height,
            planes: [y, u, v],
            strides: [w, w / 2, w / 2],
        }
    }
}

/// Start, wait for PUBLISHING, push the whole spec, stop. Returns the harness and final stats.
/// The default spec's config to `url` for pre-encoded 320x240 H.264 (a hardware encoder's output,
/// e.g. `encoded_test_media`'s); audio as the spec's, for the caller to change.
pub fn pre_encoded_h264_320x240(url: &str) -> PusherConfig {
    let mut config = Spec::default().config(url);
    config.video = Some(VideoConfig {
        encoder: kitepush::pusher::VideoEncoderKind::KP_ENCODER_PASSTHROUGH,
        width: 320,
        height: 240,
        ..VideoConfig::default()
    });
    config
}

pub fn push_all(url: &str, spec: &Spec) -> (Harnessed, Stats) {
    let mut h = Harnessed::new(spec.config(url));
    h.pusher.start().expect("start");
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut src = Source::new(spec);
    for _ in 0..spec.frames() {
        src.push_one(&h.pusher);
    }
    h.pusher.stop(Duration::from_secs(20)).expect("stop");
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    (h, stats)
}

impl Harnessed {
    /// Wait for FAILED; panics if the pusher publishes (unless `publish_ok`) or stays quiet instead.
    pub fn wait_for_failure(&mut self, timeout: Duration, publish_ok: bool) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            match self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(ev) => {
                    self.seen.push(ev.clone());
                    match ev.kind {
                        EventKind::KP_EVENT_FAILED => return ev,
                        EventKind::KP_EVENT_PUBLISHING if !publish_ok => {
                            panic!("published instead of failing: {:?}", self.seen)
                        }
                        _ => {}
                    }
                }
                Err(_) => panic!("no FAILED within {timeout:?}; events so far: {:?}", self.seen),
            }
        }
    }
}

impl Source {
    /// Push the next frame (and its audio) without waiting for the encoder: a full input queue
    /// drops the frame, as it would for a camera.
    pub fn push_one_nowait(&mut self, p: &Pusher) {
        let i = self.next_frame;
        let pts = self.pts_us(i);
        while self.spec.audio && (self.samples * 1_000_000 / 44100) as i64 <= pts {
            self.tone.fill(&mut self.pcm);
            let r = p.push_audio(&self.pcm, (self.samples * 1_000_000 / 44100) as i64);
            assert!(matches!(r, Ok(()) | Err(kitepush::Error::QueueFull(_))), "push_audio: {r:?}");
            self.samples += 1024;
        }
        self.pattern.fill(i, &mut self.picture);
        let r = p.push_video(&self.frame(), pts);
        assert!(matches!(r, Ok(()) | Err(kitepush::Error::QueueFull(_))), "push_video: {r:?}");
        self.next_frame += 1;
    }
}

/// (tag type, what it is) for every tag of an FLV file, read with the SDK's own reader.
pub fn flv_tags(path: &std::path::Path) -> Vec<(u8, &'static str)> {
    use kitepush::core::flv::{classify, FileReader, TagKind};
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    FileReader::new(f)
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            let what = match classify(t.tag_type, &t.body) {
                TagKind::AvcSequenceHeader => "avc-header",
                TagKind::AvcKeyframe => "key",
                TagKind::AvcInterframe => "inter",
                TagKind::AvcEndOfSequence => "avc-end",
                TagKind::AacSequenceHeader => "aac-header",
                TagKind::AacRaw => "aac",
                TagKind::Script => "script",
                TagKind::Other => "other",
            };
            (t.tag_type, what)
        })
        .collect()
}

fn media_timestamps(path: &std::path::Path) -> Vec<u32> {
    use kitepush::core::flv::{classify, FileReader, TagKind};
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    FileReader::new(f)
        .unwrap()
        .map(Result::unwrap)
        .filter(|t| {
            matches!(classify(t.tag_type, &t.body), TagKind::AvcKeyframe | TagKind::AvcInterframe | TagKind::AacRaw)
        })
        .map(|t| t.timestamp_ms)
        .collect()
}

pub fn first_media_timestamp(path: &std::path::Path) -> u32 {
    media_timestamps(path).into_iter().min().expect("media tags")
}

pub fn last_media_timestamp(path: &std::path::Path) -> u32 {
    media_timestamps(path).into_iter().max().expect("media tags")
}

/// Annex-B H.264 access units (split at the access unit delimiters x264 writes with aud=1) and
/// ADTS AAC frames, made by ffmpeg; an IDR every `gop` frames.
pub fn encoded_test_media(dir: &std::path::Path, seconds: u32, gop: u32) -> (Vec<Vec<u8>>, Vec<u8>) {
    use kitepush::core::annexb;
    use std::process::Command;
    super::require_tool("ffmpeg");
    let gop = gop.to_string();
    let h264 = dir.join("in.h264");
    let aac = dir.join("in.aac");
    let run = |args: &[&str]| {
        let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().unwrap();
        assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    };
    let t = seconds.to_string();
    run(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-t",
        &t,
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-g",
        &gop,
        "-x264-params",
        "aud=1",
        "-f",
        "h264",
        h264.to_str().unwrap(),
    ]);
    run(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        &t,
        "-ac",
        "2",
        "-c:a",
        "aac",
        "-f",
        "adts",
        aac.to_str().unwrap(),
    ]);
    let stream = std::fs::read(&h264).unwrap();
    // Cut before every AUD (NAL type 9): one access unit per piece.
    let mut cuts = start_codes_of(&stream, |n| annexb::nal_type(n) == annexb::NAL_AUD);
    cuts.push(stream.len());
    let aus = cuts.windows(2).map(|w| stream[w[0]..w[1]].to_vec()).collect();
    (aus, std::fs::read(&aac).unwrap())
}

/// The ADTS frames of `aac` (as `encoded_test_media` returns it), each with its header: one
/// `push_aac` call each.
pub fn adts_frames_of(aac: &[u8]) -> Vec<&[u8]> {
    kitepush::core::adts::adts_frames(aac)
        .map(|f| {
            let (hd, raw) = f.unwrap();
            let start = raw.as_ptr() as usize - aac.as_ptr() as usize - hd.header_len;
            &aac[start..start + hd.frame_len]
        })
        .collect()
}

/// Where the start codes of the NAL units `pick` chooses begin in an Annex-B `stream` (the 4-byte
/// form's leading zero included): cutting there splits it into access units.
pub fn start_codes_of(stream: &[u8], pick: impl Fn(&[u8]) -> bool) -> Vec<usize> {
    kitepush::core::annexb::nal_units(stream)
        .filter(|n| pick(n))
        .map(|n| {
            let off = n.as_ptr() as usize - stream.as_ptr() as usize;
            if off >= 4 && stream[off - 4..off] == [0, 0, 0, 1] {
                off - 4
            } else {
                off - 3
            }
        })
        .collect()
}

/// An Annex-B `stream` cut into access units before each NAL unit `is_delimiter` picks (an AUD);
/// what comes before the first one (parameter sets a bitstream filter put there) starts the first.
pub fn access_units(stream: &[u8], is_delimiter: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut cuts = start_codes_of(stream, is_delimiter);
    if cuts.first() != Some(&0) {
        cuts.insert(0, 0);
    }
    cuts.push(stream.len());
    cuts.windows(2).map(|w| stream[w[0]..w[1]].to_vec()).collect()
}

impl Source {
    /// Push the next pattern frame alone (the caller handles audio), stamped `pts_us` (< 0: the
    /// SDK's clock). A full input queue drops it, as it would a camera frame.
    pub fn push_one_video_only(&mut self, p: &Pusher, pts_us: i64) {
        self.pattern.fill(self.next_frame, &mut self.picture);
        let r = p.push_video(&self.frame(), pts_us);
        assert!(matches!(r, Ok(()) | Err(kitepush::Error::QueueFull(_))), "push_video: {r:?}");
        self.next_frame += 1;
    }
}

/// Pushes the pattern and tone in real time on a thread until told to stop; returns frames pushed.
pub struct RealTimeSource {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl RealTimeSource {
    pub fn start(pusher: std::sync::Arc<Pusher>, spec: Spec) -> RealTimeSource {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut src = Source::new(&spec);
            let t0 = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                let due = t0 + Duration::from_micros(src.pts_us(src.next_frame) as u64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                src.push_one_nowait(&pusher);
            }
            src.next_frame
        });
        RealTimeSource { stop, thread: Some(thread) }
    }

    pub fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().map_or(0, |t| t.join().unwrap())
    }
}

impl Drop for RealTimeSource {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A started-later pusher shared with a source thread, and its events.
pub fn shared_harness(config: PusherConfig) -> (std::sync::Arc<Pusher>, Receiver<Event>) {
    let h = Harnessed::new(config);
    (std::sync::Arc::new(h.pusher), h.events)
}

/// Events until one matches `f`, with a deadline; panics with what was seen.
pub fn wait_event(rx: &Receiver<Event>, seen: &mut Vec<Event>, timeout: Duration, f: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(ev) => {
                seen.push(ev.clone());
                if f(&ev) {
                    return ev;
                }
            }
            Err(_) => panic!(
                "timed out after {timeout:?}; events: {:#?}",
                seen.iter()
                    .map(|e| (e.timestamp_ms, e.destination, e.kind, e.code, e.value, e.value2, e.message.clone()))
                    .collect::<Vec<_>>()
            ),
        }
    }
}

/// The `wait_event` test for one kind.
pub fn is(kind: EventKind) -> impl Fn(&Event) -> bool {
    move |e| e.kind == kind
}
