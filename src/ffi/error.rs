//! Result codes at the C edge, the per-thread last error message and the panic boundary.

use super::kp_result;
use crate::{Error, ResultCode};
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    // Per thread rather than per handle: a failing kp_pusher_new has no handle to hang it on, and
    // per-thread needs no lock on the hot push path.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A `CString` from text that may contain NUL bytes (they are replaced, not truncated at).
pub(crate) fn cstring_lossy(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

pub(crate) fn set_last_error(message: &str) {
    let c = cstring_lossy(message);
    // A thread being torn down has no slot left; losing the message then is harmless.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

fn record(e: &Error) -> kp_result {
    set_last_error(&e.to_string());
    e.code() as kp_result
}

fn panic_text(function: &str, payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    format!("internal: panic in {function}: {what}")
}

/// Runs an export's body; errors and panics become codes and the thread's last error message.
pub(crate) fn result_boundary(function: &str, body: impl FnOnce() -> Result<(), Error>) -> kp_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ResultCode::KP_OK as kp_result,
        Ok(Err(e)) => record(&e),
        Err(payload) => {
            set_last_error(&panic_text(function, payload.as_ref()));
            ResultCode::KP_ERR_INTERNAL as kp_result
        }
    }
}

/// Runs a getter's body; a panic returns `fallback` and is recorded as the last error.
pub(crate) fn value_boundary<T>(function: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(&panic_text(function, payload.as_ref()));
            fallback
        }
    }
}

/// Records `e` as the thread's last error, for getters that cannot return a code.
pub(crate) fn fail_getter(e: Error) {
    record(&e);
}

/// The error for a NULL pointer argument.
pub(crate) fn null_arg(function: &str, arg: &str) -> Error {
    Error::InvalidArgument(format!("{function}: {arg} is NULL"))
}

/// Maps a raw code from C to the enum, without ever materialising an out-of-range enum value.
fn result_code_from_raw(raw: kp_result) -> Option<ResultCode> {
    use ResultCode::*;
    const ALL: [ResultCode; 25] = [
        KP_OK,
        KP_ERR_INVALID_ARGUMENT,
        KP_ERR_INVALID_STATE,
        KP_ERR_INVALID_URL,
        KP_ERR_UNSUPPORTED,
        KP_ERR_BAD_FRAME_SIZE,
        KP_ERR_BAD_DIMENSIONS,
        KP_ERR_BAD_PIXEL_FORMAT,
        KP_ERR_NON_MONOTONIC_TIMESTAMP,
        KP_ERR_NOT_STARTED,
        KP_ERR_QUEUE_FULL,
        KP_ERR_ENCODER,
        KP_ERR_BAD_BITSTREAM,
        KP_ERR_CONNECT,
        KP_ERR_TIMEOUT,
        KP_ERR_DNS,
        KP_ERR_IO,
        KP_ERR_PROTOCOL,
        KP_ERR_PUBLISH_REJECTED,
        KP_ERR_CONNECT_REJECTED,
        KP_ERR_AUTH,
        KP_ERR_TLS,
        KP_ERR_INTERNAL,
        KP_ERR_FILE,
        KP_ERR_PAUSED,
    ];
    // Exhaustive on purpose: a code added to ResultCode stops this compiling until ALL lists it too.
    match KP_OK {
        KP_OK
        | KP_ERR_INVALID_ARGUMENT
        | KP_ERR_INVALID_STATE
        | KP_ERR_INVALID_URL
        | KP_ERR_UNSUPPORTED
        | KP_ERR_BAD_FRAME_SIZE
        | KP_ERR_BAD_DIMENSIONS
        | KP_ERR_BAD_PIXEL_FORMAT
        | KP_ERR_NON_MONOTONIC_TIMESTAMP
        | KP_ERR_NOT_STARTED
        | KP_ERR_QUEUE_FULL
        | KP_ERR_ENCODER
        | KP_ERR_BAD_BITSTREAM
        | KP_ERR_CONNECT
        | KP_ERR_TIMEOUT
        | KP_ERR_DNS
        | KP_ERR_IO
        | KP_ERR_PROTOCOL
        | KP_ERR_PUBLISH_REJECTED
        | KP_ERR_CONNECT_REJECTED
        | KP_ERR_AUTH
        | KP_ERR_TLS
        | KP_ERR_INTERNAL
        | KP_ERR_FILE
        | KP_ERR_PAUSED => {}
    }
    ALL.into_iter().find(|c| *c as kp_result == raw)
}

ffi_fn! {
    /// A static, NUL-terminated English description of a result code ("unknown result code" for a
    /// value this version does not know). Never NULL; the string is owned by the library and lives for
    /// the whole process. Thread-safe, non-blocking.
    fn kp_result_str(result: kp_result) -> *const c_char = c"internal error".as_ptr(); {
        match result_code_from_raw(result) {
            Some(code) => code.as_cstr().as_ptr(),
            None => c"unknown result code".as_ptr(),
        }
    }
}

ffi_fn! {
    /// The detailed message of the last call that failed on the calling thread (its kp_result says
    /// which kind of failure; this says what exactly). Never NULL: "" before any failure. The string is
    /// owned by the library and stays valid until the next failing kp_* call on the same thread; copy
    /// it to keep it. Successful calls leave it unchanged. It never contains the stream key.
    /// Thread-safe (each thread has its own), non-blocking.
    fn kp_last_error_message() -> *const c_char = c"".as_ptr(); {
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ptr())
            .unwrap_or(c"".as_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: kp_last_error_message always returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(kp_last_error_message()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn panic_in_result_body_becomes_internal_error() {
        let r = result_boundary("kp_test_fn", || panic!("boom {}", 42));
        assert_eq!(r, ResultCode::KP_ERR_INTERNAL as kp_result);
        let msg = last_error();
        assert!(msg.contains("kp_test_fn") && msg.contains("boom 42"), "{msg}");
    }

    #[test]
    fn panic_in_getter_returns_fallback() {
        let p: *const c_char = value_boundary("kp_getter", std::ptr::null(), || panic!("static"));
        assert!(p.is_null());
        assert!(last_error().contains("static"));
    }

    ffi_fn! {
        /// Exercises the macro itself.
        fn kp_test_panicking_export(x: u32) -> kp_result {
            if x > 0 {
                panic!("export panicked with {x}");
            }
            Ok(())
        }
    }

    #[test]
    fn macro_generated_export_catches_panic() {
        // SAFETY: takes no pointers.
        assert_eq!(unsafe { kp_test_panicking_export(0) }, 0);
        // SAFETY: as above.
        let r = unsafe { kp_test_panicking_export(7) };
        assert_eq!(r, ResultCode::KP_ERR_INTERNAL as kp_result);
        assert!(last_error().contains("export panicked with 7"));
    }

    #[test]
    fn error_sets_code_and_message_and_success_keeps_it() {
        let r = result_boundary("f", || Err(Error::InvalidUrl("no scheme".into())));
        assert_eq!(r, ResultCode::KP_ERR_INVALID_URL as kp_result);
        assert_eq!(last_error(), "invalid URL: no scheme");
        assert_eq!(result_boundary("f", || Ok(())), 0);
        assert_eq!(last_error(), "invalid URL: no scheme");
    }

    #[test]
    fn last_error_is_per_thread() {
        set_last_error("main thread failure");
        std::thread::spawn(|| assert_eq!(last_error(), "")).join().unwrap();
        assert_eq!(last_error(), "main thread failure");
    }

    #[test]
    fn result_str_covers_every_code_and_unknown_values() {
        for raw in 0..=24 {
            let code = result_code_from_raw(raw).expect("codes 0..=24 are contiguous");
            assert_eq!(code as kp_result, raw);
            // SAFETY: returns a static string.
            let s = unsafe { CStr::from_ptr(kp_result_str(raw)) };
            assert_eq!(s, code.as_cstr());
        }
        for raw in [-1, 25, i32::MAX, i32::MIN] {
            // SAFETY: as above.
            let s = unsafe { CStr::from_ptr(kp_result_str(raw)) };
            assert_eq!(s, c"unknown result code");
        }
    }

    #[test]
    fn interior_nul_does_not_truncate() {
        set_last_error("a\0b");
        assert_eq!(last_error(), "a\u{FFFD}b");
    }
}
