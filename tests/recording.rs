//! Local recording while pushing to a real nginx-rtmp: the file holds what was sent, starts and
//! stops mid-stream at keyframes, survives a reconnect, and a disk that fails (/dev/full) costs
//! the recording, never the push. Files are checked with the crate's FLV reader, ffprobe and a
//! full ffmpeg decode.

mod common;

use common::pushing::{flv_tags, Harnessed, Source, Spec};
use common::{decode_errors, probe, tmp_dir, unique_key, Nginx, NginxOptions};
use kitepush::core::flv::{FileReader, TAG_VIDEO};
use kitepush::pusher::{Event, EventKind};
use kitepush::ResultCode;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn media_counts(path: &Path) -> (u64, u64) {
    let tags = flv_tags(path);
    let v = tags.iter().filter(|t| t.1 == "key" || t.1 == "inter").count() as u64;
    let a = tags.iter().filter(|t| t.1 == "aac").count() as u64;
    (v, a)
}

/// A recording must open like a stream: metadata, the video sequence header, a keyframe at 0;
/// the audio sequence header before the first audio frame (it comes later when the recording
/// starts before the audio encoder has produced anything).
fn assert_starts_cleanly(path: &Path) {
    let tags = flv_tags(path);
    let kinds: Vec<&str> = tags.iter().map(|t| t.1).collect();
    let first = |k: &str| kinds.iter().position(|x| *x == k);
    let key = first("key").unwrap();
    assert_eq!(&kinds[..2], ["script", "avc-header"], "{}", path.display());
    assert!(kinds[2..key].iter().all(|k| *k == "aac-header"), "{}: {:?}", path.display(), &kinds[..8]);
    assert!(first("aac-header") < first("aac"), "{}: {:?}", path.display(), &kinds[..8]);
    assert!(first("inter") > first("key"));
    let first_video = FileReader::new(std::fs::File::open(path).unwrap())
        .unwrap()
        .map(Result::unwrap)
        .find(|t| t.tag_type == TAG_VIDEO && t.body.get(1) == Some(&1))
        .unwrap();
    assert_eq!(first_video.timestamp_ms, 0, "timestamps are rebased to start at 0");
    assert_eq!(decode_errors(path), "", "{}", path.display());
}

/// The first event of `kind`, already seen or still to come.
fn event(h: &mut Harnessed, kind: EventKind) -> Event {
    match h.seen.iter().find(|e| e.kind == kind) {
        Some(e) => e.clone(),
        None => h.wait_for(kind, T),
    }
}

#[test]
fn recording_from_the_start_holds_every_frame_sent() {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("rec-all");
    let dir = tmp_dir("rec-all");
    let file = dir.join("all.flv");
    let spec = Spec { seconds: 4.0, ..Spec::default() };
    let mut h = Harnessed::new(spec.config(&nginx.url(&key)));
    h.pusher.start_recording(&file).unwrap();
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, T);
    let mut src = Source::new(&spec);
    for _ in 0..spec.frames() {
        src.push_one(&h.pusher);
    }
    h.pusher.stop(T).unwrap();
    let stopped = event(&mut h, EventKind::KP_EVENT_RECORDING_STOPPED);
    let started = event(&mut h, EventKind::KP_EVENT_RECORDING_STARTED);
    assert_eq!(started.value, 0, "began at the stream's first keyframe");
    assert_eq!(started.message, file.display().to_string());

    let stats = h.pusher.stats();
    assert_eq!(stats.video_frames_sent, spec.frames());
    assert_eq!((stopped.value as u64, stopped.value2 as u64), (stats.video_frames_sent, stats.audio_frames_sent));
    assert_eq!(media_counts(&file), (stats.video_frames_sent, stats.audio_frames_sent));
    assert_starts_cleanly(&file);
    let p = probe(&file);
    let (v, a) = (p.video.unwrap(), p.audio.unwrap());
    assert_eq!((v.codec.as_str(), v.width, v.height, v.frames), ("h264", 320, 240, spec.frames()));
    assert_eq!(a.codec, "aac");

    // The same frames reached the server.
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, T);
    assert_eq!(probe(&rec).video.unwrap().frames, v.frames);
    assert_eq!(probe(&rec).audio.unwrap().frames, a.frames);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mid_stream_recordings_start_at_a_keyframe_and_a_full_disk_spares_the_push() {
    let nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("rec-mid");
    let dir = tmp_dir("rec-mid");
    let spec = Spec { seconds: 12.0, ..Spec::default() };
    let mut h = Harnessed::new(spec.config(&nginx.url(&key)));
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, T);
    let mut src = Source::new(&spec);
    let push_to = |src: &mut Source, h: &Harnessed, n: u64| {
        while src.next_frame < n {
            src.push_one(&h.pusher);
        }
    };
    assert_eq!(h.pusher.stop_recording().unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);

    // 1. Started at frame 45 (keyframes every 60): a keyframe is requested, the file starts there.
    push_to(&mut src, &h, 45);
    let bad = h.pusher.start_recording(dir.join("no-such-dir/x.flv")).unwrap_err();
    assert_eq!(bad.code(), ResultCode::KP_ERR_FILE, "{bad}");
    let mid = dir.join("mid.flv");
    h.pusher.start_recording(&mid).unwrap();
    let again = h.pusher.start_recording(dir.join("other.flv")).unwrap_err();
    assert_eq!(again.code(), ResultCode::KP_ERR_INVALID_STATE);
    push_to(&mut src, &h, 150);
    let started = event(&mut h, EventKind::KP_EVENT_RECORDING_STARTED);
    h.pusher.stop_recording().unwrap();
    let stopped = event(&mut h, EventKind::KP_EVENT_RECORDING_STOPPED);
    // The keyframe request took effect on a frame still waiting for the encoder (up to three are
    // in flight when it is made: 42..=44), not at the next scheduled IDR (frame 60).
    let first_frame = (started.value * 30 + 500) / 1000;
    assert!((42..=45).contains(&first_frame), "began at frame {first_frame}");
    assert_eq!(stopped.value as u64, media_counts(&mid).0);
    // Up to the frames pushed before stop_recording, less the ones still in the encoder then.
    let expected = 150 - first_frame;
    assert!((expected - 3..=expected).contains(&stopped.value), "{stopped:?} from frame {first_frame}");
    assert_starts_cleanly(&mid);
    assert_eq!(probe(&mid).video.unwrap().frames, stopped.value as u64);

    // 2. A disk that is full: the recording fails with KP_ERR_FILE, the push goes on.
    push_to(&mut src, &h, 180);
    h.pusher.start_recording("/dev/full").unwrap();
    while !h.seen.iter().any(|e| e.kind == EventKind::KP_EVENT_RECORDING_FAILED) {
        assert!(src.next_frame < spec.frames(), "no RECORDING_FAILED while writing to /dev/full: {:?}", h.seen);
        src.push_one(&h.pusher);
        h.drain_events(Duration::from_millis(1));
    }
    let failed = h.seen.iter().find(|e| e.kind == EventKind::KP_EVENT_RECORDING_FAILED).unwrap().clone();
    assert_eq!(failed.code, ResultCode::KP_ERR_FILE, "{failed:?}");
    assert!(failed.message.contains("No space left"), "{failed:?}");
    assert_eq!(h.pusher.stop_recording().unwrap_err().code(), ResultCode::KP_ERR_INVALID_STATE);

    // 3. A new recording after the failure works, and the pusher's stop closes it.
    assert!(!h.kinds().contains(&EventKind::KP_EVENT_FAILED), "{:?}", h.seen);
    h.seen.clear();
    let after = dir.join("after.flv");
    h.pusher.start_recording(&after).unwrap();
    push_to(&mut src, &h, spec.frames());
    h.pusher.stop(T).unwrap();
    let stopped = event(&mut h, EventKind::KP_EVENT_RECORDING_STOPPED);
    event(&mut h, EventKind::KP_EVENT_STOPPED);
    assert!(!h.kinds().contains(&EventKind::KP_EVENT_FAILED), "{:?}", h.seen);
    assert!(!h.kinds().contains(&EventKind::KP_EVENT_DISCONNECTED), "{:?}", h.seen);
    assert_eq!(stopped.value as u64, media_counts(&after).0);
    assert!(stopped.value > 0);
    assert_starts_cleanly(&after);

    // Every frame reached the server, whole.
    assert_eq!(h.pusher.stats().video_frames_sent, spec.frames());
    let rec = nginx.recording(&key);
    nginx.wait_recording_closed(&rec, T);
    assert_eq!(probe(&rec).video.unwrap().frames, spec.frames());
    assert_eq!(decode_errors(&rec), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn recording_runs_on_through_a_reconnect() {
    let mut nginx = Nginx::start(NginxOptions::default());
    let key = unique_key("rec-reconnect");
    let dir = tmp_dir("rec-reconnect");
    let file = dir.join("through.flv");
    let spec = Spec { seconds: 8.0, ..Spec::default() };
    let mut h = Harnessed::new(spec.config(&nginx.url(&key)));
    h.pusher.start_recording(&file).unwrap();
    h.pusher.start().unwrap();
    h.wait_for(EventKind::KP_EVENT_PUBLISHING, T);
    let mut src = Source::new(&spec);
    for _ in 0..100 {
        src.push_one(&h.pusher);
    }
    nginx.kill();
    h.wait_for(EventKind::KP_EVENT_DISCONNECTED, T);
    // Media keeps coming while the server is away.
    for _ in 100..140 {
        src.push_one(&h.pusher);
    }
    nginx.restart();
    h.wait_for(EventKind::KP_EVENT_RECONNECTED, T);
    for _ in 140..spec.frames() {
        src.push_one(&h.pusher);
    }
    h.pusher.stop(T).unwrap();
    let stopped = event(&mut h, EventKind::KP_EVENT_RECORDING_STOPPED);
    event(&mut h, EventKind::KP_EVENT_STOPPED);
    assert!(!h.kinds().contains(&EventKind::KP_EVENT_RECORDING_FAILED), "{:?}", h.seen);

    // Local, so nothing was lost: every encoded frame, on one continuous timeline.
    let encoded = h.pusher.stats().video_frames_encoded;
    assert_eq!(encoded, spec.frames());
    assert_eq!(stopped.value as u64, encoded);
    assert_eq!(media_counts(&file).0, encoded);
    let times: Vec<u32> = FileReader::new(std::fs::File::open(&file).unwrap())
        .unwrap()
        .map(Result::unwrap)
        .filter(|t| t.tag_type == TAG_VIDEO && t.body.get(1) == Some(&1))
        .map(|t| t.timestamp_ms)
        .collect();
    assert!(times.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 34), "gap in {times:?}");
    assert_starts_cleanly(&file);
    assert_eq!(probe(&file).video.unwrap().frames, encoded);
    let _ = std::fs::remove_dir_all(&dir);
}
