//! RTMPS against nginx-rtmp behind a real TLS terminator (nginx's `stream` module with `ssl`), with a
//! CA made by the test: the push verifies and records; untrusted, wrong-host and expired
//! certificates are refused with KP_ERR_TLS and a message that says which; reconnects work over TLS.

#![cfg(feature = "tls")]

mod common;

use common::pushing::{Harnessed, Source, Spec};
use common::tls::TestCa;
use common::*;
use kitepush::core::reconnect::ReconnectPolicy;
use kitepush::pusher::{Event, EventKind, Pusher, PusherConfig, PusherState};
use kitepush::{Error, ResultCode};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tls_nginx(listener: TlsListener, record_unique: bool) -> Nginx {
    Nginx::start(NginxOptions { tls: Some(listener), record_unique, ..NginxOptions::default() })
}

fn trusting(mut config: PusherConfig, ca: &TestCa) -> PusherConfig {
    config.tls.extra_ca_pem.push(ca.pem().into_bytes());
    config
}

/// Start, wait for PUBLISHING, push the whole spec as fast as the encoder takes it, stop.
fn push_through(config: PusherConfig, spec: &Spec) -> Harnessed {
    let mut h = Harnessed::new(config);
    h.pusher.start().expect("start");
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));
    let mut src = Source::new(spec);
    for _ in 0..spec.frames() {
        src.push_one(&h.pusher);
    }
    h.pusher.stop(Duration::from_secs(20)).expect("stop");
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    h
}

fn assert_recording_complete(nginx: &Nginx, key: &str, spec: &Spec) {
    let rec = nginx.recording(key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let v = p.video.as_ref().expect("video in the recording");
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", spec.width, spec.height), "{p:?}");
    assert_eq!(v.frames, spec.frames(), "every frame pushed over TLS was recorded: {p:?}");
    assert_eq!(p.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"), "{p:?}");
    assert_eq!(decode_errors(&rec), "");
}

#[test]
fn rtmps_push_by_host_name_is_verified_and_recorded() {
    let ca = TestCa::new("kitepush test CA");
    let nginx = tls_nginx(ca.server(&["localhost"]), false);
    let key = unique_key("rtmps-name");
    let spec = Spec { seconds: 4.0, ..Spec::default() };
    // `localhost`: the name goes out as SNI and must match the certificate's DNS name.
    let h = push_through(trusting(spec.config(&nginx.tls_url("localhost", &key)), &ca), &spec);
    assert!(h.pusher.failure().is_none());
    assert!(h.pusher.stats().bytes_sent > 0);
    assert_recording_complete(&nginx, &key, &spec);
}

#[test]
fn rtmps_push_by_ip_address_is_verified_and_recorded() {
    let ca = TestCa::new("kitepush test CA");
    let nginx = tls_nginx(ca.server(&["127.0.0.1"]), false);
    let key = unique_key("rtmps-ip");
    let spec = Spec { seconds: 3.0, audio: false, ..Spec::default() };
    let h = push_through(trusting(spec.config(&nginx.tls_url("127.0.0.1", &key)), &ca), &spec);
    assert!(h.pusher.failure().is_none());
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    assert_eq!(probe(&rec).video.map(|v| v.frames), Some(spec.frames()));
}

/// The pusher is refused: FAILED with KP_ERR_TLS after exactly one attempt (a certificate problem
/// does not fix itself; retrying forever would hide it). Returns the failure's message.
fn refused(config: PusherConfig) -> String {
    let mut h = Harnessed::new(config);
    h.pusher.start().expect("start");
    let failed = h.wait_for_failure(Duration::from_secs(20), false);
    assert_eq!(failed.code, ResultCode::KP_ERR_TLS, "{failed:?}");
    let attempts = h.seen.iter().filter(|e| e.kind == EventKind::KP_EVENT_CONNECTING).count();
    assert_eq!(attempts, 1, "a certificate error is not retried: {:?}", h.seen);
    assert!(!h.kinds().contains(&EventKind::KP_EVENT_CONNECTED), "no RTMP connect over a refused TLS session");
    assert_eq!(h.pusher.state(), PusherState::KP_STATE_FAILED);
    let err = h.pusher.failure().expect("failure recorded");
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert_eq!(err.to_string(), failed.message);
    let _ = h.pusher.stop(Duration::from_secs(5));
    eprintln!("refused as expected: {}", failed.message);
    failed.message
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let ca = TestCa::new("kitepush test CA");
    let nginx = tls_nginx(ca.server(&["localhost"]), false);
    let key = unique_key("untrusted");
    // The CA is not added: only the bundled public roots are trusted.
    let msg = refused(Spec::default().config(&nginx.tls_url("localhost", &key)));
    assert!(msg.contains("not signed by a trusted authority") && msg.contains("localhost"), "{msg}");
    assert!(nginx.recordings_of(&key).is_empty());

    // Another CA's certificate is just as untrusted.
    let other = TestCa::new("some other CA");
    let msg = refused(trusting(Spec::default().config(&nginx.tls_url("localhost", &key)), &other));
    assert!(msg.contains("not signed by a trusted authority"), "{msg}");
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let ca = TestCa::new("kitepush test CA");
    let nginx = tls_nginx(ca.server(&["ingest.example.com"]), false);
    let key = unique_key("wrong-host");
    let msg = refused(trusting(Spec::default().config(&nginx.tls_url("localhost", &key)), &ca));
    assert!(msg.contains("not valid for the host name localhost (wrong host)"), "{msg}");
    assert!(nginx.recordings_of(&key).is_empty());
}

#[test]
fn an_expired_certificate_is_refused() {
    let ca = TestCa::new("kitepush test CA");
    let nginx = tls_nginx(ca.expired_server(&["localhost"]), false);
    let key = unique_key("expired");
    let msg = refused(trusting(Spec::default().config(&nginx.tls_url("localhost", &key)), &ca));
    assert!(msg.contains("has expired"), "{msg}");
}

#[test]
fn danger_accept_invalid_certs_publishes_to_an_untrusted_wrong_host_server() {
    let ca = TestCa::new("kitepush test CA");
    let nginx = tls_nginx(ca.server(&["ingest.example.com"]), false);
    let key = unique_key("danger");
    let spec = Spec { seconds: 2.0, audio: false, ..Spec::default() };
    let mut config = spec.config(&nginx.tls_url("localhost", &key));
    config.tls.danger_accept_invalid_certs = true;
    push_through(config, &spec);
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    assert_eq!(probe(&rec).video.map(|v| v.frames), Some(spec.frames()));
}

#[test]
fn rtmps_to_a_plain_rtmp_port_fails_clearly() {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("not-tls");
    let mut config = Spec::default().config(&format!("rtmps://127.0.0.1:{}/live/{key}", nginx.port()));
    config.connect_timeout = Duration::from_secs(2);
    config.reconnect = ReconnectPolicy { max_attempts: Some(1), ..ReconnectPolicy::default() };
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    let failed = h.wait_for_failure(Duration::from_secs(30), false);
    // nginx-rtmp waits for the rest of a 1537-byte RTMP handshake that the ClientHello seemed to
    // begin, so the TLS handshake times out (were it to hang up or answer, that would be IO or TLS).
    assert!(
        matches!(failed.code, ResultCode::KP_ERR_TLS | ResultCode::KP_ERR_IO | ResultCode::KP_ERR_TIMEOUT),
        "{failed:?}"
    );
}

#[test]
fn a_silent_tls_server_times_out_within_the_connect_timeout_and_stop_is_prompt() {
    // Accepts TCP and never answers the ClientHello.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    silent.set_nonblocking(true).unwrap();
    let acceptor = std::thread::spawn(move || {
        while !stop2.load(Ordering::SeqCst) {
            if let Ok((s, _)) = silent.accept() {
                keep.lock().unwrap().push(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut config = Spec::default().config(&format!("rtmps://localhost:{port}/live/k"));
    config.connect_timeout = Duration::from_millis(1500);
    config.reconnect = ReconnectPolicy { max_attempts: Some(1), ..ReconnectPolicy::default() };
    let mut h = Harnessed::new(config);
    let t0 = Instant::now();
    h.pusher.start().unwrap();
    let failed = h.wait_for_failure(Duration::from_secs(20), false);
    assert_eq!(failed.code, ResultCode::KP_ERR_TIMEOUT, "{failed:?}");
    assert!(failed.message.contains("TLS handshake with localhost not finished within 1500 ms"), "{failed:?}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // stop() during a TLS handshake returns at once, not after the connect timeout.
    let mut config = Spec::default().config(&format!("rtmps://localhost:{port}/live/k"));
    config.connect_timeout = Duration::from_secs(30);
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_CONNECTING, Duration::from_secs(10));
    wait_until(Duration::from_secs(10), "the TLS connection to be accepted", || held.lock().unwrap().len() >= 2);
    let t0 = Instant::now();
    let _ = h.pusher.stop(Duration::from_millis(500));
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    assert!(t0.elapsed() < Duration::from_secs(5), "stop took {:?}", t0.elapsed());
    stop.store(true, Ordering::SeqCst);
    acceptor.join().unwrap();
}

/// Pushes in real time on a thread until told to stop; returns the frames pushed.
fn real_time(pusher: Arc<Pusher>, spec: Spec, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut src = Source::new(&spec);
        let t0 = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let due = t0 + Duration::from_micros(src.pts_us(src.next_frame) as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            src.push_one_nowait(&pusher);
        }
        src.next_frame
    })
}

fn next(rx: &std::sync::mpsc::Receiver<Event>, seen: &mut Vec<Event>, kind: EventKind, timeout: Duration) -> Event {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(ev) => {
                seen.push(ev.clone());
                if ev.kind == kind {
                    return ev;
                }
                assert_ne!(ev.kind, EventKind::KP_EVENT_FAILED, "{seen:?}");
            }
            Err(_) => panic!("no {kind:?} within {timeout:?}: {seen:?}"),
        }
    }
}

#[test]
fn rtmps_reconnects_after_the_server_restarts() {
    let ca = TestCa::new("kitepush test CA");
    let mut nginx = tls_nginx(ca.server(&["localhost"]), true);
    let key = unique_key("rtmps-restart");
    let spec = Spec { bitrate_kbps: 300, ..Spec::default() };
    let mut config = trusting(spec.config(&nginx.tls_url("localhost", &key)), &ca);
    config.reconnect = ReconnectPolicy { max_delay: Duration::from_secs(2), ..ReconnectPolicy::default() };
    let h = Harnessed::new(config);
    let (pusher, rx) = (Arc::new(h.pusher), h.events);
    let mut seen = vec![];
    pusher.start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let src = real_time(pusher.clone(), spec.clone(), stop.clone());
    next(&rx, &mut seen, EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(20));
    for _ in 0..2 {
        // Over a second per segment: nginx names them KEY-UNIXTIME.flv, in whole seconds.
        std::thread::sleep(Duration::from_millis(1500));
        nginx.kill();
        next(&rx, &mut seen, EventKind::KP_EVENT_DISCONNECTED, Duration::from_secs(15));
        nginx.restart();
        next(&rx, &mut seen, EventKind::KP_EVENT_RECONNECTED, Duration::from_secs(20));
        assert_eq!(pusher.state(), PusherState::KP_STATE_PUBLISHING);
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let pushed = src.join().unwrap();
    pusher.stop(Duration::from_secs(10)).unwrap();
    next(&rx, &mut seen, EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    assert_eq!(pusher.stats().reconnects, 2, "{:?}", pusher.stats());
    assert!(pushed > 0);

    let recs = nginx.recordings_of(&key);
    assert_eq!(recs.len(), 3, "one recording per TLS session: {recs:?}");
    for rec in &recs {
        nginx.wait_recording_closed(rec, Duration::from_secs(10));
        let p = probe(rec);
        assert!(p.video.as_ref().is_some_and(|v| v.frames > 0) && p.audio.is_some(), "{}: {p:?}", rec.display());
        assert_eq!(decode_errors(rec), "", "{}", rec.display());
    }
}

/// target/<profile>/examples/push: scripts/test builds it (`cargo build --release --examples`).
fn demo() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let p = dir.join("examples/push");
    assert!(p.exists(), "{} is missing: run `cargo build --release --examples` (scripts/test does)", p.display());
    p
}

#[test]
fn the_demo_pushes_over_rtmps_with_a_private_ca_and_refuses_without_it() {
    let ca = TestCa::new("kitepush test CA");
    let nginx = tls_nginx(ca.server(&["localhost"]), false);
    let dir = tmp_dir("demo-tls");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let key = unique_key("demo-rtmps");
    let url = nginx.tls_url("localhost", &key);
    let common = ["--duration", "2", "--size", "320x240", "--quiet"];
    let out = std::process::Command::new(demo()).arg(&url).args(common).arg("--ca").arg(&ca_file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    assert_eq!(probe(&rec).video.map(|v| v.frames), Some(60));

    let out = std::process::Command::new(demo()).arg(&url).args(common).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("FAILED TLS: the certificate of localhost is not signed by a trusted authority"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
