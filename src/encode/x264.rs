//! x264 backend (GPL-2.0-or-later; feature `x264`), on the system libx264 through `x264-sys`.
//!
//! The `x264` crate is not used: its `Setup::bitrate` leaves rate control in CRF (the bitrate is
//! ignored) and it has no VBV, thread or log settings (DEPENDENCY-NOTES.md). `x264_param_t` is
//! filled here: preset + tune, ABR with VBV (what ingest servers and their CDNs expect), a fixed
//! GOP without scene-cut IDRs, threads, B-frames (off unless asked for), repeated headers so every
//! IDR carries SPS/PPS, and no logging to the host app's stderr.
//!
//! NV12 and NV21 pictures are handed to x264 as they came from the camera (x264 reads both
//! layouts itself), so those frames are never de-interleaved.

use std::ffi::{c_int, CString};
use std::ptr::{self, NonNull};

use x264_sys as sys;

use super::{ChromaLayout, Complexity, Encoded, I420Buffer, VideoEncoder, VideoEncoderConfig};
use crate::encode::options::{X264Options, X264Threading};
use crate::error::{Error, Result};

/// x264's `x264_preset_names` and `x264_tune_names` (static in x264.h, so not in the bindings).
const PRESETS: [&str; 10] =
    ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"];
const TUNES: [&str; 8] = ["film", "animation", "grain", "stillimage", "psnr", "ssim", "fastdecode", "zerolatency"];

/// H.264 encoder on libx264, producing Annex-B access units with 4-byte start codes.
pub struct X264Encoder {
    cfg: VideoEncoderConfig,
    opts: X264Options,
    handle: NonNull<sys::x264_t>,
    force_idr: bool,
    /// Pictures held by x264 for B-frame reordering.
    delayed: usize,
    /// Pictures passed to `encode` without a timestamp.
    untimed: i64,
}

// SAFETY: the x264_t handle is used only through `&mut self` (one thread at a time); x264 keeps no
// thread-affine state (its worker threads are its own).
unsafe impl Send for X264Encoder {}

impl Drop for X264Encoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from x264_encoder_open and is closed once, here.
        unsafe { sys::x264_encoder_close(self.handle.as_ptr()) }
    }
}

/// What the encoder reads: kbit/s for the target, VBV maximum rate and buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rates {
    bitrate: c_int,
    maxrate: c_int,
    bufsize: c_int,
}

fn rates(kbps: u32, opts: &X264Options) -> Result<Rates> {
    if kbps == 0 || kbps > 1_000_000 {
        return Err(Error::InvalidArgument(format!("bitrate {kbps} kbit/s out of range")));
    }
    let maxrate = if opts.vbv_maxrate_kbps == 0 { kbps } else { opts.vbv_maxrate_kbps };
    let bufsize = if opts.vbv_bufsize_kbit == 0 { maxrate } else { opts.vbv_bufsize_kbit };
    if maxrate < kbps || maxrate > 1_000_000 || bufsize > 1_000_000 {
        return Err(Error::InvalidArgument(format!(
            "VBV maximum rate {maxrate} kbit/s (buffer {bufsize} kbit) must be at least the bitrate {kbps} kbit/s \
             and at most 1000000"
        )));
    }
    Ok(Rates { bitrate: kbps as c_int, maxrate: maxrate as c_int, bufsize: bufsize as c_int })
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidArgument(format!("x264 {what} {s:?} contains NUL")))
}

fn x264_csp(layout: ChromaLayout) -> c_int {
    (match layout {
        ChromaLayout::Planar => sys::X264_CSP_I420,
        ChromaLayout::Nv12 => sys::X264_CSP_NV12,
        ChromaLayout::Nv21 => sys::X264_CSP_NV21,
    }) as c_int
}

impl X264Encoder {
    pub fn new(cfg: &VideoEncoderConfig, opts: &X264Options) -> Result<Self> {
        let (w, h) = (cfg.width, cfg.height);
        if w == 0 || h == 0 || w % 2 != 0 || h % 2 != 0 || w > 16384 || h > 16384 {
            return Err(Error::BadDimensions(format!("{w}x{h}: x264 needs an even size up to 16384")));
        }
        if !(cfg.fps.is_finite() && cfg.fps > 0.0 && cfg.fps <= 1000.0) {
            return Err(Error::InvalidArgument(format!("frame rate {} must be in (0, 1000]", cfg.fps)));
        }
        if cfg.keyframe_interval == 0 {
            return Err(Error::InvalidArgument("keyframe interval must be at least 1".into()));
        }
        if opts.bframes > 16 {
            return Err(Error::InvalidArgument(format!("{} B-frames: x264 allows at most 16", opts.bframes)));
        }
        let rates = rates(cfg.bitrate_kbps, opts)?;
        let preset = if opts.preset.is_empty() { "veryfast" } else { &opts.preset };
        let tune = if opts.tune.is_empty() { "zerolatency" } else { &opts.tune };
        // Checked here as well as by x264, which would print its complaint on the app's stderr.
        if !PRESETS.contains(&preset) {
            return Err(Error::InvalidArgument(format!("x264 preset {preset:?} is not one of {PRESETS:?}")));
        }
        if let Some(t) = tune.split([',', '+']).find(|t| !TUNES.contains(t)) {
            return Err(Error::InvalidArgument(format!("x264 tune {t:?} is not one of {TUNES:?}")));
        }
        let (preset_c, tune_c) = (c_string("preset", preset)?, c_string("tune", tune)?);
        let profile_c = match opts.profile.as_str() {
            "" => None,
            "baseline" if opts.bframes > 0 => {
                return Err(Error::InvalidArgument("x264 profile baseline has no B-frames".into()))
            }
            p @ ("baseline" | "main" | "high") => Some(c_string("profile", p)?),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "x264 profile {other:?}: only baseline, main and high (8-bit 4:2:0) are streamable"
                )))
            }
        };

        let mut param = std::mem::MaybeUninit::<sys::x264_param_t>::zeroed();
        // SAFETY: x264_param_default_preset fills the whole struct (it starts with
        // x264_param_default) before reading it; both strings are NUL-terminated and outlive the call.
        let rc = unsafe { sys::x264_param_default_preset(param.as_mut_ptr(), preset_c.as_ptr(), tune_c.as_ptr()) };
        if rc < 0 {
            return Err(Error::InvalidArgument(format!("x264 does not know preset {preset:?} or tune {tune:?}")));
        }
        // SAFETY: initialised by x264_param_default_preset above.
        let mut p = unsafe { param.assume_init() };
        // The host app's stderr is not ours to write to; failures come back as return codes.
        p.i_log_level = sys::X264_LOG_NONE;
        p.i_width = w as c_int;
        p.i_height = h as c_int;
        p.i_csp = sys::X264_CSP_I420 as c_int;
        // Frame rate as a fraction with millisecond precision (29.97 → 29970/1000).
        p.i_fps_num = (f64::from(cfg.fps) * 1000.0).round() as u32;
        p.i_fps_den = 1000;
        // Timestamps in, and out, are milliseconds; rate control uses the nominal frame rate, so
        // jittery capture times do not disturb it.
        p.i_timebase_num = 1;
        p.i_timebase_den = 1000;
        p.b_vfr_input = 0;
        p.rc.i_rc_method = sys::X264_RC_ABR as c_int;
        p.rc.i_bitrate = rates.bitrate;
        p.rc.i_vbv_max_bitrate = rates.maxrate;
        p.rc.i_vbv_buffer_size = rates.bufsize;
        // A steady GOP: ingest servers and HLS packagers cut segments at IDRs.
        p.i_keyint_max = cfg.keyframe_interval as c_int;
        p.i_keyint_min = cfg.keyframe_interval as c_int;
        p.i_scenecut_threshold = 0;
        p.b_intra_refresh = 0;
        p.b_open_gop = 0;
        p.i_bframe = opts.bframes as c_int;
        if opts.bframes == 0 {
            p.i_bframe_pyramid = 0;
        }
        p.i_threads = cfg.threads as c_int;
        match opts.threading {
            X264Threading::KP_X264_THREADING_DEFAULT => {}
            X264Threading::KP_X264_THREADING_FRAME => p.b_sliced_threads = 0,
            X264Threading::KP_X264_THREADING_SLICED => p.b_sliced_threads = 1,
        }
        // SPS/PPS before every IDR, so a viewer (or a reconnect) can start at any keyframe.
        p.b_repeat_headers = 1;
        p.b_annexb = 1;
        if let Some(profile) = &profile_c {
            // SAFETY: `p` is a valid parameter set, `profile` a NUL-terminated string.
            if unsafe { sys::x264_param_apply_profile(&mut p, profile.as_ptr()) } < 0 {
                return Err(Error::InvalidArgument(format!("x264 rejected profile {:?}", opts.profile)));
            }
        }
        // SAFETY: `p` is a complete parameter set; x264 copies it.
        let handle = unsafe { sys::x264_encoder_open(&mut p) };
        let handle = NonNull::new(handle).ok_or_else(|| {
            Error::Encoder(format!(
                "x264_encoder_open failed for {w}x{h} at {} fps, {} kbit/s, preset {preset}, tune {tune}",
                cfg.fps, cfg.bitrate_kbps
            ))
        })?;
        Ok(X264Encoder { cfg: cfg.clone(), opts: opts.clone(), handle, force_idr: false, delayed: 0, untimed: 0 })
    }

    /// Copies the NALs of one encoder call into `out`, every start code in the 4-byte form.
    ///
    /// # Safety
    /// `nals` points to `n` NAL descriptors returned by the last x264 call on this encoder.
    unsafe fn append_nals(nals: *const sys::x264_nal_t, n: c_int, out: &mut Vec<u8>) {
        if nals.is_null() || n <= 0 {
            return;
        }
        // SAFETY: per the contract, `nals[..n]` are valid until the next x264 call.
        let nals = unsafe { std::slice::from_raw_parts(nals, n as usize) };
        for nal in nals {
            if nal.p_payload.is_null() || nal.i_payload <= 0 {
                continue;
            }
            // SAFETY: x264 documents p_payload[..i_payload] as the NAL with its start code.
            let bytes = unsafe { std::slice::from_raw_parts(nal.p_payload, nal.i_payload as usize) };
            // x264 mixes 4-byte (parameter sets) and 3-byte (SEI, slices) start codes; one form
            // keeps the muxer and anything scanning the stream simple.
            if bytes.starts_with(&[0, 0, 1]) {
                out.push(0);
            }
            out.extend_from_slice(bytes);
        }
    }

    /// Runs one x264_encoder_encode call (`pic` None = drain).
    fn call(&mut self, pic: Option<&mut sys::x264_picture_t>, out: &mut Vec<u8>) -> Result<Option<Encoded>> {
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut n: c_int = 0;
        let mut pic_out = std::mem::MaybeUninit::<sys::x264_picture_t>::zeroed();
        let pic_in = pic.map_or(ptr::null_mut(), |p| p as *mut _);
        // SAFETY: the handle is open; `pic_in` is NULL or a picture whose planes stay valid for the
        // call; the output pointers are valid for writes.
        let size =
            unsafe { sys::x264_encoder_encode(self.handle.as_ptr(), &mut nals, &mut n, pic_in, pic_out.as_mut_ptr()) };
        // SAFETY: as above.
        self.delayed = unsafe { sys::x264_encoder_delayed_frames(self.handle.as_ptr()) }.max(0) as usize;
        if size < 0 {
            return Err(Error::Encoder(format!("x264_encoder_encode failed ({size})")));
        }
        if size == 0 {
            return Ok(None);
        }
        // SAFETY: x264 filled pic_out when it returned a frame.
        let pic_out = unsafe { pic_out.assume_init() };
        // SAFETY: nals/n are from the call just made.
        unsafe { Self::append_nals(nals, n, out) };
        Ok(Some(Encoded { idr: pic_out.b_keyframe != 0, pts_ms: pic_out.i_pts, dts_ms: pic_out.i_dts }))
    }
}

impl VideoEncoder for X264Encoder {
    fn encode(&mut self, picture: &I420Buffer, out: &mut Vec<u8>) -> Result<Option<bool>> {
        // Without a caller timestamp the picture index stands in (x264 only needs it increasing).
        Ok(self.encode_timed(picture, -1, out)?.map(|e| e.idr))
    }

    fn encode_timed(&mut self, picture: &I420Buffer, ts_ms: i64, out: &mut Vec<u8>) -> Result<Option<Encoded>> {
        let (w, h) = (self.cfg.width, self.cfg.height);
        if (picture.width, picture.height) != (w, h) {
            return Err(Error::BadDimensions(format!(
                "picture {}x{} differs from the encoder's {w}x{h}",
                picture.width, picture.height
            )));
        }
        let need = I420Buffer::size(w, h);
        if picture.data.len() < need {
            return Err(Error::BadFrameSize(format!("picture has {} bytes, needs {need}", picture.data.len())));
        }
        let mut pic = std::mem::MaybeUninit::<sys::x264_picture_t>::zeroed();
        // SAFETY: x264_picture_init initialises every field of the struct.
        unsafe { sys::x264_picture_init(pic.as_mut_ptr()) };
        // SAFETY: initialised just above.
        let mut pic = unsafe { pic.assume_init() };
        let (wu, hu) = (w as usize, h as usize);
        let base = picture.data.as_ptr().cast_mut();
        pic.img.i_csp = x264_csp(picture.chroma);
        // x264 only reads the input planes; the pointers are *mut in its API.
        // SAFETY (offsets): the buffer holds I420Buffer::size(w, h) bytes, checked above.
        match picture.chroma {
            ChromaLayout::Planar => {
                pic.img.i_plane = 3;
                pic.img.i_stride = [w as c_int, (w / 2) as c_int, (w / 2) as c_int, 0];
                pic.img.plane =
                    unsafe { [base, base.add(wu * hu), base.add(wu * hu + (wu / 2) * (hu / 2)), ptr::null_mut()] };
            }
            ChromaLayout::Nv12 | ChromaLayout::Nv21 => {
                pic.img.i_plane = 2;
                pic.img.i_stride = [w as c_int, w as c_int, 0, 0];
                pic.img.plane = unsafe { [base, base.add(wu * hu), ptr::null_mut(), ptr::null_mut()] };
            }
        }
        pic.i_pts = if ts_ms >= 0 { ts_ms } else { self.untimed_pts() };
        if std::mem::take(&mut self.force_idr) {
            pic.i_type = sys::X264_TYPE_IDR as c_int;
        }
        self.call(Some(&mut pic), out)
    }

    fn force_keyframe(&mut self) {
        self.force_idr = true;
    }

    fn set_bitrate(&mut self, kbps: u32) -> Result<()> {
        // An explicit VBV rate keeps its ratio to the bitrate.
        let mut opts = self.opts.clone();
        let scale = |v: u32| (u64::from(v) * u64::from(kbps) / u64::from(self.cfg.bitrate_kbps.max(1))) as u32;
        opts.vbv_maxrate_kbps = scale(opts.vbv_maxrate_kbps);
        opts.vbv_bufsize_kbit = scale(opts.vbv_bufsize_kbit);
        let r = rates(kbps, &opts)?;
        let mut p = std::mem::MaybeUninit::<sys::x264_param_t>::zeroed();
        // SAFETY: the handle is open; x264_encoder_parameters fills the whole struct.
        unsafe { sys::x264_encoder_parameters(self.handle.as_ptr(), p.as_mut_ptr()) };
        // SAFETY: filled above.
        let mut p = unsafe { p.assume_init() };
        p.rc.i_bitrate = r.bitrate;
        p.rc.i_vbv_max_bitrate = r.maxrate;
        p.rc.i_vbv_buffer_size = r.bufsize;
        // SAFETY: `p` is the encoder's own parameter set with the rates changed. x264 applies rate
        // changes from reconfig when VBV was on at open, which it always is here.
        let rc = unsafe { sys::x264_encoder_reconfig(self.handle.as_ptr(), &mut p) };
        if rc < 0 {
            return Err(Error::Encoder(format!("x264_encoder_reconfig to {kbps} kbit/s failed ({rc})")));
        }
        self.cfg.bitrate_kbps = kbps;
        self.opts = opts;
        Ok(())
    }

    fn takes_semi_planar(&self) -> bool {
        true
    }

    fn delayed_frames(&self) -> usize {
        self.delayed
    }

    fn flush(&mut self, out: &mut Vec<u8>) -> Result<Option<Encoded>> {
        if self.delayed == 0 {
            return Ok(None);
        }
        self.call(None, out)
    }

    fn reconfigure(&mut self, cfg: &VideoEncoderConfig, complexity: Complexity) -> Result<()> {
        // High is the app's preset; the two cheaper rungs are the two fastest presets, unless
        // the app's is already at least as fast. x264_encoder_reconfig cannot change the size.
        let mut opts = self.opts.clone();
        let preset = if opts.preset.is_empty() { "veryfast" } else { opts.preset.as_str() };
        let rank = |p: &str| PRESETS.iter().position(|x| *x == p).unwrap_or(PRESETS.len());
        let cheaper = match complexity {
            Complexity::High => preset,
            Complexity::Medium => "superfast",
            Complexity::Low => "ultrafast",
        };
        opts.preset = PRESETS[rank(preset).min(rank(cheaper)).min(PRESETS.len() - 1)].to_owned();
        let mut fresh = X264Encoder::new(cfg, &opts)?;
        // The app's preset stays the one a later step up returns to.
        fresh.opts.preset = self.opts.preset.clone();
        *self = fresh;
        Ok(())
    }
}

impl X264Encoder {
    /// A stand-in timestamp for [`VideoEncoder::encode`] callers (no timestamps): x264 needs
    /// increasing input times to order B-frames.
    fn untimed_pts(&mut self) -> i64 {
        let pts = (self.untimed as f64 * 1000.0 / f64::from(self.cfg.fps)).round() as i64;
        self.untimed += 1;
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::VideoPattern;
    use std::process::Command;

    fn config(kbps: u32) -> VideoEncoderConfig {
        VideoEncoderConfig { width: 320, height: 240, fps: 30.0, bitrate_kbps: kbps, keyframe_interval: 30, threads: 1 }
    }

    fn nal_types(au: &[u8]) -> Vec<u8> {
        (3..au.len()).filter(|&i| au[i - 3..i] == [0, 0, 1]).map(|i| au[i] & 0x1f).collect()
    }

    fn only_long_start_codes(au: &[u8]) -> bool {
        au.starts_with(&[0, 0, 0, 1]) && (3..au.len()).all(|i| au[i - 3..i] != [0, 0, 1] || (i >= 4 && au[i - 4] == 0))
    }

    /// The pattern's picture `i` in `layout` (the semi-planar ones interleaved from the I420 one).
    fn picture(pattern: &mut VideoPattern, i: u64, layout: ChromaLayout) -> I420Buffer {
        let mut pic = I420Buffer::default();
        pattern.fill_at(i, 0, &mut pic);
        if layout == ChromaLayout::Planar {
            return pic;
        }
        let (u, v) = (pic.u().to_vec(), pic.v().to_vec());
        let luma = (pic.width * pic.height) as usize;
        for (k, (&u, &v)) in u.iter().zip(&v).enumerate() {
            let (a, b) = if layout == ChromaLayout::Nv12 { (u, v) } else { (v, u) };
            pic.data[luma + 2 * k] = a;
            pic.data[luma + 2 * k + 1] = b;
        }
        pic.chroma = layout;
        pic
    }

    struct Out {
        aus: Vec<Vec<u8>>,
        timing: Vec<Encoded>,
    }

    fn encode(
        enc: &mut X264Encoder,
        n: u64,
        layout: ChromaLayout,
        mut before: impl FnMut(u64, &mut X264Encoder),
    ) -> Out {
        let mut pattern = VideoPattern::new(enc.cfg.width, enc.cfg.height);
        let mut out = Out { aus: Vec::new(), timing: Vec::new() };
        let push = |out: &mut Out, au: Vec<u8>, t: Encoded| {
            assert!(!au.is_empty());
            out.aus.push(au);
            out.timing.push(t);
        };
        for i in 0..n {
            before(i, enc);
            let pic = picture(&mut pattern, i, layout);
            let mut au = Vec::new();
            let ts = (i as f64 * 1000.0 / 30.0).round() as i64;
            match enc.encode_timed(&pic, ts, &mut au).unwrap() {
                Some(t) => push(&mut out, au, t),
                None => assert!(enc.delayed_frames() > 0, "frame {i} neither encoded nor held"),
            }
        }
        loop {
            let mut au = Vec::new();
            match enc.flush(&mut au).unwrap() {
                Some(t) => push(&mut out, au, t),
                None => break,
            }
        }
        out
    }

    fn ffprobe_h264(bytes: &[u8], name: &str) -> String {
        let path = std::env::temp_dir().join(format!("kitepush-{}-{name}.h264", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let p = path.to_str().unwrap();
        let dec = Command::new("ffmpeg").args(["-v", "error", "-f", "h264", "-i", p, "-f", "null", "-"]).output();
        let dec = dec.expect("ffmpeg must be on PATH for this test");
        assert!(dec.status.success());
        assert_eq!(String::from_utf8_lossy(&dec.stderr), "", "decode errors");
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-f", "h264", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames,width,height,profile,has_b_frames"])
            .args(["-of", "default=noprint_wrappers=1", p])
            .output()
            .expect("ffprobe must be on PATH for this test");
        std::fs::remove_file(&path).ok();
        assert!(probe.status.success());
        String::from_utf8_lossy(&probe.stdout).into_owned()
    }

    #[test]
    fn steady_gop_parameter_sets_rate_and_decodability() {
        let mut enc = X264Encoder::new(&config(500), &X264Options::default()).unwrap();
        let e = encode(&mut enc, 90, ChromaLayout::Planar, |_, _| {});
        assert_eq!(e.aus.len(), 90);
        let idrs: Vec<usize> = (0..90).filter(|&i| e.timing[i].idr).collect();
        assert_eq!(idrs, [0, 30, 60]);
        for (i, au) in e.aus.iter().enumerate() {
            assert!(only_long_start_codes(au), "frame {i}: 3-byte start code");
            let types = nal_types(au);
            if e.timing[i].idr {
                assert!([7, 8, 5].iter().all(|t| types.contains(t)), "IDR {i}: {types:?}");
            } else {
                assert!(!types.contains(&5) && types.contains(&1), "{i}: {types:?}");
            }
            // No B-frames by default: output in input order, decode time = presentation time.
            assert_eq!(e.timing[i].pts_ms, (i as f64 * 1000.0 / 30.0).round() as i64);
            assert_eq!(e.timing[i].dts_ms, e.timing[i].pts_ms);
        }
        let total: usize = e.aus.iter().map(Vec::len).sum();
        let target = 500_000 / 8 * 3;
        let ratio = total as f64 / target as f64;
        assert!((0.6..=1.4).contains(&ratio), "{total} bytes vs {target}: ABR+VBV not in effect");
        let info = ffprobe_h264(&e.aus.concat(), "gop");
        assert!(
            info.contains("nb_read_frames=90") && info.contains("width=320") && info.contains("height=240"),
            "{info}"
        );
        assert!(info.contains("profile=High"), "{info}");
        assert!(info.contains("has_b_frames=0"), "{info}");
    }

    #[test]
    fn nv12_and_nv21_go_in_without_conversion_and_encode_like_i420() {
        let streams: Vec<Vec<u8>> = [ChromaLayout::Planar, ChromaLayout::Nv12, ChromaLayout::Nv21]
            .into_iter()
            .map(|layout| {
                let mut enc = X264Encoder::new(&config(500), &X264Options::default()).unwrap();
                assert!(enc.takes_semi_planar());
                encode(&mut enc, 20, layout, |_, _| {}).aus.concat()
            })
            .collect();
        // One thread: x264 is deterministic, so the same picture in any layout gives the same bits.
        // A chroma swap (NV21 read as NV12) would change them.
        assert!(streams[0] == streams[1], "NV12 differs from I420");
        assert!(streams[0] == streams[2], "NV21 differs from I420");
    }

    #[test]
    fn b_frames_reorder_with_composition_times() {
        let opts = X264Options { bframes: 2, ..X264Options::default() };
        let mut enc = X264Encoder::new(&config(800), &opts).unwrap();
        let e = encode(&mut enc, 60, ChromaLayout::Planar, |_, _| {});
        assert_eq!(e.aus.len(), 60, "flush drains every held picture");
        let mut pts: Vec<i64> = e.timing.iter().map(|t| t.pts_ms).collect();
        assert!(pts.windows(2).any(|w| w[1] < w[0]), "no reordering: {pts:?}");
        assert!(e.timing.iter().all(|t| t.dts_ms <= t.pts_ms), "{:?}", e.timing);
        assert!(e.timing.windows(2).all(|w| w[1].dts_ms > w[0].dts_ms), "decode times increase");
        pts.sort_unstable();
        let expected: Vec<i64> = (0..60).map(|i| (i as f64 * 1000.0 / 30.0).round() as i64).collect();
        assert_eq!(pts, expected, "every input time comes out once");
        let info = ffprobe_h264(&e.aus.concat(), "bframes");
        assert!(info.contains("nb_read_frames=60") && !info.contains("has_b_frames=0"), "{info}");
    }

    #[test]
    fn reconfigure_changes_size_and_preset_and_keeps_the_apps() {
        let opts = X264Options { preset: "faster".into(), ..X264Options::default() };
        let mut enc = X264Encoder::new(&config(800), &opts).unwrap();
        encode(&mut enc, 5, ChromaLayout::Planar, |_, _| {});
        let mut small = config(200);
        (small.width, small.height, small.fps, small.keyframe_interval) = (160, 120, 15.0, 15);
        enc.reconfigure(&small, Complexity::Low).unwrap();
        let e = encode(&mut enc, 20, ChromaLayout::Planar, |_, _| {});
        assert!(e.timing[0].idr && e.timing[15].idr && !e.timing[1].idr);
        assert!(nal_types(&e.aus[0]).contains(&7), "SPS with the first picture at the new size");
        let probed = ffprobe_h264(&e.aus.concat(), "reconf");
        assert!(probed.contains("160") && probed.contains("120"), "{probed}");
        // The app's preset is kept for the way back up.
        assert_eq!(enc.opts.preset, "faster");
        enc.reconfigure(&config(800), Complexity::High).unwrap();
        assert!(encode(&mut enc, 1, ChromaLayout::Planar, |_, _| {}).timing[0].idr);
    }

    #[test]
    fn forced_keyframe_and_live_bitrate() {
        let mut enc = X264Encoder::new(&config(1500), &X264Options::default()).unwrap();
        let e = encode(&mut enc, 240, ChromaLayout::Planar, |i, enc| match i {
            10 => enc.force_keyframe(),
            60 => enc.set_bitrate(150).unwrap(),
            150 => enc.set_bitrate(1500).unwrap(),
            _ => {}
        });
        let idrs: Vec<usize> = (0..240).filter(|&i| e.timing[i].idr).collect();
        assert_eq!(&idrs[..3], [0, 10, 40], "forced IDR at 10, GOP restarts from it");
        let bytes = |r: std::ops::Range<usize>| -> usize { e.aus[r].iter().map(Vec::len).sum() };
        let (high, low, high_again) = (bytes(0..60), bytes(90..150), bytes(180..240));
        assert!(low * 3 < high, "high {high}, low {low}");
        assert!(high_again > low * 3, "low {low}, high again {high_again}");
        assert!(matches!(enc.set_bitrate(0), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn rejects_bad_settings_and_input() {
        let bad = |opts: X264Options| X264Encoder::new(&config(500), &opts).err();
        let o = X264Options::default;
        assert!(matches!(bad(X264Options { preset: "warp".into(), ..o() }), Some(Error::InvalidArgument(_))));
        assert!(matches!(bad(X264Options { tune: "nonsense".into(), ..o() }), Some(Error::InvalidArgument(_))));
        assert!(matches!(bad(X264Options { profile: "high444".into(), ..o() }), Some(Error::InvalidArgument(_))));
        let baseline_b = X264Options { profile: "baseline".into(), bframes: 1, ..o() };
        assert!(matches!(bad(baseline_b), Some(Error::InvalidArgument(_))));
        assert!(matches!(bad(X264Options { vbv_maxrate_kbps: 100, ..o() }), Some(Error::InvalidArgument(_))));
        let mut c = config(500);
        c.width = 321;
        assert!(matches!(X264Encoder::new(&c, &o()), Err(Error::BadDimensions(_))));

        let baseline = X264Options { profile: "baseline".into(), preset: "ultrafast".into(), ..o() };
        let mut enc = X264Encoder::new(&config(500), &baseline).unwrap();
        let mut out = Vec::new();
        assert!(matches!(enc.encode(&I420Buffer::new(640, 480), &mut out), Err(Error::BadDimensions(_))));
        let mut short = I420Buffer::new(320, 240);
        short.data.truncate(1000);
        assert!(matches!(enc.encode(&short, &mut out), Err(Error::BadFrameSize(_))));
        assert!(out.is_empty());
        assert_eq!(enc.encode(&I420Buffer::new(320, 240), &mut out), Ok(Some(true)));
        let info = ffprobe_h264(&out, "baseline");
        assert!(info.contains("profile=Constrained Baseline"), "{info}");
    }
}
