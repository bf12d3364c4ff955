//! Shared support for the integration tests: a real nginx-rtmp server, ffmpeg/ffprobe checks of the
//! recordings, TCP and UDP fault proxies, real SRT listeners (`srt`), a WHIP endpoint in a loopback-only
//! network namespace (`whip`), and small polling helpers. Each
//! test file does `mod common;`; not every file uses every item, hence the `dead_code` allowances.
#![allow(dead_code)]

pub mod alloc_count;
pub mod cpu_limit;
mod media;
mod nginx;
pub mod packets;
pub mod proxy;
pub mod pushing;
pub mod srt;
pub mod tls;
pub mod udp_proxy;
pub mod whip;

#[allow(unused_imports)]
pub use media::{decode_errors, ffmpeg_push, probe, video_packet_times, Probe, StreamInfo};
#[allow(unused_imports)]
pub use nginx::{Nginx, NginxOptions, TlsListener};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Serialises the tests of one test binary that take it: a test whose repair budget is a few
/// hundred milliseconds (loss through the UDP proxy) must not share CI's 2 cores with tests that
/// encode as fast as they can. Hold the guard for the whole test.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A loopback port that was free a moment ago. Another process may grab it before we bind it again;
/// `Nginx::start` retries with a fresh port when that happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// Tests must fail, not silently skip, when the real components are missing: a skipped test would make a
/// machine without nginx or ffmpeg look green.
pub fn require_tool(name: &str) -> PathBuf {
    find_in_path(name).unwrap_or_else(|| {
        panic!(
            "required tool `{name}` not found in PATH; run scripts/test, which installs it \
             (Debian packages: nginx libnginx-mod-rtmp ffmpeg gstreamer1.0-tools ...)"
        )
    })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    // Debian keeps nginx in /usr/sbin, which a non-root PATH often lacks.
    let extra = [PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
    std::env::split_paths(&path).chain(extra).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// A fresh directory, unique across tests running in parallel threads and across concurrent `cargo test`
/// processes (several worktrees share one machine). The caller owns it; `KP_KEEP_TMP` is the caller's
/// business too.
pub fn tmp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "kitepush-{}-{}-{}-{:08x}",
        sanitize(name),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A stream key nobody else on the server uses: a rejected duplicate publisher can truncate the live
/// publisher's recording, so tests never share keys.
pub fn unique_key(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}-{}", sanitize(prefix), std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Polls `f` every 20 ms until it returns true; panics with `what` once `deadline` has elapsed.
pub fn wait_until(deadline: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether something accepts TCP connections on the loopback port.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}
