//! The SRT sender core against real libsrt peers on loopback: `srt-live-transmit` (Debian
//! srt-tools, libsrt 1.5.1) and FFmpeg 9 (PyPI imageio-ffmpeg) as listeners. A std UdpSocket
//! loop drives `SrtSender`; the listener writes what it received to a file, which must be the
//! pushed MPEG-TS byte for byte. The shared UDP fault proxy (tests/common/udp_proxy.rs) adds
//! random loss, delay and black holes.

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::udp_proxy::{UdpFaults, UdpProxy};
use kitepush::core::srt::{SrtConfig, SrtEvent, SrtSender, SrtStats, MAX_DATAGRAM};

const CHUNK: usize = 1316;

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// ~10 s of H.264 + AAC in MPEG-TS from testsrc2, made once per run by Debian's FFmpeg.
fn ts_source() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| {
        let path = tmp("srt-core-source.ts");
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi"])
            .args(["-i", "sine=frequency=440:sample_rate=48000", "-t", "10", "-c:v", "libx264"])
            .args(["-preset", "veryfast", "-b:v", "1200k", "-g", "50", "-c:a", "aac", "-b:a", "96k"])
            .args(["-f", "mpegts"])
            .arg(&path)
            .status()
            .expect("ffmpeg (Debian package ffmpeg) must be installed");
        assert!(status.success(), "ffmpeg failed to make the test TS");
        let data = std::fs::read(&path).unwrap();
        assert!(data.len() > 1_000_000, "test TS is only {} bytes", data.len());
        data
    })
}

fn ffmpeg9() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kp-venv/bin/python3");
    let out = Command::new(&venv)
        .args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/test, which installs imageio-ffmpeg there", venv.display()));
    assert!(out.status.success(), "imageio_ffmpeg missing in target/kp-venv");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A listener process writing what it receives to `out`.
struct Listener {
    child: Child,
    out: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
}

impl Listener {
    fn srt_live_transmit(name: &str, params: &str) -> Listener {
        let port = free_udp_port();
        let out = tmp(&format!("srt-core-{name}.ts"));
        let log = tmp(&format!("srt-core-{name}.log"));
        let uri = format!("srt://127.0.0.1:{port}?mode=listener{params}");
        let child = Command::new("srt-live-transmit")
            .args(["-a:no", "-ll:note", &uri, "file://con"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("srt-live-transmit (Debian srt-tools) must be installed");
        Listener { child, out, log, addr: format!("127.0.0.1:{port}").parse().unwrap() }
    }

    fn ffmpeg(name: &str, params: &str) -> Listener {
        let port = free_udp_port();
        let out = tmp(&format!("srt-core-{name}.ts"));
        let log = tmp(&format!("srt-core-{name}.log"));
        let uri = format!("srt://127.0.0.1:{port}?mode=listener{params}");
        let child = Command::new(ffmpeg9())
            .args(["-hide_banner", "-v", "debug", "-y", "-i", &uri, "-c", "copy", "-f", "mpegts"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Listener { child, out, log, addr: format!("127.0.0.1:{port}").parse().unwrap() }
    }

    /// Waits for the listener to exit (it does once the caller shut down) and returns its
    /// output; kills it at the deadline.
    fn finish(mut self, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read(&self.out).unwrap_or_default()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The driver: a connected UDP socket and the sender.
struct Link {
    sock: UdpSocket,
    sender: SrtSender,
    buf: Vec<u8>,
    rbuf: Vec<u8>,
    events: Vec<SrtEvent>,
    handshakes_sent: u32,
}

impl Link {
    fn new(cfg: SrtConfig, peer: SocketAddr, seed: u64) -> Link {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(peer).unwrap();
        sock.set_nonblocking(true).unwrap();
        let now = Instant::now();
        let socket_id = 0x1000_0000 | (std::process::id() & 0xFFFF) << 8 | (seed as u32 & 0xFF);
        let sender = SrtSender::new(cfg, socket_id, 0x7FFF_FF00 + seed as u32, seed, now).unwrap();
        Link { sock, sender, buf: vec![0; MAX_DATAGRAM], rbuf: vec![0; 2048], events: Vec::new(), handshakes_sent: 0 }
    }

    /// Runs the loop until `until`: transmits whatever is due, feeds datagrams and timeouts.
    fn pump(&mut self, until: Instant) {
        loop {
            let now = Instant::now();
            while let Some(n) = self.sender.poll_transmit(now, &mut self.buf) {
                if self.buf[0] == 0x80 && self.buf[1] == 0 {
                    self.handshakes_sent += 1;
                }
                if std::env::var("SRT_TRACE").is_ok() {
                    trace("out", &self.buf[..n]);
                }
                let _ = self.sock.send(&self.buf[..n]);
            }
            while let Some(ev) = self.sender.poll_event() {
                self.events.push(ev);
            }
            if now >= until {
                return;
            }
            let wake = self.sender.poll_timeout().map_or(until, |t| t.min(until));
            wait_readable(&self.sock, wake.saturating_duration_since(now));
            match self.sock.recv(&mut self.rbuf) {
                Ok(n) => {
                    if std::env::var("SRT_TRACE").is_ok() {
                        trace("in", &self.rbuf[..n]);
                    }
                    self.sender.handle_datagram(Instant::now(), &self.rbuf[..n])
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.sender.handle_timeout(Instant::now())
                }
                // ICMP port unreachable while the listener starts: the handshake is resent.
                Err(_) => self.sender.handle_timeout(Instant::now()),
            }
        }
    }

    /// Pumps until connected or rejected (or the deadline): the event that ended it.
    fn connect(&mut self, within: Duration) -> Option<SrtEvent> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.pump((Instant::now() + Duration::from_millis(10)).min(deadline));
            if let Some(ev) = self.events.iter().find(|e| matches!(e, SrtEvent::Connected | SrtEvent::Rejected { .. }))
            {
                return Some(*ev);
            }
        }
        None
    }

    /// Sends `data` in 1316-byte messages, spread over `duration` (real-time pacing of the input).
    fn push(&mut self, data: &[u8], duration: Duration, mut each: impl FnMut(&mut Link, usize)) {
        let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
        let start = Instant::now();
        let step = duration / chunks.len() as u32;
        for (i, c) in chunks.iter().enumerate() {
            self.pump(start + step * i as u32);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match self.sender.send(Instant::now(), c) {
                    Ok(()) => break,
                    Err(e) => {
                        assert!(Instant::now() < deadline, "send never accepted chunk {i}: {e}");
                        self.pump(Instant::now() + Duration::from_millis(1));
                    }
                }
            }
            each(self, i);
        }
    }

    /// Waits until everything is acknowledged and the receiver had its latency to play it,
    /// then closes and sends the shutdown.
    fn flush_and_close(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.sender.is_flushed(Instant::now()) {
            assert!(
                Instant::now() < deadline,
                "not flushed in {within:?}: {} unacked, stats {:?}",
                self.sender.unacked(),
                self.sender.stats()
            );
            self.pump(Instant::now() + Duration::from_millis(5));
        }
        self.sender.close(Instant::now());
        self.pump(Instant::now());
    }

    fn stats(&self) -> SrtStats {
        self.sender.stats()
    }
}

fn trace(dir: &str, d: &[u8]) {
    static T0: OnceLock<Instant> = OnceLock::new();
    let t = T0.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0;
    let w = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    if d[0] & 0x80 == 0 {
        eprintln!("{t:9.2} {dir} DATA seq {} R {}", w(0) & 0x7FFF_FFFF, (w(4) >> 26) & 1);
    } else {
        let ty = (w(0) >> 16) & 0x7FFF;
        let cif: Vec<u32> = (16..d.len().min(16 + 16)).step_by(4).filter(|i| i + 4 <= d.len()).map(w).collect();
        eprintln!("{t:9.2} {dir} CTRL {ty} info {} cif {:x?}", w(4), cif);
    }
}

/// Waits until the socket has a datagram or `d` passed. ppoll, not a receive timeout: Linux
/// rounds SO_RCVTIMEO up to scheduler ticks (≈ 8 ms here), far coarser than packet pacing.
fn wait_readable(sock: &UdpSocket, d: Duration) {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ts = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn assert_identical(got: &[u8], want: &[u8], what: &str, log: &str) {
    if let Some(at) = first_difference(got, want) {
        panic!(
            "{what}: received {} bytes, sent {}; first difference at byte {at} (chunk {})\nlistener log:\n{log}",
            got.len(),
            want.len(),
            at / CHUNK
        );
    }
}

/// Pushes the whole source through a listener started with `params` and returns what it wrote.
fn push_through(name: &str, params: &str, cfg: SrtConfig, speed: u32) -> (Vec<u8>, SrtStats, String) {
    let data = ts_source();
    let listener = Listener::srt_live_transmit(name, params);
    let mut link = Link::new(cfg, listener.addr, 1);
    let ev = link.connect(Duration::from_secs(5));
    assert_eq!(ev, Some(SrtEvent::Connected), "listener log:\n{}", listener.log_text());
    link.push(data, Duration::from_secs(10) / speed, |_, _| {});
    link.flush_and_close(Duration::from_secs(5));
    let stats = link.stats();
    let log = listener.log_text();
    let got = listener.finish(Duration::from_secs(5));
    (got, stats, log)
}

#[test]
fn plain_push_is_byte_identical() {
    let (got, stats, log) = push_through("plain", "&latency=120", SrtConfig::default(), 2);
    assert_identical(&got, ts_source(), "plain push", &log);
    let chunks = ts_source().len().div_ceil(CHUNK) as u64;
    assert_eq!(stats.packets_sent, chunks);
    assert_eq!(stats.packets_dropped, 0);
    assert!(stats.rtt_ms < 50.0, "{stats:?}");
    eprintln!("plain: {} bytes in {} packets, {stats:?}", got.len(), chunks);
}

#[test]
fn encrypted_push_aes128_is_byte_identical() {
    let cfg = SrtConfig { passphrase: Some("kitepush-secret-1".into()), ..SrtConfig::default() };
    let (got, stats, log) = push_through("aes128", "&latency=120&passphrase=kitepush-secret-1", cfg, 2);
    assert_identical(&got, ts_source(), "AES-128 push", &log);
    eprintln!("aes128: {stats:?}");
}

#[test]
fn encrypted_push_aes256_is_byte_identical() {
    let cfg = SrtConfig { passphrase: Some("kitepush-secret-256".into()), pbkeylen: 32, ..SrtConfig::default() };
    let (got, _, log) = push_through("aes256", "&latency=120&passphrase=kitepush-secret-256&pbkeylen=32", cfg, 2);
    assert_identical(&got, ts_source(), "AES-256 push", &log);
}

#[test]
fn wrong_passphrase_is_rejected_in_one_attempt() {
    let listener = Listener::srt_live_transmit("badpass", "&latency=120&passphrase=the-right-one-42");
    let cfg = SrtConfig { passphrase: Some("the-wrong-one-42".into()), ..SrtConfig::default() };
    let mut link = Link::new(cfg, listener.addr, 2);
    let t0 = Instant::now();
    let ev = link.connect(Duration::from_secs(5));
    assert_eq!(ev, Some(SrtEvent::Rejected { code: 1010, reason: "incorrect passphrase" }));
    // Induction + one conclusion (plus resends only while the listener process was starting).
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    assert_eq!(link.sender.poll_timeout(), None, "a rejected sender must not retry");
    assert!(link.handshakes_sent <= 4, "{} handshakes sent", link.handshakes_sent);

    // No passphrase at all against an encrypted listener: 1011.
    let mut link = Link::new(SrtConfig::default(), listener.addr, 3);
    assert!(matches!(link.connect(Duration::from_secs(5)), Some(SrtEvent::Rejected { code: 1011, .. })));
}

#[test]
fn stream_id_reaches_ffmpeg9_intact() {
    // 34 bytes: not a multiple of 4, so the word swap of the padded tail is checked too.
    let sid = "#!::r=live/kitepush-test,m=publish";
    let data = &ts_source()[..CHUNK * 400];
    let listener = Listener::ffmpeg("streamid", "&latency=120000");
    let cfg = SrtConfig { stream_id: Some(sid.into()), ..SrtConfig::default() };
    let mut link = Link::new(cfg, listener.addr, 4);
    assert_eq!(link.connect(Duration::from_secs(10)), Some(SrtEvent::Connected), "{}", listener.log_text());
    link.push(data, Duration::from_secs(2), |_, _| {});
    link.flush_and_close(Duration::from_secs(5));
    let log = listener.log_text();
    let got = listener.finish(Duration::from_secs(10));
    assert!(log.contains(&format!("accept streamid [{sid}]")), "streamid not seen by FFmpeg:\n{log}");
    assert!(!got.is_empty(), "FFmpeg wrote nothing:\n{log}");
}

// ---- loss ----

fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args(["-f", "null", "-"]).output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn five_percent_loss_is_repaired() {
    // 20 ms each way: RTT 40 ms, latency 4 × RTT = 160 ms.
    let data = ts_source();
    let listener = Listener::srt_live_transmit("loss5", "&latency=160");
    // KP_SRT_LOSS_SEED replays the run with other loss draws (the default seed is fixed).
    let proxy = match std::env::var("KP_SRT_LOSS_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => UdpProxy::start_seeded(listener.addr, seed),
        None => UdpProxy::start(listener.addr),
    };
    proxy.set(UdpFaults::PASS.with_loss(5.0).with_delay_ms(20));
    let cfg = SrtConfig { latency: Duration::from_millis(160), ..SrtConfig::default() };
    let mut link = Link::new(cfg, proxy.addr(), 5);
    assert_eq!(link.connect(Duration::from_secs(5)), Some(SrtEvent::Connected));
    link.push(data, Duration::from_secs(10), |l, i| {
        if std::env::var("SRT_DEBUG").is_ok() && i % 50 == 0 {
            eprintln!("{i}: {:?}", l.stats());
        }
    });
    link.flush_and_close(Duration::from_secs(5));
    let stats = link.stats();
    let log = listener.log_text();
    let out = listener.out.clone();
    let got = listener.finish(Duration::from_secs(5));
    let (c2s, s2c) = (proxy.c2s(), proxy.s2c());
    eprintln!(
        "5% loss: proxy dropped {} of {} to the listener, {} of {} back; {stats:?}",
        c2s.dropped, c2s.received, s2c.dropped, s2c.received
    );
    assert!(c2s.dropped > 20, "the proxy must have lost data packets: {c2s:?}");
    assert_identical(&got, ts_source(), "push at 5% loss", &log);
    assert!(stats.packets_retransmitted > 0 && stats.packets_lost > 0, "{stats:?}");
    assert!(stats.rtt_ms > 30.0 && stats.rtt_ms < 80.0, "{stats:?}");
    let errors = decode_errors(&out);
    assert!(errors.is_empty(), "decode errors: {errors}");
}

#[test]
fn twenty_percent_loss_and_outage_degrade_then_recover() {
    let data = ts_source();
    let listener = Listener::srt_live_transmit("loss20", "&latency=160");
    let proxy = UdpProxy::start(listener.addr);
    let lossy = UdpFaults::PASS.with_loss(20.0).with_delay_ms(20);
    // Connected before the loss starts: srt-live-transmit closes its listening socket once it
    // accepted, so a lost conclusion response is never answered again (a listener that stays
    // open, like FFmpeg or SRS, answers the repeated conclusion; libsrt's own callers would be
    // stuck the same way).
    proxy.set(UdpFaults::PASS.with_delay_ms(20));
    let cfg = SrtConfig { latency: Duration::from_millis(160), ..SrtConfig::default() };
    let mut link = Link::new(cfg, proxy.addr(), 6);
    let ev = link.connect(Duration::from_secs(5));
    assert_eq!(
        ev,
        Some(SrtEvent::Connected),
        "{} handshakes, {:?} {:?}\n{}",
        link.handshakes_sent,
        proxy.c2s(),
        proxy.s2c(),
        listener.log_text()
    );
    proxy.set(lossy);
    let chunks = data.len().div_ceil(CHUNK);
    // 10 s of media: 0-3 s at 20 % loss, 3-4.5 s black hole, 4.5-7 s at 20 %, then clean.
    let at = |s: f64| (chunks as f64 * s / 10.0) as usize;
    let (hole_on, hole_off, clean) = (at(3.0), at(4.5), at(7.0));
    let mut acks_after_hole = None;
    let mut stats_at_clean = None;
    link.push(data, Duration::from_secs(10), |l, i| {
        if i == hole_on {
            proxy.set(UdpFaults::BLACK_HOLE);
        } else if i == hole_off {
            proxy.set(lossy);
            acks_after_hole = Some(Instant::now());
        } else if i == clean {
            proxy.set(UdpFaults::PASS.with_delay_ms(20));
        }
        if i == clean {
            stats_at_clean = Some(l.stats());
        }
    });
    link.flush_and_close(Duration::from_secs(5));
    let stats = link.stats();
    let log = listener.log_text();
    let got = listener.finish(Duration::from_secs(5));
    eprintln!("20% loss + 1.5 s outage: proxy dropped {:?} / {:?}; {stats:?}", proxy.c2s(), proxy.s2c());
    // Degraded, not wedged: by the time loss ends the buffer is back under the drop threshold.
    let at_clean = stats_at_clean.unwrap();
    assert!(at_clean.send_buffer_ms < 1100, "send buffer at the end of the loss: {at_clean:?}");
    assert!(stats.packets_dropped > 0, "the outage must cause too-late drops: {stats:?}");
    assert!(stats.packets_retransmitted > 0, "{stats:?}");
    assert!(stats.last_ack.unwrap() > acks_after_hole.unwrap(), "ACKs resumed after the outage");
    // Recovered: the clean last 3 s arrived complete and in order at the end of the file.
    let tail = &data[at(7.5) * CHUNK..];
    assert!(
        got.len() >= tail.len() && got.ends_with(tail),
        "tail after recovery incomplete: got {} bytes\n{log}",
        got.len()
    );
}
