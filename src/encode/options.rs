//! Encoder settings that the configuration carries down to `encode/` (the pusher re-exports them).

use crate::error::{Error, Result};

/// What `push_video` does with a raw frame larger than the configured size. Frames of the
/// configured size are never touched (no cost); smaller frames are always refused with
/// `BadDimensions` / KP_ERR_BAD_DIMENSIONS (upscaling only adds bits, not detail: configure the
/// smaller size instead), and the stream goes on.
/// Values are stable (they cross the C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum VideoScaling {
    /// Scaled down (bilinear, as swscale's `flags=bilinear`) to fill the configured size; when
    /// the aspect ratios differ, the middle of the frame is kept and the excess on two sides is
    /// cut off (no distortion, no black bars), e.g. a 4:3 camera into a 16:9 stream loses the top
    /// and bottom eighths.
    #[default]
    KP_VIDEO_SCALING_FILL = 0,
    /// Scaled down to exactly the configured size, whole frame kept; a different aspect ratio is
    /// distorted.
    KP_VIDEO_SCALING_STRETCH = 1,
    /// Refused with `BadDimensions` / KP_ERR_BAD_DIMENSIONS, like any other size mismatch.
    KP_VIDEO_SCALING_OFF = 2,
}

impl VideoScaling {
    pub fn from_raw(v: i64) -> Result<Self> {
        Ok(match v {
            0 => VideoScaling::KP_VIDEO_SCALING_FILL,
            1 => VideoScaling::KP_VIDEO_SCALING_STRETCH,
            2 => VideoScaling::KP_VIDEO_SCALING_OFF,
            other => return Err(Error::InvalidArgument(format!("unknown video scaling mode {other}"))),
        })
    }
}

/// How x264 spreads work over its threads.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum X264Threading {
    /// What the tune says (`zerolatency`: sliced threads).
    #[default]
    KP_X264_THREADING_DEFAULT = 0,
    /// One frame per thread: best compression, but each thread adds a frame of latency.
    KP_X264_THREADING_FRAME = 1,
    /// Slices of one frame in parallel: no added latency, a little less compression.
    KP_X264_THREADING_SLICED = 2,
}

/// x264 settings (feature `x264`); the other encoders ignore them. Empty strings mean the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct X264Options {
    /// `ultrafast` .. `placebo`; empty = `veryfast`.
    pub preset: String,
    /// x264 tunes, comma-separated (`zerolatency`, `film,fastdecode`, ...); empty = `zerolatency`.
    pub tune: String,
    /// `baseline`, `main` or `high`; empty = `high` (what the presets give).
    pub profile: String,
    /// VBV maximum rate in kbit/s; 0 = the video bitrate (constant-rate for ingest servers).
    pub vbv_maxrate_kbps: u32,
    /// VBV buffer size in kbit; 0 = the maximum rate (one second).
    pub vbv_bufsize_kbit: u32,
    pub threading: X264Threading,
    /// B-frames between reference frames; 0 (the default) for the lowest latency. With B-frames
    /// the FLV tags carry composition times and the video is delayed by that many frames.
    pub bframes: u32,
}

/// An encode ladder rung's encoder complexity (see `core::ladder::Complexity`), as it crosses the
/// C ABI. Values are stable. What each means per encoder: OpenH264's own complexity levels
/// (it runs at MEDIUM unless the ladder says otherwise); for x264 HIGH is the configured preset,
/// MEDIUM `superfast` and LOW `ultrafast` (never slower than the configured preset).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum EncodeComplexity {
    KP_ENCODE_COMPLEXITY_HIGH = 0,
    KP_ENCODE_COMPLEXITY_MEDIUM = 1,
    KP_ENCODE_COMPLEXITY_LOW = 2,
}

impl EncodeComplexity {
    pub fn from_raw(v: i64) -> Result<crate::core::ladder::Complexity> {
        use crate::core::ladder::Complexity;
        Ok(match v {
            0 => Complexity::High,
            1 => Complexity::Medium,
            2 => Complexity::Low,
            other => return Err(Error::InvalidArgument(format!("unknown encode complexity {other}"))),
        })
    }
}
