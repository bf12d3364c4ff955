//! The encode worker: raw pictures and PCM in, FLV tag bodies into the send queue.

use super::event::EventKind;
use super::input::Input;
use super::shared::Shared;
use crate::core::annexb;
use crate::core::body_pool::BodyPool;
use crate::core::flv;
use crate::core::hevc;
use crate::core::send_queue::{MediaPacket, Track};
use crate::encode::{AudioEncoder, VideoEncoder};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Turns Annex-B access units into FLV video tags, emitting a new sequence header whenever the
/// parameter sets change. Shared by the encoder path and the app's pre-encoded path.
#[derive(Default)]
pub struct AvcPacketizer {
    record: Option<Vec<u8>>,
    /// The record built from the current access unit's parameter sets, to compare (reused).
    scratch: Vec<u8>,
    bodies: BodyPool,
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
        let max_len = flv::AVC_HEADER_LEN + annexb_au.len() + annexb_au.len() / 4;
        let (body, info) = self.bodies.build(max_len, |b| {
            b.extend_from_slice(&[0; flv::AVC_HEADER_LEN]);
            let info = annexb::annexb_to_avcc(annexb_au, b)?;
            b[..flv::AVC_HEADER_LEN].copy_from_slice(&flv::avc_nalu_header(info.keyframe, cts_ms));
            Ok::<_, Error>(info)
        })?;
        let mut header = None;
        if let (Some(sps), Some(pps)) = (&info.sps, &info.pps) {
            annexb::avc_decoder_configuration_record_into(
                &annexb_au[sps.clone()],
                &annexb_au[pps.clone()],
                &mut self.scratch,
            )?;
            if self.record.as_ref() != Some(&self.scratch) {
                header = Some(Bytes::from(flv::avc_sequence_header(&self.scratch)));
                self.record = Some(self.scratch.clone());
            }
        }
        let keyframe = info.keyframe;
        if !info.has_slices || self.record.is_none() {
            return Ok(AvcTags { header, frame: None, keyframe });
        }
        Ok(AvcTags { header, frame: Some(body), keyframe })
    }
}

/// Turns HEVC Annex-B access units into Enhanced RTMP video tags (FourCC `hvc1`), emitting a new
/// sequence start whenever the parameter sets change.
#[derive(Default)]
pub struct HevcPacketizer {
    record: Option<Vec<u8>>,
}

impl HevcPacketizer {
    /// Frames before the first VPS/SPS/PPS cannot be decoded: they give no frame tag.
    pub fn packetize(&mut self, annexb_au: &[u8], cts_ms: i32) -> Result<AvcTags> {
        let mut body = Vec::with_capacity(annexb_au.len() + flv::EX_VIDEO_HEADER_MAX + 16);
        body.extend_from_slice(&[0; flv::EX_VIDEO_HEADER_MAX]);
        let info = hevc::annexb_to_length_prefixed(annexb_au, &mut body)?;
        let mut header = None;
        if let (Some(vps), Some(sps), Some(pps)) = (&info.vps, &info.sps, &info.pps) {
            let record = hevc::decoder_configuration_record(
                &annexb_au[vps.clone()],
                &annexb_au[sps.clone()],
                &annexb_au[pps.clone()],
            )?;
            if self.record.as_ref() != Some(&record) {
                header = Some(Bytes::from(flv::ex_video_sequence_start(flv::FOURCC_HEVC, &record)));
                self.record = Some(record);
            }
        }
        let keyframe = info.keyframe;
        if !info.has_slices || self.record.is_none() {
            return Ok(AvcTags { header, frame: None, keyframe });
        }
        // The header is shorter without a composition time: move it up to meet the NAL units.
        let (h, n) = flv::ex_video_frame_header(flv::FOURCC_HEVC, keyframe, cts_ms);
        let skip = flv::EX_VIDEO_HEADER_MAX - n;
        body[skip..flv::EX_VIDEO_HEADER_MAX].copy_from_slice(&h[..n]);
        Ok(AvcTags { header, frame: Some(Bytes::from(body).slice(skip..)), keyframe })
    }
}

pub struct EncodeWorker {
    pub shared: Arc<Shared>,
    pub video: Option<Box<dyn VideoEncoder>>,
    pub audio: Option<Box<dyn AudioEncoder>>,
    /// The bitrate the video encoder runs at (the ABR's target, once applied).
    pub applied_kbps: u32,
    /// Raw pictures seen, for the frame-rate step-down.
    pub pictures: u64,
}

impl EncodeWorker {
    pub fn run(mut self) {
        let mut annexb = Vec::with_capacity(256 * 1024);
        let mut avc = AvcPacketizer::default();
        let mut audio_clock = AudioClock::default();
        while let Some(input) = self.shared.input.next() {
            let result = match &input {
                Input::Video(pic, ts) => self.encode_video(pic, *ts, &mut annexb, &mut avc),
                Input::Audio(pcm, ts) => self.encode_audio(pcm, *ts, &mut audio_clock),
            };
            self.shared.input.recycle(input);
            self.shared.counters.encode_cpu_ns.store(super::shared::thread_cpu_ns(), Relaxed);
            if let Err(e) = result {
                // An encoder that fails takes every destination down with it.
                self.shared.fail(e.clone());
                self.shared.emit(EventKind::KP_EVENT_FAILED, e.code(), e.to_string(), 0);
                break;
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
    ) -> Result<()> {
        let Some(enc) = self.video.as_mut() else {
            return Ok(());
        };
        self.pictures += 1;
        let divisor = self.shared.fps_divisor.load(Relaxed).max(1) as u64;
        if self.pictures % divisor != 0 {
            // The ABR's frame-rate step-down: the stream keeps its timestamps, with gaps.
            self.shared.counters.video_frames_skipped_abr.fetch_add(1, Relaxed);
            return Ok(());
        }
        let target = self.shared.video_target_kbps.load(Relaxed);
        if target != 0 && target != self.applied_kbps {
            // On the fly: no new sequence header, timestamps untouched.
            if let Err(e) = enc.set_bitrate(target) {
                // Keep streaming at the old rate; the drop policy still bounds the latency.
                log::warn!("video encoder refused {target} kbit/s: {e}");
            }
            self.applied_kbps = target;
        }
        if self.shared.keyframe_wanted.swap(false, Relaxed) {
            enc.force_keyframe();
        }
        annexb.clear();
        let started = std::time::Instant::now();
        let encoded = enc.encode(pic, annexb);
        self.shared.counters.encode_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        let Some(_idr) = encoded? else {
            self.shared.counters.video_frames_dropped_encoder.fetch_add(1, Relaxed);
            return Ok(());
        };
        let tags = avc.packetize(annexb, 0).map_err(|e| Error::Encoder(format!("encoder output: {e}")))?;
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
    bodies: BodyPool,
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
        let body = self.bodies.concat(&[&flv::aac_raw_header(), au]);
        shared.counters.audio_frames_encoded.fetch_add(1, Relaxed);
        shared.queue_media(MediaPacket { track: Track::Audio, timestamp_ms: ts, keyframe: true, header: false, body });
    }
}
