//! The encode worker: raw pictures and PCM in, FLV tag bodies into the send queue.

use super::event::EventKind;
use super::input::Input;
use super::shared::Shared;
use crate::core::annexb;
use crate::core::flv;
use crate::core::send_queue::{MediaPacket, Track};
use crate::encode::{AudioEncoder, Encoded, VideoEncoder};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Turns Annex-B access units into FLV video tags, emitting a new sequence header whenever the
/// parameter sets change. Shared by the encoder path and the app's pre-encoded path.
#[derive(Default)]
pub struct AvcPacketizer {
    record: Option<Vec<u8>>,
}

/// The FLV tag bodies made from one access unit.
#[derive(Debug, Default)]
pub struct AvcTags {
    /// A new AVC sequence header, when the access unit carried new parameter sets.
    pub header: Option<Bytes>,
    /// The frame, unless the unit had no slices or came before any parameter set.
    pub frame: Option<Bytes>,
    pub keyframe: bool,
}

impl AvcPacketizer {
    /// Frames before the first SPS/PPS cannot be decoded: they give no frame tag.
    pub fn packetize(&mut self, annexb_au: &[u8], cts_ms: i32) -> Result<AvcTags> {
        let mut body = Vec::with_capacity(annexb_au.len() + flv::AVC_HEADER_LEN + 16);
        body.extend_from_slice(&[0; flv::AVC_HEADER_LEN]);
        let info = annexb::annexb_to_avcc(annexb_au, &mut body)?;
        let mut header = None;
        if let (Some(sps), Some(pps)) = (&info.sps, &info.pps) {
            let record = annexb::avc_decoder_configuration_record(&annexb_au[sps.clone()], &annexb_au[pps.clone()])?;
            if self.record.as_ref() != Some(&record) {
                header = Some(Bytes::from(flv::avc_sequence_header(&record)));
                self.record = Some(record);
            }
        }
        let keyframe = info.keyframe;
        if !info.has_slices || self.record.is_none() {
            return Ok(AvcTags { header, frame: None, keyframe });
        }
        body[..flv::AVC_HEADER_LEN].copy_from_slice(&flv::avc_nalu_header(keyframe, cts_ms));
        Ok(AvcTags { header, frame: Some(Bytes::from(body)), keyframe })
    }
}

pub struct EncodeWorker {
    pub shared: Arc<Shared>,
    pub video: Option<Box<dyn VideoEncoder>>,
    pub audio: Option<Box<dyn AudioEncoder>>,
}

impl EncodeWorker {
    pub fn run(mut self) {
        let mut annexb = Vec::with_capacity(256 * 1024);
        let mut avc = AvcPacketizer::default();
        let mut audio_clock = AudioClock::default();
        let mut dts = DtsClamp::default();
        let mut failed = false;
        while let Some(input) = self.shared.input.next() {
            let result = match &input {
                Input::Video(pic, ts) => self.encode_video(pic, *ts, &mut annexb, &mut avc, &mut dts),
                Input::Audio(pcm, ts) => self.encode_audio(pcm, *ts, &mut audio_clock),
            };
            self.shared.input.recycle(input);
            if let Err(e) = result {
                // An encoder that fails takes every destination down with it.
                self.shared.fail(e.clone());
                self.shared.emit(EventKind::KP_EVENT_FAILED, e.code(), e.to_string(), 0);
                failed = true;
                break;
            }
        }
        if !failed {
            if let Err(e) = self.flush_video(&mut annexb, &mut avc, &mut dts) {
                log::warn!("video encoder flush: {e}");
            }
        }
        if let Some(enc) = self.audio.as_mut() {
            let shared = &self.shared;
            let mut emit = |au: &[u8]| audio_clock.emit(shared, au);
            if let Err(e) = enc.flush(&mut emit) {
                log::warn!("audio encoder flush: {e}");
            }
        }
        self.shared.finish_input();
    }

    fn encode_video(
        &mut self,
        pic: &crate::encode::I420Buffer,
        ts: u64,
        annexb: &mut Vec<u8>,
        avc: &mut AvcPacketizer,
        dts: &mut DtsClamp,
    ) -> Result<()> {
        let Some(enc) = self.video.as_mut() else {
            return Ok(());
        };
        if self.shared.keyframe_wanted.swap(false, Relaxed) {
            enc.force_keyframe();
        }
        annexb.clear();
        let ts = ts as i64;
        dts.first.get_or_insert(ts);
        let Some(au) = enc.encode_timed(pic, ts, annexb)? else {
            // A reordering encoder holds pictures back; that is not a drop.
            if enc.delayed_frames() == 0 {
                self.shared.counters.video_frames_dropped_encoder.fetch_add(1, Relaxed);
            }
            return Ok(());
        };
        self.queue_encoded(au, annexb, avc, dts)
    }

    /// Drains the access units a reordering encoder still holds at the end of the stream.
    fn flush_video(&mut self, annexb: &mut Vec<u8>, avc: &mut AvcPacketizer, dts: &mut DtsClamp) -> Result<()> {
        loop {
            let Some(enc) = self.video.as_mut() else {
                return Ok(());
            };
            annexb.clear();
            match enc.flush(annexb)? {
                Some(au) => self.queue_encoded(au, annexb, avc, dts)?,
                None => return Ok(()),
            }
        }
    }

    fn queue_encoded(&self, au: Encoded, annexb: &[u8], avc: &mut AvcPacketizer, dts: &mut DtsClamp) -> Result<()> {
        let (ts, cts) = dts.map(au);
        let tags = avc.packetize(annexb, cts).map_err(|e| Error::Encoder(format!("encoder output: {e}")))?;
        self.shared.queue_avc(tags, ts);
        Ok(())
    }

    fn encode_audio(&mut self, pcm: &[i16], ts: u64, clock: &mut AudioClock) -> Result<()> {
        let Some(enc) = self.audio.as_mut() else {
            return Ok(());
        };
        if clock.origin_ms.is_none() {
            clock.origin_ms = Some(ts);
            clock.sample_rate = self.shared.config.audio.as_ref().map_or(44100, |a| a.sample_rate) as u64;
            clock.frame_samples = enc.frame_samples() as u64;
            clock.asc = enc.audio_specific_config().to_vec();
        }
        let shared = &self.shared;
        let mut emit = |au: &[u8]| clock.emit(shared, au);
        enc.encode(pcm, &mut emit)
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
    /// (FLV tag time, composition time) of an access unit.
    fn map(&mut self, au: Encoded) -> (u64, i32) {
        let floor = self.last.map_or(self.first.unwrap_or(0), |l| l + 1);
        let dts = au.dts_ms.max(floor).min(au.pts_ms).max(0);
        self.last = Some(dts);
        (dts as u64, (au.pts_ms - dts).clamp(0, i32::MAX as i64) as i32)
    }
}

/// Audio access units are stamped by counting samples from the first input, so encoder
/// buffering does not add jitter.
#[derive(Default)]
struct AudioClock {
    origin_ms: Option<u64>,
    sample_rate: u64,
    frame_samples: u64,
    units: u64,
    header_sent: bool,
    asc: Vec<u8>,
}

impl AudioClock {
    fn emit(&mut self, shared: &Shared, au: &[u8]) {
        let ts = self.origin_ms.unwrap_or(0) + self.units * self.frame_samples * 1000 / self.sample_rate.max(1);
        self.units += 1;
        if !self.header_sent {
            self.header_sent = true;
            shared.queue_media(MediaPacket {
                track: Track::Audio,
                timestamp_ms: ts,
                keyframe: true,
                header: true,
                body: Bytes::from(flv::aac_sequence_header(&self.asc)),
            });
        }
        let mut body = Vec::with_capacity(au.len() + flv::AAC_HEADER_LEN);
        body.extend_from_slice(&flv::aac_raw_header());
        body.extend_from_slice(au);
        shared.counters.audio_frames_encoded.fetch_add(1, Relaxed);
        shared.queue_media(MediaPacket {
            track: Track::Audio,
            timestamp_ms: ts,
            keyframe: true,
            header: false,
            body: Bytes::from(body),
        });
    }
}
