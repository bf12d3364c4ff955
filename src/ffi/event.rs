//! Events delivered to the app's C callback.

use super::error::cstring_lossy;
use super::{kp_event_kind, kp_result};
use crate::pusher::{Event, EventHandler};
use std::cell::Cell;
use std::ffi::{c_char, c_void};

/// One event from a pusher. Only valid during the callback: copy what you need to keep.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct kp_event {
    /// What happened (kp_event_kind_values). Ignore kinds you do not know: new ones may be added.
    pub kind: kp_event_kind,
    /// Why, for DISCONNECTED, RECONNECTING (the previous attempt's error) and FAILED; KP_OK otherwise.
    pub code: kp_result,
    /// Human-readable detail, never NULL, never containing the stream key.
    pub message: *const c_char,
    /// Milliseconds since the pusher was created.
    pub timestamp_ms: u64,
    /// Index of the destination the event is about: 0 for the one of kp_config_set_url, 1, 2, ...
    /// for those of kp_config_add_destination.
    pub destination: u32,
    /// Kind-specific figures, 0 where the kind has none (see kp_event_kind_values):
    /// CONNECTING: value = index of the URL tried (0 = primary, then backups);
    /// CONNECTED, PUBLISHING: value = ms since CONNECTING;
    /// RECONNECTING: value = number of the attempt that follows, value2 = delay before it in ms;
    /// RECONNECTED: value = outage in ms, value2 = attempts it took, value3 = ms of the outage's
    /// media kept and sent by the new session (from the keyframe it starts on), value4 = ms of
    /// media lost (in flight on the lost connection, before that keyframe, or past the budget);
    /// STALLED: value = ms without progress;
    /// FAILOVER: value = URL index left, value2 = URL index moved to;
    /// STOPPED: value = media frames queued and not sent;
    /// RECORDING_STARTED: value = stream ms where the file begins;
    /// RECORDING_STOPPED: value = video frames written, value2 = audio frames written;
    /// ENCODE_RUNG_CHANGED: value = new width, value2 = new height, value3 = new fps in thousandths,
    /// value4 = the rung (0 = the configured setting, then one per step down).
    pub value: i64,
    /// Second kind-specific figure; see `value`.
    pub value2: i64,
    /// Third and fourth kind-specific figures (RECONNECTED); see `value`. Appended in 0.x: the SDK
    /// fills the struct, so an app built against an older header simply does not read them.
    pub value3: i64,
    pub value4: i64,
}

/// Receives pusher events: `userdata` as given to kp_config_set_event_callback, and the event.
#[allow(non_camel_case_types)]
pub type kp_event_cb = Option<unsafe extern "C" fn(userdata: *mut c_void, ev: *const kp_event)>;

thread_local! {
    // Set while this thread runs an app event callback, so that calls which would wait for the
    // callback thread (stop, free) can refuse instead of deadlocking.
    static IN_EVENT_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn in_event_callback() -> bool {
    IN_EVENT_CALLBACK.with(Cell::get)
}

/// Marks this thread as running an app callback (stats too: stop and free must refuse there);
/// returns the previous mark for `leave_callback`.
pub(crate) fn enter_callback() -> bool {
    IN_EVENT_CALLBACK.with(|f| f.replace(true))
}

pub(crate) fn leave_callback(was_inside: bool) {
    IN_EVENT_CALLBACK.with(|f| f.set(was_inside));
}

struct EventSink {
    cb: unsafe extern "C" fn(*mut c_void, *const kp_event),
    userdata: *mut c_void,
}

// SAFETY: the pointer is only handed back to the app's callback. The header (kp_config_set_event_callback)
// makes the app promise that its userdata may be used from the SDK's callback thread.
unsafe impl Send for EventSink {}

impl EventSink {
    fn deliver(&self, ev: &Event) {
        // Kept alive for the duration of the call only, as the header says.
        let message = cstring_lossy(&ev.message);
        let c_event = kp_event {
            kind: ev.kind as kp_event_kind,
            code: ev.code as kp_result,
            message: message.as_ptr(),
            timestamp_ms: ev.timestamp_ms,
            destination: ev.destination,
            value: ev.value,
            value2: ev.value2,
            value3: ev.value3,
            value4: ev.value4,
        };
        let was_inside = IN_EVENT_CALLBACK.with(|f| f.replace(true));
        // SAFETY: `cb` is the app's callback with the documented signature; `c_event` and the string
        // it points to outlive the call.
        unsafe { (self.cb)(self.userdata, &c_event) };
        IN_EVENT_CALLBACK.with(|f| f.set(was_inside));
    }
}

/// Wraps the app's C callback as the pusher's Rust event handler.
pub(crate) fn handler(cb: kp_event_cb, userdata: *mut c_void) -> Option<EventHandler> {
    let sink = EventSink { cb: cb?, userdata };
    // A method call moves the whole sink into the closure; capturing `sink.userdata` alone would
    // capture a bare raw pointer, which is not Send.
    Some(Box::new(move |ev: &Event| sink.deliver(ev)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pusher::EventKind;
    use crate::ResultCode;
    use std::ffi::CStr;

    #[derive(Default)]
    struct Seen {
        kinds: Vec<i32>,
        messages: Vec<String>,
        inside: bool,
    }

    unsafe extern "C" fn record(userdata: *mut c_void, ev: *const kp_event) {
        // SAFETY: the test passes a live `Seen` as userdata; `ev` is valid during the call.
        let (seen, ev) = unsafe { (&mut *userdata.cast::<Seen>(), &*ev) };
        seen.kinds.push(ev.kind);
        // SAFETY: message is a valid NUL-terminated string during the call.
        let msg = unsafe { CStr::from_ptr(ev.message) };
        seen.messages.push(msg.to_string_lossy().into_owned());
        seen.inside = in_event_callback();
    }

    #[test]
    fn events_reach_the_c_callback_with_userdata() {
        let mut seen = Seen::default();
        let mut h = handler(Some(record), (&mut seen as *mut Seen).cast()).unwrap();
        h(&Event {
            kind: EventKind::KP_EVENT_FAILED,
            code: ResultCode::KP_ERR_AUTH,
            message: "denied\0x".into(),
            timestamp_ms: 5,
            destination: 0,
            value: 0,
            value2: 0,
            value3: 0,
            value4: 0,
        });
        drop(h);
        assert_eq!(seen.kinds, [EventKind::KP_EVENT_FAILED as i32]);
        assert_eq!(seen.messages, ["denied\u{FFFD}x"]);
        assert!(seen.inside);
        assert!(!in_event_callback());
    }

    #[test]
    fn null_callback_means_no_handler() {
        assert!(handler(None, std::ptr::null_mut()).is_none());
    }
}
