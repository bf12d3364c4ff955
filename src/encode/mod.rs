//! Encoders: the traits the pusher drives, and the backends behind cargo features.

pub mod frame;
pub mod options;
pub mod pixel;
pub mod scale;

#[cfg(feature = "aac")]
pub mod fdk_aac;
#[cfg(feature = "openh264")]
pub mod openh264;
#[cfg(feature = "opus")]
pub mod opus;
#[cfg(feature = "opus")]
pub mod resample;
#[cfg(feature = "x264")]
pub mod x264;

pub use frame::{ChromaLayout, I420Buffer, PixelFormat, VideoFrame};

pub use crate::core::ladder::Complexity;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct VideoEncoderConfig {
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    pub bitrate_kbps: u32,
    /// Frames between IDRs.
    pub keyframe_interval: u32,
    /// 0 = let the encoder decide.
    pub threads: u32,
}

/// A video encoder producing H.264.
pub trait VideoEncoder: Send {
    /// Encode one picture. Appends the access unit in Annex-B form to `out` and returns
    /// `Some(is_idr)`, or `None` when the encoder produced no picture for this input (then `out`
    /// is untouched). An IDR access unit carries its SPS and PPS.
    fn encode(&mut self, picture: &I420Buffer, out: &mut Vec<u8>) -> Result<Option<bool>>;
    /// The next encoded picture will be an IDR.
    fn force_keyframe(&mut self);
    /// Change the target bitrate on the fly.
    fn set_bitrate(&mut self, kbps: u32) -> Result<()>;

    /// Like `encode`, with the picture's time in ms; returns the output access unit's presentation
    /// and decode times, which differ from the input's when the encoder reorders (B-frames).
    fn encode_timed(&mut self, picture: &I420Buffer, ts_ms: i64, out: &mut Vec<u8>) -> Result<Option<Encoded>> {
        Ok(self.encode(picture, out)?.map(|idr| Encoded { idr, pts_ms: ts_ms, dts_ms: ts_ms }))
    }
    /// The encoder reads NV12/NV21 pictures ([`ChromaLayout`]) itself, so they need no conversion.
    fn takes_semi_planar(&self) -> bool {
        false
    }
    /// Pictures held inside the encoder for reordering: a `None` from `encode_timed` while this
    /// is non-zero means "held", not "dropped".
    fn delayed_frames(&self) -> usize {
        0
    }
    /// At the end of the stream: the next held access unit, or None when none is left.
    fn flush(&mut self, _out: &mut Vec<u8>) -> Result<Option<Encoded>> {
        Ok(None)
    }
    /// Starts over with another size, frame rate, bitrate or complexity (the encode ladder, see
    /// `core::ladder`): the next picture is an IDR with new parameter sets. The caller flushes
    /// held pictures first. May allocate (it is rare).
    fn reconfigure(&mut self, _cfg: &VideoEncoderConfig, _complexity: Complexity) -> Result<()> {
        Err(crate::error::Error::Unsupported("this video encoder cannot be reconfigured".into()))
    }
}

/// One access unit from [`VideoEncoder::encode_timed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    pub idr: bool,
    pub pts_ms: i64,
    pub dts_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioEncoderConfig {
    pub sample_rate: u32,
    pub channels: u32,
    pub bitrate_kbps: u32,
}

/// An audio encoder producing raw AAC access units (no ADTS), or Opus packets.
pub trait AudioEncoder: Send {
    /// The AudioSpecificConfig for the FLV sequence header.
    fn audio_specific_config(&self) -> &[u8];
    /// Samples per channel in one access unit (1024 for AAC-LC).
    fn frame_samples(&self) -> usize;
    /// Feed interleaved s16 PCM; `emit` is called with each complete access unit, in order.
    fn encode(&mut self, pcm: &[i16], emit: &mut dyn FnMut(&[u8])) -> Result<()>;
    /// Encode what is buffered and drain the encoder's delay, so no input sample is lost.
    fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) -> Result<()>;
    /// Samples per channel the decoded stream runs late by (encoder priming and lookahead): the
    /// first input sample comes out of a decoder this many samples into the first access unit.
    fn priming_samples(&self) -> usize {
        0
    }
    /// The share of its packets the receivers report lost (0-100, the worst of them): an encoder
    /// that can protect its own packets (Opus in-band FEC) adds the redundancy that needs; the
    /// others ignore it.
    fn set_expected_loss(&mut self, _percent: u8) -> Result<()> {
        Ok(())
    }
}
