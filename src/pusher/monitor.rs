//! The monitor thread: every 250 ms it samples each destination (queue latency, bytes the kernel
//! sent), runs the adaptive bitrate and the quality alerts, and every second computes the
//! per-second rates; at the app's stats interval it hands a stats snapshot to the callback thread.

use super::event::{EventKind, PusherState};
use super::shared::{lock, thread_cpu_ns, Callback, Rates, Shared};
use crate::core::abr::{Abr, AbrConfig, AbrSample};
use crate::core::alerts::{congestion_with_late_drops, Alert, AlertSample, Alerts};
use crate::error::ResultCode;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(250);
/// Rates are measured over this window (the last second).
const WINDOW: Duration = Duration::from_secs(1);

/// Counters at one tick, to difference over the window.
#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    frames_in: u64,
    frames_encoded: u64,
    encode_ns: u64,
    /// Per destination: bytes delivered, audio bytes handed over, video frames sent, packets the
    /// transport dropped too late to play (SRT).
    dest: [(u64, u64, u64, u64); 8],
}

pub struct Monitor {
    pub shared: Arc<Shared>,
    /// Closed (sender dropped) when the pusher stops.
    pub stop: Receiver<()>,
}

impl Monitor {
    fn snapshot(&self, at: Instant) -> Snapshot {
        let c = &self.shared.counters;
        let mut dest = [(0, 0, 0, 0); 8];
        for (slot, d) in dest.iter_mut().zip(&self.shared.destinations) {
            let dc = &d.counters;
            *slot = (
                dc.bytes_delivered.load(Relaxed),
                dc.audio_bytes_sent.load(Relaxed),
                dc.video_frames_sent.load(Relaxed),
                dc.packets_dropped_late.load(Relaxed),
            );
        }
        Snapshot {
            at,
            frames_in: c.video_frames_in.load(Relaxed),
            frames_encoded: c.video_frames_encoded.load(Relaxed),
            encode_ns: c.encode_ns.load(Relaxed),
            dest,
        }
    }

    pub fn run(self) {
        let shared = self.shared.clone();
        let cfg = &shared.config;
        let video = cfg.video.as_ref();
        let start_kbps = video.map_or(0, |v| v.bitrate_kbps);
        shared.video_target_kbps.store(start_kbps, Relaxed);
        shared.fps_divisor.store(1, Relaxed);
        let abr_on = cfg.abr.enabled && video.is_some();
        let mut abr_cfg = AbrConfig::new(start_kbps, cfg.abr.min_kbps, cfg.abr.max_kbps.max(cfg.abr.min_kbps));
        abr_cfg.allow_fps_reduction = cfg.abr.allow_fps_reduction;
        let mut abrs: Vec<Abr> = shared.destinations.iter().map(|_| Abr::new(abr_cfg.clone(), 0)).collect();
        for d in &shared.destinations {
            d.counters.target_video_kbps.store(start_kbps, Relaxed);
        }
        let mut alerts = Alerts::new(cfg.alerts);
        let mut fired = Vec::new();
        let passthrough = video.is_some_and(|v| v.encoder.is_pre_encoded());
        let fps = video.map_or(0.0, |v| v.fps);
        let stats_every = *lock(&shared.stats_interval);
        let mut next_stats = stats_every.map(|i| Instant::now() + i);
        let mut history: VecDeque<Snapshot> = VecDeque::with_capacity(8);
        history.push_back(self.snapshot(Instant::now()));
        let mut applied = (start_kbps, 1u32);
        let mut scale_seen = shared.ladder.scale.load(Relaxed);
        // Per destination: too-late drops counted so far, and when the count last grew (ms).
        let mut late_seen: Vec<(u64, Option<u64>)> = vec![(0, None); shared.destinations.len()];
        loop {
            let wait = next_stats.map_or(TICK, |at| at.saturating_duration_since(Instant::now()).min(TICK));
            match self.stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => break,
            }
            let now = Instant::now();
            let now_ms = now.duration_since(shared.created).as_millis() as u64;
            let snap = self.snapshot(now);
            while history.len() > 1 && now.duration_since(history[1].at) >= WINDOW {
                history.pop_front();
            }
            let old = *history.front().expect("history is never empty");
            history.push_back(snap);
            let secs = now.duration_since(old.at).as_secs_f64().max(0.001);
            let kbps = |bytes: u64| (bytes as f64 * 8.0 / 1000.0 / secs) as u32;

            // The encode ladder changed the encoder's pixel rate: the bitrate follows.
            let scale = shared.ladder.scale.load(Relaxed);
            if scale != scale_seen {
                scale_seen = scale;
                let s = f64::from(scale) / 1e6;
                abrs.iter_mut().for_each(|a| a.set_scale(s));
                let k = match abrs.iter().map(Abr::target_kbps).min() {
                    Some(k) if abr_on => k,
                    _ => ((f64::from(start_kbps) * s).round() as u32).max(1),
                };
                if !passthrough {
                    shared.video_target_kbps.store(k, Relaxed);
                }
                applied.0 = k;
            }

            // Per destination: the network's figures, and its ABR.
            let (mut worst, mut worst_dest, mut worst_latency, mut sent_fps) = (0.0f32, 0u32, 0u64, 0.0f32);
            let mut target = None::<(u32, u32)>;
            for (i, d) in shared.destinations.iter().enumerate() {
                let (delivered, audio, frames) =
                    (snap.dest[i].0 - old.dest[i].0, snap.dest[i].1 - old.dest[i].1, snap.dest[i].2 - old.dest[i].2);
                let throughput = kbps(delivered);
                d.counters.throughput_kbps.store(throughput, Relaxed);
                sent_fps = sent_fps.max((frames as f64 / secs) as f32);
                // The ABR works on the latency that is congestion: a catch-up's draining backlog
                // is not a slow link (see SendQueue::congestion_latency_ms).
                let (latency, abr_latency, congestion) = {
                    let q = lock(&d.queue);
                    (q.latency_ms(), q.congestion_latency_ms(), q.congestion())
                };
                if snap.dest[i].3 > late_seen[i].0 {
                    late_seen[i] = (snap.dest[i].3, Some(now_ms));
                }
                let congestion =
                    congestion_with_late_drops(congestion, late_seen[i].1.map(|at| now_ms.saturating_sub(at)));
                if congestion >= worst {
                    (worst, worst_dest, worst_latency) = (congestion, d.index, latency);
                }
                if !abr_on || d.state() != PusherState::KP_STATE_PUBLISHING {
                    continue;
                }
                let abr = &mut abrs[i];
                let sample = AbrSample {
                    latency_ms: abr_latency,
                    throughput_kbps: throughput,
                    audio_kbps: kbps(audio),
                    estimate_kbps: d.counters.bandwidth_estimate_kbps.load(Relaxed),
                };
                if abr.update(now_ms, sample).is_some() {
                    d.counters.target_video_kbps.store(abr.target_kbps(), Relaxed);
                }
                // The slowest destination sets the encoder's pace: one encode feeds them all.
                let t = (abr.target_kbps(), abr.fps_divisor());
                target = Some(target.map_or(t, |(k, f)| (k.min(t.0), f.max(t.1))));
            }
            if let Some((k, f)) = target {
                if (k, f) != applied {
                    applied = (k, f);
                    let (kind, what) = if passthrough {
                        (EventKind::KP_EVENT_BITRATE_SUGGESTED, "suggested video bitrate")
                    } else {
                        shared.video_target_kbps.store(k, Relaxed);
                        shared.fps_divisor.store(f, Relaxed);
                        (EventKind::KP_EVENT_BITRATE_CHANGED, "video bitrate")
                    };
                    shared.emit_full(
                        kind,
                        ResultCode::KP_OK,
                        format!("{what} {k} kbit/s, 1/{f} of the frames"),
                        0,
                        k as i64,
                        f as i64,
                    );
                }
            }

            let frames_encoded = snap.frames_encoded - old.frames_encoded;
            let encode_ms = if frames_encoded > 0 {
                ((snap.encode_ns - old.encode_ns) as f64 / frames_encoded as f64 / 1e6) as f32
            } else {
                0.0
            };
            let rates = Rates {
                input_fps: ((snap.frames_in - old.frames_in) as f64 / secs) as f32,
                encoded_fps: (frames_encoded as f64 / secs) as f32,
                sent_fps,
                encode_ms,
            };
            *lock(&shared.rates) = rates;
            shared.counters.monitor_cpu_ns.store(thread_cpu_ns(), Relaxed);

            // Alerts wait for a full window and for publishing (a connect is not congestion).
            let publishing = shared.destinations.iter().any(|d| d.state() == PusherState::KP_STATE_PUBLISHING);
            if publishing && secs >= 0.9 {
                let divisor = shared.fps_divisor.load(Relaxed).max(1) as f32;
                // The encode ladder's rate is the one to keep, not the configured one.
                let fps = shared.ladder.status().map_or(fps, |(_, rung)| rung.fps);
                let sample = AlertSample {
                    congestion: worst,
                    sent_fps,
                    target_fps: if passthrough { 0.0 } else { fps / divisor },
                    encode_ms,
                    frame_interval_ms: if fps > 0.0 && !passthrough { 1000.0 / fps } else { 0.0 },
                };
                alerts.update(now_ms, sample, &mut fired);
                for a in fired.drain(..) {
                    let milli = (worst * 1000.0) as i64;
                    match a {
                        Alert::NetBusy => shared.emit_full(
                            EventKind::KP_EVENT_NET_BUSY,
                            ResultCode::KP_OK,
                            format!("uplink congested: {worst_latency} ms behind live"),
                            worst_dest,
                            milli,
                            worst_latency as i64,
                        ),
                        Alert::NetRecovered => shared.emit_full(
                            EventKind::KP_EVENT_NET_RECOVERED,
                            ResultCode::KP_OK,
                            "uplink recovered",
                            worst_dest,
                            milli,
                            0,
                        ),
                        Alert::LowFps => shared.emit_full(
                            EventKind::KP_EVENT_LOW_FPS,
                            ResultCode::KP_OK,
                            format!("sending {sent_fps:.1} fps of {fps}"),
                            0,
                            sent_fps.round() as i64,
                            fps.round() as i64,
                        ),
                        Alert::EncoderOverloaded => shared.emit_full(
                            EventKind::KP_EVENT_ENCODER_OVERLOADED,
                            ResultCode::KP_OK,
                            format!("encoding takes {encode_ms:.1} ms per frame"),
                            0,
                            (encode_ms * 1000.0) as i64,
                            (1e6 / fps.max(1.0) as f64) as i64,
                        ),
                    }
                }
            }

            if let (Some(at), Some(every)) = (next_stats, stats_every) {
                if now >= at {
                    next_stats = Some(at + every).filter(|n| *n > now).or(Some(now + every));
                    let stats = super::stats_of(&shared);
                    if let Some(tx) = lock(&shared.events).as_ref() {
                        let _ = tx.send(Some(Callback::Stats(Box::new(stats))));
                    }
                }
            }
        }
    }
}
