//! One clock for both tracks: app timestamps (microseconds, any origin) become stream
//! milliseconds from the first media of either track, and each track must move forward.
//!
//! Video times are FLV decode times, and a player (FFmpeg: "non monotonically increasing dts")
//! treats two pictures in one millisecond as an error. App timestamps less than a millisecond
//! apart (frames handed over in a burst with the SDK's clock, or explicit times that close) would
//! map to the same millisecond, so a video time that is not after the last one handed out is moved
//! to one millisecond after it, and counted. Later frames are not moved unless they collide too.

use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct Timeline {
    origin_us: Option<i64>,
    /// Added to every mapped time; grows when a resume re-bases the app's clock.
    offset_us: i64,
    /// Last stream time (µs) per track: video, audio, the PCM beside pre-encoded audio.
    last: [Option<i64>; 3],
    /// Set by a resume: the earliest stream time (µs) the app's media may land on, and the
    /// frame interval (µs, 0 = none) the clock's move is rounded up to.
    resume_at_us: Option<i64>,
    resume_grid_us: i64,
    /// The last video time handed out (ms): the next one must be later.
    last_video_ms: Option<u64>,
    /// Video times moved forward to keep them strictly increasing.
    video_moved: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineTrack {
    Video,
    Audio,
    /// The PCM an app gives beside its pre-encoded AAC, for the destinations that take Opus:
    /// the same capture times as the AAC frames, so it moves forward on its own.
    AudioPcm,
}

impl TimelineTrack {
    fn index(self) -> usize {
        match self {
            TimelineTrack::Video => 0,
            TimelineTrack::Audio => 1,
            TimelineTrack::AudioPcm => 2,
        }
    }
}

impl Timeline {
    fn stream_us(&self, ts_us: i64) -> i64 {
        let origin = self.origin_us.unwrap_or(ts_us);
        ts_us.saturating_sub(origin).saturating_add(self.offset_us)
    }

    /// The offset `ts_us` would be mapped with: after a resume, the first timestamp that falls
    /// within what the pause already covered moves the whole clock (both tracks, so they stay
    /// in sync) to just after it — an app whose capture clock stood still in the background
    /// goes on where the stream is.
    fn offset_for(&self, ts_us: i64) -> i64 {
        match self.resume_at_us {
            Some(at) if self.stream_us(ts_us) < at => {
                // A whole number of frame intervals: the app's frames keep their place on its
                // frame grid, which a muxer or re-encoder at a constant frame rate relies on.
                let shift = at - self.stream_us(ts_us);
                let g = self.resume_grid_us;
                self.offset_us + if g > 0 { (shift + g - 1) / g * g } else { shift }
            }
            _ => self.offset_us,
        }
    }

    /// What [`Timeline::stamp`] would return, without recording anything.
    pub fn peek(&self, track: TimelineTrack, ts_us: i64) -> Result<u64> {
        let ms = self.peek_unmoved(track, ts_us)?;
        Ok(match (track, self.last_video_ms) {
            (TimelineTrack::Video, Some(last)) if ms <= last => last + 1,
            _ => ms,
        })
    }

    /// The stream time of `ts_us` before a video collision moves it.
    fn peek_unmoved(&self, track: TimelineTrack, ts_us: i64) -> Result<u64> {
        let s = self.stream_us(ts_us) - self.offset_us + self.offset_for(ts_us);
        if let Some(l) = self.last[track.index()] {
            if s <= l {
                let name = match track {
                    TimelineTrack::Video => "video",
                    TimelineTrack::Audio | TimelineTrack::AudioPcm => "audio",
                };
                let last_us = l - s + ts_us;
                return Err(Error::NonMonotonicTimestamp { track: name, ts_us, last_us });
            }
        }
        Ok((s.max(0) / 1000) as u64)
    }

    /// Check that `ts_us` moves its track forward and map it to stream milliseconds.
    /// Nothing changes when it fails, so a rejected frame does not disturb the stream.
    pub fn stamp(&mut self, track: TimelineTrack, ts_us: i64) -> Result<u64> {
        let unmoved = self.peek_unmoved(track, ts_us)?;
        let ms = self.peek(track, ts_us)?;
        if track == TimelineTrack::Video {
            self.video_moved += u64::from(ms != unmoved);
            self.last_video_ms = Some(ms);
        }
        self.offset_us = self.offset_for(ts_us);
        self.resume_at_us = None;
        self.origin_us.get_or_insert(ts_us);
        // Media of the other track a little older than the origin is sent at 0 rather than
        // wrapping (the FLV timeline cannot go negative); its own track still moves by `ts_us`.
        self.last[track.index()] = Some(self.stream_us(ts_us));
        Ok(ms)
    }

    /// Record media the SDK made itself at stream time `ms` (pause frames). False (and nothing
    /// recorded) when the track is already at or past it.
    pub fn stamp_generated(&mut self, track: TimelineTrack, ms: u64) -> bool {
        let us = ms as i64 * 1000;
        if self.last[track.index()].is_some_and(|l| us <= l) {
            return false;
        }
        if track == TimelineTrack::Video {
            if self.last_video_ms.is_some_and(|l| ms <= l) {
                return false;
            }
            self.last_video_ms = Some(ms);
        }
        self.last[track.index()] = Some(us);
        true
    }

    /// The latest stream time (ms) of either track; 0 before any media.
    pub fn latest_ms(&self) -> u64 {
        let latest = (self.last.iter().flatten().copied().max().unwrap_or(0).max(0) / 1000) as u64;
        latest.max(self.last_video_ms.unwrap_or(0))
    }

    /// Video times moved forward so far, because they were not after the previous one.
    pub fn video_times_moved(&self) -> u64 {
        self.video_moved
    }

    /// A pause ended: app timestamps that fall within what the pause covered (plus `step_us`,
    /// e.g. a frame interval, so the first frame after it does not crowd the last pause frame)
    /// re-base the clock, by a multiple of `grid_us` (the frame interval; 0: any amount).
    pub fn resume(&mut self, step_us: i64, grid_us: i64) {
        self.resume_at_us = self.last.iter().flatten().copied().max().map(|l| l + step_us);
        self.resume_grid_us = grid_us.max(0);
    }

    /// Map `ts_us` as it will be once `first_us` has been stamped: the pts of the very first
    /// frame is measured from the origin its dts sets, not from itself.
    /// When `first_us` is a video time that a collision moves forward, `ts_us` moves with it, so
    /// that a pts keeps its distance to its dts (and never falls before it).
    pub fn map_after(&self, first_us: i64, ts_us: i64) -> u64 {
        // With the offset `first_us` gets (after a resume it may move the clock), so that pts
        // and dts stay as far apart as the app gave them.
        let origin = self.origin_us.unwrap_or(first_us);
        let ms = (ts_us.saturating_sub(origin).saturating_add(self.offset_for(first_us)).max(0) / 1000) as u64;
        let moved = match (self.peek_unmoved(TimelineTrack::Video, first_us), self.peek(TimelineTrack::Video, first_us))
        {
            (Ok(unmoved), Ok(at)) => at - unmoved,
            _ => 0,
        };
        ms + moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TimelineTrack::*;

    #[test]
    fn shared_origin_and_monotonic_tracks() {
        let mut t = Timeline::default();
        assert_eq!(t.stamp(Video, 5_000_000).unwrap(), 0);
        assert_eq!(t.stamp(Audio, 5_010_000).unwrap(), 10);
        assert_eq!(t.stamp(Video, 5_033_333).unwrap(), 33);
        let e = t.stamp(Video, 5_033_333).unwrap_err();
        assert_eq!(e.code(), crate::ResultCode::KP_ERR_NON_MONOTONIC_TIMESTAMP);
        assert!(t.stamp(Video, 4_000_000).is_err());
        // The failed calls changed nothing.
        assert_eq!(t.stamp(Video, 5_066_666).unwrap(), 66);
        assert_eq!(t.stamp(Audio, 4_990_000).unwrap_err().code(), crate::ResultCode::KP_ERR_NON_MONOTONIC_TIMESTAMP);
        assert_eq!(t.map_after(0, 5_100_000), 100, "the origin is set");
        assert_eq!(Timeline::default().map_after(1_000_000, 1_080_000), 80, "the first frame's dts sets it");
        let mut t = Timeline::default();
        t.stamp(Video, 1_000_000).unwrap();
        assert_eq!(t.stamp(Audio, 999_000).unwrap(), 0, "slightly older audio clamps to 0");
    }

    #[test]
    fn pcm_beside_pre_encoded_audio_moves_forward_on_its_own() {
        let mut t = Timeline::default();
        // AAC frames of 1024 samples at 44.1 kHz, and the app's 10 ms PCM chunks of the same
        // capture, interleaved as the app hands them over.
        assert_eq!(t.stamp(Audio, 1_000_000).unwrap(), 0);
        assert_eq!(t.stamp(AudioPcm, 1_000_000).unwrap(), 0);
        assert_eq!(t.stamp(AudioPcm, 1_010_000).unwrap(), 10);
        assert_eq!(t.stamp(Audio, 1_023_219).unwrap(), 23);
        assert_eq!(t.stamp(AudioPcm, 1_020_000).unwrap(), 20, "behind the AAC, ahead of its own last");
        assert_eq!(t.stamp(AudioPcm, 1_020_000).unwrap_err().code(), crate::ResultCode::KP_ERR_NON_MONOTONIC_TIMESTAMP);
        assert_eq!(t.latest_ms(), 23);
    }

    #[test]
    fn generated_media_and_resume_rebase() {
        let mut t = Timeline::default();
        t.stamp(Video, 10_000_000).unwrap();
        t.stamp(Audio, 10_010_000).unwrap();
        assert_eq!(t.latest_ms(), 10);
        // Pause frames at 200 ms steps.
        assert!(t.stamp_generated(Video, 200));
        assert!(t.stamp_generated(Video, 400));
        assert!(!t.stamp_generated(Video, 400));
        // Without a resume, app video older than a pause frame is refused.
        assert!(t.peek(Video, 10_300_000).is_err());
        // An app clock that kept running goes on unchanged after the resume.
        t.resume(1000, 0);
        assert_eq!(t.stamp(Video, 10_500_000).unwrap(), 500);
        assert_eq!(t.stamp(Audio, 10_510_000).unwrap(), 510);
        // One that stood still is moved to just after the pause, both tracks alike.
        assert!(t.stamp_generated(Video, 900));
        t.resume(1000, 0);
        assert_eq!(t.peek(Video, 10_533_000).unwrap(), 901);
        // A pts 33 ms after this dts keeps its distance across the move.
        assert_eq!(t.map_after(10_533_000, 10_566_000), 934);
        assert_eq!(t.stamp(Video, 10_533_000).unwrap(), 901);
        assert_eq!(t.stamp(Audio, 10_540_000).unwrap(), 908);
        assert_eq!(t.map_after(10_566_000, 10_566_000), 934);
        assert_eq!(t.stamp(Video, 10_566_000).unwrap(), 934);
    }

    #[test]
    fn resume_moves_the_clock_by_whole_frame_intervals() {
        // 30 fps app clock that stood still during a pause whose last frame was at 3400 ms.
        let frame = 33_333;
        let mut t = Timeline::default();
        for i in 0..30 {
            t.stamp(Video, i * frame).unwrap();
        }
        assert!(t.stamp_generated(Video, 3400));
        t.resume(34_000, frame);
        // The clock moves by 74 frame intervals, the fewest that reach 3434 ms: 3466 ms.
        let first = t.stamp(Video, 30 * frame).unwrap();
        assert!(first >= 3434, "{first}");
        assert_eq!(first, ((30 + 74) * frame / 1000) as u64);
        // Every later frame stays on the grid: exactly frame-interval steps from the origin.
        for i in 31..60 {
            assert_eq!(t.stamp(Video, i * frame).unwrap(), ((i + 74) * frame / 1000) as u64);
        }
        // An app clock that kept running is not moved at all.
        assert!(t.stamp_generated(Video, 5000));
        t.resume(34_000, frame);
        assert_eq!(t.stamp(Video, 200 * frame).unwrap(), ((200 + 74) * frame / 1000) as u64);
    }

    #[test]
    fn video_times_strictly_increase_and_moves_are_counted() {
        // Bursts of three frames every 100 ms, each a few microseconds after the last (the SDK's
        // clock with pts = -1): without the rule they come out 0 0 0 100 100 100.
        let mut t = Timeline::default();
        let mut out = Vec::new();
        for burst in 0..3i64 {
            for i in 0..3 {
                out.push(t.stamp(Video, 7_000_000 + burst * 100_000 + i * 5).unwrap());
            }
        }
        assert_eq!(out, [0, 1, 2, 100, 101, 102, 200, 201, 202]);
        assert_eq!(t.video_times_moved(), 6);
        // Explicit times 400 us apart, crossing a millisecond boundary on the way.
        let mut t = Timeline::default();
        let out: Vec<u64> = (0..6).map(|i| t.stamp(Video, i * 400).unwrap()).collect();
        assert_eq!(out, [0, 1, 2, 3, 4, 5]);
        assert_eq!(t.video_times_moved(), 5);
        // A frame that has caught up again is not moved; peek says what stamp will do.
        assert_eq!(t.peek(Video, 10_000).unwrap(), 10);
        assert_eq!(t.stamp(Video, 10_000).unwrap(), 10);
        assert_eq!(t.video_times_moved(), 5);
        // Equal microseconds are still the app's error; audio is never moved.
        assert!(t.stamp(Video, 10_000).is_err());
        assert_eq!(t.stamp(Audio, 10_100).unwrap(), 10);
        assert_eq!(t.stamp(Audio, 10_200).unwrap(), 10);
        // A pause frame may not land on a time video already used.
        assert!(t.stamp(Video, 10_300).is_ok());
        assert!(!t.stamp_generated(Video, 11));
        assert!(t.stamp_generated(Video, 12));
        assert_eq!(t.latest_ms(), 12);
    }

    #[test]
    fn a_moved_dts_carries_its_pts_along() {
        let mut t = Timeline::default();
        t.stamp(Video, 0).unwrap();
        // dts 300 us (-> 0 ms, moved to 1), pts 33.6 ms: composition time stays 33 ms.
        let dts = t.peek(Video, 300).unwrap();
        assert_eq!(dts, 1);
        assert_eq!(t.map_after(300, 33_600), 34);
        assert_eq!(t.stamp(Video, 300).unwrap(), 1);
        // Not moved: mapped as before.
        assert_eq!(t.map_after(66_000, 99_000), 99);
    }
}
