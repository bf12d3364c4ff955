//! Opus encoded beside AAC from the same PCM (`AudioConfig::also_opus`, what a WebRTC destination
//! turns on): the RTMP stream, its recording and the audio stats stay what they are without it.

mod common;

use common::pushing::{Harnessed, Source, Spec};
use common::*;
use kitepush::pusher::{EventKind, Stats};
use std::time::Duration;

/// Pushes `spec` with or without Opus; returns the final stats and the recording's audio frames.
fn push(nginx: &Nginx, spec: &Spec, also_opus: bool) -> (Stats, u64) {
    let key = unique_key(if also_opus { "opus-on" } else { "opus-off" });
    let mut config = spec.config(&nginx.url(&key));
    config.audio.as_mut().expect("the spec has audio").also_opus = also_opus;
    let mut h = Harnessed::new(config);
    h.pusher.start().expect("start");
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, Duration::from_secs(10));
    let mut src = Source::new(spec);
    for _ in 0..spec.frames() {
        src.push_one(&h.pusher);
    }
    h.pusher.stop(Duration::from_secs(20)).expect("stop");
    h.wait_for(EventKind::KP_EVENT_STOPPED, Duration::from_secs(5));
    let stats = h.pusher.stats();
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, Duration::from_secs(10));
    let p = probe(&rec);
    let a = p.audio.unwrap_or_else(|| panic!("no audio in {}", rec.display()));
    assert_eq!(a.codec, "aac", "also_opus {also_opus}");
    assert_eq!((a.sample_rate, a.channels), (44100, 2));
    assert_eq!(p.video.expect("video").frames, spec.frames());
    assert_eq!(decode_errors(&rec), "", "also_opus {also_opus}: ffmpeg reported decode errors");
    (stats, a.frames)
}

#[test]
fn opus_beside_aac_leaves_the_rtmp_stream_its_recording_and_stats_unchanged() {
    let nginx = Nginx::start(NginxOptions::default());
    let spec = Spec { seconds: 4.0, ..Spec::default() };
    let (off, off_frames) = push(&nginx, &spec, false);
    let (on, on_frames) = push(&nginx, &spec, true);
    println!("AAC frames in the recording: {off_frames} without Opus, {on_frames} with; stats with Opus: {on:?}");
    assert_eq!(on_frames, off_frames, "the recording's AAC frames");
    // Opus units are not queued to RTMP: not sent, not dropped, and not counted as encoded
    // (audio_frames_encoded counts AAC frames when AAC is encoded).
    assert_eq!(on.audio_frames_encoded, off.audio_frames_encoded);
    assert_eq!(on.audio_frames_sent, off.audio_frames_sent);
    assert_eq!(on.audio_frames_sent, on.audio_frames_encoded);
    assert_eq!(on.audio_frames_in, off.audio_frames_in);
    assert_eq!(on.frames_dropped_network + on.audio_frames_dropped_congestion, 0, "{on:?}");
    assert_eq!(on.destinations[0].audio_frames_sent, on.audio_frames_sent);
}
