//! What the app configures before `start`. Zero/None fields mean "the default".

use crate::core::alerts::AlertThresholds;
use crate::core::media::Codec;
use crate::core::reconnect::ReconnectPolicy;
use crate::core::url::DestUrl;
pub use crate::encode::options::{VideoScaling, X264Options, X264Threading};
use crate::error::{Error, Result};
pub use crate::io::tls_config::TlsConfig;
use std::time::Duration;

/// Where video comes from. Values are stable (they cross the C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum VideoEncoderKind {
    /// Raw frames encoded by the bundled OpenH264 (feature `openh264`).
    KP_ENCODER_OPENH264 = 0,
    /// Raw frames encoded by x264 (feature `x264`, GPL; not in default builds).
    KP_ENCODER_X264 = 1,
    /// The app pushes H.264 access units (a hardware encoder's output).
    KP_ENCODER_PASSTHROUGH = 2,
    /// The app pushes H.265/HEVC access units (`push_hevc`), sent over Enhanced RTMP (FourCC
    /// `hvc1`). Needs a server that accepts Enhanced RTMP (nginx-rtmp does not).
    KP_ENCODER_PASSTHROUGH_HEVC = 3,
}

impl VideoEncoderKind {
    /// The app pushes encoded access units; the SDK encodes nothing.
    pub fn is_pre_encoded(self) -> bool {
        matches!(self, VideoEncoderKind::KP_ENCODER_PASSTHROUGH | VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC)
    }
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
    /// The app pushes Opus packets (`push_opus`), which the destinations that take Opus (WebRTC)
    /// carry; the others (RTMP, SRT, the recording) get AAC encoded from PCM the app pushes beside
    /// them (`push_audio`, feature `aac`), or carry the video alone.
    KP_AUDIO_ENCODER_PASSTHROUGH_OPUS = 2,
}

impl AudioEncoderKind {
    /// The app pushes encoded audio (AAC or Opus); PCM is taken only beside it, for the codec the
    /// app does not give.
    pub fn is_pre_encoded(self) -> bool {
        matches!(
            self,
            AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH | AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS
        )
    }
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
    /// Settings only the x264 encoder reads.
    pub x264: X264Options,
    /// What happens to raw frames larger than `width` x `height`; default: scaled down to fill.
    pub scaling: VideoScaling,
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
            x264: X264Options::default(),
            scaling: VideoScaling::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioConfig {
    pub encoder: AudioEncoderKind,
    pub sample_rate: u32,
    pub channels: u32,
    /// AAC's bitrate, and Opus's (within libopus's 6-510 kbit/s) when Opus is encoded too.
    pub bitrate_kbps: u32,
    /// Test switch, Rust only: also encode Opus from the PCM (as a WebRTC destination will
    /// make the pusher do), with no destination to take it. Not in the C ABI.
    #[doc(hidden)]
    pub also_opus: bool,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            encoder: AudioEncoderKind::KP_AUDIO_ENCODER_FDK_AAC,
            sample_rate: 44100,
            channels: 2,
            bitrate_kbps: 128,
            also_opus: false,
        }
    }
}

/// The audio codecs the pusher encodes from the app's PCM: each once, whatever the number of
/// destinations that take it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AudioCodecs {
    pub aac: bool,
    pub opus: bool,
}

impl AudioCodecs {
    /// The audio codecs a destination's URL list carries (a primary and its backups may be of
    /// different transports).
    pub fn carried_by(urls: &[DestUrl]) -> AudioCodecs {
        let mut c = AudioCodecs::default();
        for u in urls {
            match destination_audio_codec(u) {
                Codec::Opus => c.opus = true,
                Codec::Aac | Codec::H264 | Codec::Hevc => c.aac = true,
            }
        }
        c
    }

    /// Whether `codec` is one of these.
    pub fn has(&self, codec: Codec) -> bool {
        match codec {
            Codec::Aac => self.aac,
            Codec::Opus => self.opus,
            Codec::H264 | Codec::Hevc => false,
        }
    }

    /// The codec whose frames `audio_frames_encoded` counts: AAC when it is encoded (the codec
    /// of RTMP, SRT and the recording), else Opus. Counting both would double the figure.
    pub fn counted(&self) -> Option<Codec> {
        if self.aac {
            Some(Codec::Aac)
        } else if self.opus {
            Some(Codec::Opus)
        } else {
            None
        }
    }
}

/// The audio codec a destination's stream carries. Exhaustive on purpose: a new transport must
/// say (WebRTC/WHIP: `Codec::Opus`, which also makes `audio_codecs` encode Opus, and AAC no more
/// when every destination is WebRTC).
pub(crate) fn destination_audio_codec(url: &DestUrl) -> Codec {
    match url {
        DestUrl::Rtmp(_) | DestUrl::Srt(_) => Codec::Aac,
        DestUrl::Whip(_) => Codec::Opus,
    }
}

/// Which codecs are encoded from PCM: AAC when a URL carries AAC, Opus when one carries Opus
/// (or the test switch `also_opus` is on), backups included: a WHIP primary with an RTMP backup
/// needs both, so that the backup has its AAC the moment it takes over. With pre-encoded AAC,
/// AAC is never encoded, and Opus is (in a build with it) from the PCM the app gives beside its
/// AAC (`push_audio`), when a URL carries Opus; pre-encoded Opus is the mirror image. None
/// without an audio track.
pub(crate) fn audio_codecs(config: &PusherConfig) -> AudioCodecs {
    let Some(a) = config.audio.as_ref() else {
        return AudioCodecs::default();
    };
    // A URL that does not parse fails `Pusher::new` anyway.
    let urls: Vec<DestUrl> = config.destinations().iter().flatten().filter_map(|u| DestUrl::parse(u).ok()).collect();
    let carried = AudioCodecs::carried_by(&urls);
    let opus = a.also_opus || carried.opus;
    match a.encoder {
        AudioEncoderKind::KP_AUDIO_ENCODER_FDK_AAC => AudioCodecs { aac: carried.aac || urls.is_empty(), opus },
        // Without the Opus encoder a WebRTC destination carries the video alone, as before.
        AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH => {
            AudioCodecs { aac: false, opus: opus && cfg!(feature = "opus") }
        }
        // The Opus is the app's; AAC (in a build with it) from the PCM beside it, for the
        // destinations that carry AAC. Without the AAC encoder they carry the video alone.
        AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS => {
            AudioCodecs { aac: (carried.aac || urls.is_empty()) && cfg!(feature = "aac"), opus: false }
        }
    }
}

/// Whether the stream has Opus for the destinations that take it (WebRTC): encoded from the PCM
/// (with pre-encoded AAC only from PCM given beside it), or the app's own (`push_opus`).
#[cfg(feature = "whip")]
pub(crate) fn has_opus(config: &PusherConfig) -> bool {
    audio_codecs(config).opus
        || config.audio.as_ref().is_some_and(|a| a.encoder == AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS)
}

/// `Debug` shows every URL redacted (the stream key and query never reach an app's logs).
#[derive(Clone, PartialEq)]
pub struct PusherConfig {
    /// The primary ingest URL of destination 0 (`rtmp://host[:port]/app[/instance]/key[?query]`).
    pub url: String,
    /// Backup URLs of destination 0, tried in order after `reconnect.failover_after` failed
    /// attempts on the current one.
    pub backup_urls: Vec<String>,
    /// More destinations published at the same time from the same encode, each a primary URL
    /// followed by its backups. Destination indexes: 0 is `url`, then these in order.
    pub extra_destinations: Vec<Vec<String>>,
    /// None: no video track.
    pub video: Option<VideoConfig>,
    /// None: no audio track.
    pub audio: Option<AudioConfig>,
    /// TCP connect deadline (and the RTMP handshake + publish deadline).
    pub connect_timeout: Duration,
    /// No write progress (or no server acknowledgement) for this long → STALLED, reconnect.
    pub stall_timeout: Duration,
    /// Backoff, attempt limit, failover and return-to-primary.
    pub reconnect: ReconnectPolicy,
    /// How long the URL refresh callback may take before the old URL is used.
    pub url_refresh_timeout: Duration,
    /// Raw frames waiting for the encoder before new ones are dropped (counted).
    pub input_queue_frames: usize,
    /// The latency budget: media waiting for the network (the send queue and the socket's send
    /// buffer), in milliseconds, before whole GOPs are dropped (see `core::drop_policy`).
    pub send_queue_ms: u32,
    /// RTMPS certificate checks.
    pub tls: TlsConfig,
    /// Adaptive bitrate of the video encoder (or BITRATE_SUGGESTED events for pre-encoded video).
    pub abr: AbrSettings,
    /// When the quality alert events fire.
    pub alerts: AlertThresholds,
    /// Frame rate of the still picture sent while paused (`Pusher::pause`), in (0, 60].
    pub pause_fps: f32,
    /// Settings of `srt://` destinations that their URLs do not give.
    pub srt: SrtSettings,
    /// Settings of `whip+http(s)://` destinations.
    pub whip: WhipSettings,
    /// App messages (`Pusher::send_message`) and capture timestamps.
    pub messages: super::messages::MessageSettings,
    /// The encode ladder: a software encoder that cannot keep up steps down (complexity, frame
    /// rate, size) instead of dropping input frames at random.
    pub ladder: LadderSettings,
}

/// The encode ladder (see `core::ladder`). Off by default: a size change mid-stream is visible to
/// the ingest (some transcoders restart on new sequence headers, some players re-buffer), so an app
/// turns it on knowing its ingest takes it; and a pusher that keeps up would never change anyway.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LadderSettings {
    pub enabled: bool,
    /// The floor of the default ladder: smallest height (0 = 360) and frame rate (0 = 15).
    pub lowest_height: u32,
    pub lowest_fps: f32,
    /// The app's own rungs below the configured setting (which is always the first), each
    /// cheaper than the one before; empty = the default ladder down to the floor.
    pub rungs: Vec<crate::core::ladder::Rung>,
}

impl LadderSettings {
    /// The ladder for a video configuration: from the configured size and rate at the encoder's
    /// own complexity (OpenH264 runs at Medium, so its ladder has no High rung) down.
    pub fn ladder_config(&self, v: &VideoConfig) -> Result<crate::core::ladder::LadderConfig> {
        use crate::core::ladder::{default_rungs, Complexity, LadderConfig, Lowest, Rung};
        let top_complexity = match v.encoder {
            VideoEncoderKind::KP_ENCODER_OPENH264 => Complexity::Medium,
            _ => Complexity::High,
        };
        let top = Rung { width: v.width, height: v.height, fps: v.fps, complexity: top_complexity };
        let rungs = if self.rungs.is_empty() {
            let d = crate::core::ladder::Lowest::default();
            let lowest = Lowest {
                height: if self.lowest_height == 0 { d.height } else { self.lowest_height },
                fps: if self.lowest_fps == 0.0 { d.fps } else { self.lowest_fps },
            };
            let mut rungs = default_rungs(v.width, v.height, v.fps, lowest)?;
            rungs.retain(|r| r.complexity >= top_complexity);
            rungs
        } else {
            std::iter::once(top).chain(self.rungs.iter().copied()).collect()
        };
        LadderConfig::new(rungs)
    }
}

/// SRT settings used where an `srt://` URL does not give its own (`latency=`, `passphrase=`,
/// `pbkeylen=`, `streamid=`): the URL wins.
#[derive(Clone, PartialEq, Default)]
pub struct SrtSettings {
    /// TSBPD latency in ms; 0 = 120 ms. The receiver holds each packet this long, which is the
    /// time lost packets have to be repaired in: 4 × the round trip is the usual rule (plus more
    /// on lossy links).
    pub latency_ms: u32,
    /// Encrypts with AES (10 to 79 characters, as libsrt requires); None = unencrypted.
    pub passphrase: Option<String>,
    /// AES key length in bytes: 16, 24 or 32; 0 = 16.
    pub pbkeylen: u8,
    /// The stream id sent in the handshake (see `core::srt_url::StreamIdPreset` for the forms
    /// SRS/ZLMediaKit and MediaMTX expect).
    pub stream_id: Option<String>,
}

impl std::fmt::Debug for SrtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtSettings")
            .field("latency_ms", &self.latency_ms)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .field("pbkeylen", &self.pbkeylen)
            .field("stream_id", &self.stream_id.as_deref().map(crate::core::url::mask_key))
            .finish()
    }
}

/// WHIP (`whip+http://`, `whip+https://`) settings.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct WhipSettings {
    /// Sent as `Authorization: Bearer <token>` with the offer and the DELETE; never logged.
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for WhipSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhipSettings").field("bearer_token", &self.bearer_token.as_ref().map(|_| "***")).finish()
    }
}

/// Adaptive bitrate bounds. Zero means the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbrSettings {
    pub enabled: bool,
    /// The floor; 0 = a quarter of the configured video bitrate (at least 64 kbit/s).
    pub min_kbps: u32,
    /// The ceiling; 0 = the configured video bitrate.
    pub max_kbps: u32,
    /// At the floor and still congested, halve the frame rate.
    pub allow_fps_reduction: bool,
}

impl Default for AbrSettings {
    fn default() -> Self {
        AbrSettings { enabled: true, min_kbps: 0, max_kbps: 0, allow_fps_reduction: false }
    }
}

impl std::fmt::Debug for PusherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn hide(url: &str) -> String {
            crate::core::url::DestUrl::parse(url)
                .map_or_else(|_| "<unparsable URL, hidden>".to_owned(), |u| u.redacted())
        }
        let hide_all = |urls: &[String]| urls.iter().map(|u| hide(u)).collect::<Vec<_>>();
        f.debug_struct("PusherConfig")
            .field("url", &hide(&self.url))
            .field("backup_urls", &hide_all(&self.backup_urls))
            .field("extra_destinations", &self.extra_destinations.iter().map(|d| hide_all(d)).collect::<Vec<_>>())
            .field("video", &self.video)
            .field("audio", &self.audio)
            .field("connect_timeout", &self.connect_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("reconnect", &self.reconnect)
            .field("url_refresh_timeout", &self.url_refresh_timeout)
            .field("input_queue_frames", &self.input_queue_frames)
            .field("send_queue_ms", &self.send_queue_ms)
            .field("tls", &self.tls)
            .field("abr", &self.abr)
            .field("alerts", &self.alerts)
            .field("pause_fps", &self.pause_fps)
            .field("srt", &self.srt)
            .field("whip", &self.whip)
            .field("messages", &self.messages)
            .field("ladder", &self.ladder)
            .finish()
    }
}

impl Default for PusherConfig {
    fn default() -> Self {
        PusherConfig {
            url: String::new(),
            video: Some(VideoConfig::default()),
            audio: Some(AudioConfig::default()),
            backup_urls: Vec::new(),
            extra_destinations: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(5),
            reconnect: ReconnectPolicy::default(),
            url_refresh_timeout: Duration::from_secs(5),
            // 100 ms at 30 fps: enough to ride out encoder jitter; each queued 720p picture is
            // 1.4 MB, and a camera frame that waits longer is better dropped than sent late.
            input_queue_frames: 3,
            // A viewer two seconds behind live is the most a weak uplink may cost (issue 4).
            send_queue_ms: 2000,
            tls: TlsConfig::default(),
            abr: AbrSettings::default(),
            alerts: AlertThresholds::default(),
            // Enough to keep players and servers from seeing a dead video track, cheap to encode.
            pause_fps: 5.0,
            srt: SrtSettings::default(),
            whip: WhipSettings::default(),
            messages: Default::default(),
            ladder: LadderSettings::default(),
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
            if !v.encoder.is_pre_encoded() {
                if v.width == 0 || v.height == 0 || v.width % 2 != 0 || v.height % 2 != 0 {
                    return Err(Error::BadDimensions(format!(
                        "video size {}x{} must be even and non-zero",
                        v.width, v.height
                    )));
                }
                if v.width > 7680 || v.height > 4320 {
                    return Err(Error::BadDimensions(format!("video size {}x{} is over 8K", v.width, v.height)));
                }
            }
            if !(v.fps.is_finite() && v.fps > 0.0 && v.fps <= 240.0) {
                return bad(format!("frame rate {} is not in (0, 240]", v.fps));
            }
            if v.bitrate_kbps == 0 || v.bitrate_kbps > 200_000 {
                return bad(format!("video bitrate {} kbit/s is not in [1, 200000]", v.bitrate_kbps));
            }
            if v.keyframe_interval == 0 {
                v.keyframe_interval = (v.fps * 2.0).round().max(1.0) as u32;
            }
            if v.threads > 64 {
                return bad(format!("{} encoder threads is too many", v.threads));
            }
            if v.x264.bframes > 16 {
                return bad(format!("{} B-frames: x264 allows at most 16", v.x264.bframes));
            }
        }
        if let Some(a) = &self.audio {
            // Pre-encoded Opus: the rate, channels and bitrate are those of the AAC made from the
            // PCM beside it.
            if matches!(
                a.encoder,
                AudioEncoderKind::KP_AUDIO_ENCODER_FDK_AAC | AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH_OPUS
            ) {
                if ![8000, 16000, 22050, 24000, 32000, 44100, 48000].contains(&a.sample_rate) {
                    return bad(format!("audio sample rate {} is not supported", a.sample_rate));
                }
                if !(1..=2).contains(&a.channels) {
                    return bad(format!("{} audio channels: only mono and stereo", a.channels));
                }
                if a.bitrate_kbps == 0 || a.bitrate_kbps > 512 {
                    return bad(format!("audio bitrate {} kbit/s is not in [1, 512]", a.bitrate_kbps));
                }
            }
        }
        if self.connect_timeout.is_zero() || self.stall_timeout.is_zero() || self.url_refresh_timeout.is_zero() {
            return bad("timeouts must be non-zero".into());
        }
        let r = &self.reconnect;
        if r.first_delay.is_zero() || r.max_delay < r.first_delay || !(r.multiplier >= 1.0 && r.multiplier <= 10.0) {
            return bad(
                "reconnect delays must be non-zero, growing (multiplier in [1, 10]) and capped above the first".into(),
            );
        }
        if !(0.0..=0.5).contains(&r.jitter) {
            return bad(format!("reconnect jitter {} is not in [0, 0.5]", r.jitter));
        }
        if r.max_attempts == Some(0) {
            return bad("max reconnect attempts must be at least 1 (None = unlimited)".into());
        }
        if self.destinations().len() > 8 {
            return bad("at most 8 destinations".into());
        }
        if self.destinations().iter().any(|urls| urls.len() > 8) {
            return bad("at most 8 URLs (a primary and 7 backups) per destination".into());
        }
        for urls in self.destinations() {
            if urls.is_empty() {
                return bad("a destination needs at least one URL".into());
            }
            for u in urls {
                crate::core::url::DestUrl::parse(&u)?;
            }
        }
        if self.input_queue_frames == 0 {
            return bad("input queue must hold at least one frame".into());
        }
        let s = &self.srt;
        if s.latency_ms > crate::core::srt_url::MAX_LATENCY_MS {
            return bad(format!(
                "SRT latency {} ms is over {} ms (it is in milliseconds)",
                s.latency_ms,
                crate::core::srt_url::MAX_LATENCY_MS
            ));
        }
        if self.whip.bearer_token.as_ref().is_some_and(|t| t.is_empty() || t.bytes().any(|b| b.is_ascii_control())) {
            return bad(
                "WHIP bearer token must be non-empty and free of control characters (it goes in an HTTP header)".into(),
            );
        }
        if s.passphrase.as_ref().is_some_and(|p| !crate::core::srt_url::PASSPHRASE_LEN.contains(&p.chars().count())) {
            return bad("SRT passphrase must be 10 to 79 characters (as libsrt requires)".into());
        }
        if ![0, 16, 24, 32].contains(&s.pbkeylen) {
            return bad(format!("SRT pbkeylen must be 16, 24 or 32, not {}", s.pbkeylen));
        }
        if s.stream_id.as_ref().is_some_and(|id| id.len() > crate::core::srt_url::MAX_STREAM_ID) {
            return bad("SRT stream id over 512 bytes".into());
        }
        if self.send_queue_ms < 100 {
            return bad("send queue must hold at least 100 ms".into());
        }
        if let Some(v) = &self.video {
            let a = &mut self.abr;
            if a.max_kbps == 0 {
                a.max_kbps = v.bitrate_kbps;
            }
            if a.min_kbps == 0 {
                a.min_kbps = (v.bitrate_kbps / 4).max(64).min(a.max_kbps);
            }
            if a.min_kbps > a.max_kbps || a.max_kbps > 200_000 {
                return bad(format!("ABR bounds {}..{} kbit/s are not a range", a.min_kbps, a.max_kbps));
            }
        }
        let t = &self.alerts;
        let in_range =
            (t.net_busy_congestion > 0.0 && t.net_busy_congestion <= 1.0) && (0.0..=1.0).contains(&t.low_fps_ratio);
        if !in_range {
            return bad("alert thresholds: congestion in (0, 1], fps ratio in [0, 1]".into());
        }
        if !(self.pause_fps.is_finite() && self.pause_fps > 0.0 && self.pause_fps <= 60.0) {
            return bad(format!("pause frame rate {} is not in (0, 60]", self.pause_fps));
        }
        if let Some(v) = self.video.as_ref().filter(|v| self.ladder.enabled && !v.encoder.is_pre_encoded()) {
            self.ladder.ladder_config(v)?;
        }
        self.validate_tls()?;
        Ok(())
    }

    fn validate_tls(&self) -> Result<()> {
        if self.tls.platform_roots && !cfg!(feature = "native-roots") {
            return Err(Error::Unsupported("platform root certificates need the `native-roots` feature".into()));
        }
        #[cfg(feature = "tls")]
        for pem in &self.tls.extra_ca_pem {
            crate::io::tls::parse_ca_pem(pem)?;
        }
        Ok(())
    }

    /// Every destination's URL list, primary first: destination 0 is `url` + `backup_urls`.
    pub fn destinations(&self) -> Vec<Vec<String>> {
        let mut first = vec![self.url.clone()];
        first.extend(self.backup_urls.iter().cloned());
        std::iter::once(first).chain(self.extra_destinations.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_every_stream_key_and_query() {
        let cfg = PusherConfig {
            url: "rtmp://h/app/SECRETKEY1?token=SECRETTOKEN".into(),
            backup_urls: vec!["rtmps://b/app/SECRETKEY2".into(), "not a url SECRETKEY3".into()],
            extra_destinations: vec![vec!["rtmp://c/app/SECRETKEY4".into()]],
            ..Default::default()
        };
        let text = format!("{cfg:?}");
        assert!(text.contains("rtmp://h"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn aac_for_rtmp_and_srt_opus_only_when_asked_and_never_aac_from_pre_encoded_audio() {
        let mut cfg = PusherConfig {
            url: "rtmp://h/app/k".into(),
            extra_destinations: vec![vec!["srt://h:9000".into()]],
            audio: Some(AudioConfig::default()),
            ..Default::default()
        };
        assert_eq!(audio_codecs(&cfg), AudioCodecs { aac: true, opus: false });
        assert_eq!(audio_codecs(&cfg).counted(), Some(Codec::Aac));
        cfg.audio.as_mut().unwrap().also_opus = true;
        assert_eq!(audio_codecs(&cfg), AudioCodecs { aac: true, opus: true });
        assert_eq!(audio_codecs(&cfg).counted(), Some(Codec::Aac), "AAC frames counted, not both");
        assert_eq!(AudioCodecs { aac: false, opus: true }.counted(), Some(Codec::Opus));
        cfg.audio.as_mut().unwrap().encoder = AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH;
        // Pre-encoded AAC: AAC is never encoded; Opus (asked for here) from the app's PCM beside it.
        let opus = cfg!(feature = "opus");
        assert_eq!(audio_codecs(&cfg), AudioCodecs { aac: false, opus });
        cfg.audio.as_mut().unwrap().also_opus = false;
        assert_eq!(audio_codecs(&cfg), AudioCodecs::default(), "pre-encoded AAC to RTMP/SRT: nothing to encode");
        cfg.audio = None;
        assert_eq!(audio_codecs(&cfg), AudioCodecs::default());
    }

    #[test]
    fn a_whip_primary_with_an_rtmp_backup_needs_both_audio_codecs() {
        let whip_only = PusherConfig {
            url: "whip+http://h:8080/whip/live".into(),
            audio: Some(AudioConfig::default()),
            ..Default::default()
        };
        assert_eq!(audio_codecs(&whip_only), AudioCodecs { aac: false, opus: true });
        let cfg = PusherConfig { backup_urls: vec!["rtmp://h/app/k".into()], ..whip_only };
        assert_eq!(audio_codecs(&cfg), AudioCodecs { aac: true, opus: true });
        let urls: Vec<DestUrl> = cfg.destinations()[0].iter().map(|u| DestUrl::parse(u).unwrap()).collect();
        let carried = AudioCodecs::carried_by(&urls);
        assert!(carried.has(Codec::Aac) && carried.has(Codec::Opus) && !carried.has(Codec::H264));
    }
}
