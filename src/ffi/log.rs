//! Forwards the crate's `log` records to a process-wide C callback.

use super::error::cstring_lossy;
use crate::Error;
use log::{LevelFilter, Log, Metadata, Record};
use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::{OnceLock, RwLock};

/// Log verbosity. Values are stable (they cross the C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum LogLevel {
    /// Nothing is logged.
    KP_LOG_OFF = 0,
    KP_LOG_ERROR = 1,
    KP_LOG_WARN = 2,
    KP_LOG_INFO = 3,
    KP_LOG_DEBUG = 4,
    KP_LOG_TRACE = 5,
}

/// A log verbosity: one of `kp_log_level_values`.
#[allow(non_camel_case_types)]
pub type kp_log_level = i32;

/// Receives one log line: `userdata` as given to kp_set_log_callback, the record's level (never
/// KP_LOG_OFF), the module it comes from and the message. Both strings are valid only during the call.
#[allow(non_camel_case_types)]
pub type kp_log_cb = Option<
    unsafe extern "C" fn(userdata: *mut c_void, level: kp_log_level, target: *const c_char, message: *const c_char),
>;

#[derive(Clone, Copy)]
struct Sink {
    cb: unsafe extern "C" fn(*mut c_void, kp_log_level, *const c_char, *const c_char),
    userdata: *mut c_void,
}

// SAFETY: the pointer is only handed back to the app's callback; kp_set_log_callback's documentation
// makes the app promise that userdata may be used from any thread.
unsafe impl Send for Sink {}
// SAFETY: as above; the sink itself is never mutated, only replaced under the lock.
unsafe impl Sync for Sink {}

// Read-locked for the whole callback so that kp_set_log_callback can promise that, once it returns,
// the previous callback is not running anywhere (readers run concurrently, so threads do not
// serialise on logging).
static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    // Set while this thread is inside the app's log callback: records logged from there (e.g. by a kp_*
    // call the callback makes) are dropped instead of re-entering the callback or the lock.
    static IN_LOG_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

struct FfiLogger;

static LOGGER: FfiLogger = FfiLogger;

impl Log for FfiLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) || IN_LOG_CALLBACK.with(Cell::get) {
            return;
        }
        let guard = SINK.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(sink) = *guard else { return };
        let target = cstring_lossy(record.target());
        let message = cstring_lossy(&record.args().to_string());
        IN_LOG_CALLBACK.with(|f| f.set(true));
        // SAFETY: the app's callback with the documented signature; both strings outlive the call.
        unsafe { (sink.cb)(sink.userdata, record.level() as kp_log_level, target.as_ptr(), message.as_ptr()) };
        IN_LOG_CALLBACK.with(|f| f.set(false));
    }

    fn flush(&self) {}
}

fn level_filter(raw: kp_log_level) -> Result<LevelFilter, Error> {
    use LogLevel::*;
    Ok(match raw {
        r if r == KP_LOG_OFF as i32 => LevelFilter::Off,
        r if r == KP_LOG_ERROR as i32 => LevelFilter::Error,
        r if r == KP_LOG_WARN as i32 => LevelFilter::Warn,
        r if r == KP_LOG_INFO as i32 => LevelFilter::Info,
        r if r == KP_LOG_DEBUG as i32 => LevelFilter::Debug,
        r if r == KP_LOG_TRACE as i32 => LevelFilter::Trace,
        _ => return Err(Error::InvalidArgument(format!("unknown log level {raw}"))),
    })
}

ffi_fn! {
    /// Sends the library's log lines up to `max_level` to `cb`, for the whole process (all pushers);
    /// NULL cb (or KP_LOG_OFF) turns logging off. Off by default. The callback may be called from any
    /// SDK or app thread, concurrently, so it and `userdata` must be thread-safe; log lines produced
    /// while a thread is inside the callback are dropped. Once this call returns the previous callback
    /// is neither running nor called again, so its userdata may be released. BLOCKS until in-flight
    /// log callbacks return. Errors: KP_ERR_INVALID_ARGUMENT (unknown level), KP_ERR_INVALID_STATE
    /// (called from inside the log callback, or the process already installed another Rust `log`
    /// logger). Thread-safe.
    fn kp_set_log_callback(cb: kp_log_cb, userdata: *mut c_void, max_level: kp_log_level) -> kp_result {
        let level = level_filter(max_level)?;
        if IN_LOG_CALLBACK.with(Cell::get) {
            return Err(Error::InvalidState(
                "kp_set_log_callback: called from the log callback".into(),
            ));
        }
        if !*INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok()) {
            return Err(Error::InvalidState(
                "kp_set_log_callback: another logger is installed in this process".into(),
            ));
        }
        let sink = cb.map(|cb| Sink { cb, userdata });
        *SINK.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = sink;
        log::set_max_level(if sink.is_some() { level } else { LevelFilter::Off });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::sync::Mutex;

    static LINES: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn collect(
        userdata: *mut c_void,
        level: kp_log_level,
        _target: *const c_char,
        message: *const c_char,
    ) {
        assert_eq!(userdata as usize, 0x1234);
        // SAFETY: message is valid during the call.
        let m = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
        // Re-entrant logging from inside the callback must be dropped, not deadlock.
        log::error!("from inside the callback");
        LINES.lock().unwrap().push((level, m));
    }

    // The only test touching the process-wide logger, so the steps run in one order.
    #[test]
    fn records_reach_the_callback_up_to_the_level_and_stop_after_reset() {
        let ud = 0x1234 as *mut c_void;
        // SAFETY: `collect` matches kp_log_cb; userdata is just a number it checks.
        unsafe {
            assert_eq!(kp_set_log_callback(Some(collect), ud, 42), 1);
            assert_eq!(kp_set_log_callback(Some(collect), ud, LogLevel::KP_LOG_INFO as i32), 0);
        }
        log::info!(target: "kp_log_test", "hello {}", 1);
        log::debug!(target: "kp_log_test", "too verbose");
        // SAFETY: NULL turns logging off.
        assert_eq!(unsafe { kp_set_log_callback(None, std::ptr::null_mut(), 5) }, 0);
        log::error!(target: "kp_log_test", "after reset");
        let lines = LINES.lock().unwrap().clone();
        // Other tests may log concurrently through the same logger; only ours are checked.
        let ours: Vec<_> = lines.into_iter().filter(|(_, m)| !m.contains("inside")).collect();
        assert!(ours.contains(&(LogLevel::KP_LOG_INFO as i32, "hello 1".to_string())), "{ours:?}");
        assert!(!ours.iter().any(|(_, m)| m == "too verbose" || m == "after reset"));
        assert!(!LINES.lock().unwrap().iter().any(|(_, m)| m.contains("inside")));
    }
}
