//! Timed messages and capture timestamps (issue 15): kp_pusher_send_message and its settings.

use super::config::{config_mut, kp_config, optional_str};
use super::pusher::{bytes, kp_pusher, pusher_ref};
use super::{kp_capture_timestamps, kp_message_flags};
use crate::pusher::CaptureTimestamps;
use crate::Error;
use std::ffi::c_char;

ffi_fn! {
    /// Sends a timed message with the video: `len` bytes (1 to 4096) at `data`, copied before the
    /// call returns. It rides with the first video frame pushed after the call (a raw frame once
    /// it leaves the encoder, or the next kp_pusher_push_h264/push_hevc access unit) as an SEI
    /// NAL unit of type user_data_unregistered (H.264 NAL type 6, HEVC prefix SEI type 39; SEI
    /// payload type 5): a 16-byte UUID, then the message bytes, with emulation prevention
    /// applied. It is placed after the access unit delimiter and parameter sets and before the
    /// first slice, on every transport (RTMP, SRT, WHIP) and in the local recording. With x264
    /// B-frames, frames leave the encoder in decode order and the message rides on the first to
    /// leave whose time is not before that frame's: at most `bframes` frames later in display
    /// order. The UUID is
    /// kp_config_set_message_uuid's, by default the ASCII bytes of "kitepush-message"
    /// (6b697465-7075-7368-2d6d-657373616765). Players hand such SEIs to apps (FFmpeg exports them
    /// as side data; the player SDKs of the large CDNs have an SEI callback).
    /// `flags`: 0, or KP_MESSAGE_AMF to also send it as an AMF0 data message (`onTextData` with
    /// a `text` string, or kp_config_set_message_amf_name's name) at the frame's time, on RTMP and
    /// in the local recording; the message must then be UTF-8 text. SRT ignores the flag (MPEG-TS
    /// has no such message; the SEI still goes). nginx-rtmp passes no data message on.
    /// At most 16 messages wait for a frame at once. A destination that drops the frame for
    /// congestion sends the message with the next frame it sends; one whose connection breaks
    /// before the server's TCP acknowledged the frame sends it again on the next session's first
    /// frame (a server that received it but had not acknowledged it yet then gets it twice: put
    /// a counter in the message if repeats matter). The stats count the messages sent and those
    /// given up (kp_stats / kp_destination_stats messages_*).
    /// Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or data, empty, over 4096 bytes, unknown flags,
    /// a KP_MESSAGE_AMF message that is not UTF-8), KP_ERR_QUEUE_FULL (16 messages already wait:
    /// no video frame has been pushed since), KP_ERR_NOT_STARTED (before start or after stop),
    /// KP_ERR_INVALID_STATE (failed, or no video track). The stream is never disturbed by a
    /// refused message. Thread-safe; non-blocking (no allocation per call).
    fn kp_pusher_send_message(
        p: *mut kp_pusher,
        data: *const u8,
        len: usize,
        flags: kp_message_flags,
    ) -> kp_result {
        const F: &str = "kp_pusher_send_message";
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, F) }?;
        // SAFETY: the app vouches for `len` readable bytes at a non-NULL data.
        let message = unsafe { bytes(data, len, F, "data") }?;
        p.inner.send_message(message, flags)
    }
}

ffi_fn! {
    /// The 16-byte UUID of kp_pusher_send_message's SEIs (copied); NULL restores the default,
    /// the ASCII bytes of "kitepush-message". Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_message_uuid(cfg: *mut kp_config, uuid: *const u8) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_message_uuid") }?;
        cfg.inner.messages.uuid = if uuid.is_null() {
            crate::core::sei::MESSAGE_UUID
        } else {
            // SAFETY: the app vouches for 16 readable bytes at a non-NULL uuid.
            unsafe { *(uuid as *const [u8; 16]) }
        };
        Ok(())
    }
}

ffi_fn! {
    /// The name of the AMF0 data message of KP_MESSAGE_AMF messages (copied); NULL or "" restores
    /// the default, "onTextData". Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL, the name is not
    /// UTF-8 or is longer than 255 bytes. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_message_amf_name(cfg: *mut kp_config, name: *const c_char) -> kp_result {
        const F: &str = "kp_config_set_message_amf_name";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        // SAFETY: per the contract above, name is NULL or NUL-terminated.
        let name = unsafe { optional_str(name, F, "name") }?;
        if name.len() > 255 {
            return Err(Error::InvalidArgument(format!("{F}: a name of {} bytes is over 255", name.len())));
        }
        cfg.inner.messages.amf_name = if name.is_empty() { "onTextData".into() } else { name };
        Ok(())
    }
}

ffi_fn! {
    /// Capture timestamps: KP_CAPTURE_TIMESTAMPS_OFF (default), _KEYFRAMES (on every keyframe) or
    /// _EVERY_FRAME. Each is an SEI user_data_unregistered with the UUID "kitepush-capture"
    /// (6b697465-7075-7368-2d63-617074757265) and a 16-byte payload: the capture time in UTC
    /// microseconds since the Unix epoch (u64, big-endian), then the frame's presentation time in
    /// the stream in microseconds (u64, big-endian: the FLV/TS time of the frame plus its
    /// composition time). The capture time is the frame's presentation time mapped to the wall
    /// clock by the latest video push (wall time of that kp_pusher_push_* call minus the stream
    /// time it got): for an app that pushes frames as it captures them, the time the frame was
    /// pushed. A viewer's clock minus it is the glass-to-glass latency (with synchronised clocks).
    /// It follows the app's messages in the access unit and is not moved past dropped frames.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL or the mode is unknown.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_capture_timestamps(cfg: *mut kp_config, mode: kp_capture_timestamps) -> kp_result {
        const F: &str = "kp_config_set_capture_timestamps";
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, F) }?;
        cfg.inner.messages.capture_timestamps = CaptureTimestamps::from_raw(mode.into())
            .ok_or_else(|| Error::InvalidArgument(format!("{F}: unknown mode {mode}")))?;
        Ok(())
    }
}
