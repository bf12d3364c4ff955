//! The encode ladder at work (the policy is `core::ladder`): the encode worker measures, the
//! ladder decides, and this module carries the decision to the three places that act on it.
//!
//! - `push_video` (the app's thread) converts and scales each frame straight to the current
//!   rung's size, in one pass, and skips the frames a lower rate does not keep, by timestamp,
//!   before copying them: on a starved CPU the copy of a frame nobody encodes is work lost, and a
//!   skipped frame never takes a slot of the input queue. The timeline sees only the frames kept.
//! - The encode worker runs the encoder at the rung it applied last. A change of size waits for
//!   the first picture of the new size: pictures queued before it are encoded at the old size,
//!   not thrown away; a picture of another size (the pause image, the last picture repeated while
//!   paused) is scaled to the encoder's size.
//! - The bitrate follows the pixel rate (see [`SCALE_ONE`]): the worker sets the reconfigured
//!   encoder's, and the monitor scales the adaptive bitrate's target, ceiling and maximum.
//!
//! The load the ladder sees is the encode worker's: per video frame, the wall time of its scaling
//! and encoding, of the conversion in `push_video`, and of the audio encoded in between (video
//! waits for that too), over the last second.

use super::event::EventKind;
use super::shared::{lock, Shared};
use crate::core::ladder::{Complexity, Ladder, LadderChange, LadderConfig, LadderSample, Rung};
use crate::encode::pixel::Downscaler;
use crate::encode::{ChromaLayout, I420Buffer, PixelFormat, VideoFrame};
use crate::error::{Result, ResultCode};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the ladder is asked, and the window it is shown (four ticks).
const TICK: Duration = Duration::from_millis(250);
const WINDOW_TICKS: usize = 4;

/// The pixel rate of the current rung over the first's, in millionths: bits per second roughly
/// follow pixels x frames, so the ABR's target, ceiling and maximum are scaled by it. (Not by the
/// complexity: a cheaper encoder setting needs as many bits, or more.)
const SCALE_ONE: u32 = 1_000_000;

/// What the app's thread, the worker and the monitor share.
pub struct LadderShared {
    /// The current rung's size (width << 32 | height) that `push_video` converts to.
    size: AtomicU64,
    /// The current rung's frame interval in microseconds; 0 while every frame is kept.
    interval_us: AtomicU64,
    /// The next app timestamp (µs) a frame is kept at, under the rate gate.
    next_keep_us: Mutex<Option<i64>>,
    /// See [`SCALE_ONE`].
    pub scale: AtomicU32,
    /// Rung index, and the rung, for the stats.
    status: Mutex<Option<(u32, Rung)>>,
    pub frames_skipped: AtomicU64,
    /// Wall time of `push_video`'s conversion and scaling, ns, for the ladder's load.
    pub convert_ns: AtomicU64,
    /// Frames `push_video` refused with QUEUE_FULL.
    pub queue_full: AtomicU64,
}

impl Default for LadderShared {
    fn default() -> Self {
        LadderShared {
            size: AtomicU64::new(0),
            interval_us: AtomicU64::new(0),
            next_keep_us: Mutex::new(None),
            scale: AtomicU32::new(SCALE_ONE),
            status: Mutex::new(None),
            frames_skipped: AtomicU64::new(0),
            convert_ns: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
        }
    }
}

impl LadderShared {
    /// The size `push_video` converts to: the rung's, or the configured one without a ladder.
    pub fn size(&self, configured: (u32, u32)) -> (u32, u32) {
        match self.size.load(Relaxed) {
            0 => configured,
            s => ((s >> 32) as u32, s as u32),
        }
    }

    /// Whether the frame at `pts_us` is kept at the current rung's rate: one per interval, by
    /// timestamp, so 30 → 15 fps keeps every other frame and 30 → 20 two of three.
    pub fn keep(&self, pts_us: i64) -> bool {
        let interval = self.interval_us.load(Relaxed) as i64;
        if interval == 0 {
            return true;
        }
        let mut next = lock(&self.next_keep_us);
        // A quarter interval early still counts: capture times jitter by a few ms.
        if next.is_some_and(|n| pts_us < n - interval / 4) {
            self.frames_skipped.fetch_add(1, Relaxed);
            return false;
        }
        *next = Some(match *next {
            Some(n) if pts_us < n + interval => n + interval,
            _ => pts_us + interval,
        });
        true
    }

    /// Index of the rung in use (0 = as configured) and the rung, once a ladder runs.
    pub fn status(&self) -> Option<(u32, Rung)> {
        *lock(&self.status)
    }

    fn publish(&self, index: usize, rung: Rung, configured_fps: f32) {
        self.size.store(u64::from(rung.width) << 32 | u64::from(rung.height), Relaxed);
        let full_rate = rung.fps + 0.01 >= configured_fps;
        let interval = if full_rate { 0 } else { (1e6 / f64::from(rung.fps)).round() as u64 };
        self.interval_us.store(interval, Relaxed);
        *lock(&self.status) = Some((index as u32, rung));
    }

    /// The encoder runs `rung` now: the monitor scales the ABR to it.
    fn publish_scale(&self, rung: Rung, top: Rung) {
        let scale = (pixel_rate(rung) / pixel_rate(top) * f64::from(SCALE_ONE)).round() as u32;
        self.scale.store(scale.clamp(1, SCALE_ONE), Relaxed);
    }
}

fn pixel_rate(r: Rung) -> f64 {
    f64::from(r.width) * f64::from(r.height) * f64::from(r.fps)
}

/// Busy time and pictures encoded in one tick.
#[derive(Clone, Copy, Default)]
struct Bucket {
    busy_ns: u64,
    frames: u32,
    dropped: u32,
}

/// The encode worker's side: the ladder, the window it is fed from, the rung the encoder runs.
pub struct LadderDriver {
    ladder: Ladder,
    top: Rung,
    configured_fps: f32,
    /// The rung the encoder was last configured for.
    applied: Rung,
    buckets: [Bucket; WINDOW_TICKS],
    current: usize,
    next_tick: Instant,
    convert_seen: u64,
    drops_seen: u64,
    /// Pictures of another size than the encoder's, scaled (reused).
    scaled: I420Buffer,
    scaler: Downscaler,
}

/// What the worker should do with a picture.
pub enum Plan {
    /// Encode it as it is.
    Encode,
    /// Encode the driver's scaled copy ([`LadderDriver::scaled`]).
    Scaled,
    /// Smaller than the encoder's size (queued before a step up): dropped.
    Drop,
}

impl LadderDriver {
    pub fn new(cfg: LadderConfig, shared: &Shared, now: Instant) -> LadderDriver {
        let top = cfg.rungs[0];
        let configured_fps = shared.config.video.as_ref().map_or(top.fps, |v| v.fps);
        shared.ladder.publish(0, top, configured_fps);
        shared.ladder.publish_scale(top, top);
        LadderDriver {
            ladder: Ladder::new(cfg, now),
            top,
            configured_fps,
            applied: top,
            buckets: [Bucket::default(); WINDOW_TICKS],
            current: 0,
            next_tick: now + TICK,
            convert_seen: shared.ladder.convert_ns.load(Relaxed),
            drops_seen: shared.ladder.queue_full.load(Relaxed),
            scaled: I420Buffer::default(),
            scaler: Downscaler::default(),
        }
    }

    /// One picture's scaling and encoding took `busy`.
    pub fn record(&mut self, busy: Duration) {
        let b = &mut self.buckets[self.current];
        b.busy_ns += busy.as_nanos() as u64;
        b.frames += 1;
    }

    /// The worker spent `busy` on something else (audio): video waited that long too, so it is
    /// part of the load the video rate has to fit in.
    pub fn record_other(&mut self, busy: Duration) {
        self.buckets[self.current].busy_ns += busy.as_nanos() as u64;
    }

    /// Every [`TICK`]: the ladder looks at the last second. On a change the new rung is
    /// published (to `push_video` and the monitor) and reported; the encoder follows in
    /// [`LadderDriver::plan`].
    pub fn tick(&mut self, shared: &Shared, now: Instant, paused: bool) {
        if now < self.next_tick {
            return;
        }
        // Late by more than the window (nothing came for a while): the window says nothing.
        let late = now.saturating_duration_since(self.next_tick) >= TICK * WINDOW_TICKS as u32;
        self.next_tick = now + TICK;
        let convert = shared.ladder.convert_ns.load(Relaxed);
        let drops = shared.ladder.queue_full.load(Relaxed);
        let b = &mut self.buckets[self.current];
        b.busy_ns += convert.wrapping_sub(self.convert_seen);
        b.dropped = drops.wrapping_sub(self.drops_seen).min(u64::from(u32::MAX)) as u32;
        (self.convert_seen, self.drops_seen) = (convert, drops);
        let new_drops = b.dropped;
        if late {
            self.buckets = [Bucket::default(); WINDOW_TICKS];
        }
        // Drops over the whole window, like the time: a frame lost every second or so (a steady
        // stutter) is over the budget in every sample, not in one of four.
        let (busy, frames, dropped) = self
            .buckets
            .iter()
            .fold((0u64, 0u32, 0u32), |(b, f, d), x| (b + x.busy_ns, f + x.frames, d.saturating_add(x.dropped)));
        self.current = (self.current + 1) % WINDOW_TICKS;
        self.buckets[self.current] = Bucket::default();
        let rung = self.ladder.rung();
        let encode_time = match frames {
            // Nothing encoded in a whole second while frames were refused: as overloaded as it gets.
            0 if dropped > 0 => TICK * WINDOW_TICKS as u32,
            // Nothing pushed (the app paused its camera): no sample.
            0 => return,
            n => Duration::from_nanos(busy / u64::from(n)),
        };
        let sample = LadderSample { encode_time, frame_interval: rung.frame_interval(), dropped, new_drops, paused };
        if let Some(change) = self.ladder.update(now, sample) {
            self.announce(shared, change);
            // The window held the old rung's frames.
            self.buckets = [Bucket::default(); WINDOW_TICKS];
        }
    }

    fn announce(&mut self, shared: &Shared, c: LadderChange) {
        shared.ladder.publish(c.to, c.rung, self.configured_fps);
        let r = c.rung;
        let n = self.ladder.config().rungs.len();
        let cx = match r.complexity {
            Complexity::High => "high",
            Complexity::Medium => "medium",
            Complexity::Low => "low",
        };
        let way = if c.up { "up" } else { "down" };
        log::info!(
            "encode ladder {way}: rung {} of {n}, {}x{} at {} fps, complexity {cx}",
            c.to,
            r.width,
            r.height,
            r.fps
        );
        shared.emit_values(
            EventKind::KP_EVENT_ENCODE_RUNG_CHANGED,
            ResultCode::KP_OK,
            format!("encode rung {} of {n} ({way}): {}x{} at {} fps, complexity {cx}", c.to, r.width, r.height, r.fps),
            0,
            [i64::from(r.width), i64::from(r.height), (f64::from(r.fps) * 1000.0).round() as i64, c.to as i64],
        );
    }

    /// The rung the encoder should run for a picture of `size`, when that is not the one it
    /// runs: a change of complexity or rate applies at once, a change of size with the first
    /// picture of the new size (or a picture that has to be scaled anyway).
    pub fn reconfigure_for(&self, size: (u32, u32)) -> Option<Rung> {
        let want = self.ladder.rung();
        let same_size = (want.width, want.height) == (self.applied.width, self.applied.height);
        let from_old = size == (self.applied.width, self.applied.height);
        (want != self.applied && (same_size || !from_old)).then_some(want)
    }

    pub fn applied(&self) -> Rung {
        self.applied
    }

    /// The encoder was reconfigured for `rung`.
    pub fn set_applied(&mut self, shared: &Shared, rung: Rung) {
        self.applied = rung;
        shared.ladder.publish_scale(rung, self.top);
    }

    /// How to get `pic` to the encoder's size.
    pub fn plan(&mut self, pic: &I420Buffer, scaling: crate::encode::options::VideoScaling) -> Result<Plan> {
        let (w, h) = (self.applied.width, self.applied.height);
        if (pic.width, pic.height) == (w, h) {
            return Ok(Plan::Encode);
        }
        if pic.width < w || pic.height < h {
            return Ok(Plan::Drop);
        }
        let pw = pic.width as usize;
        let frame = match pic.chroma {
            ChromaLayout::Planar => VideoFrame {
                format: PixelFormat::KP_PIXEL_FORMAT_I420,
                width: pic.width,
                height: pic.height,
                planes: [pic.y(), pic.u(), pic.v()],
                strides: [pw, pw / 2, pw / 2],
            },
            layout => VideoFrame {
                format: if layout == ChromaLayout::Nv12 {
                    PixelFormat::KP_PIXEL_FORMAT_NV12
                } else {
                    PixelFormat::KP_PIXEL_FORMAT_NV21
                },
                width: pic.width,
                height: pic.height,
                planes: [pic.y(), pic.uv(), &[]],
                strides: [pw, pw, 0],
            },
        };
        crate::encode::pixel::convert_scaled(&frame, &mut self.scaled, false, (w, h), scaling, &mut self.scaler)?;
        Ok(Plan::Scaled)
    }

    pub fn scaled(&self) -> &I420Buffer {
        &self.scaled
    }
}

/// The encoder settings for `rung`, from the configured ones: the keyframe interval keeps its
/// length in time, the bitrate follows the pixel rate from `kbps` at `from`.
pub fn encoder_config(
    base: &crate::encode::VideoEncoderConfig,
    rung: Rung,
    from: Rung,
    kbps: u32,
) -> (crate::encode::VideoEncoderConfig, u32) {
    let new_kbps = ((f64::from(kbps) * pixel_rate(rung) / pixel_rate(from)).round() as u32).max(1);
    let mut cfg = base.clone();
    cfg.width = rung.width;
    cfg.height = rung.height;
    cfg.fps = rung.fps;
    cfg.bitrate_kbps = new_kbps;
    cfg.keyframe_interval =
        ((f64::from(base.keyframe_interval) * f64::from(rung.fps) / f64::from(base.fps)).round() as u32).max(1);
    (cfg, new_kbps)
}
