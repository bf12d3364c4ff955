//! Staying live through faults, against real servers: nginx-rtmp killed and restarted, and the
//! fault-injecting proxy stalling, refusing and cutting connections.

mod common;

use common::proxy::{Fault, Proxy};
use common::pushing::{
    first_media_timestamp, flv_tags, is, last_media_timestamp, shared_harness, wait_event, Harnessed, RealTimeSource,
    Source, Spec,
};
use common::*;
use kitepush::core::reconnect::ReconnectPolicy;
use kitepush::pusher::{EventKind, PusherConfig, PusherState};
use kitepush::ResultCode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fast_policy() -> ReconnectPolicy {
    ReconnectPolicy { max_delay: Duration::from_secs(2), ..ReconnectPolicy::default() }
}

#[test]
fn five_server_restarts_in_one_push() {
    let mut nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let key = unique_key("restarts");
    let spec = Spec { bitrate_kbps: 300, ..Spec::default() };
    let mut config = spec.config(&nginx.url(&key));
    config.reconnect = fast_policy();
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_PUBLISHING));
    for round in 0..5 {
        // Over a second per segment: nginx names them KEY-UNIXTIME.flv, in whole seconds.
        std::thread::sleep(Duration::from_millis(1200));
        nginx.kill();
        wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_DISCONNECTED));
        let reconnecting = wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_RECONNECTING));
        assert!(reconnecting.value >= 1 && reconnecting.value2 > 0, "{reconnecting:?}");
        assert_eq!(pusher.state(), PusherState::KP_STATE_RECONNECTING);
        std::thread::sleep(Duration::from_millis(300));
        nginx.restart();
        let back = wait_event(&rx, &mut seen, Duration::from_secs(15), is(EventKind::KP_EVENT_RECONNECTED));
        assert!(back.value >= 300, "round {round}: outage of {} ms is shorter than the server was down", back.value);
        assert_eq!(pusher.state(), PusherState::KP_STATE_PUBLISHING);
    }
    std::thread::sleep(Duration::from_millis(1200));
    let pushed = src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    wait_event(&rx, &mut seen, Duration::from_secs(5), is(EventKind::KP_EVENT_STOPPED));
    assert!(!seen.iter().any(|e| e.kind == EventKind::KP_EVENT_FAILED), "{seen:?}");
    let stats = pusher.stats();
    assert_eq!(stats.reconnects, 5, "{stats:?}");
    assert_eq!(stats.video_frames_in, pushed);

    let recs = nginx.recordings_of(&key);
    assert_eq!(recs.len(), 6, "{recs:?}");
    let mut last_end = None;
    let mut frames = 0;
    for rec in &recs {
        nginx.wait_recording_closed(rec, Duration::from_secs(10));
        let p = probe(rec);
        let v = p.video.as_ref().unwrap_or_else(|| panic!("no video in {}", rec.display()));
        assert!(v.frames > 0 && p.audio.is_some(), "{}: {p:?}", rec.display());
        frames += v.frames;
        let times = video_packet_times(rec);
        assert!(times[0].1, "{} does not start with a keyframe", rec.display());
        assert_eq!(decode_errors(rec), "", "{}", rec.display());
        // Each segment opens with the sequence headers, then video from a keyframe.
        let tags = flv_tags(rec);
        let video: Vec<_> = tags.iter().filter(|t| t.0 == 9).map(|t| t.1).take(2).collect();
        let audio = tags.iter().find(|t| t.0 == 8).map(|t| t.1);
        assert_eq!(video, ["avc-header", "key"], "{}", rec.display());
        assert_eq!(audio, Some("aac-header"), "{}", rec.display());
        let first_ts = first_media_timestamp(rec);
        if let Some(end) = last_end {
            assert!(
                first_ts > end,
                "{}: starts at {first_ts} ms, the previous segment ended at {end} ms",
                rec.display()
            );
        }
        last_end = Some(last_media_timestamp(rec));
    }
    // What was lost is what the outages cost, and it was counted.
    let lost = pushed - frames;
    assert!(
        lost <= stats.frames_dropped_network + stats.video_frames_dropped_encoder + 5 * 15,
        "{lost} frames lost, {stats:?}"
    );
}

fn upstream(nginx: &Nginx) -> SocketAddr {
    ([127, 0, 0, 1], nginx.port()).into()
}

#[test]
fn a_stall_is_detected_and_the_stream_recovers() {
    let nginx = Nginx::start(NginxOptions::default());
    let proxy = Proxy::start(upstream(&nginx));
    let key = unique_key("stall");
    let spec = Spec { bitrate_kbps: 500, ..Spec::default() };
    let mut config = spec.config(&proxy.url("live", &key));
    config.stall_timeout = Duration::from_secs(3);
    config.reconnect = fast_policy();
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_PUBLISHING));
    std::thread::sleep(Duration::from_secs(2));
    // Like a dead Wi-Fi link: nothing moves, nothing is closed. The socket buffer still takes
    // writes for a while; the missing server acknowledgements give the stall away.
    proxy.set(Fault::Stall);
    let stalled_at = Instant::now();
    let stalled = wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_STALLED));
    let took = stalled_at.elapsed();
    assert!(took <= Duration::from_secs(3 + 1), "STALLED {took:?} after the stall began");
    assert_eq!(stalled.code, ResultCode::KP_ERR_TIMEOUT);
    wait_event(&rx, &mut seen, Duration::from_secs(5), is(EventKind::KP_EVENT_DISCONNECTED));
    proxy.set(Fault::Cut); // the stalled connection goes; new ones pass
    let back = wait_event(&rx, &mut seen, Duration::from_secs(15), is(EventKind::KP_EVENT_RECONNECTED));
    assert!(back.value > 0);
    std::thread::sleep(Duration::from_secs(1));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    assert_eq!(decode_errors(&rec), "");
}

#[test]
fn backoff_while_refused_follows_the_policy() {
    let nginx = Nginx::start(NginxOptions::default());
    let proxy = Proxy::start(upstream(&nginx));
    proxy.set(Fault::Reject);
    let key = unique_key("backoff");
    let spec = Spec::default();
    let mut config = spec.config(&proxy.url("live", &key));
    let policy = ReconnectPolicy::default();
    config.reconnect = policy.clone();
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    std::thread::sleep(Duration::from_secs(20));
    let attempts = proxy.attempt_times();
    proxy.set(Fault::Pass);
    wait_event(&rx, &mut seen, Duration::from_secs(20), is(EventKind::KP_EVENT_PUBLISHING));
    // 0, 0.5, 1.25, 2.4, 4.1, 6.6, 10.4, 16.1 s: 8 attempts in 20 s. Each announced delay is the
    // policy's within its ±10 % jitter, and the proxy saw the next attempt no sooner than that
    // (and not much later: the rest is the failed attempt itself and scheduling).
    assert!((7..=9).contains(&attempts.len()), "{} attempts in 20 s", attempts.len());
    let announced: Vec<(i64, Duration)> = seen
        .iter()
        .filter(|e| e.kind == EventKind::KP_EVENT_RECONNECTING)
        .map(|e| (e.value, Duration::from_millis(e.value2 as u64)))
        .collect();
    assert!(announced.len() >= attempts.len() - 1, "{announced:?}");
    for (n, (w, (attempt, delay))) in attempts.windows(2).zip(&announced).enumerate() {
        assert_eq!(*attempt, n as i64 + 2, "the first connect is attempt 1");
        let nominal = policy.nominal_delay(n as u32 + 1);
        assert!(
            *delay >= nominal.mul_f64(0.9) && *delay <= nominal.mul_f64(1.1),
            "delay {n}: {delay:?}, policy {nominal:?}"
        );
        let gap = w[1] - w[0];
        assert!(
            gap >= *delay && gap <= *delay + Duration::from_millis(750),
            "gap {n}: {gap:?} after announcing {delay:?}"
        );
    }
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_busy_stream_key_is_retried_until_the_server_lets_it_go() {
    // Another publisher holds the key, as the server holds a dead session of ours until it notices
    // the old connection is gone: BadName is retried with backoff, not a failure.
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("busy");
    let url = nginx.url(&key);
    let holder = std::thread::spawn(move || ffmpeg_push(&url, 3.0));
    wait_until(Duration::from_secs(10), "ffmpeg to publish", || nginx.recording(&key).exists());
    let spec = Spec::default();
    let mut config = spec.config(&nginx.url(&key));
    config.reconnect = fast_policy();
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    let rejected = wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_RECONNECTING));
    assert_eq!(rejected.code, ResultCode::KP_ERR_PUBLISH_REJECTED, "{rejected:?}");
    assert!(holder.join().unwrap().success());
    wait_event(&rx, &mut seen, Duration::from_secs(15), is(EventKind::KP_EVENT_PUBLISHING));
    assert!(!seen.iter().any(|e| e.kind == EventKind::KP_EVENT_FAILED));
    std::thread::sleep(Duration::from_secs(1));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
}

#[test]
fn failover_to_the_backup_and_back_to_the_primary() {
    let primary_server = Nginx::start(NginxOptions::default());
    let backup_server = Nginx::start(NginxOptions::default());
    let primary = Proxy::start(upstream(&primary_server));
    primary.set(Fault::Refuse);
    let key = unique_key("failover");
    let spec = Spec::default();
    let mut config = spec.config(&primary.url("live", &key));
    config.backup_urls = vec![backup_server.url(&key)];
    config.reconnect = ReconnectPolicy { primary_retry_interval: Duration::from_secs(2), ..fast_policy() };
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    let started = Instant::now();
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    // Two refused attempts (0 s, 0.5 s), then the backup after the next delay (~0.75 s).
    let switch = wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_FAILOVER));
    assert_eq!((switch.value, switch.value2), (0, 1));
    wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_PUBLISHING));
    assert!(started.elapsed() < Duration::from_secs(4), "on the backup after {:?}", started.elapsed());
    assert_eq!(pusher.stats().destinations[0].url_index, 1);
    std::thread::sleep(Duration::from_secs(1));
    primary.set(Fault::Pass);
    let back = wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_FAILOVER));
    assert_eq!((back.value, back.value2), (1, 0));
    wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_PUBLISHING));
    assert_eq!(pusher.stats().destinations[0].url_index, 0);
    std::thread::sleep(Duration::from_secs(1));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    for (server, name) in [(&backup_server, "backup"), (&primary_server, "primary")] {
        let rec = server.recording(&key);
        server.wait_recording_closed(&rec, Duration::from_secs(10));
        let p = probe(&rec);
        assert!(p.video.as_ref().map_or(0, |v| v.frames) > 20, "{name}: {p:?}");
        assert_eq!(decode_errors(&rec), "", "{name}");
    }
}

#[test]
fn one_destination_down_does_not_disturb_the_other() {
    let good_server = Nginx::start(NginxOptions::default());
    let other_server = Nginx::start(NginxOptions::default());
    let proxy = Proxy::start(upstream(&other_server));
    let key = unique_key("multi");
    let spec = Spec { seconds: 6.0, ..Spec::default() };
    let mut config = spec.config(&good_server.url(&key));
    config.extra_destinations = vec![vec![proxy.url("live", &key)]];
    config.reconnect = fast_policy();
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    let mut publishing = 0;
    while publishing < 2 {
        if h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10)).kind == EventKind::KP_EVENT_PUBLISHING {
            publishing += 1;
        }
    }
    let mut src = Source::new(&spec);
    for i in 0..spec.frames() {
        if i == 30 {
            // Destination 1's server dies: refused and cut.
            proxy.set(Fault::Refuse);
            proxy.set(Fault::Cut);
        }
        src.push_one(&h.pusher);
    }
    // Destination 0 delivers everything within the stop timeout; destination 1 cannot, and stop
    // says so while stopping both.
    let e = h.pusher.stop(Duration::from_secs(3)).unwrap_err();
    assert_eq!(e.code(), ResultCode::KP_ERR_TIMEOUT, "{e}");
    h.drain_events(Duration::from_millis(300));
    let dest1: Vec<_> = h.seen.iter().filter(|e| e.destination == 1).map(|e| e.kind).collect();
    assert!(
        dest1.contains(&EventKind::KP_EVENT_DISCONNECTED) && dest1.contains(&EventKind::KP_EVENT_RECONNECTING),
        "{dest1:?}"
    );
    assert!(!h.seen.iter().any(|e| e.destination == 0 && e.kind == EventKind::KP_EVENT_DISCONNECTED));
    let stats = h.pusher.stats();
    assert_eq!(stats.destinations[0].video_frames_sent, spec.frames(), "{stats:?}");
    let rec = good_server.recording(&key);
    good_server.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    assert_eq!(p.video.expect("video").frames, spec.frames());
    assert_eq!(decode_errors(&rec), "");
}

#[test]
fn a_refreshed_url_replaces_an_expired_one() {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("refresh");
    let dead = format!("rtmp://127.0.0.1:{}/live/{key}", free_port());
    let spec = Spec::default();
    let mut config = spec.config(&dead);
    config.reconnect = fast_policy();
    let mut h = Harnessed::new(config);
    let fresh = nginx.url(&key);
    let asked = Arc::new(std::sync::Mutex::new(vec![]));
    let log = asked.clone();
    h.pusher
        .set_url_refresh(Box::new(move |dest, index| {
            log.lock().unwrap().push((dest, index));
            Some(fresh.clone())
        }))
        .unwrap();
    h.pusher.start().unwrap();
    assert_eq!(h.pusher.set_url_refresh(Box::new(|_, _| None)).unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    assert_eq!(asked.lock().unwrap()[0], (0, 0));
    let mut src = Source::new(&spec);
    for _ in 0..30 {
        src.push_one(&h.pusher);
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    assert_eq!(probe(&rec).video.expect("video").frames, 30);
}

#[test]
fn pre_encoded_video_resumes_on_a_keyframe_and_asks_for_one() {
    use kitepush::core::adts;
    use kitepush::pusher::{AudioConfig, AudioEncoderKind, VideoConfig, VideoEncoderKind};
    let dir = tmp_dir("passthrough-reconnect");
    // An IDR every 4 s: an outage of about a second leaves no keyframe in the queue.
    let (aus, aac) = common::pushing::encoded_test_media(&dir, 12, 120);
    let aac_frames: Vec<Vec<u8>> = adts::adts_frames(&aac)
        .map(|f| {
            let (h, raw) = f.unwrap();
            let mut v = adts::adts_header(h.object_type, h.sample_rate_index, h.channel_config, raw.len()).to_vec();
            v.extend_from_slice(raw);
            v
        })
        .collect();
    let mut nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let key = unique_key("hw-reconnect");
    let mut config = Spec::default().config(&nginx.url(&key));
    config.video = Some(VideoConfig {
        encoder: VideoEncoderKind::KP_ENCODER_PASSTHROUGH,
        width: 320,
        height: 240,
        ..VideoConfig::default()
    });
    config.audio =
        Some(AudioConfig { encoder: AudioEncoderKind::KP_AUDIO_ENCODER_PASSTHROUGH, ..AudioConfig::default() });
    config.reconnect = fast_policy();
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_PUBLISHING));
    let t0 = Instant::now();
    let mut a = 0;
    let mut killed = false;
    for (i, au) in aus.iter().enumerate() {
        let pts = i as i64 * 1_000_000 / 30;
        std::thread::sleep((t0 + Duration::from_micros(pts as u64)).saturating_duration_since(Instant::now()));
        while a < aac_frames.len() && (a as i64 * 1024 * 1_000_000 / 44100) <= pts {
            pusher.push_aac(&aac_frames[a], a as i64 * 1024 * 1_000_000 / 44100).unwrap();
            a += 1;
        }
        pusher.push_h264(au, pts, pts).unwrap();
        if i == 150 && !killed {
            // 1 s after the IDR at frame 120; the next one is at 240.
            killed = true;
            nginx.kill();
            std::thread::sleep(Duration::from_millis(200));
            nginx.restart();
        }
    }
    pusher.stop(Duration::from_secs(10)).unwrap();
    let kinds: Vec<_> = rx.try_iter().chain(seen.iter().cloned()).map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::KP_EVENT_RECONNECTED), "{kinds:?}");
    assert!(kinds.contains(&EventKind::KP_EVENT_KEYFRAME_NEEDED), "{kinds:?}");
    let recs = nginx.recordings_of(&key);
    assert_eq!(recs.len(), 2, "{recs:?}");
    for rec in &recs {
        nginx.wait_recording_closed(rec, Duration::from_secs(10));
        let times = video_packet_times(rec);
        assert!(times[0].1, "{} does not start with a keyframe", rec.display());
        assert_eq!(decode_errors(rec), "", "{}", rec.display());
    }
}

#[test]
fn stop_reports_media_it_could_not_deliver() {
    let spec = Spec::default();
    let mut h = Harnessed::new(spec.config(&format!("rtmp://127.0.0.1:{}/live/k", free_port())));
    h.pusher.start().unwrap();
    let mut src = Source::new(&spec);
    for _ in 0..10 {
        src.push_one(&h.pusher);
    }
    let e = h.pusher.stop(Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.code(), ResultCode::KP_ERR_TIMEOUT, "{e}");
    let stopped = h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    assert!(stopped.value >= 10, "{stopped:?}");
    assert_eq!(h.pusher.state(), PusherState::KP_STATE_STOPPED);
}

/// The app's "the network changed" call (Wi-Fi gave way to cellular): the old route is black-holed
/// (no FIN, no reset, like a phone that left its Wi-Fi), new connections pass (the new route). The
/// pusher must be publishing again within a second of the call, instead of after the 5 s stall
/// timeout plus backoff.
#[test]
fn network_changed_reconnects_on_the_new_route_within_a_second() {
    let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let proxy = Proxy::start(upstream(&nginx));
    let key = unique_key("handover");
    let spec = Spec { bitrate_kbps: 500, ..Spec::default() };
    let config = spec.config(&proxy.url("live", &key));
    assert_eq!(config.stall_timeout, Duration::from_secs(5), "the default this test improves on");
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    // Before start: refused with its code, nothing happens.
    assert_eq!(pusher.network_changed().unwrap_err().code(), ResultCode::KP_ERR_NOT_STARTED);
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_PUBLISHING));
    let mut took = Vec::new();
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(proxy.black_hole_live(), 1, "round {round}");
        let t = Instant::now();
        pusher.network_changed().unwrap();
        let lost = wait_event(&rx, &mut seen, Duration::from_secs(3), is(EventKind::KP_EVENT_DISCONNECTED));
        assert!(lost.message.contains("network changed"), "{lost:?}");
        wait_event(&rx, &mut seen, Duration::from_secs(3), is(EventKind::KP_EVENT_PUBLISHING));
        took.push(t.elapsed());
        let back = wait_event(&rx, &mut seen, Duration::from_secs(3), is(EventKind::KP_EVENT_RECONNECTED));
        assert!(back.value < 1000, "{back:?}");
    }
    eprintln!("publishing again after network_changed: {took:?}");
    for t in &took {
        assert!(*t <= Duration::from_millis(1000), "publishing again {t:?} after network_changed ({took:?})");
    }
    assert!(!seen.iter().any(|e| e.kind == EventKind::KP_EVENT_STALLED), "no stall timeout was waited for");
    std::thread::sleep(Duration::from_secs(1));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    assert_eq!(pusher.stats().reconnects, 2);
    // Three sessions, each starting on a keyframe with its headers, all decoding.
    let recs = nginx.recordings_of(&key);
    assert_eq!(recs.len(), 3, "{recs:?}");
    for rec in &recs {
        nginx.wait_recording_closed(rec, Duration::from_secs(10));
        assert!(video_packet_times(rec)[0].1, "{} does not start with a keyframe", rec.display());
        assert_eq!(decode_errors(rec), "", "{}", rec.display());
    }
}

/// A restarting server (refusing, then listening again) gets its publisher back within about one
/// quick-retry interval (250 ms) of listening, not at the next step of the backoff (which after
/// 1.3 s down would come ~1.1 s after the server was back). Also: the same outage with the quick
/// retries off shows the backoff's delay, so the test can tell the two apart.
#[test]
fn a_restarted_server_gets_its_publisher_back_at_once() {
    // A backoff with no jitter whose second step is far away: without quick retries the
    // publisher is back only at +4.5 s after the loss (0.5 s, then 0.5 + 4 s), whatever the
    // scheduler does, so the control run below cannot pass by luck, and neither can the quick run.
    let backoff = |config: &mut PusherConfig| {
        config.reconnect.first_delay = Duration::from_millis(500);
        config.reconnect.multiplier = 8.0;
        config.reconnect.jitter = 0.0;
    };
    let mut took = Vec::new();
    let mut since_loss = Vec::new();
    for quick in [true, false] {
        let mut nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
        let key = unique_key("quick-return");
        let spec = Spec { bitrate_kbps: 300, ..Spec::default() };
        let mut config = spec.config(&nginx.url(&key));
        backoff(&mut config);
        if !quick {
            config.reconnect.refused_retry = Duration::ZERO;
        }
        let (pusher, rx) = shared_harness(config);
        let mut seen = vec![];
        pusher.start().unwrap();
        let src = RealTimeSource::start(pusher.clone(), spec.clone());
        wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_PUBLISHING));
        std::thread::sleep(Duration::from_millis(1200));
        nginx.kill();
        wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_DISCONNECTED));
        let lost = Instant::now();
        std::thread::sleep(Duration::from_millis(1300));
        nginx.restart();
        let up = Instant::now();
        wait_event(&rx, &mut seen, Duration::from_secs(15), is(EventKind::KP_EVENT_RECONNECTED));
        took.push(up.elapsed());
        since_loss.push(lost.elapsed());
        src.finish();
        pusher.stop(Duration::from_secs(10)).unwrap();
    }
    eprintln!(
        "publishing again after the server listened: quick retries {:?}, backoff only {:?} ({:?} after the loss)",
        took[0], took[1], since_loss[1]
    );
    assert!(took[0] <= Duration::from_millis(600), "{took:?}");
    // The control: the same outage without quick retries waits for the backoff's second step.
    assert!(since_loss[1] >= Duration::from_millis(4400), "{since_loss:?}");
}

/// A port whose accept queue is full: the kernel drops further SYNs, so a connect to it hangs as
/// one over a route that vanished does. The listener and the connections filling it are held.
fn hanging_port() -> (u16, socket2::Socket, Vec<socket2::Socket>) {
    use socket2::{Domain, SockAddr, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    listener.bind(&any.into()).unwrap();
    listener.listen(0).unwrap();
    let addr: SockAddr = listener.local_addr().unwrap();
    let port = addr.as_socket().unwrap().port();
    let mut fillers = Vec::new();
    // A backlog of 0 holds one connection; the third handshake finds the queue full. Fill until a
    // connect no longer completes within 200 ms.
    loop {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let done = s.connect_timeout(&addr, Duration::from_millis(200)).is_ok();
        fillers.push(s);
        if !done {
            break;
        }
        assert!(fillers.len() < 16, "the accept queue of port {port} does not fill up");
    }
    (port, listener, fillers)
}

/// A connect that hangs (SYNs unanswered, as when the route is gone) must not hold the
/// destination for the connect timeout: the app's "network changed" tries again at once, and
/// stop() ends it by its own deadline.
#[test]
fn network_changed_and_stop_end_a_connect_that_hangs() {
    let (port, _listener, _fillers) = hanging_port();
    let spec = Spec::default();
    let mut config = spec.config(&format!("rtmp://127.0.0.1:{port}/live/hang"));
    config.connect_timeout = Duration::from_secs(30);
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    wait_event(&rx, &mut seen, Duration::from_secs(5), is(EventKind::KP_EVENT_CONNECTING));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pusher.state(), PusherState::KP_STATE_CONNECTING, "{seen:?}");
    let t = Instant::now();
    pusher.network_changed().unwrap();
    wait_event(&rx, &mut seen, Duration::from_secs(10), is(EventKind::KP_EVENT_CONNECTING));
    let again = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let stopped = pusher.stop(Duration::from_millis(300));
    let stop_took = t.elapsed();
    eprintln!(
        "a hanging connect: tried again {again:?} after network_changed; stop(300 ms) took {stop_took:?} ({stopped:?})"
    );
    assert!(again <= Duration::from_millis(1000), "tried again only after {again:?}");
    assert!(stop_took <= Duration::from_secs(3), "stop took {stop_took:?} with a connect in flight");
}
