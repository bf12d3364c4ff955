//! `kp_config`: what the app sets before creating a pusher.

use super::error::null_arg;
use super::event::kp_event_cb;
use super::{kp_audio_encoder, kp_video_encoder};
use crate::pusher::{AudioConfig, AudioEncoderKind, PusherConfig, VideoConfig, VideoEncoderKind};
use crate::Error;
use std::ffi::{c_char, c_void, CStr};
use std::time::Duration;

/// Pusher settings (opaque). Created by kp_config_new, owned by the app, released with
/// kp_config_free. kp_pusher_new copies it, so it may be changed or freed right after. Not
/// thread-safe: use one kp_config from one thread at a time.
#[allow(non_camel_case_types)]
pub struct kp_config {
    pub(crate) inner: PusherConfig,
    pub(crate) event_cb: kp_event_cb,
    pub(crate) event_userdata: *mut c_void,
}

/// Borrows the config behind a C pointer, or the INVALID_ARGUMENT error naming the function.
///
/// # Safety
/// `cfg` is NULL or a live pointer from kp_config_new not used by another thread during the call.
unsafe fn config_mut<'a>(cfg: *mut kp_config, function: &str) -> Result<&'a mut kp_config, Error> {
    // SAFETY: the caller guarantees a non-NULL `cfg` came from kp_config_new and is not aliased.
    unsafe { cfg.as_mut() }.ok_or_else(|| null_arg(function, "cfg"))
}

fn video_mut(cfg: &mut kp_config) -> &mut VideoConfig {
    // Any video setter turns video on again after kp_config_disable_video.
    cfg.inner.video.get_or_insert_with(VideoConfig::default)
}

fn audio_mut(cfg: &mut kp_config) -> &mut AudioConfig {
    cfg.inner.audio.get_or_insert_with(AudioConfig::default)
}

fn or_default<T: PartialEq + Default>(value: T, default: T) -> T {
    if value == T::default() {
        default
    } else {
        value
    }
}

pub(crate) fn video_encoder_from_raw(raw: kp_video_encoder) -> Result<VideoEncoderKind, Error> {
    use VideoEncoderKind::*;
    [KP_ENCODER_OPENH264, KP_ENCODER_X264, KP_ENCODER_PASSTHROUGH]
        .into_iter()
        .find(|k| *k as kp_video_encoder == raw)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown video encoder {raw}")))
}

pub(crate) fn audio_encoder_from_raw(raw: kp_audio_encoder) -> Result<AudioEncoderKind, Error> {
    use AudioEncoderKind::*;
    [KP_AUDIO_ENCODER_FDK_AAC, KP_AUDIO_ENCODER_PASSTHROUGH]
        .into_iter()
        .find(|k| *k as kp_audio_encoder == raw)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown audio encoder {raw}")))
}

ffi_fn! {
    /// Creates a config with the defaults: video 1280x720 at 30 fps, 2000 kbit/s, OpenH264, keyframe
    /// every 2 s; audio AAC-LC 44100 Hz stereo 128 kbit/s; connect and write timeouts 10 s; no URL and
    /// no event callback. Returns NULL only if memory runs out (or on an internal error). The caller
    /// owns the result and frees it with kp_config_free. Thread-safe, non-blocking.
    fn kp_config_new() -> *mut kp_config = std::ptr::null_mut(); {
        Box::into_raw(Box::new(kp_config {
            inner: PusherConfig::default(),
            event_cb: None,
            event_userdata: std::ptr::null_mut(),
        }))
    }
}

ffi_fn! {
    /// Frees a config from kp_config_new. NULL is a no-op. Pushers created from it are not affected.
    /// Must not race with other calls on the same config. Non-blocking.
    fn kp_config_free(cfg: *mut kp_config) {
        if !cfg.is_null() {
            // SAFETY: a non-NULL `cfg` came from Box::into_raw in kp_config_new and, per the contract,
            // is freed once and not used afterwards.
            drop(unsafe { Box::from_raw(cfg) });
        }
    }
}

ffi_fn! {
    /// Sets the ingest URL, `rtmp[s]://host[:port]/app[/instance]/stream-key[?query]`. The string is
    /// copied. It is checked by kp_pusher_new (KP_ERR_INVALID_URL there), not here.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg or url is NULL or url is not UTF-8.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_url(cfg: *mut kp_config, url: *const c_char) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_url") }?;
        if url.is_null() {
            return Err(null_arg("kp_config_set_url", "url"));
        }
        // SAFETY: url is non-NULL and, per the contract, a NUL-terminated string.
        let url = unsafe { CStr::from_ptr(url) }
            .to_str()
            .map_err(|_| Error::InvalidArgument("kp_config_set_url: url is not valid UTF-8".into()))?;
        cfg.inner.url = url.to_owned();
        Ok(())
    }
}

ffi_fn! {
    /// Enables video and sets its format. 0 (or 0.0 for fps) keeps the default for that field:
    /// 1280x720, 30 fps, 2000 kbit/s, keyframe interval = 2 s of frames. Width and height must be even
    /// for the software encoders. Values are checked by kp_pusher_new (KP_ERR_BAD_DIMENSIONS,
    /// KP_ERR_INVALID_ARGUMENT). Errors here: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_video(
        cfg: *mut kp_config,
        width: u32,
        height: u32,
        fps: f64,
        bitrate_kbps: u32,
        keyframe_interval: u32,
    ) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_video") }?;
        let d = VideoConfig::default();
        let v = video_mut(cfg);
        v.width = or_default(width, d.width);
        v.height = or_default(height, d.height);
        v.fps = if fps == 0.0 { d.fps } else { fps as f32 };
        v.bitrate_kbps = or_default(bitrate_kbps, d.bitrate_kbps);
        v.keyframe_interval = keyframe_interval;
        Ok(())
    }
}

ffi_fn! {
    /// Enables video and chooses where it comes from: KP_ENCODER_OPENH264 (push raw frames),
    /// KP_ENCODER_X264 (not in this build: kp_pusher_new fails with KP_ERR_UNSUPPORTED) or
    /// KP_ENCODER_PASSTHROUGH (push H.264 access units with kp_pusher_push_h264).
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL or the value is unknown.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_video_encoder(cfg: *mut kp_config, encoder: kp_video_encoder) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_video_encoder") }?;
        video_mut(cfg).encoder = video_encoder_from_raw(encoder)?;
        Ok(())
    }
}

ffi_fn! {
    /// Enables video and sets the number of encoder threads; 0 lets the encoder choose.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL (too many threads is reported by kp_pusher_new).
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_video_threads(cfg: *mut kp_config, threads: u32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_video_threads") }?;
        video_mut(cfg).threads = threads;
        Ok(())
    }
}

ffi_fn! {
    /// Publishes without a video track; any kp_config_set_video* call enables it again.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_disable_video(cfg: *mut kp_config) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_disable_video") }?;
        cfg.inner.video = None;
        Ok(())
    }
}

ffi_fn! {
    /// Enables audio and sets its format. 0 keeps the default for that field: 44100 Hz, 2 channels,
    /// 128 kbit/s. kp_pusher_push_audio takes interleaved samples with this channel count. Values are
    /// checked by kp_pusher_new (KP_ERR_INVALID_ARGUMENT). Errors here: KP_ERR_INVALID_ARGUMENT if cfg
    /// is NULL. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_audio(
        cfg: *mut kp_config,
        sample_rate: u32,
        channels: u32,
        bitrate_kbps: u32,
    ) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_audio") }?;
        let d = AudioConfig::default();
        let a = audio_mut(cfg);
        a.sample_rate = or_default(sample_rate, d.sample_rate);
        a.channels = or_default(channels, d.channels);
        a.bitrate_kbps = or_default(bitrate_kbps, d.bitrate_kbps);
        Ok(())
    }
}

ffi_fn! {
    /// Enables audio and chooses where it comes from: KP_AUDIO_ENCODER_FDK_AAC (push PCM with
    /// kp_pusher_push_audio) or KP_AUDIO_ENCODER_PASSTHROUGH (push AAC with kp_pusher_push_aac).
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL or the value is unknown.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_audio_encoder(cfg: *mut kp_config, encoder: kp_audio_encoder) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_audio_encoder") }?;
        audio_mut(cfg).encoder = audio_encoder_from_raw(encoder)?;
        Ok(())
    }
}

ffi_fn! {
    /// Publishes without an audio track; any kp_config_set_audio* call enables it again.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_disable_audio(cfg: *mut kp_config) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_disable_audio") }?;
        cfg.inner.audio = None;
        Ok(())
    }
}

ffi_fn! {
    /// Sets the connect deadline (TCP connect + RTMP handshake + publish; 0 = default 10000 ms) and
    /// the stall timeout (no write progress and no server acknowledgement this long: STALLED event,
    /// the connection is dropped and reconnected; 0 = default 5000 ms), in milliseconds.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_timeouts(cfg: *mut kp_config, connect_ms: u32, stall_ms: u32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_timeouts") }?;
        let d = PusherConfig::default();
        cfg.inner.connect_timeout = match connect_ms {
            0 => d.connect_timeout,
            ms => Duration::from_millis(ms.into()),
        };
        cfg.inner.stall_timeout = match stall_ms {
            0 => d.stall_timeout,
            ms => Duration::from_millis(ms.into()),
        };
        Ok(())
    }
}

ffi_fn! {
    /// Sets the function that receives the pusher's events (NULL: no events). It is called on the
    /// SDK's callback thread, one event at a time, never re-entrantly and never while the SDK holds an
    /// internal lock; the kp_event and its message are valid only during the call. `userdata` is
    /// passed back untouched: the app guarantees it may be used from that thread, and keeps it valid
    /// until kp_pusher_free has returned for every pusher created with this callback. The callback may
    /// call kp_pusher_get_state, kp_pusher_get_stats and kp_pusher_push_*, but not kp_pusher_stop or
    /// kp_pusher_free (they wait for the callback thread). Errors: KP_ERR_INVALID_ARGUMENT if cfg is
    /// NULL. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_event_callback(
        cfg: *mut kp_config,
        cb: kp_event_cb,
        userdata: *mut c_void,
    ) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_event_callback") }?;
        cfg.event_cb = cb;
        cfg.event_userdata = userdata;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResultCode::*;

    const INVALID: i32 = KP_ERR_INVALID_ARGUMENT as i32;

    #[test]
    fn null_config_is_invalid_argument_everywhere() {
        let null = std::ptr::null_mut();
        // SAFETY: NULL is an allowed input for every function here.
        unsafe {
            assert_eq!(kp_config_set_url(null, c"rtmp://h/a/k".as_ptr()), INVALID);
            assert_eq!(kp_config_set_video(null, 2, 2, 1.0, 1, 1), INVALID);
            assert_eq!(kp_config_set_video_encoder(null, 0), INVALID);
            assert_eq!(kp_config_set_video_threads(null, 0), INVALID);
            assert_eq!(kp_config_disable_video(null), INVALID);
            assert_eq!(kp_config_set_audio(null, 0, 0, 0), INVALID);
            assert_eq!(kp_config_set_audio_encoder(null, 0), INVALID);
            assert_eq!(kp_config_disable_audio(null), INVALID);
            assert_eq!(kp_config_set_timeouts(null, 0, 0), INVALID);
            assert_eq!(kp_config_set_event_callback(null, None, null.cast()), INVALID);
            kp_config_free(null);
        }
    }

    #[test]
    fn setters_copy_values_and_zero_means_default() {
        // SAFETY: cfg comes from kp_config_new and is freed once at the end.
        unsafe {
            let cfg = kp_config_new();
            assert!(!cfg.is_null());
            assert_eq!(kp_config_set_url(cfg, std::ptr::null()), INVALID);
            let bad_utf8 = [0x72u8, 0xff, 0];
            assert_eq!(kp_config_set_url(cfg, bad_utf8.as_ptr().cast()), INVALID);
            let url = std::ffi::CString::new("rtmp://h/app/key").unwrap();
            assert_eq!(kp_config_set_url(cfg, url.as_ptr()), 0);
            drop(url);
            assert_eq!((*cfg).inner.url, "rtmp://h/app/key", "the string is copied");

            assert_eq!(kp_config_set_video(cfg, 640, 0, 0.0, 800, 0), 0);
            let v = (*cfg).inner.video.clone().unwrap();
            assert_eq!((v.width, v.height, v.fps, v.bitrate_kbps), (640, 720, 30.0, 800));

            assert_eq!(kp_config_disable_video(cfg), 0);
            assert!((*cfg).inner.video.is_none());
            assert_eq!(kp_config_set_video_encoder(cfg, 2), 0);
            assert_eq!((*cfg).inner.video.as_ref().unwrap().encoder, VideoEncoderKind::KP_ENCODER_PASSTHROUGH);
            assert_eq!(kp_config_set_video_encoder(cfg, 3), INVALID);
            assert_eq!(kp_config_set_audio_encoder(cfg, -1), INVALID);

            assert_eq!(kp_config_set_audio(cfg, 48000, 1, 0), 0);
            let a = (*cfg).inner.audio.clone().unwrap();
            assert_eq!((a.sample_rate, a.channels, a.bitrate_kbps), (48000, 1, 128));

            assert_eq!(kp_config_set_timeouts(cfg, 1500, 0), 0);
            assert_eq!((*cfg).inner.connect_timeout, Duration::from_millis(1500));
            assert_eq!((*cfg).inner.stall_timeout, Duration::from_secs(5));
            kp_config_free(cfg);
        }
    }
}
