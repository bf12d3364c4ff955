//! Short outages lose (almost) nothing: a keyframe is asked for at the disconnect, the media made
//! during the outage waits in the queue from it, the new session sends it and the queue drains at
//! link speed (the catch-up), all checked in nginx-rtmp's recordings (`record_unique`: one file
//! per publish) with ffprobe and FFmpeg.

mod common;

use common::proxy::{Fault, Proxy};
use common::pushing::{is, pre_encoded_h264_320x240, shared_harness, RealTimeSource, Spec};
use common::*;
use kitepush::encode::openh264::OpenH264Encoder;
use kitepush::encode::{I420Buffer, VideoEncoder, VideoEncoderConfig};
use kitepush::pusher::{Event, EventKind, Pusher};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// One real-time push at a time in this binary (`one_at_a_time`): the checks are about what the
/// network did, and encoders starved of CPU by a parallel test would drop frames for reasons of
/// their own.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    one_at_a_time()
}

fn wait_event(rx: &Receiver<Event>, seen: &mut Vec<Event>, timeout: Duration, kind: EventKind) -> Event {
    common::pushing::wait_event(rx, seen, timeout, is(kind))
}

/// After a RECONNECTED: the time until the destination's latency is back under 300 ms (polled
/// every 50 ms, up to `limit`), and whether stats say the catch-up finished.
fn catch_up_time(pusher: &Pusher, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let d = pusher.stats().destinations[0].clone();
        if d.queue_ms < 300 && !d.catching_up {
            return t.elapsed();
        }
        if t.elapsed() > limit {
            panic!("latency still {} ms after {limit:?}: {d:?}", d.queue_ms);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the recordings of one key hold: per file, its video packets (pts in s, keyframe).
struct Recordings {
    files: Vec<Vec<(f64, bool)>>,
}

impl Recordings {
    fn of(nginx: &Nginx, key: &str) -> Recordings {
        let recs = nginx.recordings_of(key);
        let mut files = Vec::new();
        for rec in &recs {
            nginx.wait_recording_closed(rec, Duration::from_secs(10));
            assert_eq!(decode_errors(rec), "", "{} does not decode cleanly", rec.display());
            files.push(video_packet_times(rec));
        }
        Recordings { files }
    }

    fn frames(&self) -> usize {
        self.files.iter().map(Vec::len).sum()
    }

    /// Every file starts with a keyframe and times increase across files (one timeline).
    fn check_segments(&self) {
        let mut last = f64::NEG_INFINITY;
        for (i, f) in self.files.iter().enumerate() {
            assert!(!f.is_empty(), "segment {i} is empty");
            assert!(f[0].1, "segment {i} does not start with a keyframe: {:?}", &f[..f.len().min(3)]);
            let first = f.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
            assert!(first > last, "segment {i} starts at {first} s, not after the last one's {last} s");
            last = f.iter().map(|p| p.0).fold(last, f64::max);
        }
    }
}

/// Every frame encoded is in a recording or counted as lost. The count may exceed by what the
/// lost connection had in flight: the server may have read some of it just before it failed,
/// before the pusher saw it delivered (a few frames at most).
fn assert_accounted(recs: &Recordings, stats: &kitepush::pusher::stats::Stats) {
    let recorded = recs.frames() as u64;
    let counted = stats.video_frames_lost_outage + stats.video_frames_dropped_congestion;
    assert!(recorded <= stats.video_frames_encoded, "{recorded} recorded: {stats:?}");
    assert!(
        recorded + counted >= stats.video_frames_encoded,
        "{recorded} recorded + {counted} counted lost: {stats:?}"
    );
    assert!(
        recorded + counted <= stats.video_frames_encoded + 10,
        "{recorded} recorded + {counted} counted lost: {stats:?}"
    );
}

/// A 20 s real-time 1280x720 push with two outages made by `outage(round)`, which returns once
/// the server is reachable again. Checks what the issue asks of every short outage.
fn two_outages(
    name: &str,
    nginx_of: impl FnOnce() -> (Nginx, Option<Proxy>),
    mut outage: impl FnMut(&mut Nginx, Option<&Proxy>),
) {
    let _serial = serial();
    let (mut nginx, proxy) = nginx_of();
    let key = unique_key(name);
    let url = proxy.as_ref().map_or_else(|| nginx.url(&key), |p| p.url("live", &key));
    let spec = Spec { width: 1280, height: 720, bitrate_kbps: 1500, seconds: 20.0, ..Spec::default() };
    let (pusher, rx) = shared_harness(spec.config(&url));
    let mut seen = vec![];
    pusher.start().unwrap();
    let t0 = Instant::now();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    let mut reports = Vec::new();
    for round in 0..2 {
        std::thread::sleep((t0 + Duration::from_secs(5 + 7 * round)).saturating_duration_since(Instant::now()));
        outage(&mut nginx, proxy.as_ref());
        let back = wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_RECONNECTED);
        let catch_up = catch_up_time(&pusher, Duration::from_secs(5));
        let d = pusher.stats().destinations[0].clone();
        reports.push((back.value, back.value3, back.value4, catch_up, d.last_catch_up_ms));
        // The outage's media: all but what the lost connection had in flight and the frames
        // before the keyframe asked for at the disconnect.
        assert!(back.value3 >= back.value - 400, "kept {} ms of a {} ms outage: {back:?}", back.value3, back.value);
        assert!(back.value4 <= 400, "lost {} ms: {back:?}", back.value4);
    }
    std::thread::sleep((t0 + Duration::from_secs(20)).saturating_duration_since(Instant::now()));
    let pushed = src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    let stats = pusher.stats();
    nginx.stop();
    seen.extend(rx.try_iter());
    // The catch-up bursts are not congestion: the ABR keeps its rate, no NET_BUSY.
    let busy: Vec<_> = seen
        .iter()
        .filter(|e| matches!(e.kind, EventKind::KP_EVENT_NET_BUSY | EventKind::KP_EVENT_BITRATE_CHANGED))
        .map(|e| (e.timestamp_ms, e.kind, e.value, e.value2))
        .collect();
    assert!(busy.is_empty(), "the catch-up read as congestion: {busy:?}");
    let recs = Recordings::of(&nginx, &key);
    let encoded = stats.video_frames_encoded as usize;
    let share = recs.frames() as f64 / encoded as f64;
    eprintln!(
        "{name}: {} of {encoded} encoded frames ({pushed} pushed) in {} recordings = {:.1} %; \
         per outage (ms down, ms kept, ms lost, catch-up, stats catch-up ms): {reports:?}; \
         frames lost to outages {} video / {} audio, congestion drops {} video",
        recs.frames(),
        recs.files.len(),
        share * 100.0,
        stats.video_frames_lost_outage,
        stats.audio_frames_lost_outage,
        stats.video_frames_dropped_congestion,
    );
    assert_eq!(recs.files.len(), 3, "one recording per publish");
    recs.check_segments();
    assert!(share >= 0.97, "only {:.1} % of the frames reached the server", share * 100.0);
    assert_accounted(&recs, &stats);
}

#[test]
fn two_server_restarts_cost_a_stall_not_the_video() {
    two_outages(
        "restarts",
        || (Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() }), None),
        |nginx, _| {
            nginx.kill();
            std::thread::sleep(Duration::from_millis(1300));
            nginx.restart();
        },
    );
}

#[test]
fn two_cuts_through_the_proxy_cost_a_stall_not_the_video() {
    two_outages(
        "cuts",
        || {
            let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
            let proxy = Proxy::start(([127, 0, 0, 1], nginx.port()).into());
            (nginx, Some(proxy))
        },
        |_, proxy| {
            let proxy = proxy.unwrap();
            // The path is gone for 1.5 s: live connections cut, new ones refused; the server runs on.
            proxy.set(Fault::Refuse);
            proxy.set(Fault::Cut);
            std::thread::sleep(Duration::from_millis(1500));
            proxy.set(Fault::Pass);
        },
    );
}

/// Longer than the latency budget: what is past the budget goes (whole GOPs, counted as outage
/// losses), the rest of the outage is kept and delivered.
#[test]
fn an_outage_past_the_budget_loses_about_the_excess() {
    let _serial = serial();
    let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let proxy = Proxy::start(([127, 0, 0, 1], nginx.port()).into());
    let key = unique_key("long-outage");
    // A keyframe every second, a 2 s budget.
    let spec = Spec { bitrate_kbps: 500, ..Spec::default() };
    let mut config = spec.config(&proxy.url("live", &key));
    config.video.as_mut().unwrap().keyframe_interval = 30;
    config.send_queue_ms = 2000;
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    std::thread::sleep(Duration::from_secs(2));
    proxy.set(Fault::Refuse);
    proxy.set(Fault::Cut);
    std::thread::sleep(Duration::from_secs(5));
    proxy.set(Fault::Pass);
    let back = wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_RECONNECTED);
    let catch_up = catch_up_time(&pusher, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    let stats = pusher.stats();
    let d = pusher.stats().destinations[0].clone();
    eprintln!(
        "a {} ms outage with a 2000 ms budget: kept {} ms, lost {} ms; {} video / {} audio frames \
         lost to it; caught up in {catch_up:?}",
        back.value, back.value3, back.value4, stats.video_frames_lost_outage, stats.audio_frames_lost_outage
    );
    let (outage, kept, lost) = (back.value, back.value3, back.value4);
    // Lost ≈ outage - budget, within one GOP (1 s) and the in-flight media.
    assert!((outage - 2000 - 1300..=outage - 2000 + 1000).contains(&lost), "{back:?}");
    assert!((900..=2100).contains(&kept), "{back:?}");
    // Counted: the frames of `lost` ms, within a GOP.
    let lost_frames = stats.video_frames_lost_outage as i64;
    assert!((lost_frames - lost * 30 / 1000).abs() <= 31, "{lost_frames} frames for {lost} ms: {stats:?}");
    assert_eq!(d.outage_media_lost_ms as i64, lost);
    assert_eq!(d.video_frames_dropped_congestion, 0, "an outage is not congestion: {d:?}");
    let recs = Recordings::of(&nginx, &key);
    recs.check_segments();
    assert_accounted(&recs, &stats);
}

/// Pre-encoded video (the app's hardware encoder, here OpenH264 driven by the test): the
/// disconnect raises KEYFRAME_NEEDED at once, and when the app answers, the outage's media is
/// kept as with the SDK's own encoder.
#[test]
fn pre_encoded_video_gets_keyframe_needed_at_the_disconnect() {
    let _serial = serial();
    let mut nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let key = unique_key("hw-outage");
    let mut config = pre_encoded_h264_320x240(&nginx.url(&key));
    config.audio = None;
    let (pusher, rx) = shared_harness(config);
    let mut keyframe_needed = false;
    let mut seen = vec![];
    pusher.start().unwrap();
    // The app's encoder: a keyframe every 4 s by itself, and one whenever the SDK asks.
    let cfg = VideoEncoderConfig {
        width: 320,
        height: 240,
        fps: 30.0,
        bitrate_kbps: 400,
        keyframe_interval: 120,
        threads: 1,
    };
    let mut enc = OpenH264Encoder::new(&cfg).unwrap();
    let mut pattern = kitepush::pattern::VideoPattern::new(320, 240);
    let mut picture = I420Buffer::new(320, 240);
    let mut au = Vec::new();
    let t0 = Instant::now();
    let mut frames = 0u64;
    let mut disconnected_at = None;
    let mut keyframe_after = None;
    let mut back = None;
    let mut killed = false;
    let mut nginx_down_until = None;
    while frames < 30 * 12 {
        let pts = frames as i64 * 1_000_000 / 30;
        std::thread::sleep((t0 + Duration::from_micros(pts as u64)).saturating_duration_since(Instant::now()));
        for ev in rx.try_iter() {
            match ev.kind {
                EventKind::KP_EVENT_KEYFRAME_NEEDED => keyframe_needed = true,
                EventKind::KP_EVENT_DISCONNECTED => disconnected_at = Some(frames),
                EventKind::KP_EVENT_RECONNECTED => back = Some(ev.clone()),
                _ => {}
            }
            if let (EventKind::KP_EVENT_KEYFRAME_NEEDED, Some(at), None) = (ev.kind, disconnected_at, keyframe_after) {
                keyframe_after = Some(frames - at);
            }
            seen.push(ev);
        }
        if std::mem::take(&mut keyframe_needed) {
            enc.force_keyframe();
        }
        pattern.fill(frames, &mut picture);
        au.clear();
        enc.encode(&picture, &mut au).unwrap();
        pusher.push_h264(&au, pts, pts).unwrap();
        frames += 1;
        // 5 s in: 1 s after the encoder's own keyframe at 4 s, so the queue holds none.
        if frames == 150 && !killed {
            killed = true;
            nginx.kill();
            nginx_down_until = Some(Instant::now() + Duration::from_millis(1300));
        }
        if nginx_down_until.is_some_and(|t| Instant::now() >= t) {
            nginx_down_until = None;
            nginx.restart();
        }
    }
    pusher.stop(Duration::from_secs(10)).unwrap();
    let stats = pusher.stats();
    nginx.stop();
    let back = back.unwrap_or_else(|| panic!("no RECONNECTED: {seen:#?}"));
    let after = keyframe_after.unwrap_or_else(|| panic!("no KEYFRAME_NEEDED after the disconnect: {seen:#?}"));
    assert!(after <= 2, "KEYFRAME_NEEDED came {after} frames after DISCONNECTED");
    let recs = Recordings::of(&nginx, &key);
    recs.check_segments();
    let share = recs.frames() as f64 / frames as f64;
    eprintln!(
        "pre-encoded: KEYFRAME_NEEDED {after} frames after DISCONNECTED; outage {} ms, kept {} ms, lost {} ms; \
         {} of {frames} frames recorded ({:.1} %)",
        back.value,
        back.value3,
        back.value4,
        recs.frames(),
        share * 100.0
    );
    assert!(share >= 0.97, "{share}: {stats:?}");
}

/// Two destinations from one encode; one of them loses its path for 1.5 s (refused meanwhile, so
/// it retries every 250 ms). The other's stream gets one extra keyframe for the outage (the one
/// the returning session starts on), not one per retry.
#[test]
fn one_destinations_outage_adds_one_keyframe_to_the_others() {
    let _serial = serial();
    let nginx = Nginx::start(NginxOptions { record_unique: true, ..NginxOptions::default() });
    let proxy = Proxy::start(([127, 0, 0, 1], nginx.port()).into());
    let (cut_key, other_key) = (unique_key("cut-dest"), unique_key("other-dest"));
    // A keyframe every 2 s by the encoder's own count.
    let spec = Spec { bitrate_kbps: 500, ..Spec::default() };
    let mut config = spec.config(&proxy.url("live", &cut_key));
    config.extra_destinations = vec![vec![nginx.url(&other_key)]];
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    let t0 = Instant::now();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    std::thread::sleep(Duration::from_millis(2500));
    proxy.set(Fault::Refuse);
    proxy.set(Fault::Cut);
    std::thread::sleep(Duration::from_millis(1500));
    proxy.set(Fault::Pass);
    let back = wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_RECONNECTED);
    assert_eq!(back.destination, 0, "{back:?}");
    std::thread::sleep((t0 + Duration::from_secs(9)).saturating_duration_since(Instant::now()));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    seen.extend(rx.try_iter());
    let retries = seen.iter().filter(|e| e.kind == EventKind::KP_EVENT_RECONNECTING && e.destination == 0).count();
    let other = Recordings::of(&nginx, &other_key);
    assert_eq!(other.files.len(), 1, "the other destination never lost its publish");
    let keys: Vec<f64> = other.files[0].iter().filter(|p| p.1).map(|p| p.0).collect();
    let span = other.files[0].iter().map(|p| p.0).fold(0.0, f64::max) - other.files[0][0].0;
    // The encoder's own: one at the start and one every 2 s.
    let own = (span / 2.0).floor() as usize + 1;
    eprintln!(
        "the other destination: keyframes at {keys:?} over {span:.1} s ({own} of the encoder's own); {retries} retries"
    );
    assert!(retries >= 3, "the cut destination was expected to retry several times: {retries}");
    assert!(keys.len() <= own + 1, "{} keyframes, {own} of the encoder's own + at most 1 for the outage", keys.len());
    let cut = Recordings::of(&nginx, &cut_key);
    cut.check_segments();
}
