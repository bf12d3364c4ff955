//! A fault-injecting TCP proxy for the integration tests: it sits on a loopback port between the pusher
//! and the real server and can, while a test runs, cut, refuse, stall, throttle or delay the traffic.
//!
//! Plain std threads and sockets so that a failing test can be reasoned about without an async runtime:
//! one accept thread, and per connection two pump threads (client→server, server→client). Every blocking
//! call has a short timeout so the pumps notice mode changes and `Drop` promptly.
//!
//! Refusal: `Fault::Refuse` is a real refusal — the listening socket stops listening (but keeps its port
//! reserved) and the kernel answers new connection attempts with RST, so the client sees ECONNREFUSED
//! exactly as when the server process has died. The proxy never sees those attempts, so they cannot be
//! counted or timestamped; tests that count reconnect attempts or measure backoff use `Fault::Reject`
//! (accept, then reset at once), which the proxy does see.
//!
//! Buffering: the proxy itself holds little per direction (a 32 KiB receive buffer plus one 4 KiB chunk),
//! but under `Stall` or `Throttle` the client's own send buffer still absorbs writes — on loopback Linux
//! autotunes it up to `net.ipv4.tcp_wmem` max (4 MiB by default) — so a stalled pusher may see its writes
//! succeed for a while. Stall detection therefore has to watch for server acknowledgements, not only
//! for write progress.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does to the traffic. Set with [`Proxy::set`]; every mode applies at once to live and new
/// connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// One-shot action, not a lasting mode: close every live connection (both sockets, both ways), then
    /// go back to `Pass` for new connections — unless the proxy is refusing (`Refuse`/`Reject`), in which
    /// case it keeps refusing, so `set(Refuse)` followed by `set(Cut)` looks like a server that died.
    Cut,
    /// New connection attempts get ECONNREFUSED (nothing listens on the port any more; the port stays
    /// reserved for the proxy). Live connections keep working. Attempts are invisible to the proxy: they
    /// do not show in `refused()` or `attempt_times()` — use `Reject` for that.
    Refuse,
    /// New connections are accepted by the kernel and reset by the proxy at once (the client's connect
    /// succeeds, its first read or write fails). Counted in `refused()` and `attempt_times()`. Live
    /// connections keep working.
    Reject,
    /// Keep every connection open but stop reading from both sides, like a dead Wi-Fi link: the client's
    /// send buffer fills up and no server reply arrives. New connections are accepted and stalled too.
    /// Switching to any other mode resumes forwarding.
    Stall,
    /// Limit client→server forwarding to this rate (token bucket holding ~50 ms worth); server→client
    /// is not limited.
    Throttle { kbit_per_s: u32 },
    /// Forward each chunk this much later, in both directions (adds latency, not a throughput limit).
    Delay { ms: u64 },
}

/// Connections beyond this are reset at once (and counted in `refused()`): a reconnect loop gone wrong
/// must not exhaust the machine's threads.
const MAX_CONNECTIONS: usize = 64;
/// Small reads keep the proxy's own buffering small, so throttling and stalls are felt by the client
/// instead of being absorbed by the proxy.
const CHUNK: usize = 4096;
/// How often blocked threads re-check the mode and the stop flag.
const TICK: Duration = Duration::from_millis(20);
/// Requested SO_RCVBUF/SO_SNDBUF for the proxy's sockets (the kernel doubles it). Small for the same
/// reason as `CHUNK`.
const SOCKET_BUF: libc::c_int = 16 * 1024;
/// Under `Delay` the proxy must hold `delay × rate` bytes in flight; beyond this it stops reading.
const DELAY_QUEUE_LIMIT: usize = 1 << 20;
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Proxy {
    shared: Arc<Shared>,
    port: u16,
    accept_thread: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    listener: TcpListener,
    state: Mutex<State>,
    /// Wakes stalled pumps when the mode changes, a connection is cut, or the proxy stops.
    changed: Condvar,
    conns: Mutex<Vec<Conn>>,
    accepted: AtomicU32,
    refused: AtomicU32,
    bytes_upstream: AtomicU64,
    attempts: Mutex<Vec<Instant>>,
}

struct State {
    /// Never `Cut`: that is an action, applied in `set`.
    mode: Fault,
    stop: bool,
}

struct Conn {
    id: u64,
    ctl: Arc<ConnCtl>,
    /// Clones of the connection's sockets, kept so `Cut` and `Drop` can shut them down from outside the
    /// pump threads (which may be blocked in a read or parked by `Stall`).
    sockets: Vec<TcpStream>,
}

#[derive(Default)]
struct ConnCtl {
    closed: AtomicBool,
    /// Stalled for good (see `Proxy::black_hole_live`), whatever the mode.
    black_holed: AtomicBool,
}

impl Proxy {
    /// Starts a proxy on a fresh loopback port forwarding to `upstream`. Panics if no port can be bound.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = bind_reserved_port();
        let port = listener.local_addr().expect("proxy listener address").port();
        // Before any connection arrives, so accepted sockets start with these sizes and advertise a
        // matching window.
        set_socket_buffer(&listener, libc::SO_RCVBUF);
        set_socket_buffer(&listener, libc::SO_SNDBUF);
        listener.set_nonblocking(true).expect("proxy: set listener non-blocking");
        let shared = Arc::new(Shared {
            upstream,
            listener,
            state: Mutex::new(State { mode: Fault::Pass, stop: false }),
            changed: Condvar::new(),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicU32::new(0),
            refused: AtomicU32::new(0),
            bytes_upstream: AtomicU64::new(0),
            attempts: Mutex::new(Vec::new()),
        });
        let accept_thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("proxy-accept-{port}"))
                .spawn(move || accept_loop(&shared))
                .expect("proxy: spawn accept thread")
        };
        Proxy { shared, port, accept_thread: Some(accept_thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtmp://127.0.0.1:PORT/app/key`, pointing the pusher at the proxy.
    pub fn url(&self, app: &str, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{key}", self.port)
    }

    /// Switches the fault. In effect when this returns, for live and new connections alike.
    pub fn set(&self, fault: Fault) {
        let mut st = lock(&self.shared.state);
        let old = st.mode;
        let new = match fault {
            Fault::Cut => {
                self.shared.cut_all();
                if matches!(old, Fault::Refuse | Fault::Reject) {
                    old
                } else {
                    Fault::Pass
                }
            }
            other => other,
        };
        let listener = &self.shared.listener;
        if old != Fault::Refuse && new == Fault::Refuse {
            // On Linux, SHUT_RD on a listening socket stops listening without releasing the port (it was
            // bound explicitly, see `bind_reserved_port`). SO_REUSEADDR (std sets it) is cleared first:
            // a bound, non-listening socket with it set would let another SO_REUSEADDR socket bind the
            // port meanwhile.
            let ok = set_reuse_addr(listener, false)
                // SAFETY: the listener's open descriptor, owned by `shared`, which outlives this call.
                && unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RD) } == 0;
            if !ok {
                panic!("proxy: stop listening on port {} for Refuse: {}", self.port, io::Error::last_os_error());
            }
        }
        if old == Fault::Refuse && new != Fault::Refuse {
            // SAFETY: as above.
            let ok = set_reuse_addr(listener, true) && unsafe { libc::listen(listener.as_raw_fd(), 128) } == 0;
            if !ok {
                panic!("proxy: listen again on port {} after Refuse: {}", self.port, io::Error::last_os_error());
            }
        }
        st.mode = new;
        drop(st);
        self.shared.changed.notify_all();
    }

    /// The connections open now stop forwarding for good, like a route that vanished (a phone
    /// that left its Wi-Fi): the client gets no FIN, no reset, no data. The server side is closed,
    /// as a server lets a dead publisher go (nginx-rtmp would otherwise hold the stream key until
    /// its `drop_idle_publisher` timeout, a server setting). New connections are not affected (the
    /// new route). Returns how many connections were black-holed (not counting those already).
    pub fn black_hole_live(&self) -> usize {
        let conns = lock(&self.shared.conns);
        let mut n = 0;
        for c in conns.iter() {
            if c.ctl.black_holed.swap(true, Ordering::SeqCst) {
                continue;
            }
            n += 1;
            // sockets[0] is the client's, sockets[1] (once connected) the upstream's.
            if let Some(up) = c.sockets.get(1) {
                let _ = up.shutdown(Shutdown::Both);
            }
        }
        self.shared.changed.notify_all();
        n
    }

    /// Connections accepted and forwarded so far (not counting `Reject`ed ones).
    pub fn accepted(&self) -> u32 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections the proxy reset itself: under `Reject`, or over the connection limit. Attempts under
    /// `Refuse` are refused by the kernel and never reach the proxy.
    pub fn refused(&self) -> u32 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// When each connection the proxy saw arrived (accepted or rejected), in order. Taken at accept, a
    /// few microseconds after the client's connect completed.
    pub fn attempt_times(&self) -> Vec<Instant> {
        lock(&self.shared.attempts).clone()
    }

    /// Client→server bytes forwarded (written to the upstream socket).
    pub fn bytes_upstream(&self) -> u64 {
        self.shared.bytes_upstream.load(Ordering::SeqCst)
    }

    /// Connections accepted and not yet finished (including ones still connecting upstream).
    pub fn live_connections(&self) -> u32 {
        lock(&self.shared.conns).len() as u32
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.changed.notify_all();
        self.shared.cut_all();
        if let Some(t) = self.accept_thread.take() {
            // The accept thread joins the connection threads; a panic there has already been printed.
            let _ = t.join();
        }
    }
}

impl Shared {
    fn cut_all(&self) {
        for conn in lock(&self.conns).iter() {
            conn.ctl.closed.store(true, Ordering::SeqCst);
            for s in &conn.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.changed.notify_all();
    }

    fn mode(&self) -> Fault {
        lock(&self.state).mode
    }

    fn stopping(&self) -> bool {
        lock(&self.state).stop
    }

    /// Parks the caller while the mode is `Stall`; `None` once the connection is closed or the proxy stops.
    fn gate(&self, ctl: &ConnCtl) -> Option<Fault> {
        let mut st = lock(&self.state);
        loop {
            if st.stop || ctl.closed.load(Ordering::SeqCst) {
                return None;
            }
            if st.mode != Fault::Stall && !ctl.black_holed.load(Ordering::SeqCst) {
                return Some(st.mode);
            }
            st = self.changed.wait_timeout(st, TICK).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn deregister(&self, id: u64) {
        lock(&self.conns).retain(|c| c.id != id);
    }
}

/// A poisoned lock only means another proxy thread panicked; the counters are still meaningful, and the
/// test will fail on that panic anyway.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds 127.0.0.1 on an explicitly named port. A port picked by the kernel (bind to :0) is released
/// when the socket stops listening, which would make `Refuse` lose the port; an explicitly bound one
/// stays reserved. So: learn a free port from :0, then bind it by number, retrying if someone took it.
fn bind_reserved_port() -> TcpListener {
    let mut last_err = None;
    for _ in 0..50 {
        let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) => last_err = Some(e),
        }
    }
    panic!("proxy: could not bind a loopback port: {last_err:?}");
}

/// Best effort: with the default sizes the proxy still works, it just buffers more.
fn set_socket_buffer(s: &impl AsRawFd, opt: libc::c_int) {
    // SAFETY: valid fd, pointer and length of a c_int.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&SOCKET_BUF as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn set_reuse_addr(s: &impl AsRawFd, on: bool) -> bool {
    let v: libc::c_int = on.into();
    // SAFETY: valid fd, pointer and length of a c_int.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Closes with RST rather than FIN, so the client sees "connection reset" like a server turning it away.
fn reset(s: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: valid fd, pointer and length of a linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

/// Waits (up to `TICK`) for a connection on the listener, so attempts are timestamped when they arrive
/// rather than on the next polling round.
fn wait_readable(l: &TcpListener) {
    let mut pfd = libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as libc::c_int) };
}

fn accept_loop(shared: &Arc<Shared>) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    while !shared.stopping() {
        wait_readable(&shared.listener);
        let client = match shared.listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => {
                // Under `Refuse` the socket is not listening: accept fails and poll returns at once, so
                // pace the loop here.
                std::thread::sleep(TICK);
                continue;
            }
        };
        threads.retain(|t| !t.is_finished());
        lock(&shared.attempts).push(Instant::now());
        if shared.mode() == Fault::Reject || lock(&shared.conns).len() >= MAX_CONNECTIONS {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            reset(client);
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nonblocking(false);
        let ctl = Arc::new(ConnCtl::default());
        let id = next_id;
        next_id += 1;
        let registered =
            client.try_clone().map(|c| lock(&shared.conns).push(Conn { id, ctl: Arc::clone(&ctl), sockets: vec![c] }));
        if registered.is_err() {
            continue;
        }
        let shared2 = Arc::clone(shared);
        match std::thread::Builder::new()
            .name(format!("proxy-conn-{id}"))
            .spawn(move || serve(&shared2, id, &ctl, client))
        {
            Ok(t) => threads.push(t),
            Err(_) => shared.deregister(id),
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

fn serve(shared: &Arc<Shared>, id: u64, ctl: &Arc<ConnCtl>, client: TcpStream) {
    if let Some(upstream) = connect_upstream(shared, id, ctl) {
        for s in [&client, &upstream] {
            // Nagle would add its own delays on top of the ones the test asked for.
            let _ = s.set_nodelay(true);
            let _ = s.set_write_timeout(Some(TICK));
        }
        // The client side inherited small buffers from the listener. Upstream only gets a small send
        // buffer: shrinking the receive buffer of a connected socket below the window it has already
        // advertised makes the kernel drop data and wait for retransmission timeouts.
        set_socket_buffer(&upstream, libc::SO_SNDBUF);
        if let (Ok(up_from), Ok(client_to), Ok(client_from)) =
            (upstream.try_clone(), client.try_clone(), client.try_clone())
        {
            let back = {
                let (shared, ctl) = (Arc::clone(shared), Arc::clone(ctl));
                std::thread::Builder::new()
                    .name(format!("proxy-s2c-{id}"))
                    .spawn(move || pump(&shared, &ctl, up_from, client_to, false))
            };
            if let Ok(back) = back {
                pump(shared, ctl, client_from, upstream, true);
                let _ = back.join();
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    shared.deregister(id);
}

/// An unreachable upstream closes the client's connection, which is what the client would see from a
/// server that accepted and then died.
fn connect_upstream(shared: &Shared, id: u64, ctl: &ConnCtl) -> Option<TcpStream> {
    let upstream = TcpStream::connect_timeout(&shared.upstream, UPSTREAM_CONNECT_TIMEOUT).ok()?;
    let clone = upstream.try_clone().ok()?;
    let mut conns = lock(&shared.conns);
    // Registered under the same lock `Cut` holds, so a cut that raced with this connect is not missed.
    if ctl.closed.load(Ordering::SeqCst) {
        let _ = upstream.shutdown(Shutdown::Both);
        return None;
    }
    conns.iter_mut().find(|c| c.id == id)?.sockets.push(clone);
    Some(upstream)
}

/// Token bucket for `Throttle`, refilled continuously; holds ~50 ms worth so bursts stay small.
struct Bucket {
    kbit_per_s: u32,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(kbit_per_s: u32, now: Instant) -> Bucket {
        let mut b = Bucket { kbit_per_s, tokens: 0.0, last: now };
        b.tokens = b.capacity() as f64;
        b
    }

    fn rate(&self) -> f64 {
        (self.kbit_per_s.max(1) as f64) * 1000.0 / 8.0
    }

    fn capacity(&self) -> usize {
        ((self.rate() * 0.05) as usize).clamp(64, CHUNK)
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate()).min(self.capacity() as f64);
    }

    /// Time until `need` bytes may be sent.
    fn wait_for(&self, need: usize) -> Duration {
        let missing = need as f64 - self.tokens;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate())
        }
    }
}

/// Forwards `from` → `to` until EOF or error, obeying the mode. Chunks wait in a small queue stamped
/// with the time they may leave, which is how `Delay` adds latency without limiting throughput.
fn pump(shared: &Shared, ctl: &ConnCtl, mut from: TcpStream, mut to: TcpStream, client_to_server: bool) {
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut queued = 0usize;
    let mut sent = 0usize; // bytes of the front chunk already written
    let mut eof = false;
    let mut bucket: Option<Bucket> = None;
    let mut buf = [0u8; CHUNK];
    let outcome = loop {
        let Some(mode) = shared.gate(ctl) else {
            break Ok(());
        };
        let now = Instant::now();
        let throttle = match mode {
            Fault::Throttle { kbit_per_s } if client_to_server => Some(kbit_per_s),
            _ => None,
        };
        let tb: Option<&mut Bucket> = match throttle {
            Some(k) => {
                let b = match bucket.take() {
                    Some(b) if b.kbit_per_s == k => bucket.insert(b),
                    _ => bucket.insert(Bucket::new(k, now)),
                };
                b.refill(now);
                Some(b)
            }
            None => {
                bucket = None;
                None
            }
        };

        // Send the front chunk if it is due and the bucket allows; otherwise work out how long to wait.
        let mut wait = TICK;
        if let Some((due, chunk)) = queue.front() {
            let len = chunk.len();
            let mut allowed = len - sent;
            let mut ready = *due <= now;
            if !ready {
                wait = wait.min(*due - now);
            } else if let Some(b) = tb.as_deref() {
                let w = b.wait_for(allowed.min(b.capacity()));
                if w > Duration::ZERO {
                    ready = false;
                    wait = wait.min(w);
                } else {
                    allowed = allowed.min(b.tokens as usize);
                }
            }
            if ready {
                match to.write(&chunk[sent..sent + allowed]) {
                    Ok(0) => break Err(()),
                    Ok(n) => {
                        sent += n;
                        if let Some(b) = tb {
                            b.tokens -= n as f64;
                        }
                        if client_to_server {
                            shared.bytes_upstream.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        if sent == len {
                            queued -= len;
                            sent = 0;
                            queue.pop_front();
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break Err(()),
                }
                continue;
            }
        } else if eof {
            // Propagate the half-close; the other direction carries on until its own EOF.
            let _ = to.shutdown(Shutdown::Write);
            break Ok(());
        }

        // Read more unless enough is queued. Outside `Delay` at most one chunk is held, so back-pressure
        // reaches the sender instead of piling up here.
        let limit = if matches!(mode, Fault::Delay { .. }) { DELAY_QUEUE_LIMIT } else { 1 };
        if eof || queued >= limit {
            std::thread::sleep(wait.max(Duration::from_millis(1)));
            continue;
        }
        let max = bucket.as_ref().map_or(CHUNK, Bucket::capacity);
        let _ = from.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        match from.read(&mut buf[..max]) {
            Ok(0) => eof = true,
            Ok(n) => {
                let delay = match mode {
                    Fault::Delay { ms } => Duration::from_millis(ms),
                    _ => Duration::ZERO,
                };
                queue.push_back((Instant::now() + delay, buf[..n].to_vec()));
                queued += n;
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => break Err(()),
        }
    };
    if outcome.is_err() {
        // One direction failing means the connection is gone: take the other pump down with it.
        ctl.closed.store(true, Ordering::SeqCst);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
        shared.changed.notify_all();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}
