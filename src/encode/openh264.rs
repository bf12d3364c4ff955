//! OpenH264 backend (Cisco's BSD-licensed encoder, built from the source bundled by the
//! `openh264` crate).
//!
//! The crate's defaults suit video calls, not streaming (see DEPENDENCY-NOTES.md): Quality rate
//! control at 120 kbit/s, no frame-rate hint, a single IDR, frame skipping on. Everything that
//! matters for an ingest server is set explicitly here; what the crate's builder cannot do
//! (changing the bitrate of a running encoder) goes through its raw API.

use std::ffi::{c_char, c_int, c_void, CStr};

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};
use openh264_sys2::{
    SBitrateInfo, ENCODER_OPTION, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE, ENCODER_OPTION_TRACE_CALLBACK,
    ENCODER_OPTION_TRACE_LEVEL, LAYER_NUM, SPATIAL_LAYER_0, SPATIAL_LAYER_ALL, WELS_LOG_ERROR, WELS_LOG_INFO,
    WELS_LOG_WARNING,
};

use super::{Complexity, I420Buffer, VideoEncoder, VideoEncoderConfig};
use crate::error::{Error, Result};

/// OpenH264's hard limit (level 5.2); larger pictures fail at the first encode otherwise.
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;

/// H.264 Constrained Baseline encoder producing Annex-B access units with 4-byte start codes.
pub struct OpenH264Encoder {
    cfg: VideoEncoderConfig,
    encoder: Encoder,
    bitrate_bps: u32,
    /// Pictures handed to the encoder; gives the timestamps its rate control sees.
    frames: u64,
    /// The crate initialises the native encoder lazily, on the first picture; before that,
    /// options cannot be set on it.
    initialised: bool,
    complexity: Complexity,
}

impl OpenH264Encoder {
    pub fn new(cfg: &VideoEncoderConfig) -> Result<Self> {
        let (w, h) = (cfg.width, cfg.height);
        if w == 0 || h == 0 || w % 2 != 0 || h % 2 != 0 {
            return Err(Error::BadDimensions(format!("{w}x{h}: H.264 from I420 needs a non-zero, even size")));
        }
        if w.max(h) > MAX_LONG_SIDE || w.min(h) > MAX_SHORT_SIDE {
            return Err(Error::Unsupported(format!("{w}x{h}: OpenH264 encodes up to 3840x2160")));
        }
        if !(cfg.fps.is_finite() && cfg.fps > 0.0) {
            return Err(Error::InvalidArgument(format!("frame rate {} must be positive", cfg.fps)));
        }
        let bitrate_bps = bps(cfg.bitrate_kbps)?;
        // Medium, as OpenH264's own default: High costs ~1.3x for little at streaming rates.
        let complexity = Complexity::Medium;
        Ok(OpenH264Encoder {
            cfg: cfg.clone(),
            encoder: build(cfg, bitrate_bps, complexity)?,
            bitrate_bps,
            frames: 0,
            initialised: false,
            complexity,
        })
    }

    /// Sets one of the bitrate options on the running encoder.
    fn set_rate_option(&mut self, option: ENCODER_OPTION, layer: LAYER_NUM, bps: u32) -> Result<()> {
        let mut info = SBitrateInfo { iLayer: layer, iBitrate: bps as i32 };
        // SAFETY: the native encoder is initialised (checked by the caller), `info` is the struct
        // both bitrate options expect and outlives the call, and these options only change rate
        // control targets, which the crate's wrapper does not cache or rely on.
        let rc = unsafe { self.encoder.raw_api().set_option(option, (&raw mut info).cast::<c_void>()) };
        if rc != 0 {
            return Err(Error::Encoder(format!("OpenH264 SetOption({option}, {bps} bit/s) failed: {rc}")));
        }
        Ok(())
    }
}

fn bps(kbps: u32) -> Result<u32> {
    match kbps.checked_mul(1000) {
        Some(b) if b > 0 && b <= i32::MAX as u32 => Ok(b),
        _ => Err(Error::InvalidArgument(format!("bitrate {kbps} kbit/s out of range"))),
    }
}

fn build(cfg: &VideoEncoderConfig, bitrate_bps: u32, complexity: Complexity) -> Result<Encoder> {
    let complexity = match complexity {
        Complexity::High => openh264::encoder::Complexity::High,
        Complexity::Medium => openh264::encoder::Complexity::Medium,
        Complexity::Low => openh264::encoder::Complexity::Low,
    };
    let config = EncoderConfig::new()
        .complexity(complexity)
        .usage_type(UsageType::CameraVideoRealTime)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(bitrate_bps))
        // Without the frame rate the rate control cannot turn bit/s into bits per frame.
        .max_frame_rate(FrameRate::from_hz(cfg.fps))
        // A skipped frame leaves a hole in the stream and shifts the IDR cadence; under
        // congestion the pusher drops frames itself, where it can count and report them.
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(cfg.keyframe_interval))
        // Scene cuts would insert extra IDRs; ingest servers and players expect a steady GOP.
        .scene_change_detect(false)
        // The crate always encodes one slice per picture, so extra threads cannot help and only
        // cost memory on small devices.
        .num_threads(1);
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| Error::Encoder(format!("OpenH264 init: {e}")))?;
    // OpenH264 prints to stderr by default; inside an app its messages belong in the log.
    let mut callback: unsafe extern "C" fn(*mut c_void, c_int, *const c_char) = trace;
    // SAFETY: the trace callback is one of the options OpenH264 accepts before initialisation;
    // it copies the function pointer out of `callback`, which outlives the call. The callback
    // itself is sound for any message (see `trace`).
    let rc = unsafe { encoder.raw_api().set_option(ENCODER_OPTION_TRACE_CALLBACK, (&raw mut callback).cast()) };
    if rc != 0 {
        log::debug!("OpenH264: cannot install the trace callback ({rc})");
    }
    // Bug reports need it, and it shows which OpenH264 a call reaches when an app links another
    // one too (tests/c_link.rs checks the static archive keeps ours apart from the system's).
    // SAFETY: a plain getter of the bundled library's version, no arguments.
    let v = unsafe { openh264_sys2::API::WelsGetCodecVersion(&openh264_sys2::DynamicAPI::from_source()) };
    log::info!("OpenH264 {}.{}.{} encoder", v.uMajor, v.uMinor, v.uRevision);
    Ok(encoder)
}

/// Forwards OpenH264's trace messages to the `log` facade.
unsafe extern "C" fn trace(_ctx: *mut c_void, level: c_int, msg: *const c_char) {
    if msg.is_null() {
        return;
    }
    // SAFETY: OpenH264 passes a NUL-terminated string valid for the duration of the call.
    let msg = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    // A panicking logger must not unwind into C++ (that would abort the host app).
    let _ = std::panic::catch_unwind(|| {
        let level = match level {
            l if l <= WELS_LOG_ERROR => log::Level::Error,
            l if l <= WELS_LOG_WARNING => log::Level::Warn,
            l if l <= WELS_LOG_INFO => log::Level::Info,
            _ => log::Level::Debug,
        };
        log::log!(target: "kitepush::openh264", level, "{}", msg.trim_end());
    });
}

/// Borrows a packed I420 picture as OpenH264 input, without copying.
struct Picture<'a>(&'a I420Buffer);

impl YUVSource for Picture<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }
    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width as usize;
        (w, w / 2, w / 2)
    }
    fn y(&self) -> &[u8] {
        self.0.y()
    }
    fn u(&self) -> &[u8] {
        self.0.u()
    }
    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

impl VideoEncoder for OpenH264Encoder {
    fn encode(&mut self, picture: &I420Buffer, out: &mut Vec<u8>) -> Result<Option<bool>> {
        let (w, h) = (self.cfg.width, self.cfg.height);
        if (picture.width, picture.height) != (w, h) {
            // The crate would silently re-initialise on a size change; the pusher's stream
            // (sequence header, metadata) is fixed, so refuse instead.
            return Err(Error::BadDimensions(format!(
                "picture {}x{} differs from the encoder's {w}x{h}",
                picture.width, picture.height
            )));
        }
        if picture.data.len() < I420Buffer::size(w, h) {
            return Err(Error::BadFrameSize(format!(
                "I420 picture has {} bytes, needs {}",
                picture.data.len(),
                I420Buffer::size(w, h)
            )));
        }
        let ts_ms = (self.frames as f64 * 1000.0 / f64::from(self.cfg.fps)) as u64;
        self.frames += 1;
        let first = !self.initialised;
        self.initialised = true;
        let start = out.len();
        let frame_type = {
            let bs = self
                .encoder
                .encode_at(&Picture(picture), Timestamp::from_millis(ts_ms))
                .map_err(|e| Error::Encoder(format!("OpenH264 encode: {e}")))?;
            let frame_type = bs.frame_type();
            if !matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
                for layer in (0..bs.num_layers()).filter_map(|i| bs.layer(i)) {
                    for nal in (0..layer.nal_count()).filter_map(|i| layer.nal_unit(i)) {
                        // OpenH264 writes 4-byte start codes; widen a 3-byte one should a
                        // version ever emit it, so the muxer sees one form.
                        if nal.starts_with(&[0, 0, 1]) {
                            out.push(0);
                        }
                        out.extend_from_slice(nal);
                    }
                }
            }
            frame_type
        };
        if first {
            // The first picture initialised the native encoder, after which the crate sets it
            // to log nothing at all; warnings and errors are worth having in the log.
            let mut level: c_int = WELS_LOG_WARNING;
            // SAFETY: the encoder is initialised; the option reads one int from `level`, which
            // outlives the call.
            unsafe {
                self.encoder.raw_api().set_option(ENCODER_OPTION_TRACE_LEVEL, (&raw mut level).cast());
            }
        }
        if out.len() == start {
            return Ok(None);
        }
        Ok(Some(frame_type == FrameType::IDR))
    }

    fn force_keyframe(&mut self) {
        // Before the first picture there is no native encoder yet, and the first picture is
        // an IDR anyway.
        if self.initialised {
            self.encoder.force_intra_frame();
        }
    }

    fn set_bitrate(&mut self, kbps: u32) -> Result<()> {
        let new = bps(kbps)?;
        if !self.initialised {
            // Nothing encoded yet: start over with the new target rather than poke an
            // encoder the crate has not initialised.
            self.cfg.bitrate_kbps = kbps;
            self.encoder = build(&self.cfg, new, self.complexity)?;
            self.bitrate_bps = new;
            return Ok(());
        }
        // The crate sets the layer's maximum equal to its target, and OpenH264 rejects a target
        // above the maximum: raise the maximum first when going up, lower it last when going down.
        if new > self.bitrate_bps {
            self.set_rate_option(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, new)?;
            self.set_rate_option(ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, new)?;
        } else {
            self.set_rate_option(ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, new)?;
            self.set_rate_option(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, new)?;
        }
        self.cfg.bitrate_kbps = kbps;
        self.bitrate_bps = new;
        Ok(())
    }

    fn reconfigure(&mut self, cfg: &VideoEncoderConfig, complexity: Complexity) -> Result<()> {
        // A new native encoder: its first picture is an IDR with the new SPS/PPS. (The complexity
        // option of a running encoder only takes effect on some of its code paths.)
        let mut fresh = OpenH264Encoder::new(cfg)?;
        fresh.complexity = complexity;
        fresh.encoder = build(cfg, fresh.bitrate_bps, complexity)?;
        *self = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::VideoPattern;
    use std::path::PathBuf;
    use std::process::Command;

    fn config(kbps: u32) -> VideoEncoderConfig {
        VideoEncoderConfig { width: 320, height: 240, fps: 30.0, bitrate_kbps: kbps, keyframe_interval: 30, threads: 0 }
    }

    /// NAL unit types in an Annex-B access unit.
    fn nal_types(au: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        let mut i = 0;
        while i + 3 < au.len() {
            if au[i..i + 3] == [0, 0, 1] {
                types.push(au[i + 3] & 0x1f);
                i += 3;
            } else {
                i += 1;
            }
        }
        types
    }

    /// Every start code in `au` is the 4-byte form.
    fn only_long_start_codes(au: &[u8]) -> bool {
        au.starts_with(&[0, 0, 0, 1]) && (3..au.len()).all(|i| au[i - 3..i] != [0, 0, 1] || (i >= 4 && au[i - 4] == 0))
    }

    struct Encoded {
        aus: Vec<Vec<u8>>,
        idr: Vec<bool>,
    }

    /// Encodes `n` pattern frames; `before(i, enc)` runs before frame `i`.
    fn encode_pattern(enc: &mut OpenH264Encoder, n: u64, mut before: impl FnMut(u64, &mut OpenH264Encoder)) -> Encoded {
        let mut pattern = VideoPattern::new(enc.cfg.width, enc.cfg.height);
        let mut pic = I420Buffer::default();
        let mut out = Encoded { aus: Vec::new(), idr: Vec::new() };
        for i in 0..n {
            before(i, enc);
            pattern.fill_at(i, 0, &mut pic);
            let mut au = Vec::new();
            let idr = enc.encode(&pic, &mut au).unwrap().unwrap_or_else(|| panic!("frame {i} was skipped"));
            assert!(!au.is_empty());
            out.aus.push(au);
            out.idr.push(idr);
        }
        out
    }

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("kitepush-{}-{name}", std::process::id()))
    }

    fn tool(name: &str, args: &[&str]) -> std::process::Output {
        Command::new(name).args(args).output().unwrap_or_else(|e| panic!("{name} must be on PATH for this test: {e}"))
    }

    #[test]
    fn idr_cadence_parameter_sets_rate_and_decodability() {
        let mut enc = OpenH264Encoder::new(&config(500)).unwrap();
        let e = encode_pattern(&mut enc, 90, |_, _| {});

        let idrs: Vec<usize> = (0..90).filter(|&i| e.idr[i]).collect();
        assert_eq!(idrs, [0, 30, 60]);
        for (i, au) in e.aus.iter().enumerate() {
            let types = nal_types(au);
            assert!(only_long_start_codes(au), "frame {i}: 3-byte start code");
            if e.idr[i] {
                for t in [7, 8, 5] {
                    assert!(types.contains(&t), "IDR {i} lacks NAL {t}: {types:?}");
                }
                let pos = |t| types.iter().position(|&x| x == t).unwrap();
                assert!(pos(7) < pos(5) && pos(8) < pos(5), "{types:?}");
            } else {
                assert!(!types.contains(&5) && types.contains(&1), "{i}: {types:?}");
            }
        }

        let total: usize = e.aus.iter().map(Vec::len).sum();
        let target = 500_000 / 8 * 3;
        let ratio = total as f64 / target as f64;
        assert!((0.6..=1.4).contains(&ratio), "{total} bytes vs {target}");

        let path = temp_path("cadence.h264");
        std::fs::write(&path, e.aus.concat()).unwrap();
        let p = path.to_str().unwrap();
        let dec = tool("ffmpeg", &["-v", "error", "-f", "h264", "-i", p, "-f", "null", "-"]);
        assert!(dec.status.success());
        assert_eq!(String::from_utf8_lossy(&dec.stderr), "");
        let probe = tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-f",
                "h264",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=nb_read_frames,width,height,profile",
                "-of",
                "default=noprint_wrappers=1",
                p,
            ],
        );
        let info = String::from_utf8_lossy(&probe.stdout).into_owned();
        std::fs::remove_file(&path).ok();
        assert!(probe.status.success(), "{info}");
        assert!(info.contains("nb_read_frames=90"), "{info}");
        assert!(info.contains("width=320") && info.contains("height=240"), "{info}");
        assert!(info.contains("profile=Constrained Baseline"), "{info}");
    }

    #[test]
    fn forced_keyframe() {
        let mut enc = OpenH264Encoder::new(&config(500)).unwrap();
        // Forcing before the first picture must be harmless.
        enc.force_keyframe();
        let e = encode_pattern(&mut enc, 45, |i, enc| {
            if i == 10 {
                enc.force_keyframe();
            }
        });
        // The forced IDR restarts OpenH264's intra period: the next periodic IDR follows a whole
        // interval later, not at the old cadence.
        let idrs: Vec<usize> = (0..45).filter(|&i| e.idr[i]).collect();
        assert_eq!(idrs, [0, 10, 40]);
        let types = nal_types(&e.aus[10]);
        assert!([7, 8, 5].iter().all(|t| types.contains(t)), "{types:?}");
    }

    #[test]
    fn bitrate_changes_on_the_fly() {
        let mut enc = OpenH264Encoder::new(&config(1500)).unwrap();
        let e = encode_pattern(&mut enc, 240, |i, enc| match i {
            60 => enc.set_bitrate(150).unwrap(),
            150 => enc.set_bitrate(1500).unwrap(),
            _ => {}
        });
        let bytes = |r: std::ops::Range<usize>| -> usize { e.aus[r].iter().map(Vec::len).sum() };
        // Compare whole GOPs after the change settled (IDRs at 0, 30, ... on every window).
        let (high, low, high_again) = (bytes(0..60), bytes(90..150), bytes(180..240));
        assert!(low * 3 < high, "high {high}, low {low}");
        assert!(high_again > low * 3, "low {low}, high again {high_again}");
        assert!(matches!(enc.set_bitrate(0), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn bitrate_set_before_the_first_picture() {
        let mut enc = OpenH264Encoder::new(&config(3000)).unwrap();
        enc.set_bitrate(200).unwrap();
        let e = encode_pattern(&mut enc, 60, |_, _| {});
        let total: usize = e.aus.iter().map(Vec::len).sum();
        let target = 200_000 / 8 * 2;
        assert!(total < target * 14 / 10, "{total} bytes vs {target}");
    }

    #[test]
    fn reconfigure_starts_over_at_an_idr_with_the_new_size() {
        let mut enc = OpenH264Encoder::new(&config(500)).unwrap();
        let before = encode_pattern(&mut enc, 5, |_, _| {});
        let mut small = config(125);
        (small.width, small.height, small.fps, small.keyframe_interval) = (160, 120, 15.0, 15);
        enc.reconfigure(&small, Complexity::Low).unwrap();
        let after = encode_pattern(&mut enc, 20, |_, _| {});
        assert!(after.idr[0] && !after.idr[1] && after.idr[15], "{:?}", after.idr);
        let sps = |au: &[u8]| {
            let at = au.windows(5).position(|w| w[..4] == [0, 0, 0, 1] && w[4] & 0x1f == 7).unwrap();
            au[at..at + 12].to_vec()
        };
        assert_ne!(sps(&before.aus[0]), sps(&after.aus[0]), "a new SPS for the new size");
        // The old size is refused now, as any other size mismatch.
        let r = enc.encode(&I420Buffer::new(320, 240), &mut Vec::new());
        assert!(matches!(r, Err(Error::BadDimensions(_))), "{r:?}");
        // And back up.
        enc.reconfigure(&config(500), Complexity::Medium).unwrap();
        assert!(encode_pattern(&mut enc, 1, |_, _| {}).idr[0]);
    }

    #[test]
    fn rejects_bad_input() {
        let bad = |w, h| {
            let mut c = config(500);
            c.width = w;
            c.height = h;
            OpenH264Encoder::new(&c).err()
        };
        assert!(matches!(bad(321, 240), Some(Error::BadDimensions(_))));
        assert!(matches!(bad(320, 0), Some(Error::BadDimensions(_))));
        assert!(matches!(bad(4096, 2160), Some(Error::Unsupported(_))));
        let mut c = config(500);
        c.fps = 0.0;
        assert!(matches!(OpenH264Encoder::new(&c), Err(Error::InvalidArgument(_))));

        let mut enc = OpenH264Encoder::new(&config(500)).unwrap();
        let mut out = Vec::new();
        let r = enc.encode(&I420Buffer::new(640, 480), &mut out);
        assert!(matches!(r, Err(Error::BadDimensions(_))), "{r:?}");
        let mut short = I420Buffer::new(320, 240);
        short.data.truncate(1000);
        let r = enc.encode(&short, &mut out);
        assert!(matches!(r, Err(Error::BadFrameSize(_))), "{r:?}");
        assert!(out.is_empty());
        // Still usable afterwards.
        assert_eq!(enc.encode(&I420Buffer::new(320, 240), &mut out), Ok(Some(true)));
    }
}
