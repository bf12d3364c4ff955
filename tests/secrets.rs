//! The stream key and its query string are secrets: they must never appear in a log line, an
//! event, the stats, an error's Display or Debug text, or kp_last_error_message — whatever
//! happens to the push. Every path below runs with a distinctive key and query, and every text
//! the SDK produces is captured (the `log` records through the C log callback at TRACE level,
//! events from the Rust API and the C callback) and searched for them.

mod common;

use common::pushing::{Harnessed, Source, Spec};
#[cfg(feature = "tls")]
use common::tls::TestCa;
use common::*;
use kitepush::core::reconnect::ReconnectPolicy;
use kitepush::ffi::config::*;
use kitepush::ffi::error::kp_last_error_message;
use kitepush::ffi::event::kp_event;
use kitepush::ffi::log::{kp_set_log_callback, LogLevel};
use kitepush::ffi::pusher::*;
use kitepush::pusher::{Event, EventKind, Pusher, PusherConfig};
use kitepush::ResultCode;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// What must never show. The key's first two characters may (`mask_key` keeps them so two streams
/// can be told apart), so the needles start after them.
const NEEDLES: [&str; 3] = ["CRETKEY123", "SECRETTOKEN", "token="];

/// A key nginx has not seen in this run, with the secret parts in it.
fn secret_path() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "SECRETKEY123x{}x{}?token=SECRETTOKEN&sig=SECRETTOKENSIG",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn collect_log(_: *mut c_void, level: i32, target: *const c_char, message: *const c_char) {
    // SAFETY: both strings are valid during the call.
    let (t, m) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
    LOG.lock().unwrap().push(format!("[{level}] {}: {}", t.to_string_lossy(), m.to_string_lossy()));
}

/// Every `log` record of the process goes to LOG, at the most verbose level.
fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: collect_log matches kp_log_cb and uses no userdata.
        let r = unsafe { kp_set_log_callback(Some(collect_log), std::ptr::null_mut(), LogLevel::KP_LOG_TRACE as i32) };
        assert_eq!(r, 0);
    });
}

fn assert_clean<'a>(what: &str, texts: impl IntoIterator<Item = &'a String>) {
    for t in texts {
        for n in NEEDLES {
            assert!(!t.contains(n), "{what} leaks the secret ({n}): {t}");
        }
    }
}

fn assert_logs_clean() {
    let log = LOG.lock().unwrap().clone();
    // The capture works: the session logs the URL it starts on, masked.
    assert!(
        log.iter().any(|l| l.contains("rtmp session to") && l.contains("SE***")),
        "no session log captured: {log:#?}"
    );
    assert_clean("a log line", &log);
}

/// Everything the pusher can say about itself: events, failure, stats.
fn assert_pusher_clean(p: &Pusher, events: &[Event]) {
    let mut texts: Vec<String> = events.iter().flat_map(|e| [e.message.clone(), format!("{e:?}")]).collect();
    if let Some(e) = p.failure() {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    // Stats are numbers today; the Debug text also covers any string field added later.
    texts.push(format!("{:?}", p.stats()));
    assert_clean("the pusher's events, failure or stats", &texts);
    assert_logs_clean();
}

fn run_until_failed(config: PusherConfig) -> Harnessed {
    capture_logs();
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    // nginx's `deny publish` answers the publish, then drops the connection.
    h.wait_for_failure(Duration::from_secs(60), true);
    let r = h.pusher.stop(Duration::from_secs(5));
    if let Err(e) = r {
        assert_clean("stop()'s error", &[e.to_string(), format!("{e:?}")]);
    }
    h.drain_events(Duration::from_millis(200));
    assert_pusher_clean(&h.pusher, &h.seen);
    h
}

fn few_attempts() -> ReconnectPolicy {
    ReconnectPolicy {
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(300),
        max_attempts: Some(3),
        ..ReconnectPolicy::default()
    }
}

#[test]
fn a_publish_reconnects_and_url_refreshes_never_show_the_key() {
    capture_logs();
    let mut nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let spec = Spec { seconds: 1.0, audio: true, ..Spec::default() };
    let first = nginx.url(&secret_path());
    let mut config = spec.config(&first);
    config.reconnect = ReconnectPolicy { first_delay: Duration::from_millis(200), ..few_attempts() };
    config.reconnect.max_attempts = None;
    let (tx, rx) = std::sync::mpsc::channel();
    let pusher = Arc::new(Pusher::new(config, Some(Box::new(move |e: &Event| drop(tx.send(e.clone()))))).unwrap());
    // The first refresh answers a URL that does not parse (logged, masked), later ones a new
    // secret URL on the same server.
    let asked = Arc::new(AtomicU32::new(0));
    let (asked2, port) = (asked.clone(), nginx.port());
    pusher
        .set_url_refresh(Box::new(move |_, _| {
            let n = asked2.fetch_add(1, Ordering::SeqCst);
            let path = secret_path();
            Some(if n == 0 {
                format!("rtmp://127.0.0.1:{port}/live/{} bad", path)
            } else {
                format!("rtmp://127.0.0.1:{port}/live/{path}")
            })
        }))
        .unwrap();
    pusher.start().unwrap();
    let mut seen = vec![];
    let wait = |kind: EventKind, seen: &mut Vec<Event>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ev = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {kind:?}: {seen:?}"));
            seen.push(ev.clone());
            if ev.kind == kind {
                return;
            }
        }
    };
    wait(EventKind::KP_EVENT_PUBLISHING, &mut seen);
    let mut src = Source::new(&spec);
    for _ in 0..spec.frames() {
        src.push_one(&pusher);
    }
    for _ in 0..2 {
        nginx.kill();
        wait(EventKind::KP_EVENT_DISCONNECTED, &mut seen);
        wait(EventKind::KP_EVENT_RECONNECTING, &mut seen);
        nginx.restart();
        wait(EventKind::KP_EVENT_RECONNECTED, &mut seen);
        for _ in 0..spec.frames() {
            src.push_one(&pusher);
        }
    }
    pusher.stop(Duration::from_secs(10)).unwrap();
    wait(EventKind::KP_EVENT_STOPPED, &mut seen);
    assert!(asked.load(Ordering::SeqCst) >= 2, "the refresh callback was asked");
    assert!(
        LOG.lock().unwrap().iter().any(|l| l.contains("URL refresh callback gave a bad URL")),
        "the bad refreshed URL was logged"
    );
    assert_pusher_clean(&pusher, &seen);
}

#[test]
fn a_rejected_publish_never_shows_the_key() {
    let nginx = Nginx::start(NginxOptions { deny_publish: true, ..NginxOptions::default() });
    let mut config = Spec::default().config(&nginx.url(&secret_path()));
    config.reconnect = few_attempts();
    let h = run_until_failed(config);
    assert!(h.kinds().contains(&EventKind::KP_EVENT_RECONNECTING), "{:?}", h.seen);
}

#[test]
fn a_failed_dns_lookup_never_shows_the_key() {
    let mut config = Spec::default().config(&format!("rtmp://no-such-host.invalid/live/{}", secret_path()));
    config.reconnect = few_attempts();
    let h = run_until_failed(config);
    assert_eq!(h.pusher.failure().map(|e| e.code()), Some(ResultCode::KP_ERR_DNS));
}

#[cfg(feature = "tls")]
#[test]
fn a_refused_tls_certificate_never_shows_the_key() {
    let ca = TestCa::new("kitepush test CA");
    let nginx = Nginx::start(NginxOptions { tls: Some(ca.server(&["localhost"])), ..NginxOptions::default() });
    let h = run_until_failed(Spec::default().config(&nginx.tls_url("localhost", &secret_path())));
    assert_eq!(h.pusher.failure().map(|e| e.code()), Some(ResultCode::KP_ERR_TLS));
}

#[test]
fn bad_urls_never_show_the_key() {
    capture_logs();
    for bad in [
        format!("rtmp://h:bad/live/{}", secret_path()),
        format!("http://h/live/{}", secret_path()),
        format!("rtmp://h/live/{} with spaces", secret_path()),
        format!("rtmp://user:{}@h/live/k", secret_path()),
        format!("rtmp:/h/live/{}", secret_path()),
    ] {
        let e = Pusher::new(Spec::default().config(&bad), None).err().expect("a bad URL is refused");
        assert_clean("Pusher::new's error", &[e.to_string(), format!("{e:?}")]);
    }
}

// Through the C ABI: the event callback, kp_last_error_message and kp_stats.

static C_EVENTS: Mutex<Vec<(i32, i32, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn collect_event(_: *mut c_void, ev: *const kp_event) {
    // SAFETY: ev and its message are valid during the call.
    let ev = unsafe { &*ev };
    let msg = unsafe { CStr::from_ptr(ev.message) }.to_string_lossy().into_owned();
    C_EVENTS.lock().unwrap().push((ev.kind, ev.code, msg));
}

fn last_error() -> String {
    // SAFETY: never NULL, valid until the next failing call on this thread.
    unsafe { CStr::from_ptr(kp_last_error_message()) }.to_string_lossy().into_owned()
}

#[test]
fn the_c_abi_never_shows_the_key() {
    capture_logs();
    // A port nobody listens on: every connect is refused.
    let port = free_port();
    // SAFETY: every pointer below comes from the SDK or outlives the call it is passed to; the
    // config and the pusher are freed once.
    unsafe {
        let cfg = kp_config_new();
        let bad = CString::new(format!("rtmp://127.0.0.1:{port}/live/{} x", secret_path())).unwrap();
        assert_eq!(kp_config_set_url(cfg, bad.as_ptr()), 0);
        let mut p: *mut kp_pusher = std::ptr::null_mut();
        assert_eq!(kp_pusher_new(cfg, &mut p), ResultCode::KP_ERR_INVALID_URL as i32);
        let msg = last_error();
        assert!(msg.contains("SE***"), "{msg}");
        assert_clean("kp_last_error_message", &[msg]);

        let url = CString::new(format!("rtmp://127.0.0.1:{port}/live/{}", secret_path())).unwrap();
        assert_eq!(kp_config_set_url(cfg, url.as_ptr()), 0);
        assert_eq!(kp_config_set_reconnect(cfg, 100, 1.5, 300, 3, 0), 0);
        assert_eq!(kp_config_set_event_callback(cfg, Some(collect_event), std::ptr::null_mut()), 0);
        assert_eq!(kp_pusher_new(cfg, &mut p), 0);
        kp_config_free(cfg);
        assert_eq!(kp_pusher_start(p), 0);
        wait_until(Duration::from_secs(30), "the pusher to fail", || {
            C_EVENTS.lock().unwrap().iter().any(|e| e.0 == EventKind::KP_EVENT_FAILED as i32)
        });
        let events = C_EVENTS.lock().unwrap().clone();
        assert!(events.iter().any(|e| e.1 == ResultCode::KP_ERR_CONNECT as i32), "{events:?}");
        // Media after the failure fails too; its message is another place a key could hide.
        let r = kp_pusher_push_aac(p, [0xffu8, 0xf1, 0, 0].as_ptr(), 4, 0);
        assert_ne!(r, 0);
        let after = last_error();
        let mut stats: kp_stats = std::mem::zeroed();
        stats.struct_size = std::mem::size_of::<kp_stats>() as u32;
        assert_eq!(kp_pusher_get_stats(p, &mut stats), 0);
        let _ = kp_pusher_stop(p, 1000);
        let stop = last_error();
        kp_pusher_free(p);
        let texts: Vec<String> =
            events.iter().map(|e| e.2.clone()).chain([after, stop, format!("{stats:?}")]).collect();
        assert_clean("a C event, kp_last_error_message or kp_stats", &texts);
    }
    assert_logs_clean();
}
