//! One clock for both tracks: app timestamps (microseconds, any origin) become stream
//! milliseconds from the first media of either track, and each track must move forward.

use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct Timeline {
    origin_us: Option<i64>,
    last_video_us: Option<i64>,
    last_audio_us: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineTrack {
    Video,
    Audio,
}

impl Timeline {
    /// What [`Timeline::stamp`] would return, without recording anything.
    pub fn peek(&self, track: TimelineTrack, ts_us: i64) -> Result<u64> {
        let (last, name) = match track {
            TimelineTrack::Video => (self.last_video_us, "video"),
            TimelineTrack::Audio => (self.last_audio_us, "audio"),
        };
        if let Some(l) = last {
            if ts_us <= l {
                return Err(Error::NonMonotonicTimestamp { track: name, ts_us, last_us: l });
            }
        }
        Ok(self.map(ts_us))
    }

    /// Check that `ts_us` moves its track forward and map it to stream milliseconds.
    /// Nothing changes when it fails, so a rejected frame does not disturb the stream.
    pub fn stamp(&mut self, track: TimelineTrack, ts_us: i64) -> Result<u64> {
        self.peek(track, ts_us)?;
        match track {
            TimelineTrack::Video => self.last_video_us = Some(ts_us),
            TimelineTrack::Audio => self.last_audio_us = Some(ts_us),
        }
        let origin = *self.origin_us.get_or_insert(ts_us);
        // Media of the other track a little older than the origin starts at 0 rather than
        // wrapping: the FLV timeline cannot go negative.
        Ok((ts_us.saturating_sub(origin).max(0) / 1000) as u64)
    }

    /// Map without the monotonic check (the second timestamp of a frame, e.g. pts next to dts).
    pub fn map(&self, ts_us: i64) -> u64 {
        let origin = self.origin_us.unwrap_or(ts_us);
        (ts_us.saturating_sub(origin).max(0) / 1000) as u64
    }

    /// Map `ts_us` as it will be once `first_us` has been stamped: the pts of the very first
    /// frame is measured from the origin its dts sets, not from itself.
    pub fn map_after(&self, first_us: i64, ts_us: i64) -> u64 {
        let origin = self.origin_us.unwrap_or(first_us);
        (ts_us.saturating_sub(origin).max(0) / 1000) as u64
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
        assert_eq!(t.map(5_100_000), 100);
        assert_eq!(t.map_after(0, 5_100_000), 100, "the origin is set");
        assert_eq!(Timeline::default().map_after(1_000_000, 1_080_000), 80, "the first frame's dts sets it");
        let mut t = Timeline::default();
        t.stamp(Video, 1_000_000).unwrap();
        assert_eq!(t.stamp(Audio, 999_000).unwrap(), 0, "slightly older audio clamps to 0");
    }
}
