//! Real SRT listeners for the integration tests, each writing the MPEG-TS it receives to a file:
//! Debian's `srt-live-transmit` (libsrt 1.5.1) and FFmpeg 9 (the static build in the PyPI wheel
//! `imageio-ffmpeg`, which scripts/test installs into `target/kp-venv`; Debian's FFmpeg 5.1 stays for
//! ffprobe), plus FFmpeg 9 as a reference SRT caller.
//!
//! Units differ between the two and are easy to get wrong: libsrt's URI syntax (srt-live-transmit, and
//! the URLs kitepush takes) gives `latency` in milliseconds, FFmpeg's in microseconds. [`SrtOptions`]
//! holds milliseconds; the URL builders convert.
//!
//! Each listener binds 127.0.0.1 only (a URL host of 127.0.0.1 in listener mode binds that address)
//! on a port that was free a moment ago; a port taken in between is detected and another one tried.
//! Both stop by themselves when their caller disconnects (srt-live-transmit runs with `-a:no`; FFmpeg
//! reaches the end of its input), so `wait_exit` is how a test knows the file is complete. A rejected
//! caller (wrong passphrase) does not end them: they keep listening.

use super::tmp_dir;
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Settings both listeners understand. `Default`: 120 ms latency (libsrt's), no encryption.
#[derive(Clone, Debug)]
pub struct SrtOptions {
    /// TSBPD latency in milliseconds. The peers negotiate the larger of both sides' values.
    pub latency_ms: u32,
    /// Encryption: a passphrase of 10–79 characters. The listener then refuses callers without it
    /// (reject reason 1011) or with another one (1010, "Incorrect passphrase").
    pub passphrase: Option<String>,
    /// AES key length in bytes: 16, 24 or 32; `None` leaves libsrt's default (16; a caller's value wins).
    pub pbkeylen: Option<u32>,
    /// srt-live-transmit only: `-a:yes` instead of `-a:no`, so it accepts the next caller after one
    /// disconnects (or goes silent past libsrt's 5 s peer idle timeout) and appends to the same file;
    /// it then never ends by itself ([`SrtListener::stop`] ends it). FFmpeg ignores it.
    pub accept_again: bool,
    /// srt-live-transmit only: how long a silent caller keeps its session (libsrt's `peeridletimeo`,
    /// 5 s by default). Shorter lets the next caller in sooner after a peer vanished.
    pub peer_idle_timeout_ms: Option<u32>,
}

impl Default for SrtOptions {
    fn default() -> SrtOptions {
        SrtOptions {
            latency_ms: 120,
            passphrase: None,
            pbkeylen: None,
            accept_again: false,
            peer_idle_timeout_ms: None,
        }
    }
}

impl SrtOptions {
    pub fn latency_ms(latency_ms: u32) -> SrtOptions {
        SrtOptions { latency_ms, ..SrtOptions::default() }
    }

    pub fn with_passphrase(self, passphrase: &str, pbkeylen: Option<u32>) -> SrtOptions {
        SrtOptions { passphrase: Some(passphrase.to_string()), pbkeylen, ..self }
    }

    pub fn accepting_again(self) -> SrtOptions {
        SrtOptions { accept_again: true, ..self }
    }

    /// `latency=..&passphrase=..&pbkeylen=..`, the latency in `latency_per_ms` units per millisecond
    /// (1 for libsrt's syntax, 1000 for FFmpeg's).
    fn query(&self, latency_per_ms: u64) -> String {
        let mut q = format!("latency={}", u64::from(self.latency_ms) * latency_per_ms);
        if let Some(p) = &self.passphrase {
            q += &format!("&passphrase={}", percent_encode(p));
        }
        if let Some(k) = self.pbkeylen {
            q += &format!("&pbkeylen={k}");
        }
        q
    }
}

/// Percent-encodes what would break a URL query (and `#`, which FFmpeg would take for a fragment):
/// `#!::r=live/x,m=publish` becomes `%23!::r=live/x,m=publish`, the way users paste it.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'#' | b'%' | b'&' | b'?' | b' ' | b'+' | b'"' | 0..=0x1f | 0x7f..=0xff => {
                out += &format!("%{b:02X}");
            }
            _ => out.push(b as char),
        }
    }
    out
}

/// A caller URL in libsrt's URI syntax (latency in ms), as kitepush and srt-live-transmit take it:
/// `srt://127.0.0.1:PORT?mode=caller&latency=MS[&passphrase=..][&pbkeylen=..][&streamid=..]`.
pub fn caller_url(port: u16, opts: &SrtOptions, streamid: Option<&str>) -> String {
    let mut url = format!("srt://127.0.0.1:{port}?mode=caller&{}", opts.query(1));
    if let Some(id) = streamid {
        url += &format!("&streamid={}", percent_encode(id));
    }
    url
}

/// The same caller URL in FFmpeg's syntax (latency in µs).
pub fn ffmpeg_caller_url(port: u16, opts: &SrtOptions, streamid: Option<&str>) -> String {
    let mut url = format!("srt://127.0.0.1:{port}?mode=caller&{}", opts.query(1000));
    if let Some(id) = streamid {
        url += &format!("&streamid={}", percent_encode(id));
    }
    url
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    SrtLiveTransmit,
    Ffmpeg9,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::SrtLiveTransmit => "srt-live-transmit",
            Kind::Ffmpeg9 => "ffmpeg9",
        }
    }
}

/// One SRT listener process on a loopback port; killed on drop.
pub struct SrtListener {
    kind: Kind,
    opts: SrtOptions,
    port: u16,
    /// Holds the output and the log; removed on drop unless `KP_KEEP_TMP` is set.
    dir: PathBuf,
    output: PathBuf,
    log: PathBuf,
    child: Child,
    exit: Option<ExitStatus>,
}

const START_DEADLINE: Duration = Duration::from_secs(10);
const STOP_DEADLINE: Duration = Duration::from_secs(5);
const PORT_ATTEMPTS: usize = 5;

impl SrtListener {
    /// `srt-live-transmit -a:no "srt://127.0.0.1:PORT?mode=listener&latency=MS" file://con > out.ts`.
    /// Its log (libsrt's warnings, e.g. the reason a caller was rejected) is in [`log`](Self::log).
    pub fn srt_live_transmit(opts: SrtOptions) -> SrtListener {
        super::require_tool("srt-live-transmit");
        SrtListener::start(Kind::SrtLiveTransmit, opts)
    }

    /// FFmpeg 9 listening: `ffmpeg -v debug -i "srt://127.0.0.1:PORT?mode=listener&latency=US" -c copy
    /// -f mpegts out.ts`. At debug level it logs the caller's streamid ([`streamid_seen`](Self::streamid_seen)).
    pub fn ffmpeg9(opts: SrtOptions) -> SrtListener {
        ffmpeg9();
        SrtListener::start(Kind::Ffmpeg9, opts)
    }

    fn start(kind: Kind, opts: SrtOptions) -> SrtListener {
        let dir = tmp_dir(&format!("srt-{}", kind.name()));
        let mut last_log = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let port = free_udp_port();
            let output = dir.join(format!("out-{attempt}.ts"));
            let log = dir.join(format!("{}-{attempt}.log", kind.name()));
            let stderr = File::create(&log).expect("create listener log");
            let mut cmd = match kind {
                Kind::SrtLiveTransmit => {
                    let mut c = Command::new("srt-live-transmit");
                    let idle = opts.peer_idle_timeout_ms.map_or(String::new(), |ms| format!("&peeridletimeo={ms}"));
                    c.arg(if opts.accept_again { "-a:yes" } else { "-a:no" })
                        .arg(format!("srt://127.0.0.1:{port}?mode=listener&{}{idle}", opts.query(1)))
                        .arg("file://con")
                        .stdout(File::create(&output).expect("create listener output"));
                    c
                }
                Kind::Ffmpeg9 => {
                    let mut c = Command::new(ffmpeg9());
                    c.args(["-nostdin", "-hide_banner", "-v", "debug", "-i"])
                        .arg(format!("srt://127.0.0.1:{port}?mode=listener&{}", opts.query(1000)))
                        .args(["-c", "copy", "-f", "mpegts", "-y"])
                        .arg(&output)
                        .stdout(Stdio::null());
                    c
                }
            };
            let child = cmd.stdin(Stdio::null()).stderr(stderr).spawn().unwrap_or_else(|e| {
                panic!("spawn {}: {e}", kind.name());
            });
            let mut l =
                SrtListener { kind, opts: opts.clone(), port, dir: dir.clone(), output, log, child, exit: None };
            // Bound means listening: libsrt binds the UDP socket when the listener starts. A plain bind
            // of the same address fails from then on (neither side shares ports).
            let start = Instant::now();
            while start.elapsed() < START_DEADLINE {
                if l.exited() {
                    break;
                }
                if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                    return l;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            last_log = l.log();
            if !l.exited() {
                panic!("{} did not bind 127.0.0.1:{port} within {START_DEADLINE:?}; log:\n{last_log}", kind.name());
            }
            // Exited at once: most likely someone took the port in between; try another one.
        }
        panic!("{} exited at start {PORT_ATTEMPTS} times; last log:\n{last_log}", kind.name());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn options(&self) -> &SrtOptions {
        &self.opts
    }

    /// A caller URL for this listener in libsrt's syntax (latency in ms), with its latency and
    /// encryption settings.
    pub fn url(&self) -> String {
        caller_url(self.port, &self.opts, None)
    }

    /// Where the received TS goes.
    pub fn output(&self) -> &Path {
        &self.output
    }

    pub fn output_len(&self) -> u64 {
        std::fs::metadata(&self.output).map(|m| m.len()).unwrap_or(0)
    }

    /// Everything the listener wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until the output file holds at least `n` bytes; panics (with the listener's log) at the
    /// deadline.
    pub fn wait_for_bytes(&self, n: u64, deadline: Duration) {
        let what = format!("{} to write {n} bytes to {}", self.kind.name(), self.output.display());
        self.wait_or_panic(deadline, &what, || self.output_len() >= n);
    }

    /// Waits until the log contains `needle`; panics (with the log) at the deadline.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) {
        let what = format!("{} to log {needle:?}", self.kind.name());
        self.wait_or_panic(deadline, &what, || self.log().contains(needle));
    }

    fn wait_or_panic(&self, deadline: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            if start.elapsed() >= deadline {
                panic!("timed out after {deadline:?} waiting for {what}; log:\n{}", tail(&self.log(), 4000));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The streamid of the caller FFmpeg 9 accepted, from its `accept streamid [...]` debug line.
    /// srt-live-transmit never prints it: always `None` there.
    pub fn streamid_seen(&self) -> Option<String> {
        let log = self.log();
        let rest = &log[log.find("accept streamid [")? + "accept streamid [".len()..];
        // FFmpeg prints `accept streamid [ID], length N`; the ID may itself contain `]`.
        let end = rest.find("], length ").or_else(|| rest.find(']'))?;
        Some(rest[..end].to_string())
    }

    /// Whether the process has ended (by itself, after its caller disconnected, or stopped).
    pub fn exited(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit.is_some()
    }

    /// Waits for the listener to end by itself (its caller disconnected and the file is complete);
    /// panics with its log at the deadline.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        while !self.exited() {
            if start.elapsed() > deadline {
                panic!(
                    "{} still running {deadline:?} after the caller was done; log:\n{}",
                    self.kind.name(),
                    tail(&self.log(), 4000)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.exit.expect("exit status")
    }

    /// Terminates the listener (SIGINT: FFmpeg then finishes its file; srt-live-transmit ends too) and
    /// waits for it; SIGKILL if it is still there after a few seconds. Returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if !self.exited() {
            // SAFETY: signalling our own child, whose pid is not reaped yet (try_wait saw it running).
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
            let start = Instant::now();
            while !self.exited() && start.elapsed() < STOP_DEADLINE {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !self.exited() {
                eprintln!("{} ignored SIGINT for {STOP_DEADLINE:?}; killing it", self.kind.name());
                let _ = self.child.kill();
                self.exit = self.child.wait().ok();
            }
        }
        self.exit.expect("exit status")
    }
}

impl Drop for SrtListener {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::env::var_os("KP_KEEP_TMP").is_some() {
            eprintln!("KP_KEEP_TMP: keeping {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("bind udp 127.0.0.1:0").port()
}

/// The FFmpeg 9 binary: `$KP_FFMPEG9` if set, else the one in the venv scripts/test makes at
/// `target/kp-venv` (asked from `imageio_ffmpeg.get_ffmpeg_exe()`). Panics when there is none: a test
/// that needs a real peer fails rather than skips.
pub fn ffmpeg9() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND.get_or_init(find_ffmpeg9).clone().unwrap_or_else(|e| panic!("{e}"))
}

fn find_ffmpeg9() -> Result<PathBuf, String> {
    let hint = "run scripts/test (step \"Python test peers\": a venv at target/kp-venv with \
                imageio-ffmpeg==0.8.1), or set KP_FFMPEG9 to an FFmpeg ≥ 6 with libsrt";
    if let Some(p) = std::env::var_os("KP_FFMPEG9") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("KP_FFMPEG9={} is not a file; {hint}", p.display())) };
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kp-venv/bin/python");
    if !python.exists() {
        return Err(format!("FFmpeg 9 not found: no {}; {hint}", python.display()));
    }
    let out = Command::new(&python)
        .args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {}: {e}; {hint}", python.display()))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !path.is_file() {
        return Err(format!(
            "FFmpeg 9 not found through {}: {}; {hint}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(path)
}

/// What an FFmpeg 9 push did.
pub struct PushOutcome {
    pub status: ExitStatus,
    /// FFmpeg's stderr (`-v error` plus libsrt's own warnings, e.g. a rejection reason).
    pub log: String,
    pub elapsed: Duration,
}

/// FFmpeg 9 as an SRT caller: `seconds` of a 320x240@30 test pattern with a 440 Hz tone (libx264
/// ultrafast/zerolatency, keyframe every second; AAC 64 kbit/s), muxed to MPEG-TS and sent to `url`
/// (FFmpeg's syntax, see [`ffmpeg_caller_url`]) in real time. Blocks; killed (and reported as a
/// failure) if it runs far past `seconds`.
///
/// Expect the tail to be short by a few frames: when the caller closes, the listener discards what it
/// still holds for its TSBPD latency (seen with FFmpeg's `linger` too), so the last ~latency of media
/// can be missing from the file.
pub fn ffmpeg9_push(url: &str, seconds: f64) -> PushOutcome {
    let (status, log, elapsed) = super::media::ffmpeg_pattern_push(&ffmpeg9(), "mpegts", url, seconds);
    PushOutcome { status, log, elapsed }
}
