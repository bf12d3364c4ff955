//! What to drop when the uplink is slower than the stream: the thresholds, the decision for each
//! incoming video frame, and the congestion figure the app sees.
//!
//! The latency it works on is "how far behind live the wire is": the newest media timestamp
//! produced minus the oldest one not yet handed to the network (the send queue *and* the bytes
//! sitting in the session and the kernel's socket buffer). Stages:
//! - over `soft_ms`: stop queueing inter frames until the next keyframe. Each inter frame (with
//!   OpenH264's IPPP, every P) references the one before it, so the only drop that leaves every
//!   queued frame decodable is a GOP's tail: from some P up to the next IDR. What is already queued
//!   stays whole. If the skip lasts `keyframe_after_ms`, ask the encoder for an IDR.
//! - over `budget_ms` (enforced by the send queue): drop whole GOPs from the front, up to the next
//!   queued keyframe (or everything and ask for an IDR); audio stays.
//! - over `audio_budget_ms`: drop the oldest audio too, counted as a gap.
//!
//! Sequence headers are never dropped. Time is the stream's own (timestamps), passed in.

/// The latency thresholds, in milliseconds of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropThresholds {
    pub soft_ms: u64,
    pub budget_ms: u64,
    pub audio_budget_ms: u64,
    /// Skipping inter frames this long without a keyframe arriving: ask for one.
    pub keyframe_after_ms: u64,
}

impl DropThresholds {
    /// The defaults scaled to a budget: soft at 35 % (700 ms of 2 s), audio at 150 %.
    pub fn for_budget(budget_ms: u64) -> DropThresholds {
        DropThresholds {
            soft_ms: budget_ms * 35 / 100,
            budget_ms,
            audio_budget_ms: budget_ms * 3 / 2,
            keyframe_after_ms: budget_ms / 2,
        }
    }
}

/// What to do with one incoming video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoVerdict {
    Queue,
    /// Drop it; every inter frame after it is dropped too until a keyframe comes.
    Skip {
        want_keyframe: bool,
    },
}

#[derive(Debug, Clone)]
pub struct DropPolicy {
    t: DropThresholds,
    /// Stream time at which the current skip began (None: not skipping).
    skip_since: Option<u64>,
    keyframe_asked: bool,
}

impl DropPolicy {
    pub fn new(t: DropThresholds) -> DropPolicy {
        DropPolicy { t, skip_since: None, keyframe_asked: false }
    }

    pub fn thresholds(&self) -> DropThresholds {
        self.t
    }

    pub fn skipping(&self) -> bool {
        self.skip_since.is_some()
    }

    /// A video frame (not a header) at stream time `ts_ms` arrives while the wire is `latency_ms`
    /// behind live.
    pub fn on_video(&mut self, latency_ms: u64, ts_ms: u64, keyframe: bool) -> VideoVerdict {
        if keyframe {
            // A keyframe depends on nothing: it always goes in, and ends a skip. If the latency is
            // still high, the frames after it are skipped again (a slide show beats a growing delay).
            self.skip_since = None;
            self.keyframe_asked = false;
            return VideoVerdict::Queue;
        }
        let since = match self.skip_since {
            Some(s) => s,
            None if latency_ms > self.t.soft_ms => {
                self.skip_since = Some(ts_ms);
                ts_ms
            }
            None => return VideoVerdict::Queue,
        };
        let want_keyframe = !self.keyframe_asked && ts_ms.saturating_sub(since) >= self.t.keyframe_after_ms;
        self.keyframe_asked |= want_keyframe;
        VideoVerdict::Skip { want_keyframe }
    }

    /// Congestion 0..1: the share of the latency budget in use.
    pub fn congestion(&self, latency_ms: u64) -> f32 {
        (latency_ms as f32 / self.t.budget_ms.max(1) as f32).clamp(0.0, 1.0)
    }

    /// A new session starts from a keyframe anyway: forget the skip.
    pub fn reset(&mut self) {
        self.skip_since = None;
        self.keyframe_asked = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_a_gop_tail_above_soft_and_resumes_at_the_keyframe() {
        let mut p = DropPolicy::new(DropThresholds::for_budget(2000));
        assert_eq!(p.thresholds().soft_ms, 700);
        assert_eq!(p.on_video(600, 0, false), VideoVerdict::Queue);
        assert_eq!(p.on_video(800, 33, false), VideoVerdict::Skip { want_keyframe: false });
        // Latency falls back, but the frames after a skipped P reference it: still skipped.
        assert_eq!(p.on_video(100, 66, false), VideoVerdict::Skip { want_keyframe: false });
        assert_eq!(p.on_video(100, 99, true), VideoVerdict::Queue);
        assert_eq!(p.on_video(100, 133, false), VideoVerdict::Queue);
    }

    #[test]
    fn asks_for_a_keyframe_once_when_the_skip_lasts() {
        let mut p = DropPolicy::new(DropThresholds::for_budget(2000));
        assert_eq!(p.on_video(900, 0, false), VideoVerdict::Skip { want_keyframe: false });
        assert_eq!(p.on_video(900, 1000, false), VideoVerdict::Skip { want_keyframe: true });
        assert_eq!(p.on_video(900, 1033, false), VideoVerdict::Skip { want_keyframe: false });
        assert_eq!(p.on_video(900, 1066, true), VideoVerdict::Queue);
        assert!(!p.skipping());
    }

    #[test]
    fn congestion_is_the_share_of_the_budget() {
        let p = DropPolicy::new(DropThresholds::for_budget(2000));
        assert_eq!(p.congestion(0), 0.0);
        assert_eq!(p.congestion(1000), 0.5);
        assert_eq!(p.congestion(9000), 1.0);
    }
}
