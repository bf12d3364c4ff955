//! WHIP (RFC 9725) test peers: the aiortc endpoint in `tests/peers/whip_endpoint.py` (aiohttp +
//! aiortc from the venv scripts/test makes at `target/kp-venv`), headless Chromium as a second,
//! independent receiver (`tests/peers/whip_chromium.py`: Debian's chromium driven by playwright
//! from the same venv), and a way to run a test inside a network namespace that has only loopback,
//! where every WebRTC stack gathers 127.0.0.1 alone and ICE cannot wander onto the machine's other
//! interfaces.
//!
//! The endpoint's `GET /stats` is the test's view of what arrived: sessions, ICE and connection
//! states, frames decoded, decode errors, the frame codes of kitepush's test pattern (frame number
//! and wall-clock ms, see `kitepush::pattern::frame_code`) and the latency they give.
//!
//! A test pushing to it (tests/whip_peer.rs has FFmpeg as the publisher):
//!
//! ```ignore
//! #[test]
//! fn pushes_over_whip() {
//!     if !in_loopback_netns("pushes_over_whip") {
//!         return; // ran (and passed) in a child process inside the namespace
//!     }
//!     let ep = WhipEndpoint::start(WhipOptions::default());
//!     // ... publish to ep.url("x") (whip+http://127.0.0.1:PORT/whip/x) ...
//!     let stats = ep.wait_frames(140, Duration::from_secs(15));
//!     let s = stats.session();
//!     assert_eq!(stats.decode_errors, 0, "{}", ep.log());
//!     assert_eq!(s.codes.not_increasing, 0);
//! }
//! ```

use super::{free_port, tmp_dir};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the WHIP tests that hold a session for its consent checks push: `default` in the CI
/// run, `KP_WHIP_SECONDS` in the long local mode (the issue's 120 s:
/// `KP_WHIP_SECONDS=120 cargo test --release --test whip --test whip_chromium consent`).
pub fn consent_run_seconds(default: f64) -> f64 {
    std::env::var("KP_WHIP_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Runs the calling test inside a fresh network namespace with only loopback up. Outside one (env
/// `KP_NETNS` not "1"), re-runs this test binary as
/// `unshare -n -- sh -c 'ip link set lo up && exec "$0" "$@"' EXE --exact TEST --nocapture
/// --test-threads=1` with `KP_NETNS=1`, streams its output, asserts that it ran exactly that test
/// and passed, and returns false: the caller returns at once. Inside, returns true: the caller runs
/// the test body.
///
/// `test_name` is the name libtest knows the test by: the function name for a test at the top of
/// the file, `module::name` inside a module. Needs root (CI runs as root) or unprivileged user
/// namespaces; a failing `unshare` panics, it never skips.
pub fn in_loopback_netns(test_name: &str) -> bool {
    if std::env::var("KP_NETNS").as_deref() == Ok("1") {
        return true;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env("KP_NETNS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn `unshare -n` (util-linux) for {test_name}: {e}"));
    // Both streams are echoed live (through io handles, which libtest's capture does not take) and
    // kept to check what ran.
    let echo = |r: Box<dyn Read + Send>, err: bool| {
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let line = format!("[netns] {line}\n");
                let _ = if err {
                    std::io::stderr().write_all(line.as_bytes())
                } else {
                    std::io::stdout().write_all(line.as_bytes())
                };
                all += &line;
            }
            all
        })
    };
    let out = echo(Box::new(child.stdout.take().unwrap()), false);
    let err = echo(Box::new(child.stderr.take().unwrap()), true);
    let status = child.wait().expect("wait for the netns test run");
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if err.contains("unshare:") || err.contains("RTNETLINK") {
        panic!(
            "could not make a loopback-only network namespace for {test_name} (`unshare -n` needs root \
             or unprivileged user namespaces; `ip` is Debian's iproute2): {status}\n{err}"
        );
    }
    assert!(status.success(), "{test_name} failed inside the loopback-only namespace ({status}); its output is above");
    // --exact with a name libtest does not know runs nothing and succeeds: that must not pass.
    assert!(
        out.contains("running 1 test") && out.contains("1 passed"),
        "{test_name}: the namespace run did not run exactly this test (is the name libtest's full path?)"
    );
    false
}

/// How the endpoint misbehaves; `Default` is a well-behaved endpoint without authentication.
#[derive(Clone, Debug, Default)]
pub struct WhipOptions {
    /// POSTs must carry `Authorization: Bearer TOKEN` (401 otherwise).
    pub bearer: Option<String>,
    /// Every POST is answered with this status and nothing else happens.
    pub status: Option<u16>,
    /// The first `.0` POSTs get 503 with `Retry-After: .1` (seconds).
    pub busy: Option<(u32, u32)>,
    /// POST /whip/NAME answers 307 to /whip2/NAME, which works.
    pub redirect: bool,
    /// ICE consent freshness: a check every `.0` s, the session dropped ("consent") after `.1`
    /// unanswered in a row. aiortc's default, 5 s x 6, takes half a minute to notice.
    pub consent: Option<(f32, u32)>,
    /// The answer names this address as the endpoint's only media address (a UDP fault proxy,
    /// which the test points at the session's real candidate: `WhipSession::local_candidates`).
    pub media_via: Option<std::net::SocketAddr>,
    /// The offer's candidates are replaced with this address before aiortc sees them (the proxy's
    /// upstream side), so aiortc reaches the publisher only through the proxy too.
    pub offer_via: Option<std::net::SocketAddr>,
}

/// The aiortc or the Chromium endpoint on a loopback port; killed on drop (its stderr printed if
/// the test failed). Killing the Python process is enough for Chromium too: playwright's driver
/// sees its pipe close and takes the browser down with it.
pub struct WhipEndpoint {
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    child: Child,
}

const START_DEADLINE: Duration = Duration::from_secs(20);
const PORT_ATTEMPTS: usize = 5;
/// What GET /health answers: tells our endpoint from anything else that grabbed the port.
const HEALTH: &str = "kitepush whip endpoint";
/// Debian's package; playwright drives it and never downloads a browser of its own.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMIUM_HEALTH: &str = "kitepush whip endpoint (chromium)";
/// Browser start and page load: ~7 s on an idle machine, more on a loaded 2-core CI.
const CHROMIUM_START_DEADLINE: Duration = Duration::from_secs(60);

fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kp-venv/bin/python");
    if !python.exists() {
        panic!(
            "no {}: run scripts/test (step \"Python test peers\": a venv at target/kp-venv with aiortc, \
             aiohttp and playwright)",
            python.display()
        );
    }
    python
}

impl WhipEndpoint {
    pub fn start(opts: WhipOptions) -> WhipEndpoint {
        // It exits by itself if this process dies before Drop could kill it.
        let mut args: Vec<String> = vec!["--parent-pid".into(), std::process::id().to_string()];
        if let Some(t) = &opts.bearer {
            args.extend(["--bearer".into(), t.clone()]);
        }
        if let Some(s) = opts.status {
            args.extend(["--status".into(), s.to_string()]);
        }
        if let Some((n, s)) = opts.busy {
            args.extend(["--busy".into(), n.to_string(), "--retry-after".into(), s.to_string()]);
        }
        if let Some(via) = opts.media_via {
            args.extend(["--media-via".into(), via.to_string()]);
        }
        if let Some(via) = opts.offer_via {
            args.extend(["--offer-via".into(), via.to_string()]);
        }
        if opts.redirect {
            args.push("--redirect".into());
        }
        if let Some((every_s, failures)) = opts.consent {
            args.extend(["--consent-interval".into(), every_s.to_string()]);
            args.extend(["--consent-failures".into(), failures.to_string()]);
        }
        Self::spawn("whip_endpoint.py", &args, HEALTH, START_DEADLINE)
    }

    /// The Chromium endpoint (`tests/peers/whip_chromium.py`): Debian's headless Chromium
    /// receives in a page, driven by playwright from the venv; the same HTTP interface and
    /// `GET /stats` shape, with Chromium's getStats() numbers (its "decode_errors" are
    /// framesDropped: Chromium reports no decoder failures as such). Well-behaved only: no
    /// `WhipOptions`.
    pub fn start_chromium() -> WhipEndpoint {
        if !Path::new(CHROMIUM).exists() {
            panic!("no {CHROMIUM}: scripts/test installs Debian's `chromium` (apt step)");
        }
        Self::spawn(
            "whip_chromium.py",
            &["--chromium".into(), CHROMIUM.into()],
            CHROMIUM_HEALTH,
            CHROMIUM_START_DEADLINE,
        )
    }

    /// Starts `tests/peers/SCRIPT --port P ARGS` from the venv and waits until `GET /health`
    /// answers `health`; another port when the first was taken in between.
    fn spawn(script: &str, args: &[String], health: &str, deadline: Duration) -> WhipEndpoint {
        let python = venv_python();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers").join(script);
        let dir = tmp_dir("whip-endpoint");
        let mut last_log = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = dir.join(format!("endpoint-{attempt}.log"));
            let out = File::create(&log).expect("create endpoint log");
            let child = Command::new(&python)
                .arg(&script)
                .arg("--port")
                .arg(port.to_string())
                .args(args)
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup endpoint log"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", python.display()));
            let mut ep = WhipEndpoint { port, dir: dir.clone(), log, child };
            let start = Instant::now();
            while start.elapsed() < deadline {
                if let Ok(Some(_)) = ep.child.try_wait() {
                    break;
                }
                if matches!(http(port, "GET", "/health", &[], b""), Ok(r) if r.status == 200 && r.body.starts_with(health))
                {
                    return ep;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last_log = fs::read_to_string(&ep.log).unwrap_or_default();
            // Drop kills it; a port taken in between (its log says "address already in use") gets
            // another try, anything else will fail the same way again.
            let port_taken = last_log.contains("address already in use");
            drop(ep);
            if !port_taken {
                break;
            }
        }
        panic!("the WHIP endpoint ({}) did not come up within {deadline:?}:\n{last_log}", script.display());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The kitepush URL form: `whip+http://127.0.0.1:PORT/whip/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("whip+{}", self.http_url(name))
    }

    /// What FFmpeg's WHIP muxer takes: `http://127.0.0.1:PORT/whip/NAME`.
    pub fn http_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/whip/{name}", self.port)
    }

    /// One HTTP/1.1 request to the endpoint (a test's own probe: busy, redirect, wrong type ...).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
        http(self.port, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Makes the endpoint send a PLI for session `id`'s video (RTCP, as a receiver that lost its
    /// reference pictures does); panics unless the session has a video track.
    pub fn send_pli(&self, id: &str) {
        let r = self.request("POST", &format!("/pli/{id}"), &[], b"");
        assert_eq!(r.status, 200, "PLI for session {id}: {r:?}");
    }

    pub fn stats(&self) -> WhipStats {
        let reply = self.request("GET", "/stats", &[], b"");
        assert_eq!(reply.status, 200, "GET /stats: {}", reply.body);
        WhipStats::parse(&reply.body)
    }

    /// Waits until the sessions together have decoded at least `n` video frames; panics with the
    /// last stats after `timeout`.
    pub fn wait_frames(&self, n: u64, timeout: Duration) -> WhipStats {
        self.wait_for(timeout, &format!("{n} decoded video frames"), |s| s.video_frames() >= n)
    }

    /// Polls the stats until `f` holds; panics with the last stats after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, mut f: impl FnMut(&WhipStats) -> bool) -> WhipStats {
        let start = Instant::now();
        loop {
            let s = self.stats();
            if f(&s) {
                return s;
            }
            if start.elapsed() >= timeout {
                panic!("timed out after {timeout:?} waiting for {what}; endpoint stats: {}", s.raw);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The endpoint's stderr so far (aiortc warnings, decode errors it counted).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WhipEndpoint {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(40);
            eprintln!(
                "--- WHIP endpoint on port {} ({}) ---\n{}",
                self.port,
                self.dir.display(),
                lines[from..].join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("KP_KEEP_TMP").is_some() {
            eprintln!("KP_KEEP_TMP: keeping {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// An HTTP response: status, headers (names lower-cased), body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client (`Connection: close`, body read to EOF): enough for a loopback peer,
/// and no HTTP crate in the test dependencies.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<HttpReply, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req += &format!("{n}: {v}\r\n");
    }
    req += &format!("Content-Length: {}\r\n\r\n", body.len());
    s.write_all(req.as_bytes()).and_then(|_| s.write_all(body)).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| format!("no header end in {raw:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpReply { status, headers, body: body.to_string() })
}

/// GET /stats, parsed. `raw` keeps the JSON for failure messages and fields not mapped here.
#[derive(Clone, Debug)]
pub struct WhipStats {
    pub posts: u64,
    pub posts_by_status: BTreeMap<u16, u64>,
    pub deletes: u64,
    /// Decoder failures over all sessions (aiortc's "failed to decode" and libav H.264 errors).
    pub decode_errors: u64,
    /// Network interfaces the endpoint sees: `["lo"]` alone inside the loopback-only namespace.
    pub interfaces: Vec<String>,
    pub sessions: Vec<WhipSession>,
    /// Opus packets decoded over all sessions by their mode: (SILK, hybrid, CELT). In-band FEC
    /// lives in the SILK layer (SILK and hybrid packets). 0s from Chromium.
    pub opus_modes: (u64, u64, u64),
    pub raw: Value,
}

#[derive(Clone, Debug)]
pub struct WhipSession {
    pub id: String,
    pub name: String,
    /// The path the offer was POSTed to (`/whip/NAME`, or `/whip2/NAME` after a redirect).
    pub path: String,
    /// From the POST to connectionState "connected".
    pub connected_after_ms: Option<u64>,
    /// How long it has been (or was) connected.
    pub connected_for_ms: Option<u64>,
    /// connectionState changes in order ("connecting", "connected", "closed" ...).
    pub states: Vec<String>,
    pub ice_states: Vec<String>,
    /// `None` while open; "delete", "consent" (the publisher stopped answering ICE consent
    /// checks), "failed" (connectivity lost) or "closed" (anything else).
    pub closed_by: Option<String>,
    /// `ADDR:PORT/udp` of the answer's (endpoint's) and the offer's (publisher's) candidates.
    pub local_candidates: Vec<String>,
    pub remote_candidates: Vec<String>,
    /// The offer's SDP as POSTed.
    pub offer: String,
    pub video_frames: u64,
    pub video_decode_errors: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub codes: FrameCodes,
    pub latency: Latency,
    pub audio_frames: u64,
    /// Decoded audio samples per channel (48 kHz) and the largest sample's magnitude (s16); 0
    /// from the Chromium peer.
    pub audio_samples: u64,
    pub audio_peak: u64,
    /// Frame codes of the decoded keyframes, in order.
    pub keyframe_codes: Vec<u16>,
    /// PLIs the endpoint sent when asked ([`WhipEndpoint::send_pli`]; 0 from the Chromium peer).
    pub plis_sent: u64,
    /// The user data SEIs of the H.264 access units, in arrival order (none from the Chromium
    /// peer, whose page sees decoded pictures only).
    pub messages: Vec<SeiMessage>,
}

/// A user_data_unregistered SEI message the aiortc endpoint found in an access unit.
#[derive(Clone, Debug)]
pub struct SeiMessage {
    /// Frame code of the picture it came with (None if the code was unreadable).
    pub code: Option<u16>,
    pub uuid: Vec<u8>,
    pub data: Vec<u8>,
}

fn unhex(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap_or_default();
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

/// Frame codes read from the decoded pictures.
#[derive(Clone, Debug)]
pub struct FrameCodes {
    pub read: u64,
    /// Decoded pictures whose code was absent, smeared or failed its CRC.
    pub unreadable: u64,
    pub first: Option<u16>,
    pub last: Option<u16>,
    /// Frame numbers skipped between consecutive readable codes.
    pub missing: u64,
    /// Codes that repeated or went backwards.
    pub not_increasing: u64,
}

/// Decode wall clock minus the code's wall clock, in ms.
#[derive(Clone, Debug)]
pub struct Latency {
    pub count: u64,
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub max: Option<i64>,
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("stats: `{key}` is not a count in {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

impl WhipStats {
    pub fn parse(json: &str) -> WhipStats {
        let raw: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("stats JSON: {e}: {json}"));
        let posts_by_status = raw["posts_by_status"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?))).collect())
            .unwrap_or_default();
        let sessions =
            raw["sessions"].as_array().map(|a| a.iter().map(WhipSession::parse).collect()).unwrap_or_default();
        WhipStats {
            posts: u(&raw, "posts"),
            posts_by_status,
            deletes: u(&raw, "deletes"),
            decode_errors: u(&raw, "decode_errors"),
            interfaces: strings(&raw["interfaces"]),
            sessions,
            opus_modes: {
                // The aiortc endpoint counts them; the Chromium one has no such figure.
                let m = |k: &str| raw["opus_modes"][k].as_u64().unwrap_or(0);
                (m("silk"), m("hybrid"), m("celt"))
            },
            raw,
        }
    }

    pub fn video_frames(&self) -> u64 {
        self.sessions.iter().map(|s| s.video_frames).sum()
    }

    /// The only session; panics (with the stats) when there is not exactly one.
    pub fn session(&self) -> &WhipSession {
        assert_eq!(self.sessions.len(), 1, "expected one WHIP session: {}", self.raw);
        &self.sessions[0]
    }
}

impl WhipSession {
    fn parse(v: &Value) -> WhipSession {
        let video = &v["video"];
        let codes = &video["codes"];
        let lat = &video["latency_ms"];
        WhipSession {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            path: v["path"].as_str().unwrap_or_default().to_string(),
            connected_after_ms: v["connected_after_ms"].as_u64(),
            connected_for_ms: v["connected_for_ms"].as_u64(),
            states: strings(&v["states"]),
            ice_states: strings(&v["ice_states"]),
            closed_by: v["closed_by"].as_str().map(String::from),
            local_candidates: strings(&v["local_candidates"]),
            remote_candidates: strings(&v["remote_candidates"]),
            offer: v["offer"].as_str().unwrap_or_default().to_string(),
            video_frames: u(video, "frames"),
            video_decode_errors: u(video, "decode_errors"),
            width: video["width"].as_u64().map(|w| w as u32),
            height: video["height"].as_u64().map(|h| h as u32),
            codes: FrameCodes {
                read: u(codes, "read"),
                unreadable: u(codes, "unreadable"),
                first: codes["first"].as_u64().map(|c| c as u16),
                last: codes["last"].as_u64().map(|c| c as u16),
                missing: u(codes, "missing"),
                not_increasing: u(codes, "not_increasing"),
            },
            latency: Latency {
                count: u(lat, "count"),
                p50: lat["p50"].as_i64(),
                p95: lat["p95"].as_i64(),
                max: lat["max"].as_i64(),
            },
            audio_frames: u(&v["audio"], "frames"),
            // The aiortc endpoint's only (the Chromium page counts frames).
            audio_samples: v["audio"]["samples"].as_u64().unwrap_or(0),
            audio_peak: v["audio"]["peak"].as_u64().unwrap_or(0),
            keyframe_codes: v["keyframe_codes"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c.as_u64().map(|c| c as u16)).collect())
                .unwrap_or_default(),
            // The aiortc endpoint's only (the Chromium page does not send PLIs on request).
            plis_sent: v["plis_sent"].as_u64().unwrap_or(0),
            messages: v["messages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|m| SeiMessage {
                            code: m["code"].as_u64().map(|c| c as u16),
                            uuid: unhex(&m["uuid"]),
                            data: unhex(&m["data"]),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}
