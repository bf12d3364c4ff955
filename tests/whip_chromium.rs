//! WHIP output against a second, independent WebRTC stack: headless Chromium (Debian's, driven by
//! playwright from tests/peers/whip_chromium.py) receives kitepush's offer as it is, decodes the
//! video and reads the test pattern's frame codes in the page. In a loopback-only network
//! namespace (`common::whip::in_loopback_netns`), like tests/whip.rs.

mod common;

use common::pushing::{Harnessed, Source, Spec};
use common::whip::{consent_run_seconds, in_loopback_netns, WhipEndpoint};
use kitepush::pusher::EventKind;
use std::time::{Duration, Instant};

/// One push does both: every frame decoded in order, and a session that outlives Chromium's ICE
/// consent timeout (30 s without an answer to its checks marks the pair failed, RFC 7675), so
/// kitepush answers Chromium's checks for the whole push. 40 s keeps the test under a minute;
/// `KP_WHIP_SECONDS=120` is the long local mode.
#[test]
fn chromium_decodes_a_40_s_push_frame_by_frame_and_keeps_consent() {
    if !in_loopback_netns("chromium_decodes_a_40_s_push_frame_by_frame_and_keeps_consent") {
        return;
    }
    let t0 = Instant::now();
    let ep = WhipEndpoint::start_chromium();
    let browser_ms = t0.elapsed().as_millis();
    // Audio: 44.1 kHz PCM in, Opus at 48 kHz to Chromium.
    let spec = Spec { seconds: consent_run_seconds(40.0), audio: true, ..Spec::default() };
    let mut h = Harnessed::new(spec.config(&ep.url("live")));
    let started = Instant::now();
    h.pusher.start().unwrap();
    // PUBLISHING needs the 201: Chromium took the offer as kitepush wrote it (a refusal is a 400
    // with Chromium's error and the offer in the endpoint's log, printed on failure).
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(15));
    let publish_ms = started.elapsed().as_millis();

    // Real time: a WebRTC receiver plays at the pace media arrives.
    let mut src = Source::new(&spec);
    let pace = Instant::now();
    for i in 0..spec.frames() {
        let due = pace + Duration::from_micros(src.pts_us(i) as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        src.push_one(&h.pusher);
    }
    // 99 % decoded before the DELETE: the page's stats freeze when the session closes.
    let want = (spec.frames() * 99).div_ceil(100);
    ep.wait_frames(want, Duration::from_secs(15));
    let d = h.pusher.stats().destinations[0].clone();
    h.pusher.stop(Duration::from_secs(5)).unwrap();
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(10));
    let stats = ep.wait_for(Duration::from_secs(10), "the DELETE", |s| s.deletes == 1);
    let s = stats.session();
    let v = &stats.raw["sessions"][0]["video"];
    let checks = &stats.raw["sessions"][0]["ice_checks"];
    println!(
        "Chromium: up in {browser_ms} ms, publishing after {publish_ms} ms (connected {:?} ms after the \
         POST, for {:?} ms), answer {:?}; ICE checks from Chromium {} answered {}, to it {}; {} of {} frames decoded, {} dropped, {} key frames, {} painted; packets lost {}, NACKs {}, \
         PLIs {}; codes read {} (first {:?}, unreadable {}, missing {}, not increasing {}); latency p50 {:?} ms p95 {:?} ms \
         max {:?} ms; kitepush: estimate {} kbit/s, rtt {} ms, {} retransmitted; test {:.1} s",
        s.connected_after_ms,
        s.connected_for_ms,
        s.local_candidates,
        checks["requests_sent"],
        checks["responses_received"],
        checks["requests_received"],
        s.video_frames,
        spec.frames(),
        v["frames_dropped"],
        v["key_frames_decoded"],
        v["frames_painted"],
        v["packets_lost"],
        v["nack_count"],
        v["pli_count"],
        s.codes.read,
        s.codes.first,
        s.codes.unreadable,
        s.codes.missing,
        s.codes.not_increasing,
        s.latency.p50,
        s.latency.p95,
        s.latency.max,
        d.bandwidth_estimate_kbps,
        d.rtt_ms,
        d.packets_retransmitted,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(stats.interfaces, ["lo"], "not in a loopback-only namespace");
    assert_eq!(stats.posts_by_status.get(&201), Some(&1), "{}", stats.raw);
    assert_eq!(s.closed_by.as_deref(), Some("delete"), "{}", stats.raw);
    assert!(!s.local_candidates.is_empty(), "{}", stats.raw);
    assert!(
        s.local_candidates.iter().chain(&s.remote_candidates).all(|c| c.starts_with("127.0.0.1:")),
        "{}",
        stats.raw
    );
    // Consent: connected the whole push, never "disconnected" or "failed", and Chromium's checks
    // kept being answered (one every 2.5 s or so on a connected pair).
    assert_eq!(s.ice_states, ["checking", "connected"], "{}", stats.raw);
    assert_eq!(s.states, ["connecting", "connected"], "{}", stats.raw);
    assert!(s.connected_for_ms.is_some_and(|ms| ms as f64 >= (spec.seconds - 1.0) * 1000.0), "{}", stats.raw);
    let answered = checks["responses_received"].as_u64().unwrap_or(0);
    assert!(answered as f64 >= spec.seconds / 10.0, "{}", stats.raw);
    assert!(s.video_frames * 100 >= spec.frames() * 99, "{}", stats.raw);
    // framesDropped: frames Chromium's jitter buffer or decoder discarded (an undecodable frame
    // ends there). Clean loopback: none expected; 1 % leaves room for a stall of the loaded machine.
    assert!(stats.decode_errors * 100 <= spec.frames(), "{}", stats.raw);
    assert_eq!((s.width, s.height), (Some(320), Some(240)), "{}", stats.raw);
    // Codes are read from presented frames: the compositor may skip one under load (missing), but
    // what it shows must be in order and legible.
    assert!(s.codes.read * 100 >= spec.frames() * 50, "{}", stats.raw);
    assert_eq!(s.codes.not_increasing, 0, "{}", stats.raw);
    assert!(s.codes.unreadable * 100 <= s.codes.read, "{}", stats.raw);
    // Loopback; loose for a loaded CI machine.
    assert!(s.latency.p50.is_some_and(|ms| ms < 400), "{}", stats.raw);
    assert_eq!(h.pusher.stats().video_frames_sent, spec.frames());
    // Opus: 50 packets a second reached Chromium (a few at the end may still be in flight).
    assert!(s.audio_frames as f64 >= spec.seconds * 50.0 * 0.97, "{}", stats.raw);

    // Chromium refuses an offer whose `ssrc-group:FID` names an SSRC without its own `a=ssrc`
    // lines (FFmpeg's WHIP muxer once wrote such offers): kitepush's has them for both, and the
    // same offer without the RTX SSRC's lines is refused, so the check above means something.
    let offer = stats.raw["sessions"][0]["offer"].as_str().expect("the offer in the stats").to_string();
    let fid: Vec<&str> = offer
        .lines()
        .find_map(|l| l.strip_prefix("a=ssrc-group:FID "))
        .unwrap_or_else(|| panic!("no ssrc-group:FID in the offer:\n{offer}"))
        .split_whitespace()
        .collect();
    assert_eq!(fid.len(), 2, "{offer}");
    for ssrc in &fid {
        assert!(offer.lines().any(|l| l.starts_with(&format!("a=ssrc:{ssrc} cname:"))), "{ssrc}: {offer}");
    }
    let rtx_lines = format!("a=ssrc:{} ", fid[1]);
    let without: String = offer.split_inclusive('\n').filter(|l| !l.starts_with(&rtx_lines)).collect();
    let refused = ep.request("POST", "/whip/fid", &[("Content-Type", "application/sdp")], without.as_bytes());
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("Failed to add remote stream ssrc"), "{}", refused.body);
}
