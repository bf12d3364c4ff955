//! `kp_config`: what the app sets before creating a pusher.

use super::error::null_arg;
use super::event::kp_event_cb;
use super::refresh::kp_url_refresh_cb;
use super::{kp_audio_encoder, kp_srt_stream_id_preset, kp_video_encoder, kp_video_scaling, kp_x264_threading};
use crate::core::reconnect::ReconnectPolicy;
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
    pub(crate) url_refresh_cb: kp_url_refresh_cb,
    pub(crate) url_refresh_userdata: *mut c_void,
    pub(crate) stats_cb: super::pusher::kp_stats_cb,
    pub(crate) stats_userdata: *mut c_void,
    pub(crate) stats_interval_ms: u32,
}

/// Borrows the config behind a C pointer, or the INVALID_ARGUMENT error naming the function.
///
/// # Safety
/// `cfg` is NULL or a live pointer from kp_config_new not used by another thread during the call.
pub(crate) unsafe fn config_mut<'a>(cfg: *mut kp_config, function: &str) -> Result<&'a mut kp_config, Error> {
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

/// Copies a URL argument: NULL or bytes that are not UTF-8 are refused at once; whether it is a
/// usable RTMP URL is checked by kp_pusher_new.
///
/// # Safety
/// `url` is NULL or a NUL-terminated string readable during the call.
unsafe fn url_arg(url: *const c_char, function: &str) -> Result<String, Error> {
    if url.is_null() {
        return Err(null_arg(function, "url"));
    }
    // SAFETY: url is non-NULL and, per the contract, a NUL-terminated string.
    let url = unsafe { CStr::from_ptr(url) }
        .to_str()
        .map_err(|_| Error::InvalidArgument(format!("{function}: url is not valid UTF-8")))?;
    Ok(url.to_owned())
}

fn ms_or_default(ms: u32, default: Duration) -> Duration {
    match ms {
        0 => default,
        ms => Duration::from_millis(ms.into()),
    }
}

pub(crate) fn video_encoder_from_raw(raw: kp_video_encoder) -> Result<VideoEncoderKind, Error> {
    use VideoEncoderKind::*;
    [KP_ENCODER_OPENH264, KP_ENCODER_X264, KP_ENCODER_PASSTHROUGH, KP_ENCODER_PASSTHROUGH_HEVC]
        .into_iter()
        .find(|k| *k as kp_video_encoder == raw)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown video encoder {raw}")))
}

pub(crate) fn audio_encoder_from_raw(raw: kp_audio_encoder) -> Result<AudioEncoderKind, Error> {
    use AudioEncoderKind::*;
    [KP_AUDIO_ENCODER_FDK_AAC, KP_AUDIO_ENCODER_PASSTHROUGH, KP_AUDIO_ENCODER_PASSTHROUGH_OPUS]
        .into_iter()
        .find(|k| *k as kp_audio_encoder == raw)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown audio encoder {raw}")))
}

ffi_fn! {
    /// Creates a config with the defaults: video 1280x720 at 30 fps, 2000 kbit/s, OpenH264, keyframe
    /// every 2 s; audio AAC-LC 44100 Hz stereo 128 kbit/s; connect and write timeouts 10 s; no URL and
    /// no event callback. Returns NULL only on an internal error; if memory runs out the process
    /// aborts (see "Memory" at the top). The caller owns the result and frees it with
    /// kp_config_free. Thread-safe, non-blocking.
    fn kp_config_new() -> *mut kp_config = std::ptr::null_mut(); {
        Box::into_raw(Box::new(kp_config {
            inner: PusherConfig::default(),
            event_cb: None,
            event_userdata: std::ptr::null_mut(),
            url_refresh_cb: None,
            url_refresh_userdata: std::ptr::null_mut(),
            stats_cb: None,
            stats_userdata: std::ptr::null_mut(),
            stats_interval_ms: 0,
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
    /// Sets the ingest URL: `rtmp[s]://host[:port]/app[/instance]/stream-key[?query]`, or
    /// `srt://host:port[?streamid=..&latency=MS&passphrase=..&pbkeylen=16|24|32&mode=caller]` in
    /// libsrt's URI syntax (values percent-decoded; `latency` in milliseconds: a value over 60000,
    /// FFmpeg's microseconds, is refused), or a WHIP endpoint `whip+http[s]://host[:port]/path`
    /// (WebRTC, RFC 9725: the offer is POSTed to `http[s]://host[:port]/path`; its bearer token:
    /// kp_config_set_whip_bearer_token). The string is copied. It is checked by kp_pusher_new (KP_ERR_INVALID_URL there), not here.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg or url is NULL or url is not UTF-8.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_url(cfg: *mut kp_config, url: *const c_char) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_url") }?;
        // SAFETY: per the contract above, url is NULL or a NUL-terminated string.
        cfg.inner.url = unsafe { url_arg(url, "kp_config_set_url") }?;
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
    /// KP_ENCODER_X264 (push raw frames; GPL, only in builds with the `x264` feature, otherwise
    /// kp_pusher_new fails with KP_ERR_UNSUPPORTED) or
    /// KP_ENCODER_PASSTHROUGH (push H.264 access units with kp_pusher_push_h264) or
    /// KP_ENCODER_PASSTHROUGH_HEVC (push H.265 access units with kp_pusher_push_hevc, sent over
    /// Enhanced RTMP: the server must support it).
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
    /// Enables video and sets what kp_pusher_push_video does with a raw frame larger than the
    /// configured size (kp_video_scaling_values): KP_VIDEO_SCALING_FILL (the default: scaled down
    /// with a bilinear filter to fill the configured size; when the aspect ratios differ the
    /// middle is kept and the excess on two sides cut off, e.g. a 640x480 camera into 640x360
    /// loses 60 rows at the top and bottom), KP_VIDEO_SCALING_STRETCH (scaled to exactly the
    /// configured size, whole frame kept, a different aspect ratio distorted) or
    /// KP_VIDEO_SCALING_OFF (refused with KP_ERR_BAD_DIMENSIONS). Frames of the configured size
    /// cost nothing extra; smaller frames are always refused with KP_ERR_BAD_DIMENSIONS (the
    /// stream goes on). Scaling runs on the pushing thread, inside kp_pusher_push_video.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL or the value is unknown.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_video_scaling(cfg: *mut kp_config, mode: kp_video_scaling) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_video_scaling") }?;
        video_mut(cfg).scaling = crate::pusher::VideoScaling::from_raw(mode.into())
            .map_err(|_| Error::InvalidArgument(format!("kp_config_set_video_scaling: unknown value {mode}")))?;
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
    /// Sets the frame rate of the still picture sent while paused (kp_pusher_pause); 0 keeps the
    /// default, 5. Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL (a rate outside (0, 60] is
    /// reported by kp_pusher_new). Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_pause_fps(cfg: *mut kp_config, fps: f64) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_pause_fps") }?;
        cfg.inner.pause_fps = if fps == 0.0 { PusherConfig::default().pause_fps } else { fps as f32 };
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
    /// kp_pusher_push_audio), KP_AUDIO_ENCODER_PASSTHROUGH (push AAC with kp_pusher_push_aac) or
    /// KP_AUDIO_ENCODER_PASSTHROUGH_OPUS (push Opus with kp_pusher_push_opus, for WebRTC; PCM
    /// pushed beside it with kp_pusher_push_audio is encoded to AAC for RTMP, SRT and recording).
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
    /// the stall timeout (no write progress, or no server acknowledgement of bytes sent, this long: STALLED event,
    /// the connection is dropped and reconnected; 0 = default 5000 ms), in milliseconds.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_timeouts(cfg: *mut kp_config, connect_ms: u32, stall_ms: u32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_timeouts") }?;
        let d = PusherConfig::default();
        cfg.inner.connect_timeout = ms_or_default(connect_ms, d.connect_timeout);
        cfg.inner.stall_timeout = ms_or_default(stall_ms, d.stall_timeout);
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
    /// kp_pusher_free, of this or any other pusher (stop returns KP_ERR_INVALID_STATE; free is
    /// handed to a helper thread). KP_EVENT_STOPPED may arrive after kp_pusher_stop has returned,
    /// and while it runs kp_pusher_get_state may still say KP_STATE_STOPPING (it says
    /// KP_STATE_STOPPED once kp_pusher_stop has returned). Errors: KP_ERR_INVALID_ARGUMENT if cfg
    /// is NULL. Not thread-safe for the same cfg; non-blocking.
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

ffi_fn! {
    /// Appends a backup URL to destination 0 (the one set by kp_config_set_url). Backups are tried in
    /// the order they were added, after the reconnect policy's failover_after failed attempts on the
    /// URL in use (see kp_config_set_reconnect); a FAILOVER event reports each switch. At most 7
    /// backups per destination. The string is copied; it is checked by kp_pusher_new
    /// (KP_ERR_INVALID_URL there), not here.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg or url is NULL or url is not UTF-8.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_add_backup_url(cfg: *mut kp_config, url: *const c_char) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_add_backup_url") }?;
        // SAFETY: per the contract above, url is NULL or a NUL-terminated string.
        let url = unsafe { url_arg(url, "kp_config_add_backup_url") }?;
        cfg.inner.backup_urls.push(url);
        Ok(())
    }
}

ffi_fn! {
    /// Adds a destination published at the same time as destination 0, from the same encode, with
    /// `url` as its primary URL, and writes its index (1 for the first added, then 2, ...) to
    /// `*out_index`, written only on success. Each destination connects, reconnects and fails on its
    /// own; events carry the destination index, and kp_pusher_get_destination_stats reports each.
    /// At most 8 destinations in all (checked by kp_pusher_new). The string is copied; it is checked
    /// by kp_pusher_new (KP_ERR_INVALID_URL there), not here.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg, url or out_index is NULL or url is not UTF-8.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_add_destination(cfg: *mut kp_config, url: *const c_char, out_index: *mut u32) -> kp_result {
        const F: &str = "kp_config_add_destination";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        // SAFETY: per the contract above, url is NULL or a NUL-terminated string.
        let url = unsafe { url_arg(url, F) }?;
        if out_index.is_null() {
            return Err(null_arg(F, "out_index"));
        }
        let index = u32::try_from(cfg.inner.extra_destinations.len() + 1)
            .map_err(|_| Error::InvalidArgument(format!("{F}: too many destinations")))?;
        cfg.inner.extra_destinations.push(vec![url]);
        // SAFETY: out_index is non-NULL and, per the contract, writable.
        unsafe { out_index.write_unaligned(index) };
        Ok(())
    }
}

ffi_fn! {
    /// Appends a backup URL to `destination`: 0 is the destination of kp_config_set_url (the same
    /// as kp_config_add_backup_url), 1, 2, ... those from kp_config_add_destination. Backups are
    /// tried in the order they were added; at most 7 per destination. The string is copied; it is
    /// checked by kp_pusher_new (KP_ERR_INVALID_URL there), not here.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg or url is NULL, url is not UTF-8 or no destination has
    /// that index. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_add_destination_backup_url(cfg: *mut kp_config, destination: u32, url: *const c_char) -> kp_result {
        const F: &str = "kp_config_add_destination_backup_url";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        // SAFETY: per the contract above, url is NULL or a NUL-terminated string.
        let url = unsafe { url_arg(url, F) }?;
        let count = cfg.inner.extra_destinations.len() + 1;
        let urls = match destination as usize {
            0 => &mut cfg.inner.backup_urls,
            d => cfg.inner.extra_destinations.get_mut(d - 1).ok_or_else(|| {
                Error::InvalidArgument(format!("{F}: no destination {destination} (the config has {count})"))
            })?,
        };
        urls.push(url);
        Ok(())
    }
}

ffi_fn! {
    /// Sets the reconnect policy, for every destination. After a failed connect or a lost publish the
    /// pusher waits first_delay_ms, then each further consecutive failure multiplies the delay by
    /// `multiplier` up to max_delay_ms (each delay varies by +-10 % so that many devices cut off
    /// together do not retry in lockstep). It gives up (FAILED event, code = the last error) after
    /// max_attempts consecutive failed attempts since the last publish that held; errors that retrying
    /// cannot fix (KP_ERR_AUTH, KP_ERR_CONNECT_REJECTED, ...) give up at once unless the URL refresh
    /// callback supplies a new URL. After failover_after consecutive failures on one URL it moves to
    /// the destination's next URL (backups, then back to the primary).
    /// 0 (0.0 for multiplier) keeps the default for that field: first_delay_ms 500, multiplier 1.5,
    /// max_delay_ms 30000, max_attempts unlimited, failover_after 2. Values are checked by
    /// kp_pusher_new (KP_ERR_INVALID_ARGUMENT: multiplier not in [1, 10], max_delay_ms below
    /// first_delay_ms). Errors here: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_reconnect(
        cfg: *mut kp_config,
        first_delay_ms: u32,
        multiplier: f64,
        max_delay_ms: u32,
        max_attempts: u32,
        failover_after: u32,
    ) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_reconnect") }?;
        let d = ReconnectPolicy::default();
        let r = &mut cfg.inner.reconnect;
        r.first_delay = ms_or_default(first_delay_ms, d.first_delay);
        r.multiplier = if multiplier == 0.0 { d.multiplier } else { multiplier };
        r.max_delay = ms_or_default(max_delay_ms, d.max_delay);
        r.max_attempts = match max_attempts {
            0 => None,
            n => Some(n),
        };
        r.failover_after = or_default(failover_after, d.failover_after);
        Ok(())
    }
}

ffi_fn! {
    /// While a destination publishes on a backup URL, how often (milliseconds) to check whether its
    /// primary answers again; when it does, the stream moves back to the primary (FAILOVER event).
    /// The check: a TCP connect for RTMP, a handshake for SRT, a whole session for WHIP (offer,
    /// ICE, DTLS, then DELETE: its HTTP port answering says nothing of UDP). RTMP's connect and
    /// WHIP's POST hold the backup's sending for at most a second; the SRT handshake and WHIP's
    /// ICE/DTLS run beside the backup's session.
    /// Default 30000. 0 disables the return: the stream stays on the backup until that fails.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_primary_retry_interval(cfg: *mut kp_config, interval_ms: u32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_primary_retry_interval") }?;
        cfg.inner.reconnect.primary_retry_interval = Duration::from_millis(interval_ms.into());
        Ok(())
    }
}

ffi_fn! {
    /// While a server refuses connections at once (its host answers, nothing listens yet: a
    /// restarting ingest), retry every `interval_ms` (±10 %) instead of backing off, for the first
    /// `window_ms` of an outage; later refusals, timeouts and DNS failures back off as set by
    /// kp_config_set_reconnect. A refused attempt costs nothing, so the stream returns within about
    /// `interval_ms` of the server listening again. These quick retries do not count toward
    /// max_attempts; they do count toward failover_after (a refusing primary hands over quickly).
    /// `enabled` false turns them off. 0 keeps the default: interval 250 ms, window 5000 ms.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_refused_retry(cfg: *mut kp_config, enabled: bool, interval_ms: u32, window_ms: u32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_refused_retry") }?;
        let d = ReconnectPolicy::default();
        let r = &mut cfg.inner.reconnect;
        r.refused_retry = if enabled { ms_or_default(interval_ms, d.refused_retry) } else { Duration::ZERO };
        r.refused_retry_window = ms_or_default(window_ms, d.refused_retry_window);
        Ok(())
    }
}

ffi_fn! {
    /// Sets the function asked for a fresh URL before each reconnect (signed ingest URLs expire;
    /// NULL: none). It is not asked for the very first connect. It is called with the destination
    /// and the index of the URL about to be used; see kp_url_refresh_cb for the answer. It runs on an
    /// SDK thread (not the event callback thread), one call at a time per pusher. It may block (e.g.
    /// fetch a URL over the network) for up to timeout_ms milliseconds (0 = default 5000): after that
    /// the reconnect goes ahead with the current URL, and a late answer is dropped. When a destination
    /// would give up (e.g. KP_ERR_AUTH), a new URL from the callback revives it. `userdata` is passed
    /// back untouched: the app guarantees it may be used from SDK threads, and keeps it valid until
    /// kp_pusher_free has returned for every pusher created with this callback; kp_pusher_free waits
    /// for a call in progress, and none starts afterwards. The callback may call
    /// kp_pusher_get_state and kp_pusher_get_stats, but not kp_pusher_free.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_url_refresh_callback(
        cfg: *mut kp_config,
        cb: kp_url_refresh_cb,
        userdata: *mut c_void,
        timeout_ms: u32,
    ) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_url_refresh_callback") }?;
        cfg.url_refresh_cb = cb;
        cfg.url_refresh_userdata = userdata;
        cfg.inner.url_refresh_timeout = ms_or_default(timeout_ms, PusherConfig::default().url_refresh_timeout);
        Ok(())
    }
}

ffi_fn! {
    /// Sets the function that receives a kp_stats snapshot every `interval_ms` milliseconds (0 = every
    /// second; at least 100) while the pusher runs (NULL: none). It is called on the SDK's callback
    /// thread (the event callback's), never at the same time as the event callback and never while the
    /// SDK holds an internal lock; the kp_stats is valid only during the call, and its struct_size is
    /// the library's sizeof(kp_stats): read only the fields your header has. `userdata` is passed back
    /// untouched, under the same rules as kp_config_set_event_callback (the callback may call
    /// kp_pusher_get_* and kp_pusher_push_*, but not kp_pusher_stop or kp_pusher_free).
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL or interval_ms is 1..99.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_stats_callback(
        cfg: *mut kp_config,
        interval_ms: u32,
        cb: super::pusher::kp_stats_cb,
        userdata: *mut c_void,
    ) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_stats_callback") }?;
        if (1..100).contains(&interval_ms) {
            return Err(Error::InvalidArgument(format!(
                "kp_config_set_stats_callback: interval {interval_ms} ms is under 100 ms"
            )));
        }
        cfg.stats_cb = cb;
        cfg.stats_userdata = userdata;
        cfg.stats_interval_ms = interval_ms;
        Ok(())
    }
}

ffi_fn! {
    /// Sets the latency budget in milliseconds (0 = default 2000): media waiting for the network (the
    /// send queue plus what the socket holds) beyond it is dropped a whole GOP at a time, and from 35 %
    /// of it inter frames are skipped up to the next keyframe; audio goes only past 150 % of it. Checked
    /// by kp_pusher_new (at least 100). Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_latency_budget(cfg: *mut kp_config, budget_ms: u32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_latency_budget") }?;
        cfg.inner.send_queue_ms = or_default(budget_ms, PusherConfig::default().send_queue_ms);
        Ok(())
    }
}

ffi_fn! {
    /// Configures the adaptive bitrate (on by default): `enabled` false keeps the configured video
    /// bitrate; `min_kbps` is the floor (0 = a quarter of the video bitrate, at least 64), `max_kbps`
    /// the ceiling (0 = the video bitrate); with `allow_fps_reduction`, at the floor and still
    /// congested, every other frame is skipped. Changes are reported as KP_EVENT_BITRATE_CHANGED, or
    /// KP_EVENT_BITRATE_SUGGESTED for pre-encoded video. Bounds are checked by kp_pusher_new
    /// (KP_ERR_INVALID_ARGUMENT when min > max). Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_abr(
        cfg: *mut kp_config,
        enabled: bool,
        min_kbps: u32,
        max_kbps: u32,
        allow_fps_reduction: bool,
    ) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_abr") }?;
        cfg.inner.abr = crate::pusher::AbrSettings { enabled, min_kbps, max_kbps, allow_fps_reduction };
        Ok(())
    }
}

ffi_fn! {
    /// Turns the encode ladder on or off (off by default) and sets the floor of its default rungs.
    /// With it on, when the built-in encoder cannot keep up (encoding takes 90 % of the frame
    /// interval, or input frames are dropped, for 3 s) it steps down, in one change, to a rung
    /// predicted to need at most 65 % of the time: encoder complexity first, then the frame rate
    /// (30 → 20 → 15 fps: frames are skipped by timestamp in kp_pusher_push_video), then the size
    /// (3/4, 1/2, ... of the configured one, same aspect ratio; frames are scaled down in
    /// kp_pusher_push_video, and the stream goes on with new sequence headers at an IDR). After
    /// 20 s with room (and at least a minute after the last change; longer after a step up that
    /// failed) it climbs back. The video bitrate follows the pixel rate (the adaptive bitrate's
    /// target and bounds are scaled). Each change raises KP_EVENT_ENCODE_RUNG_CHANGED; kp_stats
    /// has the current rung. The default rungs go down to `lowest_height` (0 = 360) and
    /// `lowest_fps` (0 = 15). This call also forgets the rungs of kp_config_add_encode_rung.
    /// Pre-encoded video ignores the ladder. Values are checked by kp_pusher_new
    /// (KP_ERR_INVALID_ARGUMENT). Errors here: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_encode_ladder(cfg: *mut kp_config, enabled: bool, lowest_height: u32, lowest_fps: f32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_encode_ladder") }?;
        cfg.inner.ladder = crate::pusher::LadderSettings { enabled, lowest_height, lowest_fps, rungs: Vec::new() };
        Ok(())
    }
}

ffi_fn! {
    /// Appends a rung of the app's own encode ladder (instead of the default rungs): below the
    /// configured video setting, which is always the first rung; each rung must be cheaper than
    /// the one before (width x height x fps x complexity) and no larger nor faster than the
    /// configured video; sizes even. `complexity`: kp_encode_complexity_values. At most 15 rungs.
    /// kp_config_set_encode_ladder(cfg, true, ...) turns the ladder on (call it first: it forgets
    /// the rungs added before it). The list is checked by kp_pusher_new (KP_ERR_INVALID_ARGUMENT).
    /// Errors here: KP_ERR_INVALID_ARGUMENT if cfg is NULL, the complexity is unknown or there are
    /// too many rungs. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_add_encode_rung(
        cfg: *mut kp_config,
        width: u32,
        height: u32,
        fps: f32,
        complexity: super::kp_encode_complexity,
    ) -> kp_result {
        const F: &str = "kp_config_add_encode_rung";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        let complexity = crate::encode::options::EncodeComplexity::from_raw(complexity.into())
            .map_err(|e| Error::InvalidArgument(format!("{F}: {e}")))?;
        if cfg.inner.ladder.rungs.len() + 1 >= crate::core::ladder::MAX_RUNGS {
            return Err(Error::InvalidArgument(format!("{F}: at most {} rungs", crate::core::ladder::MAX_RUNGS - 1)));
        }
        cfg.inner.ladder.rungs.push(crate::core::ladder::Rung { width, height, fps, complexity });
        Ok(())
    }
}

ffi_fn! {
    /// Sets when the quality alerts fire (0 = the default of each): KP_EVENT_NET_BUSY when congestion
    /// stays at or above `net_busy_congestion` (0..1, default 0.5) for `net_busy_ms` (default 3000),
    /// KP_EVENT_NET_RECOVERED when it then stays under half of it as long; KP_EVENT_LOW_FPS when the
    /// sent frame rate stays under `low_fps_ratio` (default 0.5) of the configured one for `low_fps_ms`
    /// (default 3000); KP_EVENT_ENCODER_OVERLOADED when encoding a frame takes longer than the frame
    /// interval on average for `encoder_overload_ms` (default 3000). Ranges are checked by
    /// kp_pusher_new. Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_alert_thresholds(
        cfg: *mut kp_config,
        net_busy_congestion: f32,
        net_busy_ms: u32,
        low_fps_ratio: f32,
        low_fps_ms: u32,
        encoder_overload_ms: u32,
    ) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_alert_thresholds") }?;
        let d = crate::pusher::AlertThresholds::default();
        let f = |v: f32, def: f32| if v == 0.0 { def } else { v };
        let ms = |v: u32, def: u64| if v == 0 { def } else { v as u64 };
        cfg.inner.alerts = crate::pusher::AlertThresholds {
            net_busy_congestion: f(net_busy_congestion, d.net_busy_congestion),
            net_busy_ms: ms(net_busy_ms, d.net_busy_ms),
            low_fps_ratio: f(low_fps_ratio, d.low_fps_ratio),
            low_fps_ms: ms(low_fps_ms, d.low_fps_ms),
            encoder_overload_ms: ms(encoder_overload_ms, d.encoder_overload_ms),
        };
        Ok(())
    }
}

ffi_fn! {
    /// Settings of `srt://` destinations that their URLs do not give (a URL's `latency=`,
    /// `passphrase=`, `pbkeylen=` win): the TSBPD latency in milliseconds (0 = 120; the receiver
    /// holds each packet this long, which is the time lost packets have to be repaired in: 4 × the
    /// round trip is the usual rule, more on lossy links; at most 60000), the AES passphrase (NULL
    /// or "" = unencrypted; 10 to 79 characters, as libsrt requires) and the AES key length in
    /// bytes (16, 24 or 32; 0 = 16). The string is copied. Values are checked by kp_pusher_new
    /// (KP_ERR_INVALID_ARGUMENT). A listener that refuses the passphrase makes the destination
    /// fail with KP_ERR_AUTH after one attempt. Errors here: KP_ERR_INVALID_ARGUMENT if cfg is
    /// NULL or the passphrase is not UTF-8. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_srt(cfg: *mut kp_config, latency_ms: u32, passphrase: *const c_char, pbkeylen: u32) -> kp_result {
        const F: &str = "kp_config_set_srt";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        // SAFETY: per the contract above, passphrase is NULL or NUL-terminated.
        let pass = unsafe { optional_str(passphrase, F, "passphrase") }?;
        let s = &mut cfg.inner.srt;
        s.latency_ms = latency_ms;
        s.passphrase = (!pass.is_empty()).then_some(pass);
        s.pbkeylen = u8::try_from(pbkeylen).unwrap_or(u8::MAX);
        Ok(())
    }
}

ffi_fn! {
    /// The stream id `srt://` destinations send in their handshake when their URL has no
    /// `streamid=`, built from `resource` in the form the server expects:
    /// KP_SRT_STREAM_ID_SRS (SRS, ZLMediaKit: `app/stream` becomes `#!::r=app/stream,m=publish`),
    /// KP_SRT_STREAM_ID_MEDIAMTX (MediaMTX: `path` becomes `publish:path`) or KP_SRT_STREAM_ID_RAW
    /// (sent as given). NULL or "" clears it. At most 512 bytes (checked by kp_pusher_new). The
    /// stream id is treated as a secret: never logged in full. Errors: KP_ERR_INVALID_ARGUMENT if
    /// cfg is NULL, the preset is unknown or resource is not UTF-8.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_srt_stream_id(
        cfg: *mut kp_config,
        preset: kp_srt_stream_id_preset,
        resource: *const c_char,
    ) -> kp_result {
        const F: &str = "kp_config_set_srt_stream_id";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        let preset = crate::core::srt_url::StreamIdPreset::from_raw(preset.into())
            .map_err(|_| Error::InvalidArgument(format!("{F}: unknown preset {preset}")))?;
        // SAFETY: per the contract above, resource is NULL or NUL-terminated.
        let resource = unsafe { optional_str(resource, F, "resource") }?;
        cfg.inner.srt.stream_id = (!resource.is_empty()).then(|| preset.stream_id(&resource));
        Ok(())
    }
}

ffi_fn! {
    /// The bearer token `whip+http://` and `whip+https://` destinations send with their offer
    /// and DELETE (`Authorization: Bearer <token>`, RFC 9725 section 4.3). NULL or "" clears it.
    /// The string is copied; it is a secret: never logged. A token with control characters is
    /// refused here. An endpoint that answers 401 or 403 makes the destination fail with
    /// KP_ERR_AUTH after one attempt (no retries: a retry cannot fix a token). Errors:
    /// KP_ERR_INVALID_ARGUMENT if cfg is NULL or the token is not UTF-8 or has control
    /// characters. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_whip_bearer_token(cfg: *mut kp_config, token: *const c_char) -> kp_result {
        const F: &str = "kp_config_set_whip_bearer_token";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        // SAFETY: per the contract above, token is NULL or NUL-terminated.
        let token = unsafe { optional_str(token, F, "token") }?;
        if token.bytes().any(|b| b.is_ascii_control()) {
            return Err(Error::InvalidArgument(format!("{F}: the token has control characters")));
        }
        cfg.inner.whip.bearer_token = (!token.is_empty()).then_some(token);
        Ok(())
    }
}

/// Copies an optional string argument: NULL means "the default" (an empty string).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string readable during the call.
pub(super) unsafe fn optional_str(s: *const c_char, function: &str, what: &str) -> Result<String, Error> {
    if s.is_null() {
        return Ok(String::new());
    }
    // SAFETY: non-NULL and, per the contract, NUL-terminated.
    let s = unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| Error::InvalidArgument(format!("{function}: {what} is not valid UTF-8")))?;
    Ok(s.to_owned())
}

ffi_fn! {
    /// x264 only (KP_ENCODER_X264): the preset (`ultrafast` .. `placebo`; NULL or "" = `veryfast`),
    /// the tune (comma-separated x264 tunes; NULL or "" = `zerolatency`) and the H.264 profile
    /// (`baseline`, `main` or `high`; NULL or "" = `high`). The strings are copied; whether x264
    /// knows them is checked by kp_pusher_new (KP_ERR_INVALID_ARGUMENT there). Other encoders
    /// ignore these settings.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL or a string is not UTF-8.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_x264_preset(
        cfg: *mut kp_config,
        preset: *const c_char,
        tune: *const c_char,
        profile: *const c_char,
    ) -> kp_result {
        const F: &str = "kp_config_set_x264_preset";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        // SAFETY: per the contract above, each string is NULL or NUL-terminated.
        let (preset, tune, profile) = unsafe {
            (optional_str(preset, F, "preset")?, optional_str(tune, F, "tune")?, optional_str(profile, F, "profile")?)
        };
        let x = &mut video_mut(cfg).x264;
        (x.preset, x.tune, x.profile) = (preset, tune, profile);
        Ok(())
    }
}

ffi_fn! {
    /// x264 only: the VBV (rate cap) settings. `maxrate_kbps` 0 = the video bitrate (a constant-rate
    /// stream, what ingest servers expect); `bufsize_kbit` 0 = the maximum rate (a one-second
    /// buffer). The maximum rate must be at least the bitrate (checked by kp_pusher_new:
    /// KP_ERR_INVALID_ARGUMENT). A bitrate change while pushing keeps their ratio to the bitrate.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_x264_vbv(cfg: *mut kp_config, maxrate_kbps: u32, bufsize_kbit: u32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_x264_vbv") }?;
        let x = &mut video_mut(cfg).x264;
        (x.vbv_maxrate_kbps, x.vbv_bufsize_kbit) = (maxrate_kbps, bufsize_kbit);
        Ok(())
    }
}

ffi_fn! {
    /// x264 only: how its threads share the work (kp_x264_threading_values): KP_X264_THREADING_DEFAULT
    /// (what the tune says; `zerolatency` gives sliced threads), KP_X264_THREADING_FRAME or
    /// KP_X264_THREADING_SLICED. The thread count is kp_config_set_video_threads.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL or the value is unknown.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_x264_threading(cfg: *mut kp_config, threading: kp_x264_threading) -> kp_result {
        use crate::pusher::X264Threading::*;
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_x264_threading") }?;
        let value = [KP_X264_THREADING_DEFAULT, KP_X264_THREADING_FRAME, KP_X264_THREADING_SLICED]
            .into_iter()
            .find(|k| *k as kp_x264_threading == threading)
            .ok_or_else(|| Error::InvalidArgument(format!("kp_config_set_x264_threading: unknown value {threading}")))?;
        video_mut(cfg).x264.threading = value;
        Ok(())
    }
}

ffi_fn! {
    /// x264 only: B-frames between reference frames, 0..=16 (default 0, the lowest latency). With
    /// B-frames the stream carries composition times and video leaves that many frames later.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL (over 16 is reported by kp_pusher_new).
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_x264_bframes(cfg: *mut kp_config, bframes: u32) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_x264_bframes") }?;
        video_mut(cfg).x264.bframes = bframes;
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
            assert_eq!(kp_config_add_backup_url(null, c"rtmp://h/a/k".as_ptr()), INVALID);
            let mut index = 77;
            assert_eq!(kp_config_add_destination(null, c"rtmp://h/a/k".as_ptr(), &mut index), INVALID);
            assert_eq!(index, 77, "outputs are written only on success");
            assert_eq!(kp_config_add_destination_backup_url(null, 0, c"rtmp://h/a/k".as_ptr()), INVALID);
            assert_eq!(kp_config_set_reconnect(null, 0, 0.0, 0, 0, 0), INVALID);
            assert_eq!(kp_config_set_primary_retry_interval(null, 0), INVALID);
            assert_eq!(kp_config_set_url_refresh_callback(null, None, null.cast(), 0), INVALID);
            assert_eq!(kp_config_set_x264_preset(null, null.cast(), null.cast(), null.cast()), INVALID);
            assert_eq!(kp_config_set_x264_vbv(null, 0, 0), INVALID);
            assert_eq!(kp_config_set_x264_threading(null, 0), INVALID);
            assert_eq!(kp_config_set_x264_bframes(null, 0), INVALID);
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
            assert_eq!(kp_config_set_video_encoder(cfg, 3), 0);
            assert_eq!((*cfg).inner.video.as_ref().unwrap().encoder, VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC);
            assert_eq!(kp_config_set_video_encoder(cfg, 99), INVALID);
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

    #[test]
    fn backup_urls_and_destinations_are_copied_in_order() {
        // SAFETY: cfg comes from kp_config_new and is freed once at the end; strings outlive the calls.
        unsafe {
            let cfg = kp_config_new();
            let b1 = std::ffi::CString::new("rtmp://b1/app/key").unwrap();
            assert_eq!(kp_config_add_backup_url(cfg, b1.as_ptr()), 0);
            drop(b1);
            assert_eq!(kp_config_add_backup_url(cfg, std::ptr::null()), INVALID);
            let bad_utf8 = [0x72u8, 0xff, 0];
            assert_eq!(kp_config_add_backup_url(cfg, bad_utf8.as_ptr().cast()), INVALID);
            // Destination 0 through the general function: same list, in order.
            assert_eq!(kp_config_add_destination_backup_url(cfg, 0, c"rtmp://b2/app/key".as_ptr()), 0);
            // No destination 1 yet.
            assert_eq!(kp_config_add_destination_backup_url(cfg, 1, c"rtmp://x/app/key".as_ptr()), INVALID);

            let mut index = 99;
            assert_eq!(kp_config_add_destination(cfg, c"rtmp://d1/app/key".as_ptr(), std::ptr::null_mut()), INVALID);
            assert_eq!(kp_config_add_destination(cfg, std::ptr::null(), &mut index), INVALID);
            assert_eq!(kp_config_add_destination(cfg, bad_utf8.as_ptr().cast(), &mut index), INVALID);
            assert_eq!(index, 99, "outputs are written only on success");
            assert!((*cfg).inner.extra_destinations.is_empty(), "failed calls add nothing");
            assert_eq!(kp_config_add_destination(cfg, c"rtmp://d1/app/key".as_ptr(), &mut index), 0);
            assert_eq!(index, 1);
            assert_eq!(kp_config_add_destination(cfg, c"rtmp://d2/app/key".as_ptr(), &mut index), 0);
            assert_eq!(index, 2);
            assert_eq!(kp_config_add_destination_backup_url(cfg, 2, c"rtmp://d2b/app/key".as_ptr()), 0);
            assert_eq!(kp_config_add_destination_backup_url(cfg, 3, c"rtmp://x/app/key".as_ptr()), INVALID);
            assert_eq!(kp_config_add_destination_backup_url(cfg, u32::MAX, c"rtmp://x/app/key".as_ptr()), INVALID);
            assert_eq!(kp_config_add_destination_backup_url(cfg, 1, std::ptr::null()), INVALID);

            assert_eq!((*cfg).inner.backup_urls, ["rtmp://b1/app/key", "rtmp://b2/app/key"]);
            assert_eq!(
                (*cfg).inner.extra_destinations,
                [vec!["rtmp://d1/app/key".to_owned()], vec!["rtmp://d2/app/key".into(), "rtmp://d2b/app/key".into()]]
            );
            kp_config_free(cfg);
        }
    }

    #[test]
    fn reconnect_settings_are_copied_and_zero_means_default() {
        let d = ReconnectPolicy::default();
        // SAFETY: cfg comes from kp_config_new and is freed once at the end.
        unsafe {
            let cfg = kp_config_new();
            assert_eq!(kp_config_set_reconnect(cfg, 100, 2.0, 4000, 7, 3), 0);
            let r = (*cfg).inner.reconnect.clone();
            assert_eq!(r.first_delay, Duration::from_millis(100));
            assert_eq!(r.multiplier, 2.0);
            assert_eq!(r.max_delay, Duration::from_millis(4000));
            assert_eq!(r.max_attempts, Some(7));
            assert_eq!(r.failover_after, 3);
            assert_eq!((r.jitter, r.primary_retry_interval), (d.jitter, d.primary_retry_interval), "untouched");

            assert_eq!(kp_config_set_reconnect(cfg, 0, 0.0, 0, 0, 0), 0);
            let r = (*cfg).inner.reconnect.clone();
            assert_eq!(r, d, "all zero: the defaults, unlimited attempts");
            assert_eq!(r.max_attempts, None);
            assert_eq!(r.failover_after, 2);

            assert_eq!(kp_config_set_primary_retry_interval(cfg, 2500), 0);
            assert_eq!((*cfg).inner.reconnect.primary_retry_interval, Duration::from_millis(2500));
            assert_eq!(kp_config_set_primary_retry_interval(cfg, 0), 0);
            assert_eq!((*cfg).inner.reconnect.primary_retry_interval, Duration::ZERO, "0 disables the return");

            assert_eq!(kp_config_set_refused_retry(cfg, true, 100, 2000), 0);
            let r = (*cfg).inner.reconnect.clone();
            assert_eq!((r.refused_retry, r.refused_retry_window), (Duration::from_millis(100), Duration::from_secs(2)));
            assert_eq!(kp_config_set_refused_retry(cfg, true, 0, 0), 0);
            let r = (*cfg).inner.reconnect.clone();
            assert_eq!((r.refused_retry, r.refused_retry_window), (d.refused_retry, d.refused_retry_window));
            assert_eq!(kp_config_set_refused_retry(cfg, false, 100, 0), 0);
            assert_eq!((*cfg).inner.reconnect.refused_retry, Duration::ZERO, "off");
            assert_eq!(
                kp_config_set_refused_retry(std::ptr::null_mut(), true, 0, 0),
                crate::ResultCode::KP_ERR_INVALID_ARGUMENT as i32
            );

            // Out-of-range values are stored and refused by kp_pusher_new, like the other setters'.
            assert_eq!(kp_config_set_reconnect(cfg, 0, 0.5, 0, 0, 0), 0);
            assert!((*cfg).inner.clone().validate().is_err());
            kp_config_free(cfg);
        }
    }

    unsafe extern "C" fn no_refresh(_: *mut c_void, _: u32, _: u32, _: *mut c_char, _: usize) -> usize {
        0
    }

    #[test]
    fn url_refresh_callback_is_stored_with_its_timeout() {
        let mut token = 5u8;
        let ud: *mut c_void = (&mut token as *mut u8).cast();
        // SAFETY: cfg comes from kp_config_new and is freed once at the end.
        unsafe {
            let cfg = kp_config_new();
            assert!((*cfg).url_refresh_cb.is_none());
            assert_eq!(kp_config_set_url_refresh_callback(cfg, Some(no_refresh), ud, 1200), 0);
            assert!((*cfg).url_refresh_cb.is_some());
            assert_eq!((*cfg).url_refresh_userdata, ud);
            assert_eq!((*cfg).inner.url_refresh_timeout, Duration::from_millis(1200));
            assert_eq!(kp_config_set_url_refresh_callback(cfg, Some(no_refresh), ud, 0), 0);
            assert_eq!((*cfg).inner.url_refresh_timeout, Duration::from_secs(5));
            assert_eq!(kp_config_set_url_refresh_callback(cfg, None, std::ptr::null_mut(), 0), 0);
            assert!((*cfg).url_refresh_cb.is_none());
            kp_config_free(cfg);
        }
    }

    #[test]
    fn video_scaling_setter() {
        use crate::pusher::VideoScaling;
        // SAFETY: cfg comes from kp_config_new and is freed once at the end.
        unsafe {
            let cfg = kp_config_new();
            let mode = |cfg: *mut kp_config| (*cfg).inner.video.as_ref().unwrap().scaling;
            assert_eq!(mode(cfg), VideoScaling::KP_VIDEO_SCALING_FILL);
            assert_eq!(kp_config_set_video_scaling(cfg, 2), 0);
            assert_eq!(mode(cfg), VideoScaling::KP_VIDEO_SCALING_OFF);
            assert_eq!(kp_config_set_video_scaling(cfg, 1), 0);
            assert_eq!(mode(cfg), VideoScaling::KP_VIDEO_SCALING_STRETCH);
            assert_eq!(kp_config_set_video_scaling(cfg, 3), INVALID);
            assert_eq!(kp_config_set_video_scaling(cfg, -1), INVALID);
            assert_eq!(mode(cfg), VideoScaling::KP_VIDEO_SCALING_STRETCH);
            assert_eq!(kp_config_set_video_scaling(std::ptr::null_mut(), 0), INVALID);
            kp_config_free(cfg);
        }
    }

    #[test]
    fn x264_setters_copy_and_null_means_default() {
        use crate::pusher::X264Threading;
        // SAFETY: cfg comes from kp_config_new and is freed once at the end.
        unsafe {
            let cfg = kp_config_new();
            assert_eq!(kp_config_set_x264_preset(cfg, c"faster".as_ptr(), std::ptr::null(), c"main".as_ptr()), 0);
            assert_eq!(kp_config_set_x264_vbv(cfg, 2500, 1000), 0);
            assert_eq!(kp_config_set_x264_threading(cfg, 2), 0);
            assert_eq!(kp_config_set_x264_threading(cfg, 3), INVALID);
            assert_eq!(kp_config_set_x264_bframes(cfg, 2), 0);
            let bad_utf8 = [0x66u8, 0xff, 0];
            assert_eq!(
                kp_config_set_x264_preset(cfg, bad_utf8.as_ptr().cast(), std::ptr::null(), std::ptr::null()),
                INVALID
            );
            let x = &(*cfg).inner.video.as_ref().unwrap().x264;
            assert_eq!((x.preset.as_str(), x.tune.as_str(), x.profile.as_str()), ("faster", "", "main"));
            assert_eq!((x.vbv_maxrate_kbps, x.vbv_bufsize_kbit, x.bframes), (2500, 1000, 2));
            assert_eq!(x.threading, X264Threading::KP_X264_THREADING_SLICED);
            kp_config_free(cfg);
        }
    }
}
