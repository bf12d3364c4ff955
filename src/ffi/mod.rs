//! C ABI: opaque handles, result codes, the panic boundary and callbacks.
//!
//! Everything here follows /work/shared/CONVENTIONS.md ("Rules for the C ABI"). `include/kitepush.h`
//! is generated from this module by cbindgen (`cbindgen.toml`) and checked by `tests/header.rs`.
//!
//! Enumerations cross the ABI as `int32_t` typedefs (`kp_result`, `kp_state`, ...) rather than C
//! `enum` types: the size of a C enum is up to the compiler (`-fshort-enums`, common on embedded ARM
//! toolchains, makes it one byte), and a value from C that is not a known variant must never be
//! turned into a Rust enum. The named constants still come from the Rust enums, exported as
//! `kp_*_values`.

#![deny(unsafe_op_in_unsafe_fn)]

#[macro_use]
mod macros;

pub mod config;
pub mod error;
pub mod event;
pub mod log;
pub mod messages;
pub mod pusher;
pub mod refresh;
pub mod tls;
pub mod video_slot;

use std::ffi::{c_char, CStr};

/// A result code: one of `kp_result_values` (`KP_OK` = 0, `KP_ERR_*` > 0). Values are stable and
/// never reused; new codes may be added, so treat unknown non-zero values as errors.
#[allow(non_camel_case_types)]
pub type kp_result = i32;

/// A pixel format: one of `kp_pixel_format_values`.
#[allow(non_camel_case_types)]
pub type kp_pixel_format = i32;

/// A video source/encoder: one of `kp_video_encoder_values`.
#[allow(non_camel_case_types)]
pub type kp_video_encoder = i32;

/// How x264 uses its threads: one of `kp_x264_threading_values`.
#[allow(non_camel_case_types)]
pub type kp_x264_threading = i32;

/// What happens to raw frames larger than the configured size: one of `kp_video_scaling_values`.
#[allow(non_camel_case_types)]
pub type kp_video_scaling = i32;

/// An encode ladder rung's encoder complexity: one of `kp_encode_complexity_values`.
#[allow(non_camel_case_types)]
pub type kp_encode_complexity = i32;

/// How kp_config_set_srt_stream_id builds an SRT stream id: one of
/// `kp_srt_stream_id_preset_values`.
#[allow(non_camel_case_types)]
pub type kp_srt_stream_id_preset = i32;

/// An audio source/encoder: one of `kp_audio_encoder_values`.
#[allow(non_camel_case_types)]
pub type kp_audio_encoder = i32;

/// A pusher state: one of `kp_state_values`.
#[allow(non_camel_case_types)]
pub type kp_state = i32;

/// An event kind: one of `kp_event_kind_values`. New kinds may be added; ignore unknown ones.
#[allow(non_camel_case_types)]
pub type kp_event_kind = i32;

/// What a paused pusher sends: one of `kp_pause_mode_values`.
#[allow(non_camel_case_types)]
pub type kp_pause_mode = i32;

/// Flags of kp_pusher_send_message: `kp_message_flag_values` OR-ed together (0 = the SEI only).
#[allow(non_camel_case_types)]
pub type kp_message_flags = u32;

/// When capture timestamps are sent: one of `kp_capture_timestamps_values`.
#[allow(non_camel_case_types)]
pub type kp_capture_timestamps = i32;

const VERSION_CSTR: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(s) => s,
    Err(_) => panic!("the crate version contains a NUL byte"),
};

ffi_fn! {
    /// The library version as "MAJOR.MINOR.PATCH", static (never NULL, never freed). Compare it with
    /// KP_VERSION_STRING to detect a header/library mismatch. Thread-safe, non-blocking.
    fn kp_version() -> *const c_char = VERSION_CSTR.as_ptr(); {
        VERSION_CSTR.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_is_the_crate_version() {
        // SAFETY: kp_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(kp_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn header_version_macros_match_the_crate() {
        // The macros live in cbindgen.toml (cbindgen cannot evaluate env!); this catches a version bump
        // that forgot them.
        let toml = include_str!("../../cbindgen.toml");
        for (name, value) in [
            ("KP_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
            ("KP_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
            ("KP_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
        ] {
            let line = format!("#define {name} {value}\n");
            assert!(toml.contains(&line), "cbindgen.toml lacks {line:?}");
        }
        let line = format!("#define KP_VERSION_STRING \"{}\"\n", env!("CARGO_PKG_VERSION"));
        assert!(toml.contains(&line), "cbindgen.toml lacks {line:?}");
    }
}
