//! MPEG-TS (ISO/IEC 13818-1) muxing for the SRT output: one program with an H.264 or HEVC video
//! stream and/or an AAC (ADTS) audio stream, written as whole 188-byte packets into the caller's
//! buffer, seven of which fill one SRT datagram.
//!
//! Hand-written rather than taken from a crate: `mpeg2ts` builds one owned `TsPacket` value per
//! packet and leaves PES splitting, PSI repetition and PCR placement to the caller; `mpeg-ts` is
//! framing and PSI reassembly only; `xmpegts` (xiu) writes through its own `bytesio` buffers and
//! allocates per call. What a live muxer needs is small: the tables are built once, the PES of a
//! unit is assembled in one reused scratch buffer and cut into packets.
//!
//! Timing: stream milliseconds become 90 kHz ticks as `ms × 90`. PCR carries those ticks; PTS and
//! DTS carry them plus [`TS_DELAY_MS`] (700 ms, FFmpeg's default `max_delay`), so DTS never goes
//! negative and the PCR of the packet that starts a unit sits 700 ms before its DTS, the room a
//! receiver's buffer model needs for a large keyframe. All three wrap at 33 bits.

use super::adts;
use crate::error::{Error, Result};

/// Bytes in a TS packet.
pub const TS_PACKET: usize = 188;
/// SRT carries 7 TS packets per datagram (1316 bytes, under the 1456-byte payload limit).
pub const PACKETS_PER_DATAGRAM: usize = 7;

pub const PID_PAT: u16 = 0;
pub const PID_PMT: u16 = 0x1000;
pub const PID_VIDEO: u16 = 0x100;
pub const PID_AUDIO: u16 = 0x101;
pub const STREAM_TYPE_H264: u8 = 0x1b;
pub const STREAM_TYPE_HEVC: u8 = 0x24;
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;

/// Added to every PTS/DTS: how far the PCR runs ahead of decoding.
pub const TS_DELAY_MS: u64 = 700;
/// The longest gap between PCRs the muxer aims for. The PES of the PCR stream (video, else
/// audio) always carries one, so 30 fps video alone keeps ~33 ms; a unit of the other stream adds
/// a PCR-only packet only when the next unit, expected at each stream's last spacing, would come
/// later than this after the last PCR (with 30 fps video and AAC: never, so no packets are spent).
pub const PCR_MAX_GAP_MS: u64 = 40;
/// The same for PAT+PMT, which also go out before every keyframe.
pub const PSI_MAX_GAP_MS: u64 = 100;
/// Input times are whole ms, so a spacing can come out 1-2 ms longer than the last one (AAC
/// frames are 21.33 or 23.22 ms apart). The tables keep this margin below their bound; the PCR
/// does not (40 is a broadcast habit, the standard's limit is 100 ms), which spares it the
/// PCR-only packets a 25 fps stream would otherwise need.
const ROUNDING_MS: u64 = 2;

const TICKS_33: u64 = (1 << 33) - 1;
/// AAC frames longer than the 13-bit ADTS frame length allows cannot be framed.
const ADTS_MAX_FRAME: usize = 8191;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsVideo {
    H264,
    Hevc,
}

/// What an ADTS header needs from the AudioSpecificConfig.
#[derive(Debug, Clone, Copy)]
struct AacConfig {
    object_type: u8,
    sample_rate_index: u8,
    channels: u8,
}

pub struct TsMuxer {
    video: Option<TsVideo>,
    audio: bool,
    /// PAT and PMT packets built once; only their continuity counters change.
    pat: [u8; TS_PACKET],
    pmt: [u8; TS_PACKET],
    /// The record's parameter sets in Annex-B form, written before every keyframe.
    parameter_sets: Vec<u8>,
    video_configured: bool,
    aac: Option<AacConfig>,
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    /// Stream ms of the last PAT/PMT and PCR; None after `new`/`reset`.
    last_psi_ms: Option<u64>,
    last_pcr_ms: Option<u64>,
    video_cadence: Cadence,
    audio_cadence: Cadence,
    /// One PES (header and payload) at a time, reused across units.
    pes: Vec<u8>,
}

impl TsMuxer {
    /// `video`/`audio`: which elementary streams the program has (either may be absent).
    pub fn new(video: Option<TsVideo>, audio: bool) -> TsMuxer {
        let mut m = TsMuxer {
            video,
            audio,
            pat: [0xff; TS_PACKET],
            pmt: [0xff; TS_PACKET],
            parameter_sets: Vec::new(),
            video_configured: false,
            aac: None,
            cc_pat: 0,
            cc_pmt: 0,
            cc_video: 0,
            cc_audio: 0,
            last_psi_ms: None,
            last_pcr_ms: None,
            video_cadence: Cadence::default(),
            audio_cadence: Cadence::default(),
            pes: Vec::new(),
        };
        m.build_tables();
        m
    }

    /// The decoder configuration record (avcC for H.264, hvcC for HEVC): its parameter sets are
    /// written in-band (Annex-B) before every keyframe. Err on a malformed record, keeping the
    /// previous one.
    pub fn set_video_config(&mut self, record: &[u8]) -> Result<()> {
        let kind = self.video.ok_or_else(|| Error::InvalidState("TS muxer has no video stream".into()))?;
        let mut sets = Vec::with_capacity(record.len() + 32);
        match kind {
            TsVideo::H264 => avcc_parameter_sets(record, &mut sets)?,
            TsVideo::Hevc => hvcc_parameter_sets(record, &mut sets)?,
        }
        self.parameter_sets = sets;
        self.video_configured = true;
        Ok(())
    }

    /// The AudioSpecificConfig: each AAC frame gets an ADTS header built from it.
    pub fn set_audio_config(&mut self, asc: &[u8]) -> Result<()> {
        if !self.audio {
            return Err(Error::InvalidState("TS muxer has no audio stream".into()));
        }
        adts::parse_audio_specific_config(asc)?;
        let object_type = asc[0] >> 3;
        let sample_rate_index = ((asc[0] & 7) << 1) | (asc[1] >> 7);
        let channels = (asc[1] >> 3) & 0x0f;
        // ADTS has 2 bits for the profile (object types 1-4) and no room for a channel layout
        // given by a program config element (channel configuration 0).
        if !(1..=4).contains(&object_type) || !(1..=7).contains(&channels) {
            return Err(Error::BadBitstream(format!(
                "AudioSpecificConfig: object type {object_type} with channel configuration {channels} \
                 cannot be carried in ADTS"
            )));
        }
        self.aac = Some(AacConfig { object_type, sample_rate_index, channels });
        Ok(())
    }

    /// Appends whole 188-byte TS packets for one video access unit (4-byte length-prefixed NAL
    /// units) to `out`. On Err nothing is appended and the muxer state is unchanged.
    pub fn write_video(
        &mut self,
        dts_ms: u64,
        cts_ms: i32,
        keyframe: bool,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let kind = self.video.ok_or_else(|| Error::InvalidState("TS muxer has no video stream".into()))?;
        if !self.video_configured {
            return Err(Error::InvalidState("video before its decoder configuration record".into()));
        }
        if cts_ms < 0 {
            return Err(Error::InvalidArgument(format!("negative composition time {cts_ms} ms")));
        }
        if data.is_empty() {
            return Err(Error::BadBitstream("empty video access unit".into()));
        }
        let dts = ticks(dts_ms);
        let pts = ticks(dts_ms.wrapping_add(cts_ms as u64));

        self.pes.clear();
        write_pes_header(&mut self.pes, 0xe0, pts, (pts != dts).then_some(dts), None);
        match kind {
            TsVideo::H264 => self.pes.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xf0]),
            // NAL type 35, temporal id 1; pic_type 2 (I, P and B slices may follow).
            TsVideo::Hevc => self.pes.extend_from_slice(&[0, 0, 0, 1, 0x46, 0x01, 0x50]),
        }
        if keyframe {
            self.pes.extend_from_slice(&self.parameter_sets);
        }
        let before = self.pes.len();
        if let Err(e) = length_prefixed_to_annexb(data, kind, &mut self.pes) {
            self.pes.clear();
            return Err(e);
        }
        if self.pes.len() == before {
            return Err(Error::BadBitstream("video access unit holds only delimiters".into()));
        }

        reserve_packets(out, self.pes.len());
        self.video_cadence.saw(dts_ms);
        let next = self.next_unit_ms();
        if keyframe || due(self.last_psi_ms, dts_ms, next, PSI_MAX_GAP_MS - ROUNDING_MS) {
            self.write_psi(dts_ms, out);
        }
        let pcr = Some(self.take_pcr(dts_ms));
        let mut cc = self.cc_video;
        write_pes_packets(out, PID_VIDEO, &mut cc, &self.pes, pcr, keyframe);
        self.cc_video = cc;
        Ok(())
    }

    /// Appends whole 188-byte TS packets for one raw AAC frame (no ADTS header) to `out`.
    /// On Err nothing is appended and the muxer state is unchanged.
    pub fn write_audio(&mut self, pts_ms: u64, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if !self.audio {
            return Err(Error::InvalidState("TS muxer has no audio stream".into()));
        }
        let aac = self.aac.ok_or_else(|| Error::InvalidState("audio before its AudioSpecificConfig".into()))?;
        if data.is_empty() {
            return Err(Error::BadBitstream("empty AAC frame".into()));
        }
        if data.len() + 7 > ADTS_MAX_FRAME {
            return Err(Error::BadBitstream(format!("AAC frame of {} bytes is too long for ADTS", data.len())));
        }
        self.pes.clear();
        // 8 bytes of PES header after the length field, the ADTS header and the frame: < 64 KiB.
        let pes_len = (8 + 7 + data.len()) as u16;
        write_pes_header(&mut self.pes, 0xc0, ticks(pts_ms), None, Some(pes_len));
        self.pes.extend_from_slice(&adts::adts_header(
            aac.object_type,
            aac.sample_rate_index,
            aac.channels,
            data.len(),
        ));
        self.pes.extend_from_slice(data);

        reserve_packets(out, self.pes.len());
        self.audio_cadence.saw(pts_ms);
        let next = self.next_unit_ms();
        if due(self.last_psi_ms, pts_ms, next, PSI_MAX_GAP_MS - ROUNDING_MS) {
            self.write_psi(pts_ms, out);
        }
        let mut pcr = None;
        if self.video.is_none() {
            pcr = Some(self.take_pcr(pts_ms));
        } else if due(self.last_pcr_ms, pts_ms, next, PCR_MAX_GAP_MS) {
            // The PCR belongs to the video PID: a packet with only an adaptation field, which
            // repeats the counter of the PID's last packet.
            let value = self.take_pcr(pts_ms);
            let cc = self.cc_video.wrapping_sub(1) & 0x0f;
            write_packet(out, PID_VIDEO, false, cc, Some(value), false, &[]);
        }
        // Without video every audio frame is a random access point.
        let rai = self.video.is_none();
        let mut cc = self.cc_audio;
        write_pes_packets(out, PID_AUDIO, &mut cc, &self.pes, pcr, rai);
        self.cc_audio = cc;
        Ok(())
    }

    /// Forget the continuity/PSI timing state for a new connection: the next output starts with
    /// PAT+PMT (the receiver is a new one). Config records are kept.
    pub fn reset(&mut self) {
        self.cc_pat = 0;
        self.cc_pmt = 0;
        self.cc_video = 0;
        self.cc_audio = 0;
        self.last_psi_ms = None;
        self.last_pcr_ms = None;
        self.video_cadence = Cadence::default();
        self.audio_cadence = Cadence::default();
    }

    /// When the next unit of either stream is expected, if both cadences that exist are known.
    fn next_unit_ms(&self) -> Option<u64> {
        let v = if self.video.is_some() { Some(self.video_cadence.next()?) } else { None };
        let a = if self.audio { Some(self.audio_cadence.next()?) } else { None };
        v.into_iter().chain(a).min()
    }

    /// The PCR for a packet sent at `now_ms`, never going back: audio may be a little behind the
    /// video that set the last one.
    fn take_pcr(&mut self, now_ms: u64) -> u64 {
        let ms = self.last_pcr_ms.map_or(now_ms, |last| last.max(now_ms));
        self.last_pcr_ms = Some(ms);
        ms.wrapping_mul(90) & TICKS_33
    }

    fn write_psi(&mut self, now_ms: u64, out: &mut Vec<u8>) {
        self.last_psi_ms = Some(self.last_psi_ms.map_or(now_ms, |last| last.max(now_ms)));
        self.pat[3] = 0x10 | self.cc_pat;
        self.pmt[3] = 0x10 | self.cc_pmt;
        self.cc_pat = (self.cc_pat + 1) & 0x0f;
        self.cc_pmt = (self.cc_pmt + 1) & 0x0f;
        out.extend_from_slice(&self.pat);
        out.extend_from_slice(&self.pmt);
    }

    fn build_tables(&mut self) {
        // PAT: program 1 → PMT PID.
        let mut pat = [0u8; 16];
        let mut n = 0;
        let mut put = |b: &[u8]| {
            pat[n..n + b.len()].copy_from_slice(b);
            n += b.len();
        };
        put(&[0x00, 0xb0, 13]); // table_id, syntax + reserved, section_length
        put(&[0x00, 0x01, 0xc1, 0x00, 0x00]); // transport_stream_id 1, version 0, current, section 0/0
        put(&[0x00, 0x01, 0xe0 | (PID_PMT >> 8) as u8, PID_PMT as u8]);
        let crc = crc32_mpeg2(&pat[..n]);
        pat[n..n + 4].copy_from_slice(&crc.to_be_bytes());
        section_packet(&mut self.pat, PID_PAT, &pat[..n + 4]);

        // PMT: the PCR on the video PID, or on the audio PID without video.
        let pcr_pid = match (self.video, self.audio) {
            (Some(_), _) => PID_VIDEO,
            (None, true) => PID_AUDIO,
            (None, false) => 0x1fff,
        };
        let mut es = [0u8; 10];
        let mut es_len = 0;
        if let Some(v) = self.video {
            let t = if v == TsVideo::H264 { STREAM_TYPE_H264 } else { STREAM_TYPE_HEVC };
            es[..5].copy_from_slice(&[t, 0xe0 | (PID_VIDEO >> 8) as u8, PID_VIDEO as u8, 0xf0, 0]);
            es_len = 5;
        }
        if self.audio {
            es[es_len..es_len + 5].copy_from_slice(&[
                STREAM_TYPE_AAC_ADTS,
                0xe0 | (PID_AUDIO >> 8) as u8,
                PID_AUDIO as u8,
                0xf0,
                0,
            ]);
            es_len += 5;
        }
        let mut pmt = [0u8; 32];
        let section_length = 9 + es_len + 4;
        pmt[..12].copy_from_slice(&[
            0x02,
            0xb0,
            section_length as u8,
            0x00,
            0x01, // program_number 1
            0xc1,
            0x00,
            0x00,
            0xe0 | (pcr_pid >> 8) as u8,
            pcr_pid as u8,
            0xf0,
            0x00, // no program descriptors
        ]);
        pmt[12..12 + es_len].copy_from_slice(&es[..es_len]);
        let n = 12 + es_len;
        let crc = crc32_mpeg2(&pmt[..n]);
        pmt[n..n + 4].copy_from_slice(&crc.to_be_bytes());
        section_packet(&mut self.pmt, PID_PMT, &pmt[..n + 4]);
    }
}

/// The last time and spacing of one stream's units.
#[derive(Debug, Default, Clone, Copy)]
struct Cadence {
    last_ms: Option<u64>,
    step_ms: Option<u64>,
}

impl Cadence {
    fn saw(&mut self, ms: u64) {
        if let Some(last) = self.last_ms {
            if ms > last {
                self.step_ms = Some(ms - last);
            }
        }
        self.last_ms = Some(self.last_ms.map_or(ms, |last| last.max(ms)));
    }

    fn next(&self) -> Option<u64> {
        Some(self.last_ms?.saturating_add(self.step_ms?))
    }
}

/// Whether a PCR or the tables must go out with the unit at `now_ms`: when the next unit is
/// expected (`next_ms`) more than `max_gap` after the last time they went out. Until the cadence
/// is known, when half that has passed.
fn due(last_ms: Option<u64>, now_ms: u64, next_ms: Option<u64>, max_gap: u64) -> bool {
    let Some(last) = last_ms else { return true };
    match next_ms {
        Some(next) => next.saturating_sub(last) > max_gap || now_ms.saturating_sub(last) >= max_gap,
        None => now_ms.saturating_sub(last) >= max_gap / 2,
    }
}

/// Stream ms → 90 kHz PTS/DTS ticks, wrapped at 33 bits.
fn ticks(ms: u64) -> u64 {
    (ms.wrapping_add(TS_DELAY_MS).wrapping_mul(90)) & TICKS_33
}

/// Room for a PES of `len` bytes plus PSI and a PCR-only packet, so a unit costs at most one
/// growth of `out`, and none once the caller's buffer has seen a unit this big.
fn reserve_packets(out: &mut Vec<u8>, len: usize) {
    out.reserve((len / 176 + 5) * TS_PACKET);
}

/// One PSI section in a packet with payload_unit_start, pointer_field 0 and 0xff filling.
fn section_packet(p: &mut [u8; TS_PACKET], pid: u16, section: &[u8]) {
    p.fill(0xff);
    p[..5].copy_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0x00]);
    p[5..5 + section.len()].copy_from_slice(section);
}

/// The PES header up to and including the timestamps. `len` is PES_packet_length (None: 0,
/// unbounded, as video may use).
fn write_pes_header(out: &mut Vec<u8>, stream_id: u8, pts: u64, dts: Option<u64>, len: Option<u16>) {
    let len = len.unwrap_or(0);
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&len.to_be_bytes());
    // marker bits '10', data_alignment_indicator: a unit starts right after the header.
    out.push(0x84);
    match dts {
        Some(dts) => {
            out.extend_from_slice(&[0xc0, 10]);
            put_timestamp(out, 0x3, pts);
            put_timestamp(out, 0x1, dts);
        }
        None => {
            out.extend_from_slice(&[0x80, 5]);
            put_timestamp(out, 0x2, pts);
        }
    }
}

fn put_timestamp(out: &mut Vec<u8>, prefix: u8, t: u64) {
    out.extend_from_slice(&[
        (prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1,
        (t >> 22) as u8,
        (((t >> 15) as u8) << 1) | 1,
        (t >> 7) as u8,
        ((t as u8) << 1) | 1,
    ]);
}

/// Cuts a PES into packets; the first carries the PCR and random_access_indicator if asked.
fn write_pes_packets(out: &mut Vec<u8>, pid: u16, cc: &mut u8, pes: &[u8], pcr: Option<u64>, rai: bool) {
    let mut rest = pes;
    let mut first = true;
    while first || !rest.is_empty() {
        let (pcr, rai) = if first { (pcr, rai) } else { (None, false) };
        let n = write_packet(out, pid, first, *cc, pcr, rai, rest);
        *cc = (*cc + 1) & 0x0f;
        rest = &rest[n..];
        first = false;
    }
}

/// Appends one packet with as much of `data` as fits and returns how much that was. What the
/// payload leaves free goes to the adaptation field (its stuffing), so every packet is whole.
/// With empty `data` the packet has only an adaptation field (a PCR-only packet).
fn write_packet(out: &mut Vec<u8>, pid: u16, start: bool, cc: u8, pcr: Option<u64>, rai: bool, data: &[u8]) -> usize {
    let af_min = if pcr.is_some() || rai { 2 + if pcr.is_some() { 6 } else { 0 } } else { 0 };
    let n = data.len().min(TS_PACKET - 4 - af_min);
    let af_total = TS_PACKET - 4 - n;
    let control = match (af_total > 0, n > 0) {
        (false, _) => 0x10,
        (true, true) => 0x30,
        (true, false) => 0x20,
    };
    let at = out.len();
    out.resize(at + TS_PACKET, 0xff);
    let p = &mut out[at..];
    p[..4].copy_from_slice(&[0x47, ((start as u8) << 6) | ((pid >> 8) as u8 & 0x1f), pid as u8, control | cc]);
    if af_total > 0 {
        p[4] = (af_total - 1) as u8;
        if af_total > 1 {
            p[5] = ((rai as u8) << 6) | ((pcr.is_some() as u8) << 4);
            if let Some(base) = pcr {
                // 33-bit base, 6 reserved bits, 9-bit extension 0 (the clock is in ms).
                p[6..12].copy_from_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    ((base as u8 & 1) << 7) | 0x7e,
                    0x00,
                ]);
            }
        }
    }
    p[4 + af_total..].copy_from_slice(&data[..n]);
    n
}

/// Appends the access unit's NAL units with 4-byte start codes, leaving out access unit
/// delimiters (the muxer writes its own). Err on a length that is zero or overruns the unit.
pub(crate) fn length_prefixed_to_annexb(data: &[u8], kind: TsVideo, out: &mut Vec<u8>) -> Result<()> {
    for nal in crate::core::annexb::length_prefixed_nals(data) {
        let nal = &data[nal?];
        let aud = match kind {
            TsVideo::H264 => nal[0] & 0x1f == 9,
            TsVideo::Hevc => (nal[0] >> 1) & 0x3f == 35,
        };
        if !aud {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    Ok(())
}

fn bad_record(what: &str) -> Error {
    Error::BadBitstream(format!("decoder configuration record: {what}"))
}

/// The `u16`-length-prefixed NAL unit at `pos` in a record: (the NAL, the position after it).
fn record_nal(rec: &[u8], pos: usize) -> Result<(&[u8], usize)> {
    let l = rec.get(pos..pos + 2).ok_or_else(|| bad_record("truncated"))?;
    let end = pos + 2 + u16::from_be_bytes([l[0], l[1]]) as usize;
    let nal = rec.get(pos + 2..end).ok_or_else(|| bad_record("truncated parameter set"))?;
    if nal.is_empty() {
        return Err(bad_record("empty parameter set"));
    }
    Ok((nal, end))
}

/// SPS and PPS of an AVCDecoderConfigurationRecord (ISO 14496-15 5.3.3.1) in Annex-B form.
fn avcc_parameter_sets(rec: &[u8], out: &mut Vec<u8>) -> Result<()> {
    avcc_parameter_set_nals(rec, |nal| {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    })
}

/// Hands each SPS, then each PPS, of an AVCDecoderConfigurationRecord to `emit`; Err on a
/// malformed record (after some may have been handed out).
pub(crate) fn avcc_parameter_set_nals(rec: &[u8], mut emit: impl FnMut(&[u8])) -> Result<()> {
    if rec.len() < 7 || rec[0] != 1 {
        return Err(bad_record("not an AVCDecoderConfigurationRecord (version 1)"));
    }
    // numOfSequenceParameterSets sits in byte 5; numOfPictureParameterSets follows the SPSs.
    let mut count_at = 5;
    for (mask, want) in [(0x1f, 7u8), (0xff, 8)] {
        let n = rec.get(count_at).ok_or_else(|| bad_record("truncated"))? & mask;
        if n == 0 {
            return Err(bad_record("no SPS or no PPS"));
        }
        let mut pos = count_at + 1;
        for _ in 0..n {
            let (nal, next) = record_nal(rec, pos)?;
            if nal[0] & 0x1f != want {
                return Err(bad_record("parameter set of the wrong type"));
            }
            emit(nal);
            pos = next;
        }
        count_at = pos;
    }
    Ok(())
}

/// VPS, SPS and PPS (and any other arrays, e.g. SEI) of an HEVCDecoderConfigurationRecord
/// (ISO 14496-15 8.3.3.1) in Annex-B form, in the record's order.
fn hvcc_parameter_sets(rec: &[u8], out: &mut Vec<u8>) -> Result<()> {
    if rec.len() < 23 || rec[0] != 1 {
        return Err(bad_record("not an HEVCDecoderConfigurationRecord (version 1)"));
    }
    let mut pos = 23;
    let mut seen = [false; 3];
    for _ in 0..rec[22] {
        let h = rec.get(pos..pos + 3).ok_or_else(|| bad_record("truncated array"))?;
        let (t, count) = (h[0] & 0x3f, u16::from_be_bytes([h[1], h[2]]));
        pos += 3;
        for _ in 0..count {
            let (nal, next) = record_nal(rec, pos)?;
            if nal.len() < 2 || (nal[0] >> 1) & 0x3f != t {
                return Err(bad_record("NAL unit type differs from its array's"));
            }
            if (32..=34).contains(&t) {
                seen[t as usize - 32] = true;
            }
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
            pos = next;
        }
    }
    if seen.contains(&false) {
        return Err(bad_record("VPS, SPS or PPS missing"));
    }
    Ok(())
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value all ones, no reflection, no final XOR.
/// Only for the two tables, built once, so bit by bit.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One packet as a receiver sees it.
    #[derive(Debug, Clone)]
    struct Packet {
        pid: u16,
        start: bool,
        cc: u8,
        has_payload: bool,
        pcr: Option<u64>,
        rai: bool,
        payload: Vec<u8>,
    }

    /// Parses `ts` strictly: whole packets, sync bytes, adaptation field lengths that fit.
    fn parse(ts: &[u8]) -> Vec<Packet> {
        assert_eq!(ts.len() % TS_PACKET, 0, "output is not whole packets");
        ts.chunks(TS_PACKET)
            .map(|p| {
                assert_eq!(p[0], 0x47, "sync byte");
                let control = (p[3] >> 4) & 3;
                assert_ne!(control, 0, "reserved adaptation_field_control");
                let mut at = 4;
                let (mut pcr, mut rai) = (None, false);
                if control & 2 != 0 {
                    let len = p[4] as usize;
                    assert!(5 + len <= TS_PACKET);
                    if control == 2 {
                        assert_eq!(len, 183, "an adaptation-only packet fills the packet");
                    }
                    if len > 0 {
                        rai = p[5] & 0x40 != 0;
                        if p[5] & 0x10 != 0 {
                            let b = &p[6..12];
                            let base = (b[0] as u64) << 25
                                | (b[1] as u64) << 17
                                | (b[2] as u64) << 9
                                | (b[3] as u64) << 1
                                | (b[4] as u64) >> 7;
                            assert_eq!(((b[4] as u16 & 1) << 8) | b[5] as u16, 0, "PCR extension");
                            pcr = Some(base);
                        }
                        assert!(p[6 + if pcr.is_some() { 6 } else { 0 }..5 + len].iter().all(|&b| b == 0xff));
                    }
                    at = 5 + len;
                }
                Packet {
                    pid: ((p[1] as u16 & 0x1f) << 8) | p[2] as u16,
                    start: p[1] & 0x40 != 0,
                    cc: p[3] & 0x0f,
                    has_payload: control & 1 != 0,
                    pcr,
                    rai,
                    payload: if control & 1 != 0 { p[at..].to_vec() } else { vec![] },
                }
            })
            .collect()
    }

    /// A reassembled PES: (pid, stream_id, pts, dts, payload after the header, pcr and rai of its
    /// first packet).
    #[derive(Debug)]
    struct Pes {
        pid: u16,
        stream_id: u8,
        pts: u64,
        dts: Option<u64>,
        data: Vec<u8>,
        pcr: Option<u64>,
        rai: bool,
    }

    fn timestamp(b: &[u8]) -> u64 {
        assert_eq!(b[0] & 1, 1);
        assert_eq!(b[2] & 1, 1);
        assert_eq!(b[4] & 1, 1);
        ((b[0] as u64 >> 1) & 7) << 30
            | (b[1] as u64) << 22
            | (b[2] as u64 >> 1) << 15
            | (b[3] as u64) << 7
            | b[4] as u64 >> 1
    }

    /// Checks continuity counters per PID across `packets` (continuing from `ccs`), PSI CRCs, and
    /// returns the PESs.
    fn demux(packets: &[Packet], ccs: &mut std::collections::HashMap<u16, u8>) -> Vec<Pes> {
        let mut open: std::collections::HashMap<u16, (Vec<u8>, Option<u64>, bool)> = Default::default();
        let mut done = vec![];
        let finish = |pid: u16, (buf, pcr, rai): (Vec<u8>, Option<u64>, bool), done: &mut Vec<Pes>| {
            assert_eq!(&buf[..3], &[0, 0, 1], "PES start code");
            let len = u16::from_be_bytes([buf[4], buf[5]]) as usize;
            if len != 0 {
                assert_eq!(len, buf.len() - 6, "PES_packet_length");
            }
            let flags = buf[7] >> 6;
            let hdr = buf[8] as usize;
            let pts = timestamp(&buf[9..14]);
            let dts = match flags {
                3 => Some(timestamp(&buf[14..19])),
                2 => None,
                f => panic!("PTS_DTS_flags {f}"),
            };
            assert_eq!(buf[9] >> 4, if dts.is_some() { 3 } else { 2 });
            done.push(Pes { pid, stream_id: buf[3], pts, dts, data: buf[9 + hdr..].to_vec(), pcr, rai });
        };
        for p in packets {
            if p.has_payload {
                if let Some(prev) = ccs.get(&p.pid) {
                    assert_eq!(p.cc, (prev + 1) & 0x0f, "continuity counter on PID {:#x}", p.pid);
                }
                ccs.insert(p.pid, p.cc);
            } else if let Some(prev) = ccs.get(&p.pid) {
                assert_eq!(p.cc, *prev, "a packet without payload repeats the counter");
            }
            match p.pid {
                PID_PAT | PID_PMT => {
                    assert!(p.start && p.payload[0] == 0);
                    let len = (((p.payload[2] & 0x0f) as usize) << 8) | p.payload[3] as usize;
                    let section = &p.payload[1..4 + len];
                    assert_eq!(crc32_mpeg2(section), 0, "section CRC");
                    assert!(p.payload[4 + len..].iter().all(|&b| b == 0xff));
                }
                pid => {
                    if p.start {
                        if let Some(prev) = open.remove(&pid) {
                            finish(pid, prev, &mut done);
                        }
                        open.insert(pid, (p.payload.clone(), p.pcr, p.rai));
                    } else if p.has_payload {
                        open.get_mut(&pid).expect("continuation without a start").0.extend_from_slice(&p.payload);
                    }
                }
            }
        }
        let mut rest: Vec<_> = open.into_iter().collect();
        rest.sort_by_key(|r| r.0);
        for (pid, o) in rest {
            finish(pid, o, &mut done);
        }
        done
    }

    const SPS: [u8; 10] = [0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
    const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

    fn avcc() -> Vec<u8> {
        let mut r = vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, SPS.len() as u8];
        r.extend_from_slice(&SPS);
        r.extend_from_slice(&[1, 0, PPS.len() as u8]);
        r.extend_from_slice(&PPS);
        r
    }

    /// A length-prefixed unit of NAL units of the given sizes (type 5 or 1 slices).
    fn unit(sizes: &[usize], key: bool) -> Vec<u8> {
        let mut u = vec![];
        for &n in sizes {
            u.extend_from_slice(&(n as u32).to_be_bytes());
            u.push(if key { 0x65 } else { 0x41 });
            u.extend((1..n).map(|i| (i % 251) as u8 + 1));
        }
        u
    }

    fn av_muxer() -> TsMuxer {
        let mut m = TsMuxer::new(Some(TsVideo::H264), true);
        m.set_video_config(&avcc()).unwrap();
        m.set_audio_config(&[0x12, 0x10]).unwrap();
        m
    }

    #[test]
    fn crc_matches_the_mpeg2_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn five_seconds_of_av_have_valid_structure_and_timing() {
        let mut m = av_muxer();
        let mut out = vec![];
        let mut ccs = Default::default();
        let (mut v, mut a) = (0u32, 0u32);
        let mut psi_times = vec![];
        let mut all = vec![];
        // 30 fps video with a keyframe every second, AAC at 44.1 kHz (1024 samples ≈ 23.2 ms),
        // interleaved in time order as the send queue gives them.
        while v < 150 {
            let tv = v as u64 * 1000 / 30;
            let ta = a as u64 * 1024 * 1000 / 44100;
            out.clear();
            let t = if tv <= ta {
                let key = v % 30 == 0;
                let sizes: &[usize] = if key { &[3000, 20] } else { &[400 + (v as usize * 37) % 900] };
                m.write_video(tv, 0, key, &unit(sizes, key), &mut out).unwrap();
                v += 1;
                tv
            } else {
                m.write_audio(ta, &vec![0x21; 200 + a as usize % 50], &mut out).unwrap();
                a += 1;
                ta
            };
            let packets = parse(&out);
            if packets.iter().any(|p| p.pid == PID_PAT) {
                // PAT and PMT come together, first, in that order.
                assert_eq!((packets[0].pid, packets[1].pid), (PID_PAT, PID_PMT));
                psi_times.push(t);
            }
            all.extend(packets);
        }
        assert_eq!(all[0].pid, PID_PAT, "the stream starts with the PAT");
        let pes = demux(&all, &mut ccs);
        assert_eq!(pes.iter().filter(|p| p.pid == PID_VIDEO).count(), 150);
        assert_eq!(pes.iter().filter(|p| p.pid == PID_AUDIO).count(), a as usize);

        assert!(psi_times.windows(2).all(|w| w[1] - w[0] <= 100), "PSI gaps: {psi_times:?}");
        // Tables about every 100 ms, not more often: five keyframes and the repetitions between.
        assert!((50..=60).contains(&psi_times.len()), "{} PSI in 5 s", psi_times.len());
        // At 30 fps every video PES carries the PCR, so audio needs no PCR-only packets (one
        // comes at the start, before the cadence is known).
        assert!(all.iter().filter(|p| !p.has_payload).count() <= 1, "PCR-only packets");
        let pcrs: Vec<u64> = all.iter().filter_map(|p| p.pcr).collect();
        assert!(all.iter().filter(|p| p.pcr.is_some()).all(|p| p.pid == PID_VIDEO), "PCR on the video PID");
        assert!(pcrs.windows(2).all(|w| w[1] >= w[0] && w[1] - w[0] <= 40 * 90), "PCR gaps: {pcrs:?}");

        for (i, p) in pes.iter().filter(|p| p.pid == PID_VIDEO).enumerate() {
            assert_eq!(p.stream_id, 0xe0);
            let dts = (i as u64 * 1000 / 30 + TS_DELAY_MS) * 90;
            assert_eq!((p.pts, p.dts), (dts, None), "PTS only when it equals DTS");
            let key = i % 30 == 0;
            assert_eq!(p.rai, key);
            if key {
                let pcr = p.pcr.expect("PCR on a keyframe");
                assert!(pcr <= dts && dts - pcr <= TS_DELAY_MS * 90);
                // AUD, SPS, PPS, then the slices with start codes.
                let mut want = vec![0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1];
                want.extend_from_slice(&SPS);
                want.extend_from_slice(&[0, 0, 0, 1]);
                want.extend_from_slice(&PPS);
                want.extend_from_slice(&[0, 0, 0, 1, 0x65]);
                assert_eq!(&p.data[..want.len()], &want[..]);
                assert_eq!(p.data.len(), want.len() - 1 + 3000 + 4 + 20);
            } else {
                assert_eq!(&p.data[..11], &[0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x41]);
            }
            if let Some(pcr) = p.pcr {
                assert!(pcr <= dts);
            }
        }
        for (i, p) in pes.iter().filter(|p| p.pid == PID_AUDIO).enumerate() {
            assert_eq!(p.stream_id, 0xc0);
            assert_eq!(p.pts, (i as u64 * 1024 * 1000 / 44100 + TS_DELAY_MS) * 90);
            assert_eq!(&p.data[..2], &[0xff, 0xf1]);
            let h = adts::parse_adts_header(&p.data).unwrap();
            assert_eq!((h.frame_len, h.sample_rate(), h.channel_config), (p.data.len(), 44100, 2));
        }
    }

    #[test]
    fn slow_video_gets_pcr_only_packets_between_frames() {
        let mut m = av_muxer();
        let mut out = vec![];
        let (mut v, mut a) = (0u64, 0u64);
        let mut psi_times = vec![];
        while v < 75 {
            let (tv, ta) = (v * 1000 / 15, a * 1024 * 1000 / 48000);
            let before = out.len();
            let t = if tv <= ta {
                m.write_video(tv, 0, v % 15 == 0, &unit(&[300], v % 15 == 0), &mut out).unwrap();
                v += 1;
                tv
            } else {
                m.write_audio(ta, &[5; 150], &mut out).unwrap();
                a += 1;
                ta
            };
            if out[before..].chunks(TS_PACKET).any(|p| p[1..3] == [0x40, 0]) {
                psi_times.push(t);
            }
        }
        let packets = parse(&out);
        demux(&packets, &mut Default::default());
        let pcrs: Vec<u64> = packets.iter().filter_map(|p| p.pcr).collect();
        // Within a millisecond of rounding of the 40 ms aim: audio frames are 21.33 ms apart.
        assert!(pcrs.windows(2).all(|w| w[1] - w[0] <= 41 * 90), "PCR gaps: {pcrs:?}");
        assert!(packets.iter().filter(|p| !p.has_payload && p.pcr.is_some()).count() > 50);
        assert!(psi_times.windows(2).all(|w| w[1] - w[0] <= 100), "PSI gaps: {psi_times:?}");
    }

    #[test]
    fn b_frames_get_pts_and_dts() {
        let mut m = av_muxer();
        let mut out = vec![];
        m.write_video(1000, 66, true, &unit(&[50], true), &mut out).unwrap();
        m.write_video(1033, 0, false, &unit(&[50], false), &mut out).unwrap();
        let pes = demux(&parse(&out), &mut Default::default());
        assert_eq!((pes[0].pts, pes[0].dts), ((1066 + 700) * 90, Some(1700 * 90)));
        assert_eq!((pes[1].pts, pes[1].dts), ((1033 + 700) * 90, None));
        assert!(pes[0].pcr.unwrap() <= pes[0].dts.unwrap());
    }

    #[test]
    fn hevc_gets_its_delimiter_and_parameter_sets() {
        // A record with one VPS, SPS and PPS (their content does not matter to the muxer).
        let mut rec = vec![1u8; 22];
        rec.push(3);
        for (t, body) in [(32u8, &[0x40, 1, 0xc][..]), (33, &[0x42, 1, 1]), (34, &[0x44, 1, 0xc1])] {
            rec.extend_from_slice(&[0x80 | t, 0, 1, 0, body.len() as u8]);
            rec.extend_from_slice(body);
        }
        let mut m = TsMuxer::new(Some(TsVideo::Hevc), false);
        m.set_video_config(&rec).unwrap();
        let mut out = vec![];
        let idr = [0, 0, 0, 3, 0x26, 0x01, 0xaf];
        m.write_video(0, 0, true, &idr, &mut out).unwrap();
        let pes = demux(&parse(&out), &mut Default::default());
        assert_eq!(
            pes[0].data,
            [
                &[0, 0, 0, 1, 0x46, 0x01, 0x50][..],
                &[0, 0, 0, 1, 0x40, 1, 0xc, 0, 0, 0, 1, 0x42, 1, 1, 0, 0, 0, 1, 0x44, 1, 0xc1],
                &[0, 0, 0, 1, 0x26, 0x01, 0xaf]
            ]
            .concat()
        );
        // The PMT names HEVC and only the video stream.
        let pmt = parse(&out).into_iter().find(|p| p.pid == PID_PMT).unwrap();
        assert_eq!(&pmt.payload[13..18], &[STREAM_TYPE_HEVC, 0xe1, 0x00, 0xf0, 0]);
        assert_eq!(pmt.payload[3], 9 + 5 + 4);
    }

    #[test]
    fn audio_only_puts_the_pcr_on_the_audio_pid() {
        let mut m = TsMuxer::new(None, true);
        m.set_audio_config(&[0x11, 0x90]).unwrap(); // 48 kHz stereo
        let mut out = vec![];
        for i in 0..100u64 {
            m.write_audio(i * 1024 * 1000 / 48000, &[7; 300], &mut out).unwrap();
        }
        let packets = parse(&out);
        let pcrs: Vec<u64> = packets.iter().filter_map(|p| p.pcr).collect();
        assert!(packets.iter().filter(|p| p.pcr.is_some()).all(|p| p.pid == PID_AUDIO));
        assert!(pcrs.len() >= 90 && pcrs.windows(2).all(|w| w[1] - w[0] <= 40 * 90));
        let pmt = packets.iter().find(|p| p.pid == PID_PMT).unwrap();
        assert_eq!(&pmt.payload[9..11], &[0xe1, 0x01], "PCR_PID");
        assert_eq!(demux(&packets, &mut Default::default()).len(), 100);
    }

    #[test]
    fn timestamps_wrap_at_33_bits() {
        let mut m = av_muxer();
        let mut out = vec![];
        let wrap_ms = (1u64 << 33) / 90;
        let mut ccs = Default::default();
        for t in (wrap_ms - 800..wrap_ms + 200).step_by(33) {
            out.clear();
            m.write_video(t, 40, t % 10 == 0, &unit(&[300], true), &mut out).unwrap();
            m.write_audio(t + 5, &[1; 100], &mut out).unwrap();
            for p in demux(&parse(&out), &mut ccs) {
                assert!(p.pts < 1 << 33 && p.dts.unwrap_or(0) < 1 << 33);
                assert!(p.pcr.unwrap_or(0) < 1 << 33);
            }
        }
        assert_eq!(ticks(wrap_ms - TS_DELAY_MS), (wrap_ms * 90) & TICKS_33);
    }

    #[test]
    fn reset_starts_again_with_tables_and_fresh_counters() {
        let mut m = av_muxer();
        let mut out = vec![];
        for i in 0..40u64 {
            m.write_video(i * 33, 0, i == 0, &unit(&[500], i == 0), &mut out).unwrap();
        }
        m.reset();
        out.clear();
        m.write_audio(40 * 33, &[1; 10], &mut out).unwrap();
        m.write_video(40 * 33, 0, true, &unit(&[500], true), &mut out).unwrap();
        let packets = parse(&out);
        assert_eq!((packets[0].pid, packets[0].cc), (PID_PAT, 0));
        assert_eq!((packets[1].pid, packets[1].cc), (PID_PMT, 0));
        // The audio triggered a PCR-only packet on the video PID; the keyframe's PES then starts at 0.
        let first_video = packets.iter().find(|p| p.pid == PID_VIDEO && p.has_payload).unwrap();
        assert_eq!(first_video.cc, 0);
        demux(&packets, &mut Default::default());
    }

    #[test]
    fn malformed_input_is_an_error_and_writes_nothing() {
        let mut m = TsMuxer::new(Some(TsVideo::H264), true);
        let mut out = vec![];
        assert!(m.write_video(0, 0, true, &unit(&[10], true), &mut out).is_err(), "no record yet");
        assert!(m.write_audio(0, &[1, 2], &mut out).is_err(), "no ASC yet");
        for bad in [&[][..], &[1], &[2, 0x42, 0, 0, 0xff, 0xe1, 0, 1, 0x67], &avcc()[..12]] {
            assert!(m.set_video_config(bad).is_err(), "{bad:?}");
        }
        let mut no_pps = avcc();
        no_pps.truncate(8 + SPS.len());
        no_pps.push(0);
        assert!(m.set_video_config(&no_pps).is_err());
        let mut pps_as_sps = avcc();
        pps_as_sps[8] = 0x68;
        assert!(m.set_video_config(&pps_as_sps).is_err());
        assert!(TsMuxer::new(Some(TsVideo::Hevc), false).set_video_config(&avcc()).is_err());
        assert!(m.set_audio_config(&[0x12]).is_err());
        assert!(m.set_audio_config(&[0x2a, 0x10]).is_err(), "HE-AAC (5) has no ADTS profile");
        assert!(m.set_audio_config(&[0x12, 0x00]).is_err(), "channels from a PCE");
        m.set_video_config(&avcc()).unwrap();
        m.set_audio_config(&[0x12, 0x10]).unwrap();

        let mut overrun = unit(&[10], true);
        overrun[3] = 11;
        let mut trailing = unit(&[10], true);
        trailing.extend_from_slice(&[0, 0]);
        let only_aud = [0, 0, 0, 2, 9, 0xf0];
        for bad in [&[][..], &overrun, &trailing, &[0, 0, 0, 0], &[0xff, 0xff, 0xff, 0xff, 1], &only_aud] {
            assert!(m.write_video(0, 0, true, bad, &mut out).is_err(), "{bad:?}");
        }
        assert!(m.write_video(0, -1, true, &unit(&[10], true), &mut out).is_err());
        assert!(m.write_audio(0, &[], &mut out).is_err());
        assert!(m.write_audio(0, &[0; 8185], &mut out).is_err());
        assert!(out.is_empty());
        assert!(TsMuxer::new(None, true).set_video_config(&avcc()).is_err());
        assert!(TsMuxer::new(Some(TsVideo::H264), false).write_audio(0, &[1], &mut out).is_err());

        // The failures left no trace: the first good unit still starts the stream.
        m.write_video(0, 0, true, &unit(&[10], true), &mut out).unwrap();
        let packets = parse(&out);
        assert_eq!((packets[0].pid, packets[0].cc, packets[2].cc), (PID_PAT, 0, 0));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x2545_f491u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut m = av_muxer();
        let mut out = vec![];
        let mut data = vec![];
        for i in 0..5000u64 {
            data.clear();
            let len = next() as usize % 700;
            // Small length prefixes now and then, so some units parse part way or entirely.
            data.extend((0..len).map(|j| if j % 4 < 2 && next() % 3 == 0 { 0 } else { next() as u8 }));
            out.clear();
            if m.write_video(i * 33, (next() % 100) as i32 - 10, next() % 7 == 0, &data, &mut out).is_ok() {
                parse(&out);
            }
            let _ = m.write_audio(i * 20, &data, &mut out);
            let _ = m.set_video_config(&data);
            let _ = TsMuxer::new(Some(TsVideo::Hevc), true).set_video_config(&data);
            let _ = m.set_audio_config(&data);
        }
        assert_eq!(out.len() % TS_PACKET, 0);
    }

    #[test]
    fn a_warm_muxer_does_not_grow_its_buffers() {
        let mut m = av_muxer();
        let mut out = vec![];
        let big = unit(&[20_000], true);
        m.write_video(0, 0, true, &big, &mut out).unwrap();
        let (pes_cap, out_cap) = (m.pes.capacity(), out.capacity());
        for i in 1..200u64 {
            out.clear();
            m.write_video(i * 33, 0, i % 30 == 0, &unit(&[i as usize * 50], i % 30 == 0), &mut out).unwrap();
            m.write_audio(i * 33 + 10, &[3; 400], &mut out).unwrap();
            assert_eq!((m.pes.capacity(), out.capacity()), (pes_cap, out_cap));
        }
    }
}
