//! A small built-in RTMP server that accepts publishers and records what they send to one FLV
//! file: the SDK's demo and tests run against it with no installed server, and integrators test
//! their apps against it.
//!
//! It behaves like nginx-rtmp where a pusher can tell: one publisher at a time, a second
//! concurrent publish gets `NetStream.Publish.BadName` and the socket stays open, a reconnecting
//! publisher is accepted again and its tags are appended to the same file (timestamps as
//! received). Built on `rml_rtmp`'s `ServerSession`, with std threads and blocking sockets.
//!
//! ```no_run
//! use kitepush::receiver::{Receiver, ReceiverConfig};
//! use std::time::Duration;
//! let rx = Receiver::start(ReceiverConfig::new("/tmp/out.flv"))?;
//! let url = rx.url("live", "key1"); // push to this
//! let (done, report) = rx.wait_sessions_ended(1, Duration::from_secs(30));
//! let report = rx.stop();
//! # Ok::<(), std::io::Error>(())
//! ```

mod conn;
mod guard;

/// For the fuzz target in `fuzz/` (cargo-fuzz builds with `--cfg fuzzing`): what a connection does
/// with a publisher's bytes after the handshake, fed `data` in pieces: the guard inspects them,
/// then rml_rtmp's server session parses what the guard let through, each step under
/// `catch_unwind` as `conn` runs them. A guard error ends the connection; a panic inside rml_rtmp
/// is caught there too (the target tells those apart); a stack overflow or an allocation over the
/// fuzzer's limit is a crash.
#[cfg(fuzzing)]
pub fn fuzz_guard(data: &[u8]) {
    use rml_rtmp::sessions::{ServerSession, ServerSessionConfig};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let Some((&split, data)) = data.split_first() else { return };
    let Ok(Ok((mut session, _))) = catch_unwind(|| ServerSession::new(ServerSessionConfig::new())) else { return };
    let mut g = guard::Guard::new();
    for input in data.chunks(1 + split as usize * 4) {
        if !matches!(catch_unwind(AssertUnwindSafe(|| g.inspect(input))), Ok(Ok(()))) {
            return;
        }
        if !matches!(catch_unwind(AssertUnwindSafe(|| session.handle_input(input))), Ok(Ok(_))) {
            return;
        }
        g.pending_metadata.clear();
    }
}

use crate::core::flv::file_header;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Connections beyond this are closed at once: each may hold up to two 16 MiB messages in
/// flight (see `conn`), so the cap bounds memory as well as threads.
const MAX_CONNECTIONS: usize = 32;
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
const FILE_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Where to listen; the default 127.0.0.1:0 takes a free loopback port.
    pub bind: SocketAddr,
    /// The FLV file; created (truncated) by [`Receiver::start`].
    pub output: PathBuf,
    /// Only this application is accepted; `None` accepts any.
    pub app: Option<String>,
    /// Only this stream key (query included) may publish; `None` accepts any.
    pub stream_key: Option<String>,
}

impl ReceiverConfig {
    pub fn new(output: impl Into<PathBuf>) -> Self {
        ReceiverConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            output: output.into(),
            app: None,
            stream_key: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiverReport {
    /// Publishes accepted.
    pub sessions: u32,
    pub video_tags: u64,
    pub audio_tags: u64,
    /// Bytes written to the output file, FLV header included: the file's size once flushed.
    pub bytes: u64,
    /// Publishes (and connects to a wrong app) refused.
    pub rejected: u32,
    /// The last connection or file error, for test failure messages.
    pub last_error: Option<String>,
}

pub struct Receiver {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Binds, creates the output file with its FLV header and starts accepting.
    pub fn start(config: ReceiverConfig) -> io::Result<Receiver> {
        let listener = TcpListener::bind(config.bind)?;
        // Non-blocking so the accept loop can notice `stop` without a wake-up connection.
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let mut out = BufWriter::with_capacity(FILE_BUFFER, File::create(&config.output)?);
        // Audio and video flags both set: what will come is not known yet, and players probe.
        let header = file_header(true, true);
        out.write_all(&header)?;
        out.flush()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                report: ReceiverReport { bytes: header.len() as u64, ..ReceiverReport::default() },
                out: Some(out),
                publisher: None,
                ended: 0,
                sockets: HashMap::new(),
            }),
            ended_changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            app: config.app,
            stream_key: config.stream_key,
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new().name("kitepush-receiver".into()).spawn(move || accept_loop(listener, shared))?
        };
        log::info!("receiver listening on {local_addr}");
        Ok(Receiver { shared, local_addr, acceptor: Some(acceptor) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `rtmp://HOST:PORT/app/key`; an unspecified bind address becomes loopback.
    pub fn url(&self, app: &str, key: &str) -> String {
        let ip = self.local_addr.ip();
        let host = match ip {
            _ if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
            _ if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        };
        format!("rtmp://{host}:{}/{app}/{key}", self.local_addr.port())
    }

    /// Blocks until `n` publish sessions have ended (unpublish or disconnect) or the timeout
    /// passes; returns the report so far and whether it got there.
    pub fn wait_sessions_ended(&self, n: u32, timeout: Duration) -> (bool, ReceiverReport) {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.ended < n {
            let now = Instant::now();
            if now >= deadline {
                return (false, state.report.clone());
            }
            state = self.shared.ended_changed.wait_timeout(state, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        (true, state.report.clone())
    }

    pub fn report(&self) -> ReceiverReport {
        self.shared.lock().report.clone()
    }

    /// Stops accepting, closes connections, flushes and closes the file, joins threads.
    /// Also on drop.
    pub fn stop(mut self) -> ReceiverReport {
        self.shutdown();
        self.report()
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The accept loop closes the connections and joins their threads before it returns.
        if acceptor.join().is_err() {
            log::error!("receiver accept thread panicked");
        }
        let mut state = self.shared.lock();
        if let Some(mut out) = state.out.take() {
            if let Err(e) = out.flush() {
                log::warn!("receiver: flushing the output file failed: {e}");
                state.report.last_error = Some(format!("flushing the output file: {e}"));
            }
        }
        log::info!("receiver on {} stopped", self.local_addr);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Shared {
    state: Mutex<State>,
    ended_changed: Condvar,
    stopping: AtomicBool,
    next_id: AtomicU64,
    app: Option<String>,
    stream_key: Option<String>,
}

struct State {
    report: ReceiverReport,
    /// `None` once stopped.
    out: Option<BufWriter<File>>,
    /// The connection currently publishing.
    publisher: Option<u64>,
    /// Publish sessions ended so far.
    ended: u32,
    /// Clones of the open connections, to shut them down on stop: a blocked read returns then.
    sockets: HashMap<u64, TcpStream>,
}

impl Shared {
    /// A panic elsewhere must not take the receiver down with it: the state stays usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                workers.retain(|w| !w.is_finished());
                if workers.len() >= MAX_CONNECTIONS {
                    log::warn!("receiver: {MAX_CONNECTIONS} connections open, refusing {peer}");
                    continue; // dropping the stream closes it
                }
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                match spawn_connection(id, stream, peer, &shared) {
                    Ok(w) => workers.push(w),
                    Err(e) => log::warn!("receiver: connection {id} from {peer}: {e}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors and the like: back off rather than spin.
                log::warn!("receiver: accept failed: {e}");
                thread::sleep(ACCEPT_POLL * 10);
            }
        }
    }
    for (_, socket) in shared.lock().sockets.drain() {
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
    for w in workers {
        if w.join().is_err() {
            log::error!("receiver connection thread panicked");
        }
    }
}

fn spawn_connection(id: u64, stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) -> io::Result<JoinHandle<()>> {
    // Accepted sockets may inherit the listener's non-blocking mode on some platforms.
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    {
        let mut state = shared.lock();
        // Checked under the lock the accept loop takes to shut sockets down, so none is missed.
        if shared.stopping.load(Ordering::SeqCst) {
            return Err(io::Error::other("receiver stopping"));
        }
        state.sockets.insert(id, stream.try_clone()?);
    }
    let shared2 = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("kitepush-receiver-{id}"))
        .spawn(move || conn::run(id, stream, peer, shared2));
    if spawned.is_err() {
        shared.lock().sockets.remove(&id);
    }
    spawned
}
