//! The SRT test peers and the UDP fault proxy, proven with a known-good sender before kitepush's own:
//! FFmpeg 9 as an SRT caller pushes H.264 + AAC in MPEG-TS through the proxy (5 % loss and 20 ms delay
//! each way, latency 4 × RTT) to each listener, and the recordings must decode cleanly with every
//! frame there (but the tail, see `TAIL_FRAMES`); FFmpeg 9 as listener reports the streamid; a wrong
//! passphrase is refused with its reason in srt-live-transmit's log.

mod common;

use common::srt::{ffmpeg9_push, ffmpeg_caller_url, SrtListener, SrtOptions};
use common::udp_proxy::{UdpFaults, UdpProxy};
use common::{decode_errors, probe, video_packet_times};
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

const SECONDS: f64 = 5.0;
/// What FFmpeg 9 writes for `SECONDS` of the test pattern into a local .ts (measured: 150 video frames
/// at 30 fps, 217 AAC frames including the encoder's priming frame).
const VIDEO_FRAMES: u64 = 150;
const AUDIO_FRAMES: u64 = 217;
/// Frames that may be missing at the very end. FFmpeg's caller closes the SRT socket right after its
/// last write (libsrt's live-mode linger is 0, and `linger=N` did not help reliably here), and the
/// listener discards what it still holds for its TSBPD latency plus what was still being repaired:
/// 7–8 video frames at 160 ms latency without loss. Up to 0.5 s is allowed; anything missing before
/// the tail fails the gap check.
const TAIL_FRAMES: u64 = 15;
const TAIL_AUDIO_FRAMES: u64 = 22;
/// 20 ms added each way on loopback: RTT ≈ 40 ms, latency 4 × RTT.
const DELAY_MS: u64 = 20;
const LATENCY_MS: u32 = 160;
const LOSS_PERCENT: f32 = 5.0;
const STREAMID: &str = "#!::r=live/x,m=publish";

/// Pushes through a lossy, delayed proxy to `listener`, then checks the recording.
fn push_through_faults(
    mut listener: SrtListener,
    streamid: Option<&str>,
    writes_as_it_receives: bool,
) -> (SrtListener, UdpProxy) {
    let proxy = UdpProxy::start(listener.addr());
    proxy.set(UdpFaults::PASS.with_loss(LOSS_PERCENT).with_delay_ms(DELAY_MS));
    let url = ffmpeg_caller_url(proxy.port(), listener.options(), streamid);
    let pusher = {
        let url = url.clone();
        std::thread::spawn(move || ffmpeg9_push(&url, SECONDS))
    };
    listener.wait_for_bytes(50_000, Duration::from_secs(10));
    if writes_as_it_receives {
        // srt-live-transmit writes each packet as it gets it: data must be there mid-push. (FFmpeg
        // probes its input first, up to seconds on a loaded machine, so it is not held to this.)
        assert!(!pusher.is_finished(), "50 kB arrived only after the 5 s push ended");
    }
    let push = pusher.join().expect("push thread");
    assert!(push.status.success(), "ffmpeg9 push to {url} failed ({}):\n{}", push.status, push.log);
    listener.wait_exit(Duration::from_secs(10));
    let (c2s, s2c) = (proxy.c2s(), proxy.s2c());
    eprintln!(
        "push {:.1} s; proxy c2s {} forwarded, {} dropped; s2c {} forwarded, {} dropped",
        push.elapsed.as_secs_f64(),
        c2s.datagrams,
        c2s.dropped,
        s2c.datagrams,
        s2c.dropped
    );
    // The proxy really did lose datagrams both ways, so NAK repair was exercised: ~5 % of the ~700
    // data packets; the ~200 control packets back (ACK, ACKACK, NAK) are too few for a rate check.
    let pct = c2s.dropped as f64 * 100.0 / c2s.received as f64;
    assert!((2.0..9.0).contains(&pct), "c2s: {pct:.1} % dropped by the proxy, want ~5 %: {c2s:?}");
    assert!(s2c.dropped > 0, "no server→client datagram lost: {s2c:?}");
    check_recording(listener.output(), VIDEO_FRAMES, AUDIO_FRAMES);
    (listener, proxy)
}

/// Decodes cleanly; every video frame present up to at most `TAIL_FRAMES` missing at the end, with
/// no gap before; audio likewise.
fn check_recording(path: &Path, video_frames: u64, audio_frames: u64) {
    let errors = decode_errors(path);
    assert!(errors.is_empty(), "{} does not decode cleanly:\n{errors}", path.display());
    let p = probe(path);
    let v = p.video.as_ref().expect("a video stream");
    let a = p.audio.as_ref().expect("an audio stream");
    eprintln!(
        "{}: {} {}x{} {} frames (of {video_frames}), {} {} frames (of {audio_frames})",
        path.display(),
        v.codec,
        v.width,
        v.height,
        v.frames,
        a.codec,
        a.frames
    );
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", 320, 240));
    assert_eq!(a.codec, "aac");
    assert!(
        v.frames <= video_frames && v.frames + TAIL_FRAMES >= video_frames,
        "{} video frames, want {video_frames} (at most {TAIL_FRAMES} missing at the end)",
        v.frames
    );
    assert!(
        a.frames <= audio_frames && a.frames + TAIL_AUDIO_FRAMES >= audio_frames,
        "{} audio frames, want {audio_frames} (at most {TAIL_AUDIO_FRAMES} missing at the end)",
        a.frames
    );
    let times = video_packet_times(path);
    assert_eq!(times.len() as u64, v.frames, "one packet per frame");
    assert!(times.first().is_some_and(|t| t.1), "the recording starts on a keyframe");
    let frame = 1.0 / 30.0;
    for w in times.windows(2) {
        let step = w[1].0 - w[0].0;
        assert!(
            (step - frame).abs() < frame * 0.25,
            "video gap or reorder between pts {:.3} and {:.3}: frames lost before the tail",
            w[0].0,
            w[1].0
        );
    }
}

#[test]
fn srt_live_transmit_receives_every_frame_through_5_percent_loss() {
    let _alone = common::one_at_a_time();
    let listener = SrtListener::srt_live_transmit(SrtOptions::latency_ms(LATENCY_MS));
    let (listener, _) = push_through_faults(listener, None, true);
    assert!(listener.log().contains("Accepted SRT source connection"), "log:\n{}", listener.log());
}

#[test]
fn ffmpeg9_listener_receives_every_frame_through_5_percent_loss_and_sees_the_streamid() {
    let _alone = common::one_at_a_time();
    let listener = SrtListener::ffmpeg9(SrtOptions::latency_ms(LATENCY_MS));
    let (listener, _) = push_through_faults(listener, Some(STREAMID), false);
    assert_eq!(listener.streamid_seen().as_deref(), Some(STREAMID), "streamid as FFmpeg 9 accepted it");
}

#[test]
fn wrong_passphrase_is_refused_with_its_reason_and_the_right_one_decodes() {
    let _alone = common::one_at_a_time();
    let opts = SrtOptions::latency_ms(120).with_passphrase("kitepush-test-secret", Some(16));
    let mut listener = SrtListener::srt_live_transmit(opts.clone());
    let wrong = SrtOptions { passphrase: Some("not-the-right-secret".to_string()), ..opts.clone() };

    let push = ffmpeg9_push(&ffmpeg_caller_url(listener.port(), &wrong, None), 2.0);
    assert!(!push.status.success(), "a caller with the wrong passphrase must fail:\n{}", push.log);
    assert!(push.elapsed < Duration::from_secs(5), "refused at the handshake, not after a timeout: {:?}", push.elapsed);
    assert!(push.log.contains("Incorrect passphrase"), "FFmpeg's log names the reason:\n{}", push.log);
    // libsrt's reject code 1010 (SRT_REJ_BADSECRET) and its text.
    listener.wait_for_log("1010 - Incorrect passphrase", Duration::from_secs(2));
    assert!(!listener.exited(), "the listener keeps listening after a rejection");
    assert_eq!(listener.output_len(), 0, "nothing written from a rejected caller");

    // The same listener then takes the right passphrase (AES-128), and the stream decodes.
    let push = ffmpeg9_push(&ffmpeg_caller_url(listener.port(), &opts, None), 2.0);
    assert!(push.status.success(), "push with the right passphrase failed:\n{}", push.log);
    listener.wait_exit(Duration::from_secs(10));
    check_recording(listener.output(), 60, 88);
}

#[test]
fn listeners_bind_loopback_only_and_stop_on_request() {
    for mut listener in
        [SrtListener::srt_live_transmit(SrtOptions::default()), SrtListener::ffmpeg9(SrtOptions::default())]
    {
        let port = listener.port();
        // Bound to 127.0.0.1 alone: another loopback address can still take the port (a wildcard
        // bind would refuse it), and 127.0.0.1 cannot.
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_err(), "listener holds 127.0.0.1:{port}");
        assert!(UdpSocket::bind(("127.0.0.2", port)).is_ok(), "listener bound more than 127.0.0.1:{port}");
        assert!(!listener.exited(), "listening until told to stop");
        let status = listener.stop();
        eprintln!("{} stopped: {status}", listener.log_path().display());
        assert!(listener.exited());
        assert!(UdpSocket::bind(("127.0.0.1", port)).is_ok(), "port {port} released after stop()");
        assert_eq!(listener.streamid_seen(), None, "no caller, no streamid");
    }
}
