//! A TCP connection with deadlines on everything: DNS, connect and writes. The socket is
//! non-blocking and waited on with `poll(2)` together with a wake-up fd, so the network worker
//! can sleep until the socket is ready *or* new media is queued, without a polling interval.

use crate::error::{Error, Result};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Resolve `host:port` within `timeout`. `getaddrinfo` has no timeout of its own and can hang for
/// tens of seconds on a dead network, so it runs on a short-lived thread that is abandoned on timeout.
pub fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("kp-dns".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
        })
        .map_err(|e| Error::Internal(format!("spawn DNS thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(Error::Dns(format!("{host}: no addresses"))),
        Ok(Err(e)) => Err(Error::Dns(format!("{host}: {e}"))),
        Err(_) => Err(Error::Dns(format!("{host}: no answer within {} ms", timeout.as_millis()))),
    }
}

/// Wakes a thread blocked in [`Transport::wait`] from another thread.
///
/// Linux/Android: an eventfd shared by both ends. A wake-up is one 8-byte write to a counter and
/// one read that empties it, where a socket pair allocated a buffer per wake-up and took two reads
/// to drain (the WHIP worker is woken for every frame). Elsewhere (Apple): a Unix socket pair.
#[derive(Debug)]
pub struct Waker {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: std::sync::Arc<std::os::fd::OwnedFd>,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    tx: UnixStream,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Waker {
    pub fn wake(&self) {
        // An eventfd has no SIGPIPE and no reader to lose (the fd lives while either end does);
        // EAGAIN (a counter at its maximum) already means "wake up": every error is fine to ignore.
        // SAFETY: a valid eventfd owned by self; 8 readable bytes.
        unsafe {
            libc::write(self.fd.as_raw_fd(), (&1u64 as *const u64).cast(), 8);
        }
    }
}

/// The receiving end of a [`Waker`].
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug)]
pub struct WakeReceiver {
    fd: std::sync::Arc<std::os::fd::OwnedFd>,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn wake_pair() -> Result<(Waker, WakeReceiver)> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscall; the result is checked before it is owned.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if raw < 0 {
        return Err(Error::Internal(format!("wake eventfd: {}", io::Error::last_os_error())));
    }
    // SAFETY: a new fd that nothing else owns.
    let fd = std::sync::Arc::new(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) });
    Ok((Waker { fd: fd.clone() }, WakeReceiver { fd }))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl WakeReceiver {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    fn drain(&self) {
        let mut count = 0u64;
        // SAFETY: a valid eventfd owned by self; 8 writable bytes. One read empties the counter
        // (EAGAIN when it was empty).
        unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8);
        }
    }
}

/// No send flag outside Linux/Android: `SO_NOSIGPIPE` is set on the socket instead (Apple).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NO_SIGPIPE: libc::c_int = 0;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Waker {
    pub fn wake(&self) {
        // Not `write(2)`: once the worker owning the receiver has ended, the write fails with
        // EPIPE, and write(2) also raises SIGPIPE, which kills a C host that keeps the default
        // action (Rust's runtime ignores it only in Rust programs, and std's UnixStream sends
        // without MSG_NOSIGNAL before 1.87). A full pipe already means "wake up", and a gone
        // reader has nobody to wake: every error is fine to ignore.
        // SAFETY: a valid socket owned by self; one readable byte.
        unsafe {
            libc::send(self.tx.as_raw_fd(), [1u8].as_ptr().cast(), 1, NO_SIGPIPE);
        }
    }
}

/// The receiving end of a [`Waker`].
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[derive(Debug)]
pub struct WakeReceiver {
    rx: UnixStream,
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn wake_pair() -> Result<(Waker, WakeReceiver)> {
    let (tx, rx) = UnixStream::pair().map_err(|e| Error::Internal(format!("wake pipe: {e}")))?;
    tx.set_nonblocking(true)
        .and_then(|_| rx.set_nonblocking(true))
        .map_err(|e| Error::Internal(format!("wake pipe: {e}")))?;
    #[cfg(target_vendor = "apple")]
    {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket owned by tx; pointer and length of one c_int.
        let rc = unsafe {
            libc::setsockopt(
                tx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(Error::Internal(format!("wake pipe: SO_NOSIGPIPE: {}", io::Error::last_os_error())));
        }
    }
    Ok((Waker { tx }, WakeReceiver { rx }))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl WakeReceiver {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.rx.as_raw_fd()
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl WakeReceiver {
    /// Sleep until woken or `timeout` passes (for when there is no socket to wait on).
    pub fn wait(&self, timeout: Duration) {
        let mut fds = [libc::pollfd { fd: self.raw_fd(), events: libc::POLLIN, revents: 0 }];
        poll(&mut fds, timeout);
        self.drain();
    }
}

/// What [`Transport::wait`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    pub woken: bool,
}

pub struct Transport {
    stream: TcpStream,
    peer: SocketAddr,
    /// RTMPS: every byte in and out goes through this TLS session.
    #[cfg(feature = "tls")]
    tls: Option<Box<super::tls::TlsSession>>,
}

impl Transport {
    /// Connect to the first address of `host` that answers before `deadline`.
    pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<Transport> {
        Self::connect_cancellable(host, port, deadline, None, &mut || None)
    }

    /// Like [`Transport::connect`], but `cancel` is asked whenever `waker` fires (and every
    /// 100 ms) while a connect is in flight; an error it returns ends the attempt at once. A
    /// connect over a route that vanished (the phone left its Wi-Fi) would otherwise hold the
    /// worker for the whole connect timeout, deaf to the app's "network changed" and to stop().
    pub fn connect_cancellable(
        host: &str,
        port: u16,
        deadline: Instant,
        waker: Option<&WakeReceiver>,
        cancel: &mut dyn FnMut() -> Option<Error>,
    ) -> Result<Transport> {
        let remaining = |d: Instant| d.saturating_duration_since(Instant::now());
        let addrs = resolve(host, port, remaining(deadline))?;
        let mut last = Error::Connect(format!("{host}: no address tried"));
        for addr in addrs {
            if let Some(e) = cancel() {
                return Err(e);
            }
            if remaining(deadline).is_zero() {
                return Err(Error::Timeout(format!("connect to {addr}")));
            }
            match connect_one(addr, deadline, waker, cancel) {
                Err(Attempt::Cancelled(e)) => return Err(e),
                Err(Attempt::Failed(e)) => last = Error::from_io(&format!("connect to {addr}"), &e),
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(|e| Error::from_io("set TCP_NODELAY", &e))?;
                    stream.set_nonblocking(true).map_err(|e| Error::from_io("set non-blocking", &e))?;
                    return Ok(Transport {
                        stream,
                        peer: addr,
                        #[cfg(feature = "tls")]
                        tls: None,
                    });
                }
            }
        }
        Err(last)
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// From now on, speak TLS to `host` (its name is the SNI and what the certificate must match).
    /// The handshake runs inside the following reads and writes; see [`Transport::is_handshaking`].
    #[cfg(feature = "tls")]
    pub fn start_tls(&mut self, config: std::sync::Arc<rustls::ClientConfig>, host: &str) -> Result<()> {
        self.tls = Some(Box::new(super::tls::TlsSession::new(config, host)?));
        Ok(())
    }

    /// A TLS handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            return t.is_handshaking();
        }
        false
    }

    /// Write what the socket takes now. Ok(0) means it would block.
    pub fn write_some(&mut self, buf: &[u8]) -> Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(t) = &mut self.tls {
            return t.write(&mut self.stream, buf);
        }
        match self.stream.write(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(Error::from_io("write", &e)),
        }
    }

    /// Read what has arrived. Ok(None) means nothing yet; Ok(Some(0)) never happens: a closed
    /// connection is an error.
    pub fn read_some(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        #[cfg(feature = "tls")]
        if let Some(t) = &mut self.tls {
            return t.read(&mut self.stream, buf);
        }
        match self.stream.read(buf) {
            Ok(0) => Err(Error::Io("connection closed by the server".into())),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(Error::from_io("read", &e)),
        }
    }

    /// Sleep until the socket is readable, writable (when `want_write`), woken, or `timeout` passes.
    pub fn wait(&self, want_write: bool, waker: Option<&WakeReceiver>, timeout: Duration) -> Readiness {
        let mut events = libc::POLLIN;
        #[cfg(feature = "tls")]
        let want_write = want_write || self.tls.as_ref().is_some_and(|t| t.wants_write());
        if want_write {
            events |= libc::POLLOUT;
        }
        wait_socket(self.stream.as_raw_fd(), events, waker, timeout)
    }

    /// Ends the connection so the server gets every byte written: TLS close_notify, our FIN, then
    /// input read and thrown away until the server closes or `deadline` passes. Closing with unread
    /// input (a late command reply, an acknowledgement) makes the kernel send a reset, and a reset
    /// makes the server's kernel throw away what it received but had not handed to the server yet:
    /// the last frames of the stream.
    pub fn finish(&mut self, deadline: Instant) {
        let fd = self.stream.as_raw_fd();
        #[cfg(feature = "tls")]
        if let Some(t) = &mut self.tls {
            t.queue_close_notify();
            while let Ok(false) = t.flush(&mut self.stream) {
                if !poll_until(fd, libc::POLLOUT, deadline) {
                    break;
                }
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
            if !poll_until(fd, libc::POLLIN, deadline) {
                return;
            }
        }
    }

    /// Caps the kernel's send buffer (`SO_SNDBUF`; Linux doubles the value for its bookkeeping and
    /// stops autotuning it). A throttled link otherwise lets the kernel absorb seconds of media
    /// that can no longer be dropped. Best effort: false when the kernel refused.
    pub fn set_send_buffer(&self, bytes: usize) -> bool {
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: valid fd owned by self, pointer and length of one c_int.
        unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    }

    /// Bytes accepted by write_some that have not left the machine: the kernel's unsent queue
    /// (Linux `SIOCOUTQ`) plus, under TLS, encrypted records still held for the socket (at most one
    /// write's worth: plaintext is refused while they wait). Under TLS the count is of encrypted
    /// bytes, a few percent more than the RTMP bytes they carry.
    pub fn unsent_bytes(&self) -> Option<usize> {
        #[cfg(feature = "tls")]
        let held = self.tls.as_ref().map_or(0, |t| t.buffered());
        #[cfg(not(feature = "tls"))]
        let held = 0;
        self.kernel_unsent_bytes().map(|n| n + held)
    }

    fn kernel_unsent_bytes(&self) -> Option<usize> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let mut n: libc::c_int = 0;
            // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one c_int through the pointer; the fd is a
            // live TCP socket owned by self.
            let rc = unsafe { libc::ioctl(self.stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
            if rc == 0 {
                return Some(n.max(0) as usize);
            }
        }
        None
    }
}

/// Sleeps until the socket `fd` has one of `events`, the waker fires, or `timeout` passes.
pub(crate) fn wait_socket(
    fd: std::os::fd::RawFd,
    events: libc::c_short,
    waker: Option<&WakeReceiver>,
    timeout: Duration,
) -> Readiness {
    let mut fds = [
        libc::pollfd { fd, events, revents: 0 },
        libc::pollfd { fd: waker.map_or(-1, |w| w.raw_fd()), events: libc::POLLIN, revents: 0 },
    ];
    poll(&mut fds, timeout);
    let r = fds[0].revents;
    let ready = Readiness {
        // Errors and hang-ups show up as readable so the next read reports them.
        readable: r & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0,
        writable: r & (libc::POLLOUT | libc::POLLERR) != 0,
        woken: fds[1].revents & libc::POLLIN != 0,
    };
    if ready.woken {
        if let Some(w) = waker {
            w.drain();
        }
    }
    ready
}

enum Attempt {
    Failed(io::Error),
    Cancelled(Error),
}

/// One non-blocking connect, polled until it completes, `deadline` passes or `cancel` says stop.
fn connect_one(
    addr: SocketAddr,
    deadline: Instant,
    waker: Option<&WakeReceiver>,
    cancel: &mut dyn FnMut() -> Option<Error>,
) -> std::result::Result<TcpStream, Attempt> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(Attempt::Failed)?;
    socket.set_nonblocking(true).map_err(Attempt::Failed)?;
    match socket.connect(&addr.into()) {
        Ok(()) => return Ok(socket.into()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(Attempt::Failed(e)),
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Attempt::Failed(io::Error::new(io::ErrorKind::TimedOut, "connection timed out")));
        }
        let ready = wait_socket(socket.as_raw_fd(), libc::POLLOUT, waker, left.min(Duration::from_millis(100)));
        if let Some(e) = cancel() {
            return Err(Attempt::Cancelled(e));
        }
        if ready.writable {
            return match socket.take_error() {
                Ok(None) => Ok(socket.into()),
                Ok(Some(e)) | Err(e) => Err(Attempt::Failed(e)),
            };
        }
    }
}

/// Waits for `events` on `fd` until `deadline`; false once the deadline has passed.
fn poll_until(fd: std::os::fd::RawFd, events: libc::c_short, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    poll(&mut [libc::pollfd { fd, events, revents: 0 }], left);
    true
}

fn poll(fds: &mut [libc::pollfd], timeout: Duration) {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: fds is a valid, exclusively borrowed array of pollfd for the duration of the call;
    // negative fds are ignored by poll(2).
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn refused_connect_is_classified() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = Transport::connect("127.0.0.1", port, Instant::now() + Duration::from_secs(2)).err().unwrap();
        assert_eq!(e.code(), crate::ResultCode::KP_ERR_CONNECT, "{e}");
        assert!(e.is_retryable());
    }

    #[test]
    fn writes_reads_and_wakes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut t = Transport::connect("localhost", port, Instant::now() + Duration::from_secs(5)).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        assert_eq!(t.write_some(b"hello").unwrap(), 5);
        let mut buf = [0u8; 5];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(t.read_some(&mut buf).unwrap(), None);
        peer.write_all(b"hi").unwrap();
        let r = t.wait(false, None, Duration::from_secs(5));
        assert!(r.readable);
        assert_eq!(t.read_some(&mut buf).unwrap(), Some(2));

        let (waker, rx) = wake_pair().unwrap();
        let start = Instant::now();
        std::thread::spawn(move || waker.wake());
        let r = t.wait(false, Some(&rx), Duration::from_secs(5));
        assert!(r.woken && start.elapsed() < Duration::from_secs(4));

        drop(peer);
        t.wait(false, None, Duration::from_secs(5));
        assert!(t.read_some(&mut buf).is_err());
    }

    #[test]
    fn unresolvable_host_is_a_dns_error() {
        let e = resolve("no-such-host.invalid", 1935, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.code(), crate::ResultCode::KP_ERR_DNS);
    }
}
