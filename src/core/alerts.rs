//! Quality alerts: turns per-tick figures into the NET_BUSY / NET_RECOVERED, LOW_FPS and
//! ENCODER_OVERLOADED events, each raised once when its condition has held for a while and
//! re-armed when it clears. Pure state machine: the caller passes the time (ms).

/// When to raise an alert. The app may set each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertThresholds {
    /// NET_BUSY when congestion (0..1) stays at or above this for `net_busy_ms`; NET_RECOVERED when
    /// it stays below half of it for as long.
    pub net_busy_congestion: f32,
    pub net_busy_ms: u64,
    /// LOW_FPS when the sent frame rate stays under this fraction of the configured one for `low_fps_ms`.
    pub low_fps_ratio: f32,
    pub low_fps_ms: u64,
    /// ENCODER_OVERLOADED when encoding a frame takes longer than the frame interval on average
    /// for this long.
    pub encoder_overload_ms: u64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            net_busy_congestion: 0.5,
            net_busy_ms: 3000,
            low_fps_ratio: 0.5,
            low_fps_ms: 3000,
            encoder_overload_ms: 3000,
        }
    }
}

/// How long one too-late drop keeps a destination counted as fully congested: losses at the
/// receiver come in bursts, a second without one does not mean the link is fine.
pub const LATE_DROP_HOLD_MS: u64 = 2000;

/// A destination's congestion for the alerts: the send queue's share of its latency budget, or
/// full within [`LATE_DROP_HOLD_MS`] of the transport throwing media away because it could not
/// be repaired in time (SRT's too-late drops; `ms_since_late_drop` is None before the first). A
/// repairing transport keeps its queue short by dropping, so the queue alone never shows that
/// link as busy while the viewer loses pictures.
pub fn congestion_with_late_drops(queue_congestion: f32, ms_since_late_drop: Option<u64>) -> f32 {
    if ms_since_late_drop.is_some_and(|ms| ms < LATE_DROP_HOLD_MS) {
        1.0
    } else {
        queue_congestion
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    NetBusy,
    NetRecovered,
    LowFps,
    EncoderOverloaded,
}

/// One tick's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AlertSample {
    pub congestion: f32,
    /// Video frames sent per second, and the configured rate (0: no video, no LOW_FPS).
    pub sent_fps: f32,
    pub target_fps: f32,
    /// Mean encode time per frame over the last second, and the frame interval, in ms (0: none).
    pub encode_ms: f32,
    pub frame_interval_ms: f32,
}

/// A condition that must hold `for_ms` before it fires, once, until it clears.
#[derive(Debug, Clone, Default)]
struct Sustained {
    since: Option<u64>,
    fired: bool,
}

impl Sustained {
    fn update(&mut self, now_ms: u64, on: bool, for_ms: u64) -> bool {
        if !on {
            self.since = None;
            self.fired = false;
            return false;
        }
        let since = *self.since.get_or_insert(now_ms);
        if !self.fired && now_ms.saturating_sub(since) >= for_ms {
            self.fired = true;
            return true;
        }
        false
    }
}

#[derive(Debug, Clone)]
pub struct Alerts {
    t: AlertThresholds,
    busy: bool,
    busy_cond: Sustained,
    calm_cond: Sustained,
    low_fps: Sustained,
    overload: Sustained,
}

impl Alerts {
    pub fn new(t: AlertThresholds) -> Alerts {
        Alerts {
            t,
            busy: false,
            busy_cond: Sustained::default(),
            calm_cond: Sustained::default(),
            low_fps: Sustained::default(),
            overload: Sustained::default(),
        }
    }

    pub fn update(&mut self, now_ms: u64, s: AlertSample, out: &mut Vec<Alert>) {
        let t = self.t;
        if !self.busy && self.busy_cond.update(now_ms, s.congestion >= t.net_busy_congestion, t.net_busy_ms) {
            self.busy = true;
            self.calm_cond = Sustained::default();
            out.push(Alert::NetBusy);
        } else if self.busy && self.calm_cond.update(now_ms, s.congestion < t.net_busy_congestion / 2.0, t.net_busy_ms)
        {
            self.busy = false;
            self.busy_cond = Sustained::default();
            out.push(Alert::NetRecovered);
        }
        let low = s.target_fps > 0.0 && s.sent_fps < s.target_fps * t.low_fps_ratio;
        if self.low_fps.update(now_ms, low, t.low_fps_ms) {
            out.push(Alert::LowFps);
        }
        let over = s.frame_interval_ms > 0.0 && s.encode_ms > s.frame_interval_ms;
        if self.overload.update(now_ms, over, t.encoder_overload_ms) {
            out.push(Alert::EncoderOverloaded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a: &mut Alerts, from: u64, to: u64, s: AlertSample) -> Vec<(u64, Alert)> {
        let mut all = Vec::new();
        let mut out = Vec::new();
        for t in (from..to).step_by(250) {
            a.update(t, s, &mut out);
            all.extend(out.drain(..).map(|x| (t, x)));
        }
        all
    }

    #[test]
    fn net_busy_after_the_hold_time_then_recovered_once() {
        let mut a = Alerts::new(AlertThresholds::default());
        let busy = AlertSample { congestion: 0.8, ..Default::default() };
        assert!(run(&mut a, 0, 2900, busy).is_empty());
        assert_eq!(run(&mut a, 3000, 20_000, busy), vec![(3000, Alert::NetBusy)]);
        // Below the threshold but above half of it: still busy (hysteresis).
        assert!(run(&mut a, 20_000, 30_000, AlertSample { congestion: 0.4, ..busy }).is_empty());
        assert_eq!(
            run(&mut a, 30_000, 40_000, AlertSample { congestion: 0.1, ..busy }),
            vec![(33_000, Alert::NetRecovered)]
        );
    }

    #[test]
    fn too_late_drops_make_the_link_busy_until_they_stop() {
        let mut a = Alerts::new(AlertThresholds::default());
        let mut out = Vec::new();
        let mut fired = Vec::new();
        // A short queue (SRT keeps ~ its latency in flight) and a drop burst every 1.5 s until 10 s.
        for t in (0..25_000u64).step_by(250) {
            let last_drop = (t < 10_000).then(|| t - t % 1500).or(Some(9000));
            let c = congestion_with_late_drops(0.1, last_drop.map(|d| t - d));
            a.update(t, AlertSample { congestion: c, ..Default::default() }, &mut out);
            fired.extend(out.drain(..).map(|x| (t, x)));
        }
        // Busy after the 3 s hold; calm from 9 s + 2 s, recovered 3 s later.
        assert_eq!(fired, vec![(3000, Alert::NetBusy), (14_000, Alert::NetRecovered)]);
        // Without drops the same queue is calm.
        let mut a = Alerts::new(AlertThresholds::default());
        let clean = AlertSample { congestion: congestion_with_late_drops(0.1, None), ..Default::default() };
        assert!(run(&mut a, 0, 10_000, clean).is_empty());
    }

    #[test]
    fn low_fps_and_encoder_overload_fire_once_and_rearm() {
        let mut a = Alerts::new(AlertThresholds { low_fps_ms: 1000, encoder_overload_ms: 1000, ..Default::default() });
        let bad = AlertSample {
            sent_fps: 10.0,
            target_fps: 30.0,
            encode_ms: 40.0,
            frame_interval_ms: 33.3,
            ..Default::default()
        };
        let fired = run(&mut a, 0, 5000, bad);
        assert_eq!(fired, vec![(1000, Alert::LowFps), (1000, Alert::EncoderOverloaded)]);
        let good = AlertSample { sent_fps: 30.0, encode_ms: 10.0, ..bad };
        assert!(run(&mut a, 5000, 6000, good).is_empty());
        assert_eq!(run(&mut a, 6000, 8000, bad).len(), 2);
        // No video: never LOW_FPS.
        let mut a = Alerts::new(AlertThresholds::default());
        assert!(run(&mut a, 0, 10_000, AlertSample::default()).is_empty());
    }
}
