//! What the app configures before `start`. Zero/None fields mean "the default".

use crate::error::{Error, Result};
use std::time::Duration;

/// Where video comes from. Values are stable (they cross the C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum VideoEncoderKind {
    /// Raw frames encoded by the bundled OpenH264 (feature `openh264`).
    KP_ENCODER_OPENH264 = 0,
    /// Raw frames encoded by x264 (feature `x264`, not in this build yet).
    KP_ENCODER_X264 = 1,
    /// The app pushes H.264 access units (a hardware encoder's output).
    KP_ENCODER_PASSTHROUGH = 2,
}

/// Where audio comes from. Values are stable (they cross the C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum AudioEncoderKind {
    /// PCM encoded to AAC-LC by the bundled FDK AAC (feature `aac`).
    KP_AUDIO_ENCODER_FDK_AAC = 0,
    /// The app pushes AAC frames (raw or ADTS).
    KP_AUDIO_ENCODER_PASSTHROUGH = 1,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    pub encoder: VideoEncoderKind,
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    pub bitrate_kbps: u32,
    /// Frames between IDRs; 0 = two seconds of frames.
    pub keyframe_interval: u32,
    /// Encoder threads; 0 = the encoder's choice.
    pub threads: u32,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            encoder: VideoEncoderKind::KP_ENCODER_OPENH264,
            width: 1280,
            height: 720,
            fps: 30.0,
            bitrate_kbps: 2000,
            keyframe_interval: 0,
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioConfig {
    pub encoder: AudioEncoderKind,
    pub sample_rate: u32,
    pub channels: u32,
    pub bitrate_kbps: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            encoder: AudioEncoderKind::KP_AUDIO_ENCODER_FDK_AAC,
            sample_rate: 44100,
            channels: 2,
            bitrate_kbps: 128,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PusherConfig {
    pub url: String,
    /// None: no video track.
    pub video: Option<VideoConfig>,
    /// None: no audio track.
    pub audio: Option<AudioConfig>,
    /// TCP connect deadline (and the RTMP handshake + publish deadline).
    pub connect_timeout: Duration,
    /// A single socket write that makes no progress for this long fails the connection.
    pub write_timeout: Duration,
    /// Raw frames waiting for the encoder before new ones are dropped (counted).
    pub input_queue_frames: usize,
    /// Media waiting for the network, in milliseconds, before the oldest is dropped.
    pub send_queue_ms: u32,
}

impl Default for PusherConfig {
    fn default() -> Self {
        PusherConfig {
            url: String::new(),
            video: Some(VideoConfig::default()),
            audio: Some(AudioConfig::default()),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            input_queue_frames: 8,
            send_queue_ms: 5000,
        }
    }
}

impl PusherConfig {
    /// Fill defaults and reject impossible values.
    pub fn validate(&mut self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.video.is_none() && self.audio.is_none() {
            return bad("neither video nor audio is enabled".into());
        }
        if let Some(v) = &mut self.video {
            if v.encoder != VideoEncoderKind::KP_ENCODER_PASSTHROUGH {
                if v.width == 0 || v.height == 0 || v.width % 2 != 0 || v.height % 2 != 0 {
                    return Err(Error::BadDimensions(format!(
                        "video size {}x{} must be even and non-zero",
                        v.width, v.height
                    )));
                }
                if v.width > 7680 || v.height > 4320 {
                    return Err(Error::BadDimensions(format!(
                        "video size {}x{} is over 8K",
                        v.width, v.height
                    )));
                }
            }
            if !(v.fps.is_finite() && v.fps > 0.0 && v.fps <= 240.0) {
                return bad(format!("frame rate {} is not in (0, 240]", v.fps));
            }
            if v.bitrate_kbps == 0 || v.bitrate_kbps > 200_000 {
                return bad(format!(
                    "video bitrate {} kbit/s is not in [1, 200000]",
                    v.bitrate_kbps
                ));
            }
            if v.keyframe_interval == 0 {
                v.keyframe_interval = (v.fps * 2.0).round().max(1.0) as u32;
            }
            if v.threads > 64 {
                return bad(format!("{} encoder threads is too many", v.threads));
            }
        }
        if let Some(a) = &self.audio {
            if a.encoder == AudioEncoderKind::KP_AUDIO_ENCODER_FDK_AAC {
                if ![8000, 16000, 22050, 24000, 32000, 44100, 48000].contains(&a.sample_rate) {
                    return bad(format!(
                        "audio sample rate {} is not supported",
                        a.sample_rate
                    ));
                }
                if !(1..=2).contains(&a.channels) {
                    return bad(format!(
                        "{} audio channels: only mono and stereo",
                        a.channels
                    ));
                }
                if a.bitrate_kbps == 0 || a.bitrate_kbps > 512 {
                    return bad(format!(
                        "audio bitrate {} kbit/s is not in [1, 512]",
                        a.bitrate_kbps
                    ));
                }
            }
        }
        if self.connect_timeout.is_zero() || self.write_timeout.is_zero() {
            return bad("timeouts must be non-zero".into());
        }
        if self.input_queue_frames == 0 {
            return bad("input queue must hold at least one frame".into());
        }
        if self.send_queue_ms < 100 {
            return bad("send queue must hold at least 100 ms".into());
        }
        crate::core::url::RtmpUrl::parse(&self.url)?;
        Ok(())
    }
}
