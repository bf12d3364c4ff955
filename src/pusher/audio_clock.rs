//! The audio track's clock: which PCM goes into the encoders, and what stream time each access
//! unit (AAC frame, Opus packet) gets.
//!
//! AAC needs an unbroken run of samples (1024 per access unit), while the app's capture timestamps
//! are the truth for A/V sync (video is stamped by them too). Counting samples alone drifts when
//! the microphone's clock differs from the capture clock, and goes wrong for good when the app
//! pauses the microphone. So the sample run is kept continuous and bent to the timestamps: when a
//! chunk starts later than the samples fed so far reach, silence fills the gap; when it starts
//! earlier (the run is ahead), the overlapping samples are skipped. Within `TOLERANCE_MS` nothing
//! is done, so capture jitter does not chop the audio. Every access unit is then stamped from its
//! position in the run, minus the encoder's priming delay, so decoded audio lines up with the
//! capture time of its samples and not `delay` samples later.
//!
//! Every encoder of the track (AAC, Opus) is fed the same run, so they share one clock and one
//! timeline; each has its own [`UnitStamps`] (frame size and priming differ).
//!
//! Pure state machine: stream milliseconds in, decisions out; no clock, no encoder.

/// Deviations between a chunk's timestamp and the sample run up to this are capture jitter.
pub const TOLERANCE_MS: u64 = 20;
/// Audio that lags the rest of the stream (video, or the pause clock) by more than this (or three
/// chunks of the largest size seen, if more) is taken as a paused microphone: silence is
/// generated up to that lag so the track keeps flowing.
pub const FILL_LAG_MS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioClock {
    rate: u64,
    /// Stream time of the first sample fed.
    origin_ms: Option<u64>,
    /// Samples per channel fed to the encoder since the origin (silence included).
    fed: u64,
    largest_chunk: u64,
}

/// One encoder's access units on the clock's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStamps {
    /// Input samples per channel in one access unit.
    frame_samples: u64,
    /// Samples the encoder holds back before the first input sample comes out.
    priming: u64,
    /// Access units stamped so far.
    units: u64,
}

impl UnitStamps {
    pub fn new(frame_samples: usize, priming: usize) -> Self {
        UnitStamps { frame_samples: frame_samples.max(1) as u64, priming: priming as u64, units: 0 }
    }
}

/// What to feed the encoder for one app chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Samples per channel of silence to feed before the chunk.
    pub silence: u64,
    /// Samples per channel to skip at the chunk's start (all of it when >= its length).
    pub skip: u64,
}

impl AudioClock {
    pub fn new(rate: u32) -> Self {
        AudioClock { rate: u64::from(rate.max(1)), origin_ms: None, fed: 0, largest_chunk: 0 }
    }

    /// Stream time (µs) the next fed sample stands for.
    fn next_us(&self) -> u64 {
        self.origin_ms.unwrap_or(0) * 1000 + self.fed * 1_000_000 / self.rate
    }

    fn samples_for_us(&self, us: u64) -> u64 {
        us * self.rate / 1_000_000
    }

    /// An app chunk of `len` samples per channel stamped `ts_ms`: how to feed it. Records what
    /// the plan feeds.
    pub fn plan(&mut self, ts_ms: u64, len: u64) -> Plan {
        self.largest_chunk = self.largest_chunk.max(len);
        if self.origin_ms.is_none() {
            self.origin_ms = Some(ts_ms);
        }
        let ts_us = ts_ms * 1000;
        let next = self.next_us();
        let tol = TOLERANCE_MS * 1000;
        let plan = if ts_us > next + tol {
            Plan { silence: self.samples_for_us(ts_us - next), skip: 0 }
        } else if ts_us + tol < next {
            Plan { silence: 0, skip: self.samples_for_us(next - ts_us).min(len) }
        } else {
            Plan { silence: 0, skip: 0 }
        };
        self.fed += plan.silence + (len - plan.skip);
        plan
    }

    /// Samples per channel of silence to feed so the audio reaches `now_ms` minus the fill lag;
    /// 0 while audio is recent enough (or has not started: there is no timing to continue yet).
    /// Records the silence as fed.
    pub fn silence_until(&mut self, now_ms: u64) -> u64 {
        if self.origin_ms.is_none() {
            return 0;
        }
        let chunk_ms = self.largest_chunk * 1000 / self.rate;
        let lag = FILL_LAG_MS.max(3 * chunk_ms) * 1000;
        let target = (now_ms * 1000).saturating_sub(lag);
        let next = self.next_us();
        if target <= next + TOLERANCE_MS * 1000 {
            return 0;
        }
        let n = self.samples_for_us(target - next);
        self.fed += n;
        n
    }

    /// Stream time of the next access unit the encoder of `s` emits, or None when it holds only the
    /// encoder's priming (it would fall before the stream's start: drop it).
    pub fn stamp_unit(&self, s: &mut UnitStamps) -> Option<u64> {
        let k = s.units;
        s.units += 1;
        let origin = self.origin_ms.unwrap_or(0) as i128 * 1000;
        let us = origin + (k as i128 * s.frame_samples as i128 - s.priming as i128) * 1_000_000 / self.rate as i128;
        (us >= 0).then_some((us / 1000) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_chunks_with_jitter_are_fed_unchanged() {
        let mut c = AudioClock::new(48000);
        let mut fed = 0;
        for i in 0..1000u64 {
            // 10 ms chunks whose timestamps wobble by up to ±8 ms.
            let jitter = [0i64, 8, -8, 5, -3][i as usize % 5];
            let ts = (1000 + i as i64 * 10 + jitter) as u64;
            let p = c.plan(ts, 480);
            assert_eq!(p, Plan { silence: 0, skip: 0 }, "chunk {i}");
            fed += 480;
        }
        assert_eq!(c.fed, fed);
    }

    #[test]
    fn a_later_chunk_is_preceded_by_silence_and_an_earlier_one_is_trimmed() {
        let mut c = AudioClock::new(48000);
        c.plan(0, 480);
        // The mic paused: 500 ms of nothing, then capture resumes.
        let p = c.plan(510, 480);
        assert_eq!(p, Plan { silence: 500 * 48, skip: 0 });
        assert_eq!(c.next_us(), 520_000);
        // A mic running fast: a chunk 50 ms behind what was fed loses its first 50 ms.
        let p = c.plan(470, 4800);
        assert_eq!(p, Plan { silence: 0, skip: 50 * 48 });
        assert_eq!(c.next_us(), 570_000);
        // A chunk entirely in the past is skipped whole.
        assert_eq!(c.plan(300, 480).skip, 480);
        assert_eq!(c.next_us(), 570_000);
    }

    #[test]
    fn slow_drift_is_corrected_within_the_tolerance() {
        // The mic delivers 0.5 % fewer samples than its timestamps say (a slow clock): without
        // correction audio would fall 3 s behind in 10 minutes.
        let mut c = AudioClock::new(44100);
        let mut worst = 0i64;
        for i in 0..60_000u64 {
            let ts = i * 10;
            c.plan(ts, 439);
            let err = ts as i64 * 1000 + 10_000 - c.next_us() as i64;
            worst = worst.max(err.abs());
        }
        assert!(worst <= (TOLERANCE_MS * 1000 + 10_000) as i64, "worst {worst} us");
    }

    #[test]
    fn silence_fills_a_stalled_mic_behind_the_stream() {
        let mut c = AudioClock::new(44100);
        assert_eq!(c.silence_until(5000), 0, "nothing before the first audio");
        c.plan(0, 441);
        assert_eq!(c.silence_until(200), 0);
        assert_eq!(c.silence_until(FILL_LAG_MS + 15), 0, "within the tolerance");
        let n = c.silence_until(1310);
        assert_eq!(c.next_us(), 1_010_000);
        assert_eq!(n, 44100, "one second of silence");
        // The mic comes back at 1200 ms: fed continues at 1010 ms, so 190 ms more silence.
        assert_eq!(c.plan(1200, 441).silence, 190 * 441 / 10);
        // Big chunks stretch the lag: 500 ms chunks must not be mistaken for a stalled mic.
        let mut c = AudioClock::new(44100);
        c.plan(0, 22050);
        assert_eq!(c.silence_until(2000), 0);
        assert!(c.silence_until(2100) > 0);
    }

    #[test]
    fn units_are_stamped_from_the_run_minus_the_priming() {
        let mut c = AudioClock::new(44100);
        c.plan(1000, 1024);
        let mut aac = UnitStamps::new(1024, 2048);
        let stamps: Vec<_> = (0..4).map(|_| c.stamp_unit(&mut aac)).collect();
        assert_eq!(stamps, vec![Some(953), Some(976), Some(1000), Some(1023)]);
        // At the very start of the stream the priming units would be negative: dropped.
        let mut c = AudioClock::new(44100);
        c.plan(0, 1024);
        let mut aac = UnitStamps::new(1024, 2048);
        let stamps: Vec<_> = (0..3).map(|_| c.stamp_unit(&mut aac)).collect();
        assert_eq!(stamps, vec![None, None, Some(0)]);
    }

    #[test]
    fn aac_and_opus_units_share_the_timeline() {
        // 44.1 kHz in: AAC frames of 1024 samples, Opus packets of 20 ms (882 input samples) with
        // libopus's 6.5 ms lookahead (286 input samples).
        let mut c = AudioClock::new(44100);
        c.plan(1000, 441);
        let mut aac = UnitStamps::new(1024, 2048);
        let mut opus = UnitStamps::new(882, 286);
        let a: Vec<_> = (0..4).map(|_| c.stamp_unit(&mut aac)).collect();
        let o: Vec<_> = (0..4).map(|_| c.stamp_unit(&mut opus)).collect();
        assert_eq!(a, vec![Some(953), Some(976), Some(1000), Some(1023)]);
        // First input sample (1000 ms) sits 286 samples into the first packet: 993.5 ms.
        assert_eq!(o, vec![Some(993), Some(1013), Some(1033), Some(1053)]);
    }
}
