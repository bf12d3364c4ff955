//! A fault-injecting UDP proxy for the integration tests, the datagram twin of `proxy.rs`: it sits on a
//! loopback port between a sender (the SRT caller) and the real peer, and can, while a test runs, lose,
//! delay, rate-limit or black-hole the traffic.
//!
//! Plain std threads and sockets, like the TCP proxy: one thread per direction, each receiving with a
//! short timeout and sending what has become due, so mode changes and `Drop` are noticed promptly.
//!
//! One client is served: the proxy forwards whatever reaches its port to the upstream and sends the
//! upstream's replies to the address the last client datagram came from (a caller that rebinds — a new
//! SRT session on a new local port — takes the replies over). Towards the upstream the proxy uses one
//! socket of its own, so the peer sees one 5-tuple for the proxy's whole life.
//!
//! The network model, per direction: the black hole and random loss act on arrival; then the
//! client→server bottleneck (`rate_kbps`) serialises datagrams at the given rate behind a drop-tail queue
//! holding `RATE_QUEUE` worth of traffic, as a real bottleneck router would; then every datagram waits
//! `delay_ms` on a timed queue (propagation delay: latency, not a throughput limit). Datagrams leave in
//! arrival order, also when the delay is lowered live. A black hole switched on also swallows what is
//! already queued, as a link that goes dead does.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does to the traffic; the fields combine. Set with [`UdpProxy::set`], in effect for the
/// next datagram that arrives. `UdpFaults::PASS` (also the `Default`) forwards everything at once.
///
/// ```ignore
/// proxy.set(UdpFaults::PASS.with_loss(5.0).with_delay_ms(20));
/// proxy.set(UdpFaults { rate_kbps: Some(2_000), ..UdpFaults::PASS });
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UdpFaults {
    /// Random loss in percent (0–100), drawn for each datagram independently, in each direction from
    /// its own seeded generator (see [`UdpProxy::start_seeded`]).
    pub loss_percent: f32,
    /// One-way delay added in each direction: the round trip grows by twice this.
    pub delay_ms: u64,
    /// Client→server bottleneck in kbit/s (UDP payload bytes; headers not counted); `None` is unlimited.
    /// Server→client is never limited (a publisher's uplink is the bottleneck that matters).
    pub rate_kbps: Option<u32>,
    /// Drop everything, both ways, including what is already queued.
    pub black_hole: bool,
}

impl UdpFaults {
    pub const PASS: UdpFaults = UdpFaults { loss_percent: 0.0, delay_ms: 0, rate_kbps: None, black_hole: false };
    pub const BLACK_HOLE: UdpFaults = UdpFaults { black_hole: true, ..UdpFaults::PASS };

    pub fn with_loss(self, percent: f32) -> UdpFaults {
        UdpFaults { loss_percent: percent, ..self }
    }

    pub fn with_delay_ms(self, ms: u64) -> UdpFaults {
        UdpFaults { delay_ms: ms, ..self }
    }

    pub fn with_rate_kbps(self, kbit_per_s: u32) -> UdpFaults {
        UdpFaults { rate_kbps: Some(kbit_per_s), ..self }
    }
}

impl Default for UdpFaults {
    fn default() -> UdpFaults {
        UdpFaults::PASS
    }
}

/// Counters of one direction, a snapshot. `received = datagrams + dropped + still queued`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirCounters {
    /// Datagrams that reached the proxy from this direction's sender.
    pub received: u64,
    /// Datagrams and bytes forwarded.
    pub datagrams: u64,
    pub bytes: u64,
    /// Datagrams and bytes dropped, for any reason (black hole, loss, full bottleneck or delay queue,
    /// no client to reply to yet).
    pub dropped: u64,
    pub dropped_bytes: u64,
}

/// The bottleneck's drop-tail queue holds this much time at the configured rate (at least a few
/// datagrams), like a router's buffer sized for ~100 ms.
const RATE_QUEUE: Duration = Duration::from_millis(100);
const RATE_QUEUE_MIN_BYTES: f64 = 4.0 * 1500.0;
/// Under `delay_ms` the proxy holds `delay × rate` bytes per direction; beyond this it drops.
const DELAY_QUEUE_LIMIT: usize = 8 << 20;
/// How often an idle direction re-checks the stop flag.
const TICK: Duration = Duration::from_millis(20);
/// Requested socket buffers (the kernel caps SO_RCVBUF at rmem_max; root may force more): a burst must
/// not be lost in the kernel, or the loss figures would not be the proxy's.
const SOCKET_BUF: libc::c_int = 4 << 20;
/// Seed used by [`UdpProxy::start`]: runs are reproducible unless a test asks for another seed.
const DEFAULT_SEED: u64 = 0x6b69_7465_7075_7368; // "kitepush"

pub struct UdpProxy {
    shared: Arc<Shared>,
    port: u16,
    /// The port the proxy sends to its upstream from (and takes replies on).
    upstream_port: u16,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    /// Where client datagrams go; replies are taken from it only. Switched by `set_upstream`.
    upstream: Mutex<SocketAddr>,
    faults: Mutex<UdpFaults>,
    client: Mutex<Option<SocketAddr>>,
    /// A client address whose traffic is swallowed both ways (see [`UdpProxy::black_hole_client`]).
    banned: Mutex<Option<SocketAddr>>,
    stop: AtomicBool,
    c2s: Counters,
    s2c: Counters,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    datagrams: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
    dropped_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirCounters {
        DirCounters {
            received: self.received.load(Ordering::SeqCst),
            datagrams: self.datagrams.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
            dropped: self.dropped.load(Ordering::SeqCst),
            dropped_bytes: self.dropped_bytes.load(Ordering::SeqCst),
        }
    }

    fn drop_one(&self, len: usize) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
        self.dropped_bytes.fetch_add(len as u64, Ordering::SeqCst);
    }
}

impl UdpProxy {
    /// Starts a proxy on a fresh 127.0.0.1 port forwarding to `upstream`, with the default loss seed.
    /// Panics if no socket can be bound.
    pub fn start(upstream: SocketAddr) -> UdpProxy {
        UdpProxy::start_seeded(upstream, DEFAULT_SEED)
    }

    /// As [`start`](Self::start), with the seed of the loss draws: the same seed and the same traffic
    /// give the same losses.
    pub fn start_seeded(upstream: SocketAddr, seed: u64) -> UdpProxy {
        let client_side = UdpSocket::bind("127.0.0.1:0").expect("udp proxy: bind client side");
        let upstream_side = UdpSocket::bind("127.0.0.1:0").expect("udp proxy: bind upstream side");
        for s in [&client_side, &upstream_side] {
            large_buffers(s);
            // Reads wait in poll (see `Direction::run`); the read itself must not block.
            s.set_nonblocking(true).expect("udp proxy: set non-blocking");
        }
        let port = client_side.local_addr().expect("udp proxy address").port();
        let upstream_port = upstream_side.local_addr().expect("udp proxy address").port();
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            faults: Mutex::new(UdpFaults::PASS),
            client: Mutex::new(None),
            banned: Mutex::new(None),
            stop: AtomicBool::new(false),
            c2s: Counters::default(),
            s2c: Counters::default(),
        });
        let clone = |s: &UdpSocket| s.try_clone().expect("udp proxy: clone socket");
        let mut threads = Vec::new();
        for (c2s, from, to) in [(true, clone(&client_side), clone(&upstream_side)), (false, upstream_side, client_side)]
        {
            // Distinct streams per direction: losses one way say nothing about the other.
            let rng = Rng::new(seed ^ if c2s { 0 } else { 0x9e37_79b9_7f4a_7c15 });
            let shared = Arc::clone(&shared);
            let name = format!("udp-proxy-{}-{port}", if c2s { "c2s" } else { "s2c" });
            let t = std::thread::Builder::new()
                .name(name)
                .spawn(move || Direction::new(c2s, from, to, rng).run(&shared))
                .expect("udp proxy: spawn thread");
            threads.push(t);
        }
        UdpProxy { shared, port, upstream_port, threads }
    }

    /// `127.0.0.1:PORT` the proxy sends to its upstream from: what the upstream sees as the client.
    /// A peer that must reach the client only through the proxy (ICE) is told this address.
    pub fn upstream_side_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.upstream_port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, where the client sends.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Switches the faults, for live traffic at once (see the module doc for what happens to datagrams
    /// already queued).
    pub fn set(&self, faults: UdpFaults) {
        *lock(&self.shared.faults) = faults;
    }

    pub fn faults(&self) -> UdpFaults {
        *lock(&self.shared.faults)
    }

    /// Client → upstream counters.
    pub fn c2s(&self) -> DirCounters {
        self.shared.c2s.snapshot()
    }

    /// Upstream → client counters.
    pub fn s2c(&self) -> DirCounters {
        self.shared.s2c.snapshot()
    }

    /// The address replies go to: the source of the last datagram from a client.
    pub fn client(&self) -> Option<SocketAddr> {
        *lock(&self.shared.client)
    }

    /// Sends what arrives from now on to another upstream (datagrams already queued too), and
    /// takes replies from it only: the new route of a handover reaching another ingest node
    /// behind the same address, as a load-balanced ingest does.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = upstream;
    }

    /// Black-holes one client address only, both ways, from now on (a phone's old route after a
    /// handover): a caller that comes back from another local port (a new 5-tuple, the new route)
    /// passes. Returns the address, the current client, or `None` when there is none yet.
    pub fn black_hole_client(&self) -> Option<SocketAddr> {
        let client = self.client();
        *lock(&self.shared.banned) = client;
        client
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A poisoned lock only means a proxy thread panicked; the state is still meaningful, and the test
/// fails on that panic anyway.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives a test's own UDP socket the proxy's large buffers, so a burst the proxy forwards at once is
/// not lost in the kernel before the test reads it (a default receive buffer holds ~256 small datagrams).
pub fn large_buffers(s: &UdpSocket) {
    set_socket_buffer(s, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
    set_socket_buffer(s, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
}

/// Best effort: with smaller buffers the proxy still works, a burst may just lose datagrams in the
/// kernel. The FORCE variant (root only) lifts the rmem_max/wmem_max cap.
fn set_socket_buffer(s: &UdpSocket, force: libc::c_int, opt: libc::c_int) {
    for o in [force, opt] {
        // SAFETY: valid fd, pointer and length of a c_int.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                o,
                (&SOCKET_BUF as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// splitmix64: tiny, seedable and good enough for loss draws; not worth a crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 100).
    fn percent(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 100.0
    }
}

struct Pending {
    due: Instant,
    buf: Vec<u8>,
}

/// One direction: receives from `from`, sends what is due through `to`.
struct Direction {
    c2s: bool,
    from: UdpSocket,
    to: UdpSocket,
    rng: Rng,
    line: VecDeque<Pending>,
    line_bytes: usize,
    /// Buffers of datagrams already sent, reused for the next ones.
    pool: Vec<Vec<u8>>,
    /// When the bottleneck has serialised everything accepted so far.
    link_free: Instant,
    /// Due time of the last queued datagram: nobody overtakes it, also when the delay drops.
    last_due: Instant,
}

impl Direction {
    fn new(c2s: bool, from: UdpSocket, to: UdpSocket, rng: Rng) -> Direction {
        let now = Instant::now();
        Direction {
            c2s,
            from,
            to,
            rng,
            line: VecDeque::new(),
            line_bytes: 0,
            pool: Vec::new(),
            link_free: now,
            last_due: now,
        }
    }

    fn counters<'a>(&self, shared: &'a Shared) -> &'a Counters {
        if self.c2s {
            &shared.c2s
        } else {
            &shared.s2c
        }
    }

    fn run(mut self, shared: &Shared) {
        let mut scratch = vec![0u8; 65536];
        while !shared.stop.load(Ordering::SeqCst) {
            let faults = *lock(&shared.faults);
            let now = Instant::now();
            self.send_due(shared, faults, now);
            let wait = match self.line.front() {
                Some(p) => p.due.saturating_duration_since(now).min(TICK),
                None => TICK,
            };
            // poll, not SO_RCVTIMEO: socket timeouts count in jiffies (4 ms here), which added ~6 ms
            // to every delayed datagram; poll's timer is precise to well under a millisecond.
            wait_readable(&self.from, wait);
            match self.from.recv_from(&mut scratch) {
                Ok((n, src)) => {
                    if self.c2s {
                        if *lock(&shared.banned) == Some(src) {
                            self.counters(shared).received.fetch_add(1, Ordering::SeqCst);
                            self.counters(shared).drop_one(n);
                            continue;
                        }
                        *lock(&shared.client) = Some(src);
                    } else if src != *lock(&shared.upstream) {
                        continue; // a stray datagram to the proxy's upstream socket
                    }
                    // The faults may have changed while this thread waited.
                    let faults = *lock(&shared.faults);
                    self.ingest(shared, faults, &scratch[..n], Instant::now());
                }
                Err(e) if is_timeout(&e) => {}
                // ICMP errors surfaced on the socket (a peer not listening yet) are not the proxy's end.
                Err(_) => {}
            }
        }
    }

    fn ingest(&mut self, shared: &Shared, faults: UdpFaults, data: &[u8], now: Instant) {
        let counters = self.counters(shared);
        counters.received.fetch_add(1, Ordering::SeqCst);
        let n = data.len();
        if faults.black_hole
            || (faults.loss_percent > 0.0 && self.rng.percent() < f64::from(faults.loss_percent))
            || self.line_bytes + n > DELAY_QUEUE_LIMIT
        {
            counters.drop_one(n);
            return;
        }
        let mut leaves = now;
        match faults.rate_kbps.filter(|_| self.c2s) {
            Some(kbps) => {
                let bytes_per_s = f64::from(kbps.max(1)) * 125.0;
                let start = self.link_free.max(now);
                let backlog = (start - now).as_secs_f64() * bytes_per_s;
                if backlog + n as f64 > (bytes_per_s * RATE_QUEUE.as_secs_f64()).max(RATE_QUEUE_MIN_BYTES) {
                    counters.drop_one(n);
                    return;
                }
                self.link_free = start + Duration::from_secs_f64(n as f64 / bytes_per_s);
                leaves = self.link_free;
            }
            // A bottleneck switched on later starts empty.
            None => self.link_free = now,
        }
        let due = (leaves + Duration::from_millis(faults.delay_ms)).max(self.last_due);
        self.last_due = due;
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.line_bytes += n;
        self.line.push_back(Pending { due, buf });
    }

    fn send_due(&mut self, shared: &Shared, faults: UdpFaults, now: Instant) {
        let counters = self.counters(shared);
        while self.line.front().is_some_and(|p| p.due <= now) {
            let Some(p) = self.line.pop_front() else { break };
            let n = p.buf.len();
            self.line_bytes -= n;
            let dest = if self.c2s { Some(*lock(&shared.upstream)) } else { *lock(&shared.client) };
            match dest {
                Some(dest) if !faults.black_hole && *lock(&shared.banned) != Some(dest) => {
                    // Counted before the send: a test that has received a datagram must find it
                    // counted already. A failed send (the kernel's buffer full) moves it to dropped.
                    counters.datagrams.fetch_add(1, Ordering::SeqCst);
                    counters.bytes.fetch_add(n as u64, Ordering::SeqCst);
                    if self.to.send_to(&p.buf, dest).is_err() {
                        counters.datagrams.fetch_sub(1, Ordering::SeqCst);
                        counters.bytes.fetch_sub(n as u64, Ordering::SeqCst);
                        counters.drop_one(n);
                    }
                }
                _ => counters.drop_one(n),
            }
            self.pool.push(p.buf);
        }
    }
}

/// Waits up to `wait` for a datagram (rounded up to the next millisecond, so a due time is never
/// missed by returning early).
fn wait_readable(s: &UdpSocket, wait: Duration) {
    let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    let mut pfd = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}
