//! SRT output under faults, against real peers: srt-live-transmit (libsrt) and FFmpeg 9 as listeners,
//! nginx-rtmp as an RTMP backup, the UDP fault proxy in between. What the listener wrote is checked
//! with ffprobe / ffmpeg and with a small TS walker (session boundaries, continuity counters,
//! keyframes).

mod common;

use common::pushing::{shared_harness, Harnessed, RealTimeSource, Spec};
use common::srt::{SrtListener, SrtOptions};
use common::udp_proxy::{UdpFaults, UdpProxy};
use common::*;
use kitepush::core::reconnect::ReconnectPolicy;
use kitepush::core::ts::{PID_AUDIO, PID_PAT, PID_PMT, PID_VIDEO, TS_DELAY_MS, TS_PACKET};
use kitepush::pusher::{Event, EventKind, Pusher, PusherConfig};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn summary(seen: &[Event]) -> Vec<(u64, u32, EventKind, i64, i64, String)> {
    seen.iter().map(|e| (e.timestamp_ms, e.destination, e.kind, e.value, e.value2, e.message.clone())).collect()
}

/// Events until one of `kind`, with a deadline; panics with what was seen, and at a FAILED.
fn wait_event(rx: &Receiver<Event>, seen: &mut Vec<Event>, timeout: Duration, kind: EventKind) -> Event {
    common::pushing::wait_event(rx, seen, timeout, |e| {
        assert_ne!(e.kind, EventKind::KP_EVENT_FAILED, "failed waiting for {kind:?}: {e:?}");
        e.kind == kind
    })
}

/// Takes whatever events arrived, without waiting.
fn drain(rx: &Receiver<Event>, seen: &mut Vec<Event>) {
    while let Ok(ev) = rx.try_recv() {
        seen.push(ev);
    }
}

fn srt_config(spec: &Spec, port: u16, latency_ms: u32) -> PusherConfig {
    spec.config(&format!("srt://127.0.0.1:{port}?latency={latency_ms}"))
}

// --- a tiny MPEG-TS walker ---

#[derive(Clone, Copy, Debug)]
struct TsPacket {
    pid: u16,
    start: bool,
    cc: u8,
    has_payload: bool,
    rai: bool,
    /// Offset of the payload in the file, and its length.
    payload: (usize, usize),
}

fn ts_packets(data: &[u8]) -> Vec<TsPacket> {
    assert_eq!(data.len() % TS_PACKET, 0, "the file is not whole TS packets: {} bytes", data.len());
    data.chunks(TS_PACKET)
        .enumerate()
        .map(|(i, p)| {
            assert_eq!(p[0], 0x47, "no sync byte at packet {i}");
            let afc = (p[3] >> 4) & 3;
            let mut pos = 4;
            let mut rai = false;
            if afc & 2 != 0 {
                let len = p[4] as usize;
                rai = len > 0 && p[5] & 0x40 != 0;
                pos += 1 + len;
            }
            let off = i * TS_PACKET;
            TsPacket {
                pid: u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]),
                start: p[1] & 0x40 != 0,
                cc: p[3] & 0x0f,
                has_payload: afc & 1 != 0,
                rai,
                payload: (off + pos.min(TS_PACKET), TS_PACKET - pos.min(TS_PACKET)),
            }
        })
        .collect()
}

/// The decode timestamp (DTS, else PTS) of a PES that starts in `payload`, in 90 kHz ticks.
fn pes_dts(payload: &[u8]) -> Option<u64> {
    if payload.len() < 19 || payload[..3] != [0, 0, 1] {
        return None;
    }
    let flags = payload[7] >> 6;
    let ts = |b: &[u8]| {
        (u64::from(b[0] >> 1) & 7) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1)
    };
    match flags {
        3 => Some(ts(&payload[14..19])),
        2 => Some(ts(&payload[9..14])),
        _ => None,
    }
}

/// The whole PES (all payload bytes) of the video PES starting at packet `i`.
fn video_pes(data: &[u8], pkts: &[TsPacket], i: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (j, p) in pkts.iter().enumerate().skip(i) {
        if p.pid != PID_VIDEO || !p.has_payload {
            continue;
        }
        if j > i && p.start {
            break;
        }
        out.extend_from_slice(&data[p.payload.0..p.payload.0 + p.payload.1]);
    }
    out
}

fn has_idr(pes: &[u8]) -> bool {
    pes.windows(4).any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 5)
}

/// Where a second session begins in what one listener wrote: the largest gap in video time
/// (the outage) and the packet indexes around it.
struct Cut {
    /// First packet of the new session: its PAT.
    session_start: usize,
    /// The new session's first video PES.
    first_video: usize,
    /// Last packet of the old session that starts a unit (PES or table): the old session is
    /// whole up to here.
    old_whole_until: usize,
    gap_ms: u64,
}

fn find_cut(data: &[u8], pkts: &[TsPacket]) -> Cut {
    let starts: Vec<(usize, u64)> = pkts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.pid == PID_VIDEO && p.start && p.has_payload)
        .filter_map(|(i, p)| pes_dts(&data[p.payload.0..p.payload.0 + p.payload.1]).map(|t| (i, t)))
        .collect();
    let (k, gap) = starts
        .windows(2)
        .enumerate()
        .map(|(k, w)| (k + 1, w[1].1.saturating_sub(w[0].1)))
        .max_by_key(|x| x.1)
        .expect("video PES in the file");
    let first_video = starts[k].0;
    let last_old_video = starts[k - 1].0;
    let session_start = (last_old_video..first_video)
        .rev()
        .find(|&i| pkts[i].pid == PID_PAT)
        .unwrap_or_else(|| panic!("no PAT between the old session's last video PES and the new one's first"));
    let old_whole_until = (0..session_start).rev().find(|&i| pkts[i].start).expect("a unit start");
    Cut { session_start, first_video, old_whole_until, gap_ms: gap / 90 }
}

// --- 1. black hole ---

/// The path goes dead for 8 s (no ICMP, nothing): the SRT link sees no ACK and no keepalive for the
/// stall timeout, reports STALLED, reconnects through the backoff while the hole lasts, and once it
/// lifts opens a new session that starts with PAT/PMT and a keyframe, on the same timeline.
#[test]
fn black_hole_stalls_then_a_new_session_starts_with_tables_and_a_keyframe() {
    let mut listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(120).accepting_again());
    let proxy = UdpProxy::start(listener.addr());
    let spec = Spec::default();
    let mut config = srt_config(&spec, proxy.port(), 120);
    config.stall_timeout = Duration::from_secs(3);
    config.connect_timeout = Duration::from_millis(1500);
    config.reconnect = ReconnectPolicy { max_delay: Duration::from_secs(1), ..ReconnectPolicy::default() };
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    listener.wait_for_bytes(50_000, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));

    proxy.set(UdpFaults::BLACK_HOLE);
    let hole = Instant::now();
    let stalled = wait_event(&rx, &mut seen, Duration::from_secs(6), EventKind::KP_EVENT_STALLED);
    let stalled_after = hole.elapsed();
    wait_event(&rx, &mut seen, Duration::from_secs(2), EventKind::KP_EVENT_DISCONNECTED);
    wait_event(&rx, &mut seen, Duration::from_secs(2), EventKind::KP_EVENT_RECONNECTING);
    assert_eq!(stalled.value, 3000, "{stalled:?}");
    assert!(
        stalled_after >= Duration::from_millis(2900) && stalled_after < Duration::from_millis(4500),
        "STALLED {stalled_after:?} into the black hole"
    );
    std::thread::sleep((hole + Duration::from_secs(8)).saturating_duration_since(Instant::now()));
    proxy.set(UdpFaults::PASS);
    let lifted = Instant::now();
    let back = wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_RECONNECTED);
    eprintln!(
        "black hole: STALLED after {stalled_after:?}, RECONNECTED {:?} after the hole lifted ({back:?})",
        lifted.elapsed()
    );
    let bytes_at_reconnect = listener.output_len();
    listener.wait_for_bytes(bytes_at_reconnect + 100_000, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    assert_eq!(pusher.stats().reconnects, 1, "{:?}", pusher.stats());
    listener.stop();

    let data = std::fs::read(listener.output()).unwrap();
    let pkts = ts_packets(&data);
    let cut = find_cut(&data, &pkts);
    eprintln!(
        "TS: {} packets, new session at packet {} (first video PES at {}), {} ms of video missing",
        pkts.len(),
        cut.session_start,
        cut.first_video,
        cut.gap_ms
    );
    // The outage: at least the hole minus what the new session's keyframe wait brings back.
    assert!(cut.gap_ms >= 5000, "gap of {} ms", cut.gap_ms);
    // A new muxer: PAT and PMT first with their counters from 0, then (audio at most) the video
    // keyframe, its counter from 0 too, flagged as a random access point and holding an IDR.
    let s = cut.session_start;
    assert_eq!((pkts[s].pid, pkts[s].start, pkts[s].cc), (PID_PAT, true, 0), "{:?}", pkts[s]);
    assert_eq!((pkts[s + 1].pid, pkts[s + 1].start, pkts[s + 1].cc), (PID_PMT, true, 0), "{:?}", pkts[s + 1]);
    for p in &pkts[s + 2..cut.first_video] {
        assert!([PID_AUDIO, PID_PAT, PID_PMT].contains(&p.pid), "before the keyframe: {p:?}");
    }
    let v = pkts[cut.first_video];
    assert!(v.rai && v.cc == 0, "first video packet of the new session: {v:?}");
    assert!(has_idr(&video_pes(&data, &pkts, cut.first_video)), "the new session's first video PES has no IDR");

    // Decoding: each session on its own is clean (the old one up to its last whole unit: the hole
    // cut its last datagrams); the whole file may only complain about that one cut.
    let dir = tmp_dir("srt-black-hole");
    let (old, new) = (dir.join("old.ts"), dir.join("new.ts"));
    std::fs::write(&old, &data[..cut.old_whole_until * TS_PACKET]).unwrap();
    std::fs::write(&new, &data[s * TS_PACKET..]).unwrap();
    assert_eq!(decode_errors(&old), "", "the first session");
    assert_eq!(decode_errors(&new), "", "the second session");
    assert!(video_packet_times(&new)[0].1, "the second session does not start with a keyframe");
    let whole = decode_errors(listener.output());
    eprintln!("whole file, ffmpeg -v error: {whole:?}");
    assert!(whole.lines().count() <= 4, "more than the cut's errors: {whole}");
    let _ = std::fs::remove_dir_all(&dir);
}

// --- 2. heavy loss ---

/// 20 % loss each way with 20 ms each way, latency 120 ms: too little time to repair everything.
/// The stream goes on (frames are sent every second), too-late drops are counted, NET_BUSY is
/// raised; once loss ends it recovers: NET_RECOVERED and no more late drops.
#[test]
fn twenty_percent_loss_degrades_without_wedging_and_recovers() {
    let mut listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(120));
    let proxy = UdpProxy::start(listener.addr());
    let spec = Spec::default();
    let config = srt_config(&spec, proxy.port(), 120);
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    std::thread::sleep(Duration::from_secs(1));
    proxy.set(UdpFaults::PASS.with_loss(20.0).with_delay_ms(20));

    let sent = |p: &Pusher| p.stats().destinations[0].video_frames_sent;
    let mut per_second = Vec::new();
    let mut last = sent(&pusher);
    // Under loss: every second some frames go out; NET_BUSY comes within the window.
    for _ in 0..12 {
        std::thread::sleep(Duration::from_secs(1));
        let now = sent(&pusher);
        per_second.push(now - last);
        last = now;
        drain(&rx, &mut seen);
    }
    let lossy = pusher.stats().destinations[0].clone();
    eprintln!("20 % loss: frames sent per second {per_second:?}; {lossy:?}");
    assert!(per_second.iter().all(|&n| n >= 5), "wedged: frames sent per second {per_second:?}");
    assert!(lossy.packets_dropped_late > 0, "no too-late drops at 20 % loss: {lossy:?}");
    assert!(lossy.packets_retransmitted > 0 && lossy.packets_lost > 0, "{lossy:?}");
    let busy = seen.iter().find(|e| e.kind == EventKind::KP_EVENT_NET_BUSY).cloned();
    assert!(busy.is_some(), "no NET_BUSY at 20 % loss: {:#?}", summary(&seen));
    eprintln!("{busy:?}");

    proxy.set(UdpFaults::PASS);
    let recovered = wait_event(&rx, &mut seen, Duration::from_secs(12), EventKind::KP_EVENT_NET_RECOVERED);
    eprintln!("{recovered:?}");
    let late_before = pusher.stats().destinations[0].packets_dropped_late;
    let mut tail = Vec::new();
    let mut last = sent(&pusher);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        let now = sent(&pusher);
        tail.push(now - last);
        last = now;
    }
    let clean = pusher.stats().destinations[0].clone();
    assert_eq!(clean.packets_dropped_late, late_before, "late drops after the loss ended: {clean:?}");
    assert!(tail.iter().all(|&n| (25..=35).contains(&n)), "not back to 30 fps: {tail:?}");
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    listener.stop();
    // Loss this heavy leaves holes the decoder reports; the stream is still a TS with video.
    assert!(probe(listener.output()).video.is_some());
}

// --- 3. failover across protocols ---

/// Primary `srt://` is black-holed from the start (UDP blocked), the backup is `rtmp://` nginx: the
/// pusher ends up on the backup, and when UDP passes again the SRT handshake probe finds the primary
/// and it goes back, with one encoder and one timeline throughout.
#[test]
fn srt_primary_blocked_fails_over_to_rtmp_and_comes_back() {
    let mut listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(120).accepting_again());
    let proxy = UdpProxy::start(listener.addr());
    proxy.set(UdpFaults::BLACK_HOLE);
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("srt-failover");
    let spec = Spec::default();
    let mut config = srt_config(&spec, proxy.port(), 120);
    config.backup_urls = vec![nginx.url(&key)];
    config.connect_timeout = Duration::from_millis(1500);
    config.reconnect = ReconnectPolicy {
        failover_after: 1,
        primary_retry_interval: Duration::from_secs(3),
        max_delay: Duration::from_secs(2),
        ..ReconnectPolicy::default()
    };
    let (pusher, rx) = shared_harness(config);
    let mut seen = vec![];
    let started = Instant::now();
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    let switch = wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_FAILOVER);
    assert_eq!((switch.value, switch.value2), (0, 1), "{switch:?}");
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    let on_backup = started.elapsed();
    assert!(on_backup < Duration::from_secs(5), "on the backup after {on_backup:?}");
    assert_eq!(pusher.stats().destinations[0].url_index, 1);
    std::thread::sleep(Duration::from_secs(2));
    let encoded_on_backup = pusher.stats().video_frames_encoded;

    proxy.set(UdpFaults::PASS);
    let lifted = Instant::now();
    let back = wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_FAILOVER);
    assert_eq!((back.value, back.value2), (1, 0), "{back:?}");
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    eprintln!(
        "on the RTMP backup after {on_backup:?}; back on the SRT primary {:?} after UDP passed",
        lifted.elapsed()
    );
    assert_eq!(pusher.stats().destinations[0].url_index, 0);
    listener.wait_for_bytes(100_000, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let encoded_on_primary = pusher.stats().video_frames_encoded;
    let pushed = src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    let stats = pusher.stats();
    listener.stop();
    assert!(encoded_on_primary > encoded_on_backup, "{encoded_on_backup} then {encoded_on_primary}");
    // One encoder throughout: everything pushed was encoded once (no restart lost or re-counted frames).
    assert!(stats.video_frames_encoded + 3 >= pushed && stats.video_frames_encoded <= pushed, "{pushed} {stats:?}");

    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let flv = probe(&rec);
    assert!(flv.video.as_ref().map_or(0, |v| v.frames) > 30, "backup: {flv:?}");
    assert_eq!(decode_errors(&rec), "", "backup recording");
    let ts = listener.output();
    let p = probe(ts);
    assert!(p.video.as_ref().map_or(0, |v| v.frames) > 30, "primary: {p:?}");
    assert_eq!(decode_errors(ts), "", "primary TS");
    let ts_times = video_packet_times(ts);
    assert!(ts_times[0].1, "the SRT session does not start with a keyframe");
    // One timeline: the SRT session continues after the RTMP one (TS times carry the muxer's delay).
    let flv_last_ms = video_packet_times(&rec).iter().map(|t| t.0).fold(0.0, f64::max) * 1000.0;
    let ts_first_ms = ts_times[0].0 * 1000.0 - TS_DELAY_MS as f64;
    eprintln!("RTMP backup up to {flv_last_ms:.0} ms, SRT primary from {ts_first_ms:.0} ms");
    assert!(ts_first_ms >= flv_last_ms - 100.0 && ts_first_ms <= flv_last_ms + 2000.0, "{flv_last_ms} {ts_first_ms}");
}

// --- 4. network handover ---

/// `network_changed()` with the old 5-tuple black-holed (the phone left its Wi-Fi) and a new one
/// passing (the new route): publishing again within a second, without the stall timeout.
///
/// srt-live-transmit serves one caller at a time: it listens again only once the old session is
/// gone, which libsrt decides after ~5 s of silence whatever `peeridletimeo` says (16 expiry
/// periods of ≥ 300 ms), where a real server (SRS, MediaMTX) takes the new session at once. So
/// the new route leads to another listener behind the same proxy address (a load-balanced
/// ingest): what is measured is the SDK's own time to drop the old session and publish a new one.
#[test]
fn network_changed_over_srt_publishes_again_within_a_second() {
    let opts = SrtOptions::latency_ms(120);
    let mut listeners: Vec<SrtListener> = (0..3).map(|_| SrtListener::srt_live_transmit(opts.clone())).collect();
    let proxy = UdpProxy::start(listeners[0].addr());
    let spec = Spec::default();
    let (pusher, rx) = shared_harness(srt_config(&spec, proxy.port(), 120));
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    let mut took = Vec::new();
    for (round, next) in listeners.iter().enumerate().skip(1) {
        std::thread::sleep(Duration::from_millis(1500));
        let old = proxy.black_hole_client().expect("a client");
        proxy.set_upstream(next.addr());
        let t = Instant::now();
        pusher.network_changed().unwrap();
        let lost = wait_event(&rx, &mut seen, Duration::from_secs(3), EventKind::KP_EVENT_DISCONNECTED);
        assert!(lost.message.contains("network changed"), "{lost:?}");
        wait_event(&rx, &mut seen, Duration::from_secs(3), EventKind::KP_EVENT_PUBLISHING);
        took.push(t.elapsed());
        let back = wait_event(&rx, &mut seen, Duration::from_secs(3), EventKind::KP_EVENT_RECONNECTED);
        assert!(back.value < 1000, "{back:?}");
        assert_ne!(proxy.client(), Some(old), "round {round}: the new session came from the old 5-tuple");
    }
    eprintln!("SRT: publishing again after network_changed: {took:?}");
    for t in &took {
        assert!(*t <= Duration::from_millis(1000), "publishing again {t:?} after network_changed ({took:?})");
    }
    assert!(!seen.iter().any(|e| e.kind == EventKind::KP_EVENT_STALLED), "a stall timeout was waited for");
    listeners[2].wait_for_bytes(50_000, Duration::from_secs(5));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    assert_eq!(pusher.stats().reconnects, 2);
    // Three sessions: each listener's TS starts with PAT/PMT and a keyframe and decodes; the
    // first two end where their route went dead.
    for (i, l) in listeners.iter_mut().enumerate() {
        l.stop();
        let data = std::fs::read(l.output()).unwrap();
        let pkts = ts_packets(&data);
        assert!(pkts.len() > 100, "session {i}: {} packets", pkts.len());
        assert_eq!((pkts[0].pid, pkts[0].cc, pkts[1].pid), (PID_PAT, 0, PID_PMT), "session {i}");
        let v = pkts.iter().position(|p| p.pid == PID_VIDEO && p.start).expect("video");
        assert!(pkts[v].rai && has_idr(&video_pes(&data, &pkts, v)), "session {i} does not start on a keyframe");
        let whole = (0..pkts.len()).rev().find(|&k| pkts[k].start).unwrap();
        let dir = tmp_dir("srt-handover");
        let part = dir.join("whole.ts");
        std::fs::write(&part, &data[..whole * TS_PACKET]).unwrap();
        assert_eq!(decode_errors(&part), "", "session {i}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `network_changed()` while the old route still carries packets (the Wi-Fi lingers a moment):
/// the old session is shut down at once (SRT SHUTDOWN on the old socket), so a listener serving
/// one caller at a time (srt-live-transmit `-a:yes`, like SRS or MediaMTX with one publisher per
/// stream id) takes the new session at once instead of after its ~5 s idle timeout.
#[test]
fn network_changed_over_srt_frees_the_listener_for_the_new_session() {
    let mut listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(120).accepting_again());
    let proxy = UdpProxy::start(listener.addr());
    let spec = Spec::default();
    let (pusher, rx) = shared_harness(srt_config(&spec, proxy.port(), 120));
    let mut seen = vec![];
    pusher.start().unwrap();
    let src = RealTimeSource::start(pusher.clone(), spec.clone());
    wait_event(&rx, &mut seen, Duration::from_secs(10), EventKind::KP_EVENT_PUBLISHING);
    std::thread::sleep(Duration::from_millis(1500));
    let old = proxy.client();
    let t = Instant::now();
    pusher.network_changed().unwrap();
    wait_event(&rx, &mut seen, Duration::from_secs(3), EventKind::KP_EVENT_DISCONNECTED);
    wait_event(&rx, &mut seen, Duration::from_secs(8), EventKind::KP_EVENT_PUBLISHING);
    let took = t.elapsed();
    eprintln!("SRT, old route still up: publishing again on the same listener {took:?} after network_changed");
    assert_ne!(proxy.client(), old, "the new session came from the old 5-tuple");
    assert!(took <= Duration::from_millis(1000), "the listener took the new session only after {took:?}");
    let before = listener.output_len();
    listener.wait_for_bytes(before + 50_000, Duration::from_secs(5));
    src.finish();
    pusher.stop(Duration::from_secs(10)).unwrap();
    listener.stop();
}

// --- 5. pre-encoded HEVC ---

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const HEVC_FRAMES: usize = 75;

/// libx265 access units (B-frames, an IDR every second) in Annex-B with their pts/dts (µs).
fn encoded_hevc(dir: &Path) -> (Vec<Vec<u8>>, Vec<(i64, i64)>) {
    use kitepush::core::hevc;
    require_tool("ffprobe");
    let mp4 = dir.join("in.mp4");
    let es = dir.join("in.hevc");
    let (mp4s, ess) = (mp4.to_str().unwrap(), es.to_str().unwrap());
    let frames = HEVC_FRAMES.to_string();
    run(
        "ffmpeg",
        &["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", &frames]
            .into_iter()
            .chain(["-c:v", "libx265", "-x265-params", "log-level=error:keyint=25:min-keyint=25:bframes=3:aud=1", mp4s])
            .collect::<Vec<_>>(),
    );
    run("ffmpeg", &["-v", "error", "-y", "-i", mp4s, "-c", "copy", "-bsf:v", "hevc_mp4toannexb", "-f", "hevc", ess]);
    let tb = run("ffprobe", &["-v", "error", "-show_entries", "stream=time_base", "-of", "csv=p=0", mp4s]);
    let den: i64 = tb.trim().trim_start_matches("1/").parse().expect("time base 1/N");
    let packets = run("ffprobe", &["-v", "error", "-show_entries", "packet=pts,dts", "-of", "csv=p=0", mp4s]);
    let mut times: Vec<(i64, i64)> = packets
        .lines()
        .map(|l| {
            let f: Vec<i64> = l.split(',').map(|v| v.parse::<i64>().unwrap() * 1_000_000 / den).collect();
            (f[0], f[1])
        })
        .collect();
    let shift = -times.iter().map(|t| t.1).min().unwrap();
    for t in &mut times {
        *t = (t.0 + shift, t.1 + shift);
    }
    let stream = std::fs::read(&es).unwrap();
    (common::pushing::access_units(&stream, |n| hevc::nal_type(n) == hevc::NAL_AUD), times)
}

#[test]
fn pre_encoded_hevc_over_srt_to_ffmpeg9() {
    use kitepush::pusher::{VideoConfig, VideoEncoderKind};
    let dir = tmp_dir("srt-hevc");
    let (aus, times) = encoded_hevc(&dir);
    assert_eq!((aus.len(), times.len()), (HEVC_FRAMES, HEVC_FRAMES));
    let mut listener = SrtListener::ffmpeg9(SrtOptions::latency_ms(120));
    let config = PusherConfig {
        url: format!("srt://127.0.0.1:{}?latency=120", listener.port()),
        video: Some(VideoConfig {
            encoder: VideoEncoderKind::KP_ENCODER_PASSTHROUGH_HEVC,
            width: 320,
            height: 240,
            fps: 25.0,
            bitrate_kbps: 300,
            ..VideoConfig::default()
        }),
        audio: None,
        ..PusherConfig::default()
    };
    let mut h = Harnessed::new(config);
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    for (au, (pts, dts)) in aus.iter().zip(&times) {
        h.pusher.push_hevc(au, *pts, *dts).unwrap();
    }
    h.pusher.stop(Duration::from_secs(10)).unwrap();
    assert_eq!(h.pusher.stats().video_frames_sent, HEVC_FRAMES as u64);
    listener.wait_exit(Duration::from_secs(10));
    let p = probe(listener.output());
    let v = p.video.as_ref().unwrap_or_else(|| panic!("no video: {p:?}"));
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("hevc", 320, 240, HEVC_FRAMES as u64), "{p:?}");
    assert!(p.audio.is_none(), "{p:?}");
    assert_eq!(decode_errors(listener.output()), "");
    assert!(video_packet_times(listener.output())[0].1, "does not start with a keyframe");
    let _ = std::fs::remove_dir_all(&dir);
}
