//! The encode worker: raw pictures and PCM in, codec-level units (see `crate::core::media`) into
//! the send queues.

use super::audio_clock::{AudioClock, UnitStamps};
use super::control::Pause;
use super::event::EventKind;
use super::input::{Input, Next};
use super::ladder_driver::{LadderDriver, Plan};
use super::shared::{lock, Shared};
use super::timeline::TimelineTrack;
use crate::core::annexb;
use crate::core::body_pool::BodyPool;
use crate::core::hevc;
use crate::core::media::{Codec, MediaPacket};
use crate::encode::{AudioEncoder, Encoded, I420Buffer, VideoEncoder};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Turns Annex-B access units into codec-level units (length-prefixed NAL units, see
/// [`crate::core::media`]), with a new header unit (the AVCDecoderConfigurationRecord) whenever the
/// parameter sets change. Shared by the encoder path and the app's pre-encoded path.
#[derive(Default)]
pub struct AvcPacketizer {
    record: Option<Bytes>,
    /// The record built from the current access unit's parameter sets, to compare (reused).
    scratch: Vec<u8>,
    bodies: BodyPool,
}

/// The units made from one access unit.
#[derive(Debug, Default)]
pub struct AvcTags {
    /// A new decoder configuration record, when the access unit carried new parameter sets.
    pub header: Option<Bytes>,
    /// The access unit, unless it had no slices or came before any parameter set.
    pub frame: Option<Bytes>,
    pub keyframe: bool,
    /// Presentation minus decode time, ms.
    pub cts_ms: i32,
    /// The unit had no picture: parameter sets (and SEI, AUD) only, like MediaCodec's
    /// codec-config buffer. Nothing is lost, and it takes no frame time.
    pub no_picture: bool,
}

impl AvcPacketizer {
    /// Frames before the first SPS/PPS cannot be decoded: they give no frame unit.
    pub fn packetize(&mut self, annexb_au: &[u8], cts_ms: i32) -> Result<AvcTags> {
        let max_len = annexb_au.len() + annexb_au.len() / 4;
        let (body, info) = self.bodies.build(max_len, |b| annexb::annexb_to_avcc(annexb_au, b))?;
        let mut header = None;
        if let (Some(sps), Some(pps)) = (&info.sps, &info.pps) {
            annexb::avc_decoder_configuration_record_into(
                &annexb_au[sps.clone()],
                &annexb_au[pps.clone()],
                &mut self.scratch,
            )?;
            if self.record.as_deref() != Some(&self.scratch[..]) {
                let record = Bytes::copy_from_slice(&self.scratch);
                header = Some(record.clone());
                self.record = Some(record);
            }
        }
        let keyframe = info.keyframe;
        if !info.has_slices || self.record.is_none() {
            return Ok(AvcTags { header, frame: None, keyframe, cts_ms, no_picture: !info.has_slices });
        }
        Ok(AvcTags { header, frame: Some(body), keyframe, cts_ms, no_picture: false })
    }
}

/// Turns HEVC Annex-B access units into codec-level units, with a new header unit (the
/// HEVCDecoderConfigurationRecord) whenever the parameter sets change.
#[derive(Default)]
pub struct HevcPacketizer {
    record: Option<Vec<u8>>,
}

impl HevcPacketizer {
    /// Frames before the first VPS/SPS/PPS cannot be decoded: they give no frame unit.
    pub fn packetize(&mut self, annexb_au: &[u8], cts_ms: i32) -> Result<AvcTags> {
        let mut body = Vec::with_capacity(annexb_au.len() + 16);
        let info = hevc::annexb_to_length_prefixed(annexb_au, &mut body)?;
        let mut header = None;
        if let (Some(vps), Some(sps), Some(pps)) = (&info.vps, &info.sps, &info.pps) {
            let record = hevc::decoder_configuration_record(
                &annexb_au[vps.clone()],
                &annexb_au[sps.clone()],
                &annexb_au[pps.clone()],
            )?;
            if self.record.as_ref() != Some(&record) {
                header = Some(Bytes::copy_from_slice(&record));
                self.record = Some(record);
            }
        }
        let keyframe = info.keyframe;
        if !info.has_slices || self.record.is_none() {
            return Ok(AvcTags { header, frame: None, keyframe, cts_ms, no_picture: !info.has_slices });
        }
        Ok(AvcTags { header, frame: Some(Bytes::from(body)), keyframe, cts_ms, no_picture: false })
    }
}

pub struct EncodeWorker {
    pub shared: Arc<Shared>,
    pub video: Option<Box<dyn VideoEncoder>>,
    /// AAC, when a destination takes it.
    pub audio: Option<Box<dyn AudioEncoder>>,
    /// Opus from the same PCM, when a destination takes it.
    pub opus: Option<Box<dyn AudioEncoder>>,
    /// The bitrate the video encoder runs at (the ABR's target, once applied).
    pub applied_kbps: u32,
    /// Raw pictures seen, for the frame-rate step-down.
    pub pictures: u64,
    /// The encode ladder, when it is on.
    pub ladder: Option<LadderDriver>,
}

/// What [`EncodeWorker::encode_picture`] did with a picture.
enum VideoOut {
    /// Not encoded: no video track, or the ladder or the ABR's frame-rate step skipped it.
    Skipped,
    /// The encoder's answer: an access unit, or none (held for reordering, or dropped).
    Encoded(Option<Encoded>),
}

/// The worker's own state between inputs.
struct State {
    annexb: Vec<u8>,
    avc: AvcPacketizer,
    audio: Option<AudioTrack>,
    /// The app's pause picture, copied from the control when its version changes.
    pause_image: (u64, Option<I420Buffer>),
    /// Video stream time of the last picture encoded.
    last_video_ms: Option<u64>,
    /// When the next pause frame (or silence check) is due.
    next_tick: Option<Instant>,
    /// Pause frames made since the last IDR.
    pause_frames: u64,
    /// Decode times of a reordering (B-frame) encoder.
    dts: DtsClamp,
}

/// The audio track: one clock over the PCM run, the encoders fed from it, a block of silence.
struct AudioTrack {
    clock: AudioClock,
    channels: usize,
    zeros: Vec<i16>,
    /// AAC first (when encoded), then Opus.
    outs: Vec<AudioOut>,
}

/// One audio encoder and what becomes of its access units.
struct AudioOut {
    enc: Box<dyn AudioEncoder>,
    units: AudioUnits,
    /// The loss last given to the encoder.
    expected_loss: u8,
}

/// An encoder's access units on their way to the send queues.
struct AudioUnits {
    codec: Codec,
    stamps: UnitStamps,
    /// The AudioSpecificConfig (AAC), sent before the first frame; empty for Opus.
    header: Vec<u8>,
    header_sent: bool,
    /// This codec's frames are the ones `audio_frames_encoded` counts.
    counted: bool,
    /// Unit bodies, reused: no allocation per access unit.
    bodies: BodyPool,
}

/// How often silence is checked for in audio-only pause mode.
const AUDIO_ONLY_TICK: Duration = Duration::from_millis(100);

impl EncodeWorker {
    pub fn run(mut self) {
        let audio = self.audio_track();
        let mut st = State {
            annexb: Vec::with_capacity(256 * 1024),
            avc: AvcPacketizer::default(),
            audio,
            pause_image: (0, None),
            last_video_ms: None,
            next_tick: None,
            pause_frames: 0,
            dts: DtsClamp::default(),
        };
        let mut failed = false;
        loop {
            let pause = *lock(&self.shared.control.pause);
            if pause.is_none() {
                st.next_tick = None;
            } else if st.next_tick.is_none() {
                st.next_tick = Some(Instant::now());
            }
            if let Some(ladder) = self.ladder.as_mut() {
                ladder.tick(&self.shared, Instant::now(), pause.is_some());
            }
            let input = match self.shared.input.next_until(st.next_tick) {
                Next::Input(i) => i,
                Next::Closed => break,
                Next::Timeout => {
                    if let Some(p) = pause {
                        if st.next_tick.is_some_and(|t| Instant::now() >= t) {
                            if let Err(e) = self.pause_tick(p, &mut st) {
                                self.fail(e);
                                failed = true;
                                break;
                            }
                        }
                    }
                    continue;
                }
            };
            let result = match input {
                Input::Video(pic, ts) => {
                    let r = self.encode_picture(&pic, ts, &mut st);
                    // Kept for pause frames, in the input pool (see `InputQueue::keep_last_video`),
                    // as soon as the encoder is done with it, before the access unit is counted
                    // and queued: an app that pushes on the encoder's progress then finds it free
                    // (push_compare: 3 -> 2 pool buffers, 1.4 MB less at 720p).
                    self.shared.input.keep_last_video(pic);
                    r.and_then(|out| self.video_encoded(out, ts, &mut st))
                }
                Input::Audio(pcm, ts) => {
                    let started = Instant::now();
                    let r = self.encode_audio(&pcm, ts, &mut st);
                    if let Some(ladder) = self.ladder.as_mut() {
                        ladder.record_other(started.elapsed());
                    }
                    self.shared.input.recycle(Input::Audio(pcm, ts));
                    r
                }
            };
            self.shared.counters.encode_cpu_ns.store(super::shared::thread_cpu_ns(), Relaxed);
            if let Err(e) = result {
                self.fail(e);
                failed = true;
                break;
            }
        }
        if !failed {
            if let Err(e) = self.flush_video(&mut st) {
                log::warn!("video encoder flush: {e}");
            }
        }
        if let Some(track) = st.audio.as_mut() {
            for out in &mut track.outs {
                let (clock, units, shared) = (&track.clock, &mut out.units, &self.shared);
                if let Err(e) = out.enc.flush(&mut |au| units.emit(shared, clock, au)) {
                    log::warn!("{:?} encoder flush: {e}", units.codec);
                }
            }
        }
        self.shared.finish_input();
    }

    /// The audio encoders (moved out of the worker) on one clock; None without any.
    fn audio_track(&mut self) -> Option<AudioTrack> {
        let cfg = self.shared.config.audio.as_ref();
        let rate = cfg.map_or(44100, |a| a.sample_rate);
        let channels = cfg.map_or(2, |a| a.channels) as usize;
        // Beside pre-encoded AAC (Opus), `audio_frames_encoded` counts the app's AAC frames (Opus
        // packets), not what is made from the PCM beside them.
        let pre_encoded = cfg.is_some_and(|a| a.encoder.is_pre_encoded());
        let counted = super::config::audio_codecs(&self.shared.config).counted().filter(|_| !pre_encoded);
        let outs: Vec<AudioOut> = [(Codec::Aac, self.audio.take()), (Codec::Opus, self.opus.take())]
            .into_iter()
            .filter_map(|(codec, enc)| {
                let enc = enc?;
                let units = AudioUnits {
                    codec,
                    stamps: UnitStamps::new(enc.frame_samples(), enc.priming_samples()),
                    header: enc.audio_specific_config().to_vec(),
                    header_sent: false,
                    counted: counted == Some(codec),
                    bodies: BodyPool::default(),
                };
                Some(AudioOut { enc, units, expected_loss: 0 })
            })
            .collect();
        let block = outs.iter().map(|o| o.enc.frame_samples()).max()?;
        Some(AudioTrack { clock: AudioClock::new(rate), channels, zeros: vec![0; block.max(1) * channels], outs })
    }

    /// An encoder that fails takes every destination down with it.
    fn fail(&self, e: Error) {
        self.shared.fail(e.clone());
        self.shared.emit(EventKind::KP_EVENT_FAILED, e.code(), e.to_string(), 0);
    }

    fn encode_video(&mut self, pic: &I420Buffer, ts: u64, st: &mut State) -> Result<()> {
        let out = self.encode_picture(pic, ts, st)?;
        self.video_encoded(out, ts, st)
    }

    /// Runs `pic` through the encoder; what came out goes on with [`Self::video_encoded`], once
    /// the caller has given the picture back.
    fn encode_picture(&mut self, pic: &I420Buffer, ts: u64, st: &mut State) -> Result<VideoOut> {
        if self.video.is_none() {
            return Ok(VideoOut::Skipped);
        }
        let started = Instant::now();
        let pic = match self.ladder_plan(pic, st)? {
            Plan::Encode => pic,
            Plan::Scaled => self.ladder.as_ref().map_or(pic, |l| l.scaled()),
            Plan::Drop => {
                self.shared.ladder.frames_skipped.fetch_add(1, Relaxed);
                return Ok(VideoOut::Skipped);
            }
        };
        let Some(enc) = self.video.as_mut() else {
            return Ok(VideoOut::Skipped);
        };
        self.pictures += 1;
        let divisor = self.shared.fps_divisor.load(Relaxed).max(1) as u64;
        if !self.pictures.is_multiple_of(divisor) {
            // The ABR's frame-rate step-down: the stream keeps its timestamps, with gaps.
            self.shared.counters.video_frames_skipped_abr.fetch_add(1, Relaxed);
            return Ok(VideoOut::Skipped);
        }
        let target = self.shared.video_target_kbps.load(Relaxed);
        if target != 0 && target != self.applied_kbps {
            // Only a change of the ABR's target is applied: an app's set_video_bitrate below holds
            // until the ABR moves again (the last of the two wins).
            // On the fly: no new sequence header, timestamps untouched.
            if let Err(e) = enc.set_bitrate(target) {
                // Keep streaming at the old rate; the drop policy still bounds the latency.
                log::warn!("video encoder refused {target} kbit/s: {e}");
            }
            self.applied_kbps = target;
        }
        if let Some(kbps) = self.shared.control.take_video_bitrate() {
            if let Err(e) = enc.set_bitrate(kbps) {
                log::warn!("video bitrate {kbps} kbit/s: {e}");
            }
        }
        if self.shared.keyframe_wanted.swap(false, Relaxed) {
            enc.force_keyframe();
        }
        st.annexb.clear();
        st.dts.first.get_or_insert(ts as i64);
        let encode_started = Instant::now();
        let encoded = enc.encode_timed(pic, ts as i64, &mut st.annexb);
        self.shared.counters.encode_ns.fetch_add(encode_started.elapsed().as_nanos() as u64, Relaxed);
        if let Some(ladder) = self.ladder.as_mut() {
            ladder.record(started.elapsed());
        }
        st.last_video_ms = Some(ts);
        Ok(VideoOut::Encoded(encoded?))
    }

    fn video_encoded(&mut self, out: VideoOut, ts: u64, st: &mut State) -> Result<()> {
        let VideoOut::Encoded(encoded) = out else {
            return Ok(());
        };
        match encoded {
            Some(au) => self.queue_encoded(au, st)?,
            // A reordering encoder holds pictures back; that is not a drop.
            None if self.video.as_ref().is_some_and(|e| e.delayed_frames() == 0) => {
                self.shared.counters.video_frames_dropped_encoder.fetch_add(1, Relaxed);
                return Ok(());
            }
            None => {}
        }
        // A microphone that stopped while the camera goes on: keep the audio track flowing.
        self.fill_silence(ts, st)
    }

    /// Brings the encoder to the ladder's rung when `pic` calls for it, and says how `pic` gets
    /// to the encoder's size.
    fn ladder_plan(&mut self, pic: &I420Buffer, st: &mut State) -> Result<Plan> {
        let scaling = self.scaling();
        let Some(rung) = self.ladder.as_ref().and_then(|l| l.reconfigure_for((pic.width, pic.height))) else {
            return self.ladder.as_mut().map_or(Ok(Plan::Encode), |l| l.plan(pic, scaling));
        };
        // What a reordering encoder holds belongs to the old settings.
        self.flush_video(st)?;
        let (Some(enc), Some(ladder), Some(v)) = (self.video.as_mut(), self.ladder.as_mut(), &self.shared.config.video)
        else {
            return Ok(Plan::Encode);
        };
        let (cfg, kbps) =
            super::ladder_driver::encoder_config(&super::encoder_config(v), rung, ladder.applied(), self.applied_kbps);
        enc.reconfigure(&cfg, rung.complexity)?;
        ladder.set_applied(&self.shared, rung);
        self.applied_kbps = kbps;
        // Ahead of the monitor, which scales the ABR to the new rung on its next tick.
        self.shared.video_target_kbps.store(kbps, Relaxed);
        self.ladder.as_mut().map_or(Ok(Plan::Encode), |l| l.plan(pic, scaling))
    }

    /// How pictures are fitted to the ladder's rung: as the app's frames are (scaling off only
    /// refuses the app's frames of another size; a rung is always scaled to).
    fn scaling(&self) -> crate::encode::options::VideoScaling {
        use crate::encode::options::VideoScaling;
        match self.shared.config.video.as_ref().map(|v| v.scaling).unwrap_or_default() {
            VideoScaling::KP_VIDEO_SCALING_OFF => VideoScaling::KP_VIDEO_SCALING_FILL,
            s => s,
        }
    }

    /// Drains the access units a reordering encoder still holds at the end of the stream.
    fn flush_video(&mut self, st: &mut State) -> Result<()> {
        loop {
            let Some(enc) = self.video.as_mut() else {
                return Ok(());
            };
            st.annexb.clear();
            match enc.flush(&mut st.annexb)? {
                Some(au) => self.queue_encoded(au, st)?,
                None => return Ok(()),
            }
        }
    }

    fn queue_encoded(&self, au: Encoded, st: &mut State) -> Result<()> {
        let (ts, cts) = st.dts.map(au);
        let tags = st.avc.packetize(&st.annexb, cts).map_err(|e| Error::Encoder(format!("encoder output: {e}")))?;
        self.shared.queue_avc(Codec::H264, tags, ts);
        Ok(())
    }

    /// One app chunk into every audio encoder: the same samples, the same silence and skips.
    fn encode_audio(&mut self, pcm: &[i16], ts: u64, st: &mut State) -> Result<()> {
        let Some(track) = st.audio.as_mut() else {
            return Ok(());
        };
        let ch = track.channels.max(1);
        let plan = track.clock.plan(ts, (pcm.len() / ch) as u64);
        let shared = &self.shared;
        track.encode_silence(shared, plan.silence)?;
        let skip = (plan.skip as usize * ch).min(pcm.len());
        let AudioTrack { clock, outs, .. } = track;
        // One encoder serves every destination of its codec: it protects for the worst path.
        let loss = shared.destinations.iter().map(|d| d.counters.audio_loss_percent.load(Relaxed)).max();
        let loss = loss.unwrap_or(0).min(100) as u8;
        for out in outs {
            if out.expected_loss != loss {
                out.enc.set_expected_loss(loss)?;
                out.expected_loss = loss;
            }
            let units = &mut out.units;
            out.enc.encode(&pcm[skip..], &mut |au| units.emit(shared, clock, au))?;
        }
        Ok(())
    }

    /// Silence up to `now_ms` (minus the fill lag) when the app's audio stopped coming.
    fn fill_silence(&mut self, now_ms: u64, st: &mut State) -> Result<()> {
        let Some(track) = st.audio.as_mut() else {
            return Ok(());
        };
        let n = track.clock.silence_until(now_ms);
        track.encode_silence(&self.shared, n)
    }

    /// One step of a pause: a still frame when due, and silence when the app's audio stopped.
    fn pause_tick(&mut self, pause: Pause, st: &mut State) -> Result<()> {
        let fps = f64::from(self.shared.config.pause_fps.max(0.1));
        let now = Instant::now();
        let interval = if pause.mode.has_video() && self.video.is_some() {
            Duration::from_secs_f64(1.0 / fps)
        } else {
            AUDIO_ONLY_TICK
        };
        let due = st.next_tick.unwrap_or(now) + interval;
        // Far behind (a slow machine): do not make up the lost ticks in a burst.
        st.next_tick = Some(if due < now { now + interval } else { due });
        let now_ms = pause.now_ms(now);
        if pause.mode.has_video() {
            self.pause_frame(now_ms, fps, st)?;
        }
        self.fill_silence(now_ms, st)
    }

    fn pause_frame(&mut self, now_ms: u64, fps: f64, st: &mut State) -> Result<()> {
        if self.video.is_none() {
            return Ok(());
        }
        {
            let image = lock(&self.shared.control.image);
            if image.0 != st.pause_image.0 {
                st.pause_image = image.clone();
            }
        }
        if let Some(img) = st.pause_image.1.take() {
            let r = if self.pause_frame_due(now_ms, fps, st) { self.encode_video(&img, now_ms, st) } else { Ok(()) };
            st.pause_image.1 = Some(img);
            return r;
        }
        // Taken before the frame is stamped: new input may have taken its buffer meanwhile (a
        // push that raced the pause), and a stamped frame must be sent.
        let Some(last) = self.shared.input.take_last_video() else {
            // Nothing was ever shown: there is no picture to repeat.
            return Ok(());
        };
        let r = if self.pause_frame_due(now_ms, fps, st) { self.encode_video(&last, now_ms, st) } else { Ok(()) };
        self.shared.input.keep_last_video(last);
        r
    }

    /// Whether a pause frame goes out now; when it does, its time is stamped and the keyframe
    /// cadence advanced.
    fn pause_frame_due(&self, now_ms: u64, fps: f64, st: &mut State) -> bool {
        // Stamped under the pause lock: a resume cannot slip between the check and the stamp,
        // so no pause frame follows the app's first frame after it.
        {
            let pause = lock(&self.shared.control.pause);
            if !pause.is_some_and(|p| p.mode.has_video()) {
                return false;
            }
            // Not closer than a frame interval to the app's last frame: players and muxers
            // that bucket frames by the nominal rate would see two frames in one slot.
            let gap_ms = self.shared.config.video.as_ref().map_or(0.0, |v| 1000.0 / f64::from(v.fps)).ceil() as u64;
            if st.last_video_ms.is_some_and(|l| now_ms < l + gap_ms) {
                return false;
            }
            if !lock(&self.shared.timeline).stamp_generated(TimelineTrack::Video, now_ms) {
                return false;
            }
        }
        // Viewers who join during a long pause need keyframes at about the usual interval in
        // time, not in frames (at the low pause rate that would be many seconds).
        let v = self.shared.config.video.as_ref();
        let (kf, cfps) = v.map_or((60, 30.0), |v| (v.keyframe_interval, f64::from(v.fps)));
        let gop = ((f64::from(kf) * fps / cfps).round() as u64).max(1);
        st.pause_frames += 1;
        if st.pause_frames >= gop {
            st.pause_frames = 0;
            self.shared.keyframe_wanted.store(true, Relaxed);
        }
        true
    }
}

/// FLV tag times are decode times and may not go back or below the stream's first picture, while
/// a B-frame encoder's first decode times lie before its first presentation time. Instead of
/// shifting the whole video track later (which would put it out of sync with audio), the early
/// decode times are pulled up to the first picture's time, one millisecond apart; presentation
/// times (tag time + composition time) stay exactly what the app stamped.
#[derive(Default)]
struct DtsClamp {
    first: Option<i64>,
    last: Option<i64>,
}

impl DtsClamp {
    /// (FLV tag time, composition time) of an access unit. Decode times strictly increase on the
    /// wire; when pictures come less than a millisecond apart and the encoder reorders (x264
    /// B-frames), a frame's presentation time can fall at or before the last decode time: then it
    /// is presented at its decode time (composition 0), a millisecond or two late, rather than
    /// sending a decode time that does not increase.
    fn map(&mut self, au: Encoded) -> (u64, i32) {
        let floor = self.last.map_or(self.first.unwrap_or(0), |l| l + 1);
        let dts = au.dts_ms.max(floor).max(0);
        self.last = Some(dts);
        (dts as u64, (au.pts_ms - dts).clamp(0, i32::MAX as i64) as i32)
    }
}

impl AudioTrack {
    /// `samples` per channel of silence into every encoder.
    fn encode_silence(&mut self, shared: &Shared, samples: u64) -> Result<()> {
        let AudioTrack { clock, zeros, outs, channels } = self;
        for out in outs {
            let mut left = samples as usize * *channels;
            let units = &mut out.units;
            while left > 0 {
                let n = left.min(zeros.len());
                out.enc.encode(&zeros[..n], &mut |au| units.emit(shared, clock, au))?;
                left -= n;
            }
        }
        Ok(())
    }
}

impl AudioUnits {
    /// Queues one access unit, stamped by the audio clock (the first AAC frame sends the
    /// sequence header first; units holding only the encoder's priming before the stream start
    /// are dropped).
    fn emit(&mut self, shared: &Shared, clock: &AudioClock, au: &[u8]) {
        let Some(ts) = clock.stamp_unit(&mut self.stamps) else {
            return;
        };
        if !self.header_sent && !self.header.is_empty() {
            self.header_sent = true;
            shared.queue_media(MediaPacket::aac(ts, true, Bytes::copy_from_slice(&self.header)));
        }
        let data = self.bodies.concat(&[au]);
        if self.counted {
            shared.counters.audio_frames_encoded.fetch_add(1, Relaxed);
        }
        shared.queue_media(match self.codec {
            Codec::Opus => MediaPacket::opus(ts, data),
            _ => MediaPacket::aac(ts, false, data),
        });
    }
}

#[cfg(test)]
mod dts_tests {
    use super::*;

    #[test]
    fn decode_times_strictly_increase_with_b_frames_a_millisecond_apart() {
        let mut c = DtsClamp { first: Some(-2), last: None };
        // x264 with B-frames on pictures 1 ms apart: dts runs 2 ms behind pts, and after the
        // millisecond rounding a B-frame's pts equals the previous frame's dts.
        let aus = [(0, -2), (3, -1), (1, 0), (2, 1), (6, 2), (4, 3), (4, 4), (5, 5)];
        let mut last = None;
        for (pts, dts) in aus {
            let (d, cts) = c.map(Encoded { idr: false, pts_ms: pts, dts_ms: dts });
            assert!(last.is_none_or(|l| d > l), "{d} after {last:?}");
            assert!(cts >= 0);
            last = Some(d);
        }
    }
}

#[cfg(all(test, feature = "opus", feature = "aac"))]
mod opus_tests {
    use super::super::input::Input;
    use super::super::{AudioConfig, Pusher, PusherConfig};
    use super::*;
    use crate::core::media::Track;

    /// Pre-encoded AAC with a destination that takes Opus: PCM beside it is taken when an Opus
    /// encoder can be made for the configured rate and channels; 5.1 AAC still makes a pusher
    /// (WebRTC gets its video alone), with no Opus and no PCM taken.
    #[test]
    fn pcm_beside_pre_encoded_aac_is_taken_when_opus_can_be_made() {
        use crate::pusher::AudioEncoderKind;
        let config = |channels| PusherConfig {
            url: "rtmp://127.0.0.1:9/app/key".into(),
            video: None,
            audio: Some(AudioConfig {
                encoder: AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH,
                channels,
                also_opus: true,
                ..AudioConfig::default()
            }),
            ..Default::default()
        };
        let stereo = Pusher::new(config(2), None).unwrap();
        assert!(stereo.pcm_beside);
        let pending = lock(&stereo.pending).take().unwrap();
        assert!(pending.audio.is_none() && pending.opus.is_some(), "Opus only: the AAC is the app's");
        let surround = Pusher::new(config(6), None).unwrap();
        assert!(!surround.pcm_beside);
        assert!(lock(&surround.pending).as_ref().unwrap().opus.is_none());
    }

    /// The worker, run on this thread over 1 s of 44.1 kHz PCM in 10 ms chunks from stream time
    /// 1000 ms, with the destination taking Opus (as a WebRTC one will): it gets 20 ms Opus
    /// packets on the AAC timeline and no AAC, and AAC frames are what `audio_frames_encoded`
    /// counts.
    #[test]
    fn opus_units_reach_an_opus_destination_on_the_shared_timeline() {
        let config = PusherConfig {
            url: "rtmp://127.0.0.1:9/app/key".into(),
            video: None,
            audio: Some(AudioConfig { also_opus: true, ..AudioConfig::default() }),
            send_queue_ms: 60_000,
            ..Default::default()
        };
        let mut pusher = Pusher::new(config, None).unwrap();
        Arc::get_mut(&mut pusher.shared).expect("not started").destinations[0].audio_codecs =
            crate::pusher::config::AudioCodecs { aac: false, opus: true };
        let pending = lock(&pusher.pending).take().unwrap();
        assert!(pending.audio.is_some() && pending.opus.is_some(), "both encoded");
        let shared = pusher.shared.clone();
        let mut tone = crate::pattern::Tone::new(44100, 2, 1000.0);
        let worker = EncodeWorker {
            shared: shared.clone(),
            video: None,
            audio: pending.audio,
            opus: pending.opus,
            applied_kbps: 0,
            pictures: 0,
            ladder: None,
        };
        // The input queue holds 100 chunks: all of them, then the end.
        for i in 0..100u64 {
            let mut buf = vec![0i16; 882];
            tone.fill(&mut buf);
            assert!(shared.input.push(Input::Audio(buf, 1000 + i * 10)));
        }
        shared.input.close();
        worker.run();
        let mut q = lock(&shared.destinations[0].queue);
        let mut units = Vec::new();
        while let Some(p) = q.pop() {
            units.push(p);
        }
        assert!(units.iter().all(|p| p.codec == Codec::Opus && p.track == Track::Audio && !p.header));
        // 50 packets of 20 ms, and one more that the flush fills with the encoder's lookahead.
        assert_eq!(units.len(), 51);
        // The first sample (1000 ms) lies 6.5 ms (libopus's lookahead) into the first packet.
        assert_eq!(units[0].timestamp_ms, 993);
        for w in units.windows(2) {
            let step = w[1].timestamp_ms - w[0].timestamp_ms;
            assert!((19..=21).contains(&step), "{} after {}", w[1].timestamp_ms, w[0].timestamp_ms);
        }
        assert_eq!(units[50].timestamp_ms, 1993);
        let mut dec = opus::Decoder::new(48000, opus::Channels::Stereo).unwrap();
        let mut pcm = vec![0i16; 960 * 2];
        for p in &units {
            assert_eq!(dec.decode(&p.data, &mut pcm, false).unwrap(), 960);
        }
        // About 1 s of AAC frames (1024 samples) plus the flushed delay: not the 51 Opus packets.
        let aac = shared.counters.audio_frames_encoded.load(Relaxed);
        assert!((43..=46).contains(&aac), "{aac} frames counted");
    }
}
