//! The send queue between the encoders and the network: media waiting to be written, measured in
//! milliseconds of stream time. It interleaves audio and video by timestamp (within a bounded
//! window, since the audio encoder's output lags its input) and applies the drop policy
//! ([`crate::core::drop_policy`]): a GOP's tail is skipped above the soft threshold, whole runs of
//! video up to the next keyframe go past the budget, audio only past its own, larger budget, and
//! sequence headers never. The latency it works on counts what the network worker has already
//! handed to the session and the kernel (`set_in_flight`), which can no longer be dropped.
//!
//! Outages (see [`SendQueue::on_disconnect`]): while the destination has no connection, waiting
//! is not congestion. Nothing is skipped then, and the media made during the outage is kept from
//! a keyframe on (the queue asks for one at the disconnect when it holds none) up to the budget,
//! so a short outage costs a stall, not the outage's video. After the resume the backlog drains at
//! link speed; for [`CATCH_UP_MS`] the latency it leaves is not counted as congestion while it
//! shrinks on schedule, so neither the drop policy nor the ABR reads the catch-up as a slow link.
//!
//! Pure data structure: no clock, no locks (the pusher wraps it in one).

use super::drop_policy::{DropPolicy, DropThresholds, VideoVerdict};
use super::media::MessageSpan;
use super::message_carry::MessageCarry;
use bytes::Bytes;
use std::collections::VecDeque;

pub use super::media::{MediaPacket, Track};

/// What a push changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    pub dropped_video: u64,
    pub dropped_audio: u64,
    /// Video was dropped up to a keyframe that has not been encoded yet: ask for an IDR.
    pub keyframe_wanted: bool,
    /// Audio was dropped for congestion (past the audio budget): the stream has an audio gap.
    pub audio_gap: bool,
    /// The drops are losses to an outage (no connection), not to congestion.
    pub outage: bool,
}

/// What a resume found: the outage's media kept for the new session and lost, in ms of stream time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutageFigures {
    pub kept_ms: u64,
    pub lost_ms: u64,
}

/// For this long after a resume, latency the outage left behind (shrinking linearly to 0) is not
/// congestion: a link with headroom drains a 2 s backlog well within it.
pub const CATCH_UP_MS: u64 = 5000;
/// The latency under which a catch-up counts as done.
pub const CAUGHT_UP_MS: u64 = 300;

/// The destination's connection, as far as the queue cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Up,
    /// No connection since the media of stream time `from` (the oldest not delivered then).
    Down {
        from: u64,
    },
    /// Draining an outage's backlog: since `since_ms` (clock), from `start_latency` ms behind.
    CatchingUp {
        since_ms: u64,
        start_latency: u64,
    },
}

#[derive(Debug)]
pub struct SendQueue {
    video: VecDeque<MediaPacket>,
    audio: VecDeque<MediaPacket>,
    has_video: bool,
    has_audio: bool,
    window_ms: u64,
    last_in: [Option<u64>; 2],
    latest_header: [Option<MediaPacket>; 2],
    /// After a drop with no keyframe left, inter frames are refused until the next keyframe.
    awaiting_keyframe: bool,
    /// After a restart without a queued keyframe, audio waits for the keyframe too.
    holding_audio: bool,
    /// A video picture (not a header) has been pushed, kept or not.
    video_seen: bool,
    bytes: usize,
    finished: bool,
    policy: DropPolicy,
    /// The newest media timestamp pushed (dropped or not): the live edge.
    newest: Option<u64>,
    /// The oldest media timestamp handed to the network but not sent by the kernel yet.
    in_flight_oldest: Option<u64>,
    /// The caller's clock (ms), when it sets one, and when media of each timestamp arrived: a
    /// source faster than real time (a file, a test pushing as fast as it can) makes stream time
    /// run ahead of the clock, and media is only "behind live" for as long as it has waited.
    clock_ms: Option<u64>,
    arrivals: VecDeque<(u64, u64)>,
    phase: Phase,
    /// How long the last catch-up took to bring the latency under CAUGHT_UP_MS (ms).
    last_catch_up_ms: Option<u64>,
    /// App messages of dropped video, moved to the next video unit handed out.
    carry: MessageCarry,
}

/// Arrival times kept at most (about a minute of 30 fps video with its audio).
const MAX_ARRIVALS: usize = 4096;

/// Stream time of the first media unit (not a header) in `d`.
fn first_media(d: &VecDeque<MediaPacket>) -> Option<u64> {
    d.iter().find(|p| !p.header).map(|p| p.timestamp_ms)
}

fn idx(t: Track) -> usize {
    match t {
        Track::Video => 0,
        Track::Audio => 1,
    }
}

impl SendQueue {
    /// `budget_ms`: the most stream time kept queued; `window_ms`: how long a lone track's packet
    /// may wait for the other track to catch up before it is released out of order.
    pub fn new(has_video: bool, has_audio: bool, budget_ms: u64, window_ms: u64) -> Self {
        SendQueue {
            video: VecDeque::with_capacity(256),
            audio: VecDeque::with_capacity(512),
            has_video,
            has_audio,
            window_ms,
            last_in: [None, None],
            latest_header: [None, None],
            awaiting_keyframe: false,
            holding_audio: false,
            video_seen: false,
            bytes: 0,
            finished: false,
            policy: DropPolicy::new(DropThresholds::for_budget(budget_ms)),
            newest: None,
            in_flight_oldest: None,
            clock_ms: None,
            // One entry per queued timestamp: a 2 s backlog of 30 fps video and its audio needs
            // about 150; growing later would allocate on the app's thread mid-stream.
            arrivals: VecDeque::with_capacity(512),
            phase: Phase::Up,
            last_catch_up_ms: None,
            carry: MessageCarry::default(),
        }
    }

    /// The oldest media not sent yet: in flight (handed to the network) or queued.
    fn oldest_unsent(&self) -> Option<u64> {
        [self.in_flight_oldest, first_media(&self.video), first_media(&self.audio)].into_iter().flatten().min()
    }

    /// Now, in ms: the clock when one is set, else stream time.
    fn now_ms(&self) -> u64 {
        self.clock_ms.or(self.newest).unwrap_or(0)
    }

    /// The latency that is congestion: none while the destination is down (waiting for a
    /// connection is not a slow link), and during a catch-up only what exceeds the outage's
    /// backlog shrinking linearly to 0 over CATCH_UP_MS. The drop policy, `congestion()` and the
    /// ABR work on this; `latency_ms` stays the plain figure the app sees.
    pub fn congestion_latency_ms(&self) -> u64 {
        let latency = self.latency_ms();
        match self.phase {
            Phase::Up => latency,
            Phase::Down { .. } => 0,
            Phase::CatchingUp { since_ms, start_latency } => {
                let left = CATCH_UP_MS.saturating_sub(self.now_ms().saturating_sub(since_ms));
                latency.saturating_sub(start_latency * left / CATCH_UP_MS)
            }
        }
    }

    /// Ends a catch-up once the latency is under CAUGHT_UP_MS.
    fn update_phase(&mut self) {
        if let Phase::CatchingUp { since_ms, .. } = self.phase {
            if self.latency_ms() < CAUGHT_UP_MS {
                self.last_catch_up_ms = Some(self.now_ms().saturating_sub(since_ms));
                self.phase = Phase::Up;
            }
        }
    }

    /// Whether the destination is between a lost connection and the next publish.
    pub fn is_down(&self) -> bool {
        matches!(self.phase, Phase::Down { .. })
    }

    /// Whether the backlog of the last outage is still draining (latency not yet under 300 ms).
    pub fn is_catching_up(&self) -> bool {
        matches!(self.phase, Phase::CatchingUp { .. })
    }

    /// How long the last catch-up took to bring the latency under 300 ms, if one finished.
    pub fn last_catch_up_ms(&self) -> Option<u64> {
        self.last_catch_up_ms
    }

    /// The connection was lost (after publishing). What it had in flight is gone. The queue
    /// keeps what follows from its first keyframe for the next session: queued video before that
    /// keyframe cannot be decoded there and goes now; with no keyframe queued, `keyframe_wanted`
    /// asks for one at once, so the outage's media starts decodable. Nothing is skipped until the
    /// resume; the budget still bounds what is kept. Drops are `outage` losses.
    pub fn on_disconnect(&mut self) -> PushOutcome {
        let oldest = self.oldest_unsent();
        let from = match self.phase {
            Phase::Down { from } => from,
            // Everything had left: the outage loses media from the next one on.
            _ => oldest.or(self.newest.map(|n| n + 1)).unwrap_or(0),
        };
        let mut out = self.restart_at_keyframe();
        self.phase = Phase::Down { from };
        out.outage = true;
        out
    }

    /// A new session publishes after an outage: it starts at the first queued keyframe (as
    /// `restart_at_keyframe`) and the backlog drains from there (the catch-up). Returns the
    /// outage's media kept for the new session and lost, and the drops (`outage` losses).
    pub fn on_resume(&mut self) -> (PushOutcome, OutageFigures) {
        let from = match self.phase {
            Phase::Down { from } => from,
            _ => return (self.restart_at_keyframe(), OutageFigures::default()),
        };
        let mut out = self.restart_at_keyframe();
        out.outage = true;
        let first_kept = if self.has_video { first_media(&self.video) } else { first_media(&self.audio) };
        let newest = self.newest.unwrap_or(from);
        let figures = match first_kept {
            Some(k) => OutageFigures { kept_ms: newest.saturating_sub(k), lost_ms: k.saturating_sub(from) },
            None => OutageFigures { kept_ms: 0, lost_ms: newest.saturating_sub(from) },
        };
        self.phase = Phase::CatchingUp { since_ms: self.now_ms(), start_latency: self.latency_ms() };
        self.update_phase();
        (out, figures)
    }

    /// Sets the clock (ms, monotonic) used to age queued media; without it, age is stream time.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.clock_ms = Some(now_ms);
    }

    /// How long ago, in ms, the media of stream time `ts` became the live edge: the stream time
    /// since, capped by the time it has actually waited when a clock is set.
    fn age(&self, ts: u64) -> u64 {
        let span = self.newest.map_or(0, |n| n.saturating_sub(ts));
        match self.clock_ms {
            Some(now) => match self.arrivals.iter().find(|a| a.0 >= ts) {
                Some(a) => span.min(now.saturating_sub(a.1)),
                None => 0,
            },
            None => span,
        }
    }

    pub fn thresholds(&self) -> DropThresholds {
        self.policy.thresholds()
    }

    /// The network worker reports the oldest media it has handed to the session/socket that the
    /// kernel has not sent yet (None when everything written has left).
    pub fn set_in_flight(&mut self, oldest_ts: Option<u64>) {
        self.in_flight_oldest = oldest_ts;
        self.update_phase();
    }

    /// How far behind live the wire is: the newest media pushed minus the oldest media not sent
    /// yet (queued or in flight), in milliseconds.
    pub fn latency_ms(&self) -> u64 {
        self.oldest_unsent().map_or(0, |o| self.age(o))
    }

    /// Congestion 0..1 (the share of the latency budget in use).
    pub fn congestion(&self) -> f32 {
        self.policy.congestion(self.congestion_latency_ms())
    }

    fn deque(&mut self, t: Track) -> &mut VecDeque<MediaPacket> {
        match t {
            Track::Video => &mut self.video,
            Track::Audio => &mut self.audio,
        }
    }

    pub fn push(&mut self, p: MediaPacket) -> PushOutcome {
        let mut out = PushOutcome { outage: self.is_down(), ..PushOutcome::default() };
        // Audio the queue was not made for (it may or may not come: PCM an app gives beside its
        // pre-encoded AAC) is interleaved with from its first packet on.
        self.has_audio |= p.track == Track::Audio;
        if p.header {
            self.latest_header[idx(p.track)] = Some(p.clone());
        } else {
            self.update_phase();
            let latency = self.congestion_latency_ms();
            self.newest = Some(self.newest.map_or(p.timestamp_ms, |n| n.max(p.timestamp_ms)));
            if let Some(now) = self.clock_ms {
                self.note_arrival(p.timestamp_ms, now);
            }
            if p.track == Track::Video {
                let first = !std::mem::replace(&mut self.video_seen, true);
                let skip = if self.awaiting_keyframe && !p.keyframe {
                    out.keyframe_wanted = first;
                    true
                } else if let VideoVerdict::Skip { want_keyframe } =
                    self.policy.on_video(latency, p.timestamp_ms, p.keyframe)
                {
                    out.keyframe_wanted = want_keyframe;
                    true
                } else {
                    false
                };
                if skip {
                    out.dropped_video = 1;
                    self.carry.on_drop(&p);
                    // The live edge moved on: what waits may now be past the budget.
                    self.enforce_budget(&mut out);
                    return out;
                }
                self.awaiting_keyframe = false;
            }
        }
        let resumes_video = p.track == Track::Video && p.keyframe && !p.header && !self.video.iter().any(|v| !v.header);
        let slot = &mut self.last_in[idx(p.track)];
        *slot = Some(slot.map_or(p.timestamp_ms, |l| l.max(p.timestamp_ms)));
        self.bytes += p.data.len();
        self.deque(p.track).push_back(p);
        if resumes_video && self.holding_audio {
            // The keyframe the audio was held for: both tracks start together from here, so a
            // player does not see the video begin a fraction of a second after the audio.
            self.holding_audio = false;
            self.drop_audio_older_than_video(&mut out);
        }
        self.enforce_budget(&mut out);
        out
    }

    /// The latest header unit of a track: what a new session must send first.
    pub fn latest_header(&self, t: Track) -> Option<&MediaPacket> {
        self.latest_header[idx(t)].as_ref()
    }

    /// A new session starts: its video must begin with a keyframe. Queued video before the first
    /// queued keyframe is dropped, and the audio older than that keyframe with it so the tracks
    /// resume together. With no keyframe queued, all queued video goes, inter frames are refused
    /// until one arrives (`keyframe_wanted` asks the encoder for it once video has flowed), and
    /// audio is held back and then trimmed to that keyframe.
    pub fn restart_at_keyframe(&mut self) -> PushOutcome {
        let mut out = PushOutcome::default();
        // What the lost connection had in flight is gone; the new session starts on a keyframe.
        self.in_flight_oldest = None;
        self.policy.reset();
        let first_key = self.video.iter().position(|p| p.keyframe && !p.header);
        let end = first_key.unwrap_or(self.video.len());
        self.drop_video_before(end, &mut out);
        if first_key.is_some() {
            self.drop_audio_older_than_video(&mut out);
        } else if self.has_video {
            self.awaiting_keyframe = true;
            self.holding_audio = self.has_audio;
            // Before any video, the first picture is a keyframe by itself (an encoder starts with
            // an IDR): asking would make the second one an IDR too when the first is still being
            // encoded. Pre-encoded video that starts otherwise is asked for at its first refusal.
            out.keyframe_wanted = self.video_seen;
        }
        out
    }

    /// No more input will come: release everything in timestamp order.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The next packet to send, if one may go now.
    pub fn pop(&mut self) -> Option<MediaPacket> {
        let v = self.video.front().map(|p| p.timestamp_ms);
        let a = self.audio.front().map(|p| p.timestamp_ms);
        let track = match (v, a) {
            (Some(v), Some(a)) => {
                if v <= a {
                    Track::Video
                } else {
                    Track::Audio
                }
            }
            (Some(v), None) if self.lone_may_go(Track::Video, v) => Track::Video,
            (None, Some(a)) if self.lone_may_go(Track::Audio, a) => Track::Audio,
            _ => return None,
        };
        let p = self.deque(track).pop_front()?;
        self.bytes -= p.data.len();
        Some(self.carry.on_pop(p))
    }

    fn lone_may_go(&self, t: Track, ts: u64) -> bool {
        let (other, has_other) = match t {
            Track::Video => (Track::Audio, self.has_audio),
            Track::Audio => (Track::Video, self.has_video),
        };
        if t == Track::Audio && self.holding_audio && !self.finished {
            return false;
        }
        // Nothing older can still come on the other track once it has passed this timestamp.
        !has_other
            || self.finished
            || self.last_in[idx(other)].is_some_and(|o| o >= ts)
            || self.last_in[idx(t)].is_some_and(|own| own.saturating_sub(ts) >= self.window_ms)
    }

    /// Stream time between the oldest and the newest queued packet.
    pub fn duration_ms(&self) -> u64 {
        // Headers are excluded: they are kept through drops and would pin the oldest time.
        let media_back = |d: &VecDeque<MediaPacket>| d.iter().rev().find(|p| !p.header).map(|p| p.timestamp_ms);
        let oldest = [first_media(&self.video), first_media(&self.audio)].into_iter().flatten().min();
        let newest = [media_back(&self.video), media_back(&self.audio)].into_iter().flatten().max();
        match (oldest, newest) {
            (Some(o), Some(n)) => n.saturating_sub(o),
            _ => 0,
        }
    }

    /// A connection broke with this unit's messages handed to it and not delivered: they ride on
    /// the next picture sent (see [`MessageCarry::on_undelivered`]).
    pub fn requeue_undelivered_messages(&mut self, sei: Bytes, span: MessageSpan) {
        self.carry.on_undelivered(sei, span);
    }

    /// App messages handed out and given up (see [`MessageCarry`]).
    pub fn messages(&self) -> &MessageCarry {
        &self.carry
    }

    /// App messages not handed out yet: carried past dropped video, or in queued video.
    pub fn messages_waiting(&self) -> u64 {
        self.carry.held() as u64 + self.video.iter().map(|p| p.messages.count as u64).sum::<u64>()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.video.len() + self.audio.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn note_arrival(&mut self, ts: u64, now: u64) {
        // Only what is still unsent needs an arrival time.
        let oldest = self.oldest_unsent();
        while self.arrivals.front().is_some_and(|a| oldest.is_none_or(|o| a.0 < o))
            || self.arrivals.len() >= MAX_ARRIVALS
        {
            self.arrivals.pop_front();
        }
        if self.arrivals.back().is_none_or(|a| ts > a.0) {
            self.arrivals.push_back((ts, now));
        }
    }

    fn enforce_budget(&mut self, out: &mut PushOutcome) {
        if self.newest.is_none() {
            return;
        }
        let t = self.policy.thresholds();
        while first_media(&self.video).is_some_and(|f| self.age(f) > t.budget_ms) {
            let before = out.dropped_video;
            self.drop_oldest_gop(out);
            if out.dropped_video == before {
                break;
            }
        }
        // Audio keeps flowing while video is dropped (a frozen picture with sound beats silence),
        // up to its own budget; alone (audio-only, or held for a keyframe) it has the plain one.
        let audio_budget = if self.has_video && !self.holding_audio { t.audio_budget_ms } else { t.budget_ms };
        while first_media(&self.audio).is_some_and(|f| self.age(f) > audio_budget) {
            if !self.drop_front_audio(out) {
                break;
            }
            out.audio_gap = true;
        }
    }

    /// Drop queued video from the front up to (not including) the next keyframe after the head.
    fn drop_oldest_gop(&mut self, out: &mut PushOutcome) {
        let Some(first) = self.video.iter().position(|p| !p.header) else {
            return;
        };
        let next_key = self.video.iter().skip(first + 1).position(|p| p.keyframe && !p.header).map(|i| i + first + 1);
        let end = next_key.unwrap_or(self.video.len());
        self.drop_video_before(end, out);
        if next_key.is_none() && out.dropped_video > 0 {
            self.awaiting_keyframe = true;
            out.keyframe_wanted = true;
        }
    }

    /// Drop the queued video before index `end`, keeping sequence headers.
    fn drop_video_before(&mut self, end: usize, out: &mut PushOutcome) {
        let mut i = 0;
        let mut bytes = 0;
        let carry = &mut self.carry;
        self.video.retain(|p| {
            let drop = i < end && !p.header;
            i += 1;
            if drop {
                carry.on_drop(p);
                bytes += p.data.len();
                out.dropped_video += 1;
            }
            !drop
        });
        self.bytes -= bytes;
    }

    fn drop_audio_older_than_video(&mut self, out: &mut PushOutcome) {
        let Some(oldest_video) = self.video.iter().find(|p| !p.header).map(|p| p.timestamp_ms) else {
            return;
        };
        let (mut dropped, mut bytes) = (0, 0);
        self.audio.retain(|p| {
            let drop = !p.header && p.timestamp_ms < oldest_video;
            if drop {
                dropped += 1;
                bytes += p.data.len();
            }
            !drop
        });
        self.bytes -= bytes;
        out.dropped_audio += dropped;
    }

    fn drop_front_audio(&mut self, out: &mut PushOutcome) -> bool {
        match self.audio.iter().position(|p| !p.header) {
            Some(i) => {
                let p = self.audio.remove(i).expect("index in range");
                self.bytes -= p.data.len();
                out.dropped_audio += 1;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::media::Codec;
    use bytes::Bytes;

    fn media(track: Track, ts: u64, data: Bytes) -> MediaPacket {
        match track {
            Track::Video => MediaPacket::video(Codec::H264, ts, 0, false, false, data),
            Track::Audio => MediaPacket::aac(ts, false, data),
        }
    }

    fn v(ts: u64, key: bool) -> MediaPacket {
        MediaPacket::video(Codec::H264, ts, 0, key, false, Bytes::from_static(b"vvvv"))
    }
    fn a(ts: u64) -> MediaPacket {
        MediaPacket::aac(ts, false, Bytes::from_static(b"aa"))
    }
    fn hdr(track: Track, ts: u64) -> MediaPacket {
        MediaPacket { header: true, keyframe: true, ..media(track, ts, Bytes::from_static(b"h")) }
    }
    fn drain(q: &mut SendQueue) -> Vec<(Track, u64)> {
        std::iter::from_fn(|| q.pop()).map(|p| (p.track, p.timestamp_ms)).collect()
    }

    #[test]
    fn interleaves_by_timestamp_and_holds_a_lone_track_within_the_window() {
        let mut q = SendQueue::new(true, true, 5000, 500);
        q.push(hdr(Track::Video, 0));
        q.push(v(0, true));
        q.push(v(33, false));
        // No audio yet: video waits for audio to catch up.
        assert_eq!(q.pop().map(|p| p.header), None);
        q.push(hdr(Track::Audio, 0));
        q.push(a(0));
        q.push(a(23));
        q.push(a(46));
        assert_eq!(
            drain(&mut q),
            vec![
                (Track::Video, 0),
                (Track::Video, 0),
                (Track::Audio, 0),
                (Track::Audio, 0),
                (Track::Audio, 23),
                (Track::Video, 33)
            ]
        );
        // The audio at 46 waits for video past 46...
        q.push(v(66, false));
        assert_eq!(drain(&mut q), vec![(Track::Audio, 46)]);
        // ...and video then waits for audio past 66, until it is a window ahead of its head.
        for ts in (100..=700).step_by(100) {
            q.push(v(ts, false));
        }
        assert_eq!(drain(&mut q), vec![(Track::Video, 66), (Track::Video, 100), (Track::Video, 200)]);
        q.finish();
        assert_eq!(drain(&mut q).len(), 5);
    }

    /// Real-time 30 fps video with audio at the same timestamps, the clock following stream time.
    fn push_at(q: &mut SendQueue, ts: u64, key: bool, total: &mut PushOutcome) {
        q.set_clock(ts);
        for o in [q.push(v(ts, key)), q.push(a(ts))] {
            total.dropped_video += o.dropped_video;
            total.dropped_audio += o.dropped_audio;
            total.keyframe_wanted |= o.keyframe_wanted;
            total.outage |= o.outage;
        }
    }

    #[test]
    fn an_outage_keeps_its_media_from_the_keyframe_asked_at_the_disconnect() {
        let mut q = SendQueue::new(true, true, 2000, 500);
        let mut sent = PushOutcome::default();
        // One second streamed, everything sent but the last 66 ms in flight.
        for i in 0..30u64 {
            push_at(&mut q, i * 33, i == 0, &mut sent);
            drain(&mut q);
        }
        q.set_in_flight(Some(924));
        assert_eq!(sent.dropped_video, 0);
        let out = q.on_disconnect();
        assert!(out.keyframe_wanted && out.outage, "no keyframe queued: one is asked for at once: {out:?}");
        assert!(q.is_down());
        // The encoder takes two frames to answer; then 1.3 s of outage at 30 fps.
        let mut down = PushOutcome::default();
        for i in 30..72u64 {
            push_at(&mut q, i * 33, i == 32, &mut down);
        }
        assert!(down.outage);
        assert_eq!(down.dropped_video, 2, "only the inter frames before the keyframe: {down:?}");
        assert_eq!(q.congestion_latency_ms(), 0, "waiting for a connection is not congestion");
        assert_eq!(q.congestion(), 0.0);
        let (out, figures) = q.on_resume();
        assert!(out.outage);
        // Kept: 1056 (the keyframe) to 2343; lost: the in-flight 924 up to the keyframe.
        assert_eq!(figures, OutageFigures { kept_ms: 2343 - 1056, lost_ms: 1056 - 924 });
        let first = q.pop().unwrap();
        assert!(first.keyframe && first.timestamp_ms == 1056, "{first:?}");
        assert!(q.is_catching_up());
        // The backlog drains while live media keeps coming: no skip, and the catch-up ends.
        let mut after = PushOutcome::default();
        for i in 72..90u64 {
            push_at(&mut q, i * 33, false, &mut after);
            drain(&mut q);
        }
        q.set_in_flight(None);
        assert_eq!(after.dropped_video + after.dropped_audio, 0, "{after:?}");
        assert!(!q.is_catching_up());
        // Measured at the second push after the resume, the first that finds the queue drained.
        assert_eq!(q.last_catch_up_ms(), Some(66));
    }

    #[test]
    fn an_outage_longer_than_the_budget_loses_its_oldest_gops_only() {
        let mut q = SendQueue::new(true, true, 2000, 500);
        let mut total = PushOutcome::default();
        push_at(&mut q, 0, true, &mut total);
        drain(&mut q);
        q.on_disconnect();
        // 5 s down, a keyframe every second (the first asked for at the disconnect).
        for i in 1..=150u64 {
            push_at(&mut q, i * 33, i % 30 == 1, &mut total);
        }
        let (_, figures) = q.on_resume();
        // About outage - budget is lost (from just after the last frame sent, at 0, to the
        // keyframe kept), within a GOP.
        let outage = 150 * 33 - 1;
        assert!(figures.lost_ms + 1000 >= outage - 2000 && figures.lost_ms <= outage - 2000 + 1000, "{figures:?}");
        assert_eq!(figures.kept_ms + figures.lost_ms, outage, "{figures:?}");
        assert!(total.outage && total.dropped_video > 0);
        assert!(q.latency_ms() <= 2000);
    }

    #[test]
    fn a_catch_up_that_does_not_drain_becomes_congestion() {
        let mut q = SendQueue::new(true, false, 4000, 500);
        let mut total = PushOutcome::default();
        push_at(&mut q, 0, true, &mut total);
        drain(&mut q);
        q.on_disconnect();
        for i in 1..=45u64 {
            push_at(&mut q, i * 33, i == 1, &mut total);
        }
        q.on_resume();
        let start = q.latency_ms();
        assert!(start >= 1400, "{start}");
        assert!(q.congestion_latency_ms() < 50, "at the resume the backlog is the outage's");
        // Nothing leaves (the new link is no faster than the old one): the allowance shrinks and
        // the excess is congestion again, all of it once CATCH_UP_MS has passed.
        for i in 46..=75u64 {
            push_at(&mut q, i * 33, false, &mut total);
        }
        let half = q.congestion_latency_ms();
        assert!(half >= 1000 && half < q.latency_ms(), "{half} of {}", q.latency_ms());
        for i in 76..=200u64 {
            push_at(&mut q, i * 33, i % 60 == 0, &mut total);
        }
        assert_eq!(q.congestion_latency_ms(), q.latency_ms());
        assert!(q.is_catching_up(), "never under 300 ms");
    }

    #[test]
    fn a_single_track_stream_flows_at_once() {
        let mut q = SendQueue::new(true, false, 5000, 500);
        q.push(v(0, true));
        assert_eq!(drain(&mut q), vec![(Track::Video, 0)]);
        let mut q = SendQueue::new(false, true, 5000, 500);
        q.push(a(0));
        assert_eq!(drain(&mut q), vec![(Track::Audio, 0)]);
    }

    #[test]
    fn over_budget_drops_the_oldest_gop_keeps_audio_and_headers() {
        let mut q = SendQueue::new(true, true, 1000, 500);
        q.push(hdr(Track::Video, 0));
        q.push(hdr(Track::Audio, 0));
        // In flight since 0: nothing drains, the latency grows with every frame.
        q.set_in_flight(Some(0));
        let mut total = PushOutcome::default();
        for i in 0..45u64 {
            let ts = i * 33;
            for o in [q.push(v(ts, i % 30 == 0)), q.push(a(ts))] {
                total.dropped_video += o.dropped_video;
                total.dropped_audio += o.dropped_audio;
            }
        }
        // Above the soft threshold (350 ms) the tail of the first GOP was skipped; past the budget
        // the rest of that GOP went; the keyframe at 990 ms stays and the frames after it were skipped.
        assert_eq!(total.dropped_video, 44);
        assert_eq!(total.dropped_audio, 0, "audio stays within its own budget (1500 ms)");
        let out: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert!(out[0].header && out[1].header, "headers survive the drop");
        let first_media_video = out.iter().find(|p| !p.header && p.track == Track::Video).unwrap();
        assert!(first_media_video.keyframe && first_media_video.timestamp_ms == 990);
    }

    #[test]
    fn without_a_keyframe_left_it_drops_everything_and_waits_for_one() {
        let mut q = SendQueue::new(true, false, 500, 500);
        q.set_in_flight(Some(0));
        let mut wanted = false;
        let mut dropped = 0;
        for i in 0..30u64 {
            let o = q.push(v(i * 33, i == 0));
            wanted |= o.keyframe_wanted;
            dropped += o.dropped_video;
        }
        assert!(wanted);
        // Frames after 198 ms (over the 175 ms soft threshold) were skipped; at 528 ms the queued
        // GOP was past the budget with no keyframe after it: everything went.
        assert_eq!(dropped, 30);
        assert!(q.is_empty());
        // Inter frames after the drop are refused until a keyframe comes.
        assert_eq!(q.push(v(2000, false)).dropped_video, 1);
        assert_eq!(q.push(v(2033, true)).dropped_video, 0);
        let out = drain(&mut q);
        assert_eq!(out, vec![(Track::Video, 2033)]);
    }

    #[test]
    fn video_waits_for_audio_only_once_audio_has_come() {
        // Made without audio: video goes at once, not a window later.
        let mut q = SendQueue::new(true, false, 10_000, 500);
        q.push(v(0, true));
        q.push(v(33, false));
        assert_eq!(drain(&mut q), vec![(Track::Video, 0), (Track::Video, 33)]);
        // Audio shows up: from then on the tracks are interleaved as usual.
        q.push(a(40));
        q.push(v(66, false));
        q.push(v(100, false));
        assert_eq!(drain(&mut q), vec![(Track::Audio, 40)], "video past the audio waits for more of it");
        q.push(a(110));
        assert_eq!(drain(&mut q), vec![(Track::Video, 66), (Track::Video, 100)]);
    }

    /// CI at a509e6d: the first session began while the encoder was still encoding picture 0 (an
    /// IDR); asking for a keyframe then made picture 1 an IDR too.
    #[test]
    fn a_first_session_before_any_video_asks_only_when_an_inter_frame_comes_first() {
        let mut q = SendQueue::new(true, false, 10_000, 500);
        q.push(hdr(Track::Video, 0));
        let out = q.restart_at_keyframe();
        assert!(!out.keyframe_wanted, "the encoder's first picture is a keyframe: {out:?}");
        assert_eq!(q.push(v(0, true)).dropped_video, 0);
        assert_eq!(drain(&mut q), vec![(Track::Video, 0), (Track::Video, 0)]);

        // Pre-encoded video whose first picture is not a keyframe: refused, and one is asked for.
        let mut q = SendQueue::new(true, false, 10_000, 500);
        assert!(!q.restart_at_keyframe().keyframe_wanted);
        let out = q.push(v(0, false));
        assert_eq!((out.dropped_video, out.keyframe_wanted), (1, true));
        assert_eq!(q.push(v(33, true)).dropped_video, 0);
        assert_eq!(drain(&mut q), vec![(Track::Video, 33)]);
    }

    #[test]
    fn a_new_session_starts_at_the_first_queued_keyframe() {
        let mut q = SendQueue::new(true, true, 10_000, 500);
        q.push(hdr(Track::Video, 0));
        for i in 0..5u64 {
            q.push(v(i * 33, false));
            q.push(a(i * 33));
        }
        q.push(v(165, true));
        q.push(a(165));
        let out = q.restart_at_keyframe();
        assert_eq!((out.dropped_video, out.dropped_audio, out.keyframe_wanted), (5, 5, false));
        q.finish();
        let rest: Vec<_> = std::iter::from_fn(|| q.pop()).map(|p| (p.track, p.timestamp_ms, p.header)).collect();
        assert_eq!(rest, vec![(Track::Video, 0, true), (Track::Video, 165, false), (Track::Audio, 165, false)]);

        // No keyframe queued: everything goes, inter frames are refused until one comes.
        let mut q = SendQueue::new(true, true, 10_000, 500);
        q.push(v(0, false));
        let out = q.restart_at_keyframe();
        assert_eq!((out.dropped_video, out.keyframe_wanted), (1, true));
        q.push(a(20));
        q.push(a(43));
        assert_eq!(q.push(v(33, false)).dropped_video, 1);
        q.push(a(66));
        q.push(a(700));
        assert!(q.pop().is_none(), "audio waits for the keyframe");
        let out = q.push(v(66, true));
        assert_eq!((out.dropped_video, out.dropped_audio), (0, 2));
        assert_eq!(drain(&mut q), vec![(Track::Video, 66), (Track::Audio, 66)]);
    }

    #[test]
    fn audio_held_for_a_keyframe_stays_within_budget() {
        let mut q = SendQueue::new(true, true, 1000, 500);
        q.push(v(0, false));
        q.restart_at_keyframe();
        let dropped: u64 = (0..100u64).map(|i| q.push(a(i * 23)).dropped_audio).sum();
        assert!(q.duration_ms() <= 1000 && dropped > 0, "{} ms held, {dropped} dropped", q.duration_ms());
    }

    #[test]
    fn audio_only_stream_is_kept_within_budget() {
        let mut q = SendQueue::new(false, true, 1000, 500);
        let mut dropped = 0;
        for i in 0..200u64 {
            dropped += q.push(a(i * 23)).dropped_audio;
        }
        assert!(q.duration_ms() <= 1000, "{}", q.duration_ms());
        assert!(dropped > 100);
    }

    /// A scripted link under a bandwidth schedule: an IPPP encoder (IDR every 2 s, an IDR on
    /// request), AAC-sized audio, a socket buffer of 25 KB drained at the link rate.
    struct Sim {
        q: SendQueue,
        /// (bytes left of the packet, its track, its frame index, keyframe, timestamp) in the socket.
        socket: VecDeque<(usize, MediaPacket)>,
        socket_bytes: usize,
        /// Last video frame sent whose whole reference chain was sent.
        decodable: Option<u64>,
        undecodable: u64,
        video_drops: u64,
        audio_drops: u64,
        audio_dropped_before_video: bool,
        max_video_span: u64,
        max_audio_span: u64,
        latency_samples: Vec<(u64, u64)>,
        want_key: bool,
    }

    fn frame(track: Track, ts: u64, index: u64, key: bool, size: usize) -> MediaPacket {
        let mut body = index.to_le_bytes().to_vec();
        body.resize(size, 0);
        MediaPacket { keyframe: key, ..media(track, ts, Bytes::from(body)) }
    }

    impl Sim {
        fn account(&mut self, o: PushOutcome) {
            if o.dropped_audio > 0 && self.video_drops == 0 {
                self.audio_dropped_before_video = true;
            }
            self.video_drops += o.dropped_video;
            self.audio_drops += o.dropped_audio;
            self.want_key |= o.keyframe_wanted;
            let newest = self.q.newest.unwrap_or(0);
            let front = |d: &VecDeque<MediaPacket>| d.iter().find(|p| !p.header).map(|p| p.timestamp_ms);
            if let Some(f) = front(&self.q.video) {
                self.max_video_span = self.max_video_span.max(newest - f);
            }
            if let Some(f) = front(&self.q.audio) {
                self.max_audio_span = self.max_audio_span.max(newest - f);
            }
        }

        fn run(schedule: &[(u64, u64)]) -> Sim {
            let mut sim = Sim {
                q: SendQueue::new(true, true, 2000, 500),
                socket: VecDeque::new(),
                socket_bytes: 0,
                decodable: None,
                undecodable: 0,
                video_drops: 0,
                audio_drops: 0,
                audio_dropped_before_video: false,
                max_video_span: 0,
                max_audio_span: 0,
                latency_samples: Vec::new(),
                want_key: false,
            };
            let end = schedule.last().unwrap().0;
            let (mut next_video, mut next_audio, mut index, mut credit) = (0u64, 0u64, 0u64, 0.0f64);
            for t in 0..end {
                let kbps = schedule.iter().find(|(until, _)| t < *until).unwrap().1;
                if t * 3 >= next_video * 100 {
                    let key = index % 60 == 0 || std::mem::take(&mut sim.want_key);
                    let o = sim.q.push(frame(Track::Video, t, index, key, if key { 30_000 } else { 3_000 }));
                    sim.account(o);
                    index += 1;
                    next_video += 1;
                }
                if t >= next_audio * 23 {
                    let o = sim.q.push(frame(Track::Audio, t, next_audio, true, 200));
                    sim.account(o);
                    next_audio += 1;
                }
                // The network worker fills the socket while it has room.
                while sim.socket_bytes < 25_000 {
                    let Some(p) = sim.q.pop() else { break };
                    sim.socket_bytes += p.data.len();
                    sim.socket.push_back((p.data.len(), p));
                }
                credit += kbps as f64 / 8.0;
                while let Some((left, _)) = sim.socket.front_mut() {
                    let n = (*left).min(credit as usize);
                    *left -= n;
                    sim.socket_bytes -= n;
                    credit -= n as f64;
                    if *left > 0 {
                        break;
                    }
                    let (_, p) = sim.socket.pop_front().unwrap();
                    if p.track == Track::Video {
                        let i = u64::from_le_bytes(p.data[..8].try_into().unwrap());
                        if p.keyframe || (i > 0 && sim.decodable == Some(i - 1)) {
                            sim.decodable = Some(i);
                        } else {
                            sim.undecodable += 1;
                        }
                    }
                }
                if sim.socket.is_empty() {
                    // An idle link banks no credit.
                    credit = 0.0;
                }
                sim.q.set_in_flight(sim.socket.front().map(|(_, p)| p.timestamp_ms));
                if t % 100 == 0 {
                    sim.latency_samples.push((t, sim.q.latency_ms()));
                }
            }
            sim
        }

        fn p99_latency(&self, from: u64, to: u64) -> u64 {
            let mut l: Vec<u64> =
                self.latency_samples.iter().filter(|(t, _)| (from..to).contains(t)).map(|s| s.1).collect();
            l.sort_unstable();
            l[l.len() * 99 / 100]
        }
    }

    #[test]
    fn scripted_link_drops_keep_the_stream_decodable_audio_last_and_latency_bounded() {
        // The stream needs ~900 kbit/s (720 of P frames, 120 of IDRs, 70 of audio).
        let sim = Sim::run(&[(20_000, 2000), (60_000, 450), (80_000, 100), (100_000, 2000)]);
        assert_eq!(sim.undecodable, 0, "a dropped frame left a frame without its reference");
        assert!(sim.video_drops > 100, "the link was too slow: video must have been dropped");
        assert!(!sim.audio_dropped_before_video, "audio was dropped before any video");
        assert!(sim.max_video_span <= 2000, "queued video spans {} ms, over the budget", sim.max_video_span);
        assert!(sim.max_audio_span <= 3000, "queued audio spans {} ms", sim.max_audio_span);
        let p99 = sim.p99_latency(20_000, 60_000);
        assert!(p99 <= 2000, "latency p99 at half the bandwidth: {p99} ms");
        // Once the link is back, the queue empties.
        assert!(sim.p99_latency(90_000, 100_000) < 300, "{:?}", &sim.latency_samples[900..]);
    }

    #[test]
    fn scripted_link_with_room_drops_nothing() {
        let sim = Sim::run(&[(30_000, 3000)]);
        assert_eq!((sim.video_drops, sim.audio_drops, sim.undecodable), (0, 0, 0));
        assert!(sim.p99_latency(0, 30_000) < 300);
    }

    #[test]
    fn faster_than_real_time_input_is_aged_by_the_clock() {
        // Five seconds of media pushed within 100 ms of wall time, nothing sent yet: it has waited
        // 100 ms, not five seconds, so nothing is dropped...
        let mut q = SendQueue::new(true, false, 2000, 500);
        for i in 0..150u64 {
            q.set_clock(i * 100 / 150);
            assert_eq!(q.push(v(i * 33, i % 60 == 0)).dropped_video, 0, "frame {i}");
        }
        assert!(q.latency_ms() <= 100, "{}", q.latency_ms());
        // ...until it has really waited past the budget.
        q.set_clock(2200);
        assert!(q.push(v(150 * 33, false)).dropped_video > 0);
    }
}
