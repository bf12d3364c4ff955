//! The app's URL refresh callback (signed ingest URLs expire), wrapped as the pusher's Rust
//! [`UrlRefresh`].
//!
//! The pusher asks on a helper thread and stops waiting after the refresh timeout, so a slow app
//! callback may still be running when the pusher is freed. A [`RefreshGate`] owned by the
//! `kp_pusher` makes kp_pusher_free wait for a call in progress and refuse later ones, so that
//! once kp_pusher_free has returned the app's callback never runs again and its userdata may go.

use crate::pusher::UrlRefresh;
use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Bytes of the buffer the URL refresh callback writes into, including the terminating NUL.
pub(crate) const URL_REFRESH_BUF_LEN: usize = 2048;

/// Asked for a fresh URL before a reconnect: `userdata` as given to
/// kp_config_set_url_refresh_callback, the destination (0 = the one from kp_config_set_url) and the
/// index of the URL about to be used (0 = the destination's primary, then its backups in order).
/// Write a NUL-terminated URL into `buf` (`buf_len` bytes, 2048) and return its length without the
/// NUL, or return 0 to keep the current URL. A return value >= buf_len means the URL did not fit: it
/// is ignored (and logged), as is a URL that is not UTF-8; one that kp_pusher_new would refuse is
/// ignored too (logged). A new URL replaces the old one for this and later attempts.
#[allow(non_camel_case_types)]
pub type kp_url_refresh_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        destination: u32,
        url_index: u32,
        buf: *mut c_char,
        buf_len: usize,
    ) -> usize,
>;

thread_local! {
    // Set while this thread runs the app's URL refresh callback: kp_pusher_free called from there
    // must not wait for the call it is part of.
    static IN_URL_REFRESH: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn in_url_refresh() -> bool {
    IN_URL_REFRESH.with(Cell::get)
}

#[derive(Default)]
struct GateState {
    closed: bool,
    in_flight: u32,
}

/// Counts calls into the app's callback and, once closed, lets none start.
#[derive(Default)]
pub(crate) struct RefreshGate {
    state: Mutex<GateState>,
    idle: Condvar,
}

impl RefreshGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // Nothing panics while holding it; a poisoned lock still holds consistent counts.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a call; false once closed.
    fn enter(&self) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        s.in_flight += 1;
        true
    }

    fn leave(&self) {
        let mut s = self.lock();
        s.in_flight -= 1;
        if s.in_flight == 0 {
            self.idle.notify_all();
        }
    }

    /// Refuses further calls and waits until none is running.
    pub(crate) fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        while s.in_flight > 0 {
            s = self.idle.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Closes the gate when dropped. Kept in `kp_pusher` after the pusher itself, so it drops after
/// the pusher's threads are joined.
pub(crate) struct GateCloser(pub(crate) Arc<RefreshGate>);

impl Drop for GateCloser {
    fn drop(&mut self) {
        if in_url_refresh() {
            // Freed from inside the callback (kp_pusher_free hands that to a helper thread, so this
            // is only reached if that changes): waiting would wait for ourselves.
            self.0.lock().closed = true;
        } else {
            self.0.close();
        }
    }
}

struct RefreshSink {
    cb: unsafe extern "C" fn(*mut c_void, u32, u32, *mut c_char, usize) -> usize,
    userdata: *mut c_void,
    gate: Arc<RefreshGate>,
}

// SAFETY: the pointer is only handed back to the app's callback; kp_config_set_url_refresh_callback
// makes the app promise that userdata may be used from the SDK's threads.
unsafe impl Send for RefreshSink {}

impl RefreshSink {
    fn ask(&mut self, destination: u32, url_index: u32) -> Option<String> {
        if !self.gate.enter() {
            return None;
        }
        struct Leave<'a>(&'a RefreshGate);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.leave();
            }
        }
        let _leave = Leave(&self.gate);
        let mut buf = [0u8; URL_REFRESH_BUF_LEN];
        let was_inside = IN_URL_REFRESH.with(|f| f.replace(true));
        // SAFETY: `cb` is the app's callback with the documented signature; `buf` has buf_len
        // writable bytes and outlives the call.
        let n = unsafe { (self.cb)(self.userdata, destination, url_index, buf.as_mut_ptr().cast(), buf.len()) };
        IN_URL_REFRESH.with(|f| f.set(was_inside));
        parse_answer(&buf, n, destination, url_index)
    }
}

/// The URL the app wrote, or None (kept URL) for 0, truncation or bytes that are not a URL.
fn parse_answer(buf: &[u8], n: usize, destination: u32, url_index: u32) -> Option<String> {
    if n == 0 {
        return None;
    }
    if n >= buf.len() {
        log::warn!(
            "URL refresh callback (destination {destination}, URL {url_index}) returned {n}, the URL \
             does not fit in {} bytes; keeping the current URL",
            buf.len()
        );
        return None;
    }
    let url = &buf[..n];
    // The logs never show the URL itself: it holds the stream key.
    if url.contains(&0) {
        log::warn!("URL refresh callback returned length {n} but the URL has a NUL before it; keeping the current URL");
        return None;
    }
    match std::str::from_utf8(url) {
        Ok(s) => Some(s.to_owned()),
        Err(_) => {
            log::warn!("URL refresh callback returned a URL that is not UTF-8; keeping the current URL");
            None
        }
    }
}

/// Wraps the app's C callback as the pusher's URL refresh function, gated by `gate`.
pub(crate) fn url_refresh(cb: kp_url_refresh_cb, userdata: *mut c_void, gate: Arc<RefreshGate>) -> Option<UrlRefresh> {
    let mut sink = RefreshSink { cb: cb?, userdata, gate };
    Some(Box::new(move |destination, url_index| sink.ask(destination, url_index)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[derive(Default)]
    struct Asked {
        calls: Vec<(u32, u32)>,
        answer: Vec<u8>,
        ret: Option<usize>,
        inside: bool,
    }

    unsafe extern "C" fn answer(ud: *mut c_void, dest: u32, idx: u32, buf: *mut c_char, len: usize) -> usize {
        // SAFETY: the test passes a live `Asked`; buf has len bytes.
        let (a, out) = unsafe { (&mut *ud.cast::<Asked>(), std::slice::from_raw_parts_mut(buf.cast::<u8>(), len)) };
        a.calls.push((dest, idx));
        a.inside = in_url_refresh();
        assert_eq!(len, URL_REFRESH_BUF_LEN);
        // SAFETY: the SDK hands a zeroed buffer: an empty C string.
        assert_eq!(unsafe { CStr::from_ptr(buf) }.to_bytes(), b"");
        let n = a.answer.len().min(len - 1);
        out[..n].copy_from_slice(&a.answer[..n]);
        out[n] = 0;
        a.ret.unwrap_or(n)
    }

    #[test]
    fn answers_become_urls_and_bad_ones_keep_the_current_url() {
        let asked = Box::into_raw(Box::new(Asked { answer: b"rtmp://h/app/new".to_vec(), ..Default::default() }));
        let gate = Arc::new(RefreshGate::default());
        let mut f = url_refresh(Some(answer), asked.cast(), gate.clone()).unwrap();
        // SAFETY (all blocks below): `asked` is live until the end; it is only touched between
        // calls of `f`, through the same raw pointer the callback uses.
        let set = |ret: Option<usize>, answer: &[u8]| unsafe {
            (*asked).ret = ret;
            (*asked).answer = answer.to_vec();
        };
        assert_eq!(f(1, 2).as_deref(), Some("rtmp://h/app/new"));
        assert!(unsafe { (*asked).inside });
        assert!(!in_url_refresh());
        set(Some(0), b"rtmp://h/app/new");
        assert_eq!(f(0, 0), None, "0 keeps the current URL");
        set(Some(URL_REFRESH_BUF_LEN), b"rtmp://h/app/new");
        assert_eq!(f(0, 0), None, "truncated");
        set(Some(4000), b"rtmp://h/app/new");
        assert_eq!(f(0, 0), None, "truncated");
        set(None, &[b'r', 0xff]);
        assert_eq!(f(0, 0), None, "not UTF-8");
        set(Some(6), b"rtmp");
        assert_eq!(f(0, 0), None, "NUL inside the claimed length");
        assert_eq!(unsafe { &(*asked).calls }, &[(1, 2), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0)]);
        gate.close();
        set(None, b"rtmp://h/app/new");
        assert_eq!(f(0, 0), None, "no call once the gate is closed");
        assert_eq!(unsafe { (*asked).calls.len() }, 6);
        drop(f);
        // SAFETY: from Box::into_raw above, freed once.
        drop(unsafe { Box::from_raw(asked) });
    }

    #[test]
    fn null_callback_means_no_refresh() {
        assert!(url_refresh(None, std::ptr::null_mut(), Arc::default()).is_none());
    }

    #[test]
    fn close_waits_for_a_call_in_progress() {
        let gate = Arc::new(RefreshGate::default());
        assert!(gate.enter());
        let g = gate.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let closer = std::thread::spawn(move || {
            g.close();
            tx.send(()).unwrap();
        });
        // The closer cannot finish while the call is in flight.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(100)).is_err());
        gate.leave();
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("close returns once the call left");
        closer.join().unwrap();
        assert!(!gate.enter());
    }
}
