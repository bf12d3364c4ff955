//! Local recording while pushing: the media the encoders (or the app) hand to the destinations is
//! also written to an FLV file, by its own thread behind a bounded queue, so a slow or failing disk
//! costs the recording and never the stream.
//!
//! Decisions:
//! - The tap sits where media fans out to the destinations (`Shared::queue_media`), before any
//!   send queue: a reconnect or a congestion drop on the network side does not touch the file,
//!   which keeps one continuous timeline across outages (it is local; nothing was lost there).
//! - A recording begins at a video keyframe (one is requested at start; audio-only streams begin
//!   at once) with the FLV header, onMetaData and the current sequence headers; media before that
//!   keyframe is not written. Timestamps are rebased so the file starts at 0 (a replay file, not a
//!   slice of the live timeline).
//! - Write errors (disk full, permission, I/O) and a writer that falls more than
//!   `QUEUE_PACKETS` packets behind end the recording with RECORDING_FAILED; what was written
//!   stays readable (complete tags up to the failure).

use super::event::EventKind;
use super::shared::Shared;
use crate::core::flv::{self, TAG_SCRIPT};
use crate::core::media::{Codec, MediaPacket, Track};
use crate::error::{Error, ResultCode};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Packets waiting for the writer before the recording is given up (about 10 s of 30 fps video
/// with AAC): bounds memory when the disk stalls.
const QUEUE_PACKETS: usize = 1024;
const FILE_BUFFER: usize = 64 * 1024;
/// Written data reaches the file at least this often, so a crash or a full disk shows up soon.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Audio held back while a recording waits for its first keyframe: the audio encoder's output
/// can run ahead of the video encoder's, so audio stamped after the keyframe may arrive before it.
const PENDING_AUDIO: usize = 64;

/// Where a recording starts, and the timestamps it writes: a pure state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingGate {
    has_video: bool,
    /// Stream time of the first packet written; None until the recording begins.
    origin: Option<u64>,
    pending_audio: std::collections::VecDeque<MediaPacket>,
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Not written (before the first keyframe, or audio older than it).
    Skip,
    /// The recording begins with this packet: write the sequence headers first.
    Begin,
    /// Write it at this (rebased) timestamp.
    Write(u64),
}

impl RecordingGate {
    pub fn new(has_video: bool) -> Self {
        RecordingGate { has_video, origin: None, pending_audio: Default::default() }
    }

    pub fn admit(&mut self, p: &MediaPacket) -> Admit {
        let Some(origin) = self.origin else {
            let starts = !p.header && (if self.has_video { p.track == Track::Video && p.keyframe } else { true });
            if starts {
                self.origin = Some(p.timestamp_ms);
                return Admit::Begin;
            }
            if p.track == Track::Audio && !p.header {
                if self.pending_audio.len() == PENDING_AUDIO {
                    self.pending_audio.pop_front();
                }
                self.pending_audio.push_back(p.clone());
            }
            return Admit::Skip;
        };
        if p.track == Track::Audio && !p.header && p.timestamp_ms < origin {
            return Admit::Skip;
        }
        Admit::Write(p.timestamp_ms.saturating_sub(origin))
    }

    /// After `Begin`: the held-back audio that belongs to the recording, with rebased timestamps.
    pub fn take_pending_audio(&mut self) -> Vec<(u64, MediaPacket)> {
        let origin = self.origin.unwrap_or(u64::MAX);
        self.pending_audio
            .drain(..)
            .filter(|p| p.timestamp_ms >= origin)
            .map(|p| (p.timestamp_ms - origin, p))
            .collect()
    }
}

enum Msg {
    /// The current sequence headers, then the first packet (at timestamp 0).
    Begin {
        headers: Vec<MediaPacket>,
        first: MediaPacket,
        audio: Vec<(u64, MediaPacket)>,
        stream_ts: u64,
    },
    Unit {
        timestamp_ms: u64,
        unit: MediaPacket,
    },
    Stop,
}

struct Active {
    tx: SyncSender<Msg>,
    gate: RecordingGate,
}

/// The recording state kept in `Shared`: the latest sequence headers (kept while not recording,
/// so a recording can start mid-stream) and the recording in progress.
#[derive(Default)]
pub struct RecordingTap {
    headers: [Option<MediaPacket>; 2],
    active: Option<Active>,
    writer: Option<JoinHandle<()>>,
}

impl RecordingTap {
    /// Called for every packet on its way to the destinations. Never blocks.
    pub fn on_packet(&mut self, shared: &Shared, p: &MediaPacket) {
        // The file is FLV with AAC: Opus units (for WebRTC) are not recorded, nor counted.
        if p.codec == Codec::Opus {
            return;
        }
        let idx = match p.track {
            Track::Video => 0,
            Track::Audio => 1,
        };
        if p.header {
            self.headers[idx] = Some(p.clone());
        }
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let msg = match active.gate.admit(p) {
            Admit::Skip => return,
            Admit::Begin => Msg::Begin {
                headers: self.headers.iter().flatten().cloned().collect(),
                first: p.clone(),
                audio: active.gate.take_pending_audio(),
                stream_ts: p.timestamp_ms,
            },
            Admit::Write(ts) => Msg::Unit { timestamp_ms: ts, unit: p.clone() },
        };
        match active.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // The disk is slower than the stream: give the recording up, not the stream.
                self.active = None;
                shared.emit(
                    EventKind::KP_EVENT_RECORDING_FAILED,
                    ResultCode::KP_ERR_FILE,
                    format!("recording dropped: the file writer fell {QUEUE_PACKETS} packets behind"),
                    0,
                );
            }
            // The writer ended on an error and reported it.
            Err(TrySendError::Disconnected(_)) => self.active = None,
        }
    }

    /// The writer thread of an ended recording, to join.
    pub fn take_writer(&mut self) -> Option<JoinHandle<()>> {
        self.writer.take()
    }
}

/// Opens the file, writes the FLV header and onMetaData, and starts the writer thread. The caller
/// puts the result into the tap. Errors: `Error::File` (cannot create the file).
pub(super) fn start(shared: &Arc<Shared>, path: PathBuf, tap: &mut RecordingTap) -> crate::error::Result<()> {
    if tap.active.is_some() {
        return Err(Error::InvalidState("a recording is already in progress".into()));
    }
    // A previous recording that failed or was stopped: its thread has ended or is ending.
    let previous = tap.writer.take();
    let file = File::create(&path).map_err(|e| Error::File(format!("create {}: {e}", path.display())))?;
    let has_video = shared.config.video.is_some();
    let has_audio = shared.config.audio.is_some();
    let metadata = shared.stream_metadata().on_metadata_payload();
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_PACKETS);
    let writer = Writer {
        shared: shared.clone(),
        path: path.clone(),
        out: BufWriter::with_capacity(FILE_BUFFER, file),
        header: (flv::file_header(has_audio, has_video), metadata),
        video_frames: 0,
        audio_frames: 0,
        last_flush: Instant::now(),
        amf_scratch: Default::default(),
    };
    let handle = std::thread::Builder::new()
        .name("kp-recorder".into())
        .spawn(move || {
            if let Some(h) = previous {
                let _ = h.join();
            }
            writer.run(rx)
        })
        .map_err(|e| Error::Internal(format!("spawn recorder: {e}")))?;
    tap.active = Some(Active { tx, gate: RecordingGate::new(has_video) });
    tap.writer = Some(handle);
    Ok(())
}

/// The recording in progress, taken out of the tap (which then records nothing) to be ended by
/// [`finish`] outside the tap's lock. InvalidState when none is in progress (never started,
/// stopped, or already failed).
pub(super) fn take(tap: &mut RecordingTap) -> crate::error::Result<(Ending, Option<JoinHandle<()>>)> {
    let Some(active) = tap.active.take() else {
        return Err(Error::InvalidState("no recording in progress".into()));
    };
    Ok((Ending(active.tx), tap.writer.take()))
}

/// A recording on its way out.
pub(super) struct Ending(SyncSender<Msg>);

/// The writer drains what is queued, closes the file and reports RECORDING_STOPPED; blocks until
/// it has. Not under the tap's lock: a slow disk must not hold up the media on its way to the
/// network.
pub(super) fn finish(ending: Ending, writer: Option<JoinHandle<()>>) -> crate::error::Result<()> {
    let sent = ending.0.send(Msg::Stop).is_ok();
    drop(ending);
    if let Some(h) = writer {
        let _ = h.join();
    }
    if !sent {
        return Err(Error::InvalidState("the recording had already failed".into()));
    }
    Ok(())
}

struct Writer {
    shared: Arc<Shared>,
    path: PathBuf,
    out: BufWriter<File>,
    header: ([u8; 13], Vec<u8>),
    video_frames: u64,
    audio_frames: u64,
    last_flush: Instant,
    amf_scratch: crate::core::text_data::Scratch,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let path = self.path.display().to_string();
        let result = (|| -> std::io::Result<bool> {
            self.out.write_all(&self.header.0)?;
            flv::write_file_tag(&mut self.out, TAG_SCRIPT, 0, &self.header.1)?;
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Begin { headers, first, audio, stream_ts } => {
                        for h in headers {
                            self.write(0, &h)?;
                        }
                        self.write(0, &first)?;
                        for (ts, unit) in audio {
                            self.write(ts, &unit)?;
                        }
                        self.shared.emit(
                            EventKind::KP_EVENT_RECORDING_STARTED,
                            ResultCode::KP_OK,
                            path.clone(),
                            stream_ts as i64,
                        );
                    }
                    Msg::Unit { timestamp_ms, unit } => self.write(timestamp_ms, &unit)?,
                    Msg::Stop => {
                        self.out.flush()?;
                        self.out.get_ref().sync_data()?;
                        return Ok(true);
                    }
                }
            }
            // Given up by the tap (it reported why): keep what was written.
            self.out.flush()?;
            Ok(false)
        })();
        match result {
            Ok(true) => self.shared.emit_full(
                EventKind::KP_EVENT_RECORDING_STOPPED,
                ResultCode::KP_OK,
                path,
                0,
                self.video_frames as i64,
                self.audio_frames as i64,
            ),
            Ok(false) => {}
            Err(e) => {
                log::warn!("recording to {path} failed: {e}");
                self.shared.emit(
                    EventKind::KP_EVENT_RECORDING_FAILED,
                    ResultCode::KP_ERR_FILE,
                    format!("writing {path}: {e}"),
                    0,
                );
            }
        }
    }

    fn write(&mut self, ts: u64, unit: &MediaPacket) -> std::io::Result<()> {
        // FLV timestamps are 32-bit milliseconds, as on the wire.
        let out = &mut self.out;
        let name = &self.shared.config.messages.amf_name;
        crate::core::text_data::for_each_payload(unit, name, &mut self.amf_scratch, |body| {
            flv::write_file_tag(out, TAG_SCRIPT, ts as u32, body)
        })?;
        flv::write_file_unit(&mut self.out, unit, ts as u32)?;
        if !unit.header {
            match unit.track {
                Track::Video => self.video_frames += 1,
                Track::Audio => self.audio_frames += 1,
            }
        }
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.out.flush()?;
            self.last_flush = Instant::now();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::media::Codec;
    use bytes::Bytes;

    fn packet(track: Track, ts: u64, keyframe: bool, header: bool) -> MediaPacket {
        let codec = if track == Track::Video { Codec::H264 } else { Codec::Aac };
        MediaPacket {
            track,
            codec,
            timestamp_ms: ts,
            cts_ms: 0,
            keyframe,
            header,
            data: Bytes::new(),
            messages: Default::default(),
        }
    }

    #[test]
    fn begins_at_a_keyframe_and_rebases_to_zero() {
        let mut g = RecordingGate::new(true);
        assert_eq!(g.admit(&packet(Track::Video, 1000, false, false)), Admit::Skip);
        assert_eq!(g.admit(&packet(Track::Audio, 1010, true, false)), Admit::Skip);
        // Audio that ran ahead of the keyframe it follows: held, then written after it.
        assert_eq!(g.admit(&packet(Track::Audio, 1080, true, false)), Admit::Skip);
        assert_eq!(g.admit(&packet(Track::Video, 1033, true, true)), Admit::Skip, "a header is not a keyframe");
        assert_eq!(g.admit(&packet(Track::Video, 1066, true, false)), Admit::Begin);
        assert_eq!(g.take_pending_audio(), vec![(14, packet(Track::Audio, 1080, true, false))]);
        assert_eq!(g.admit(&packet(Track::Audio, 1050, true, false)), Admit::Skip, "audio older than the start");
        assert_eq!(g.admit(&packet(Track::Audio, 1070, true, false)), Admit::Write(4));
        assert_eq!(g.admit(&packet(Track::Video, 1100, false, false)), Admit::Write(34));
        // A new sequence header mid-recording is written where it comes.
        assert_eq!(g.admit(&packet(Track::Video, 1133, true, true)), Admit::Write(67));
    }

    #[test]
    fn audio_only_begins_at_once() {
        let mut g = RecordingGate::new(false);
        assert_eq!(g.admit(&packet(Track::Audio, 500, true, true)), Admit::Skip);
        assert_eq!(g.admit(&packet(Track::Audio, 523, true, false)), Admit::Begin);
        assert_eq!(g.admit(&packet(Track::Audio, 546, true, false)), Admit::Write(23));
    }
}
