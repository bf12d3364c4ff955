//! A connected, non-blocking UDP socket for datagram transports (SRT): resolved with the same
//! deadline as a TCP connect, waited on together with the worker's wake-up fd
//! ([`super::transport::Waker`]).

use super::transport::{resolve, wait_socket, Readiness, WakeReceiver};
use crate::error::{Error, Result};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Kernel buffers for a keyframe's burst of datagrams (and the peer's ACKs meanwhile): the
/// default ~200 KiB drops a 1 MB keyframe written at once.
const SOCKET_BUFFER: libc::c_int = 2 * 1024 * 1024;

pub struct Udp {
    socket: UdpSocket,
    peer: SocketAddr,
}

/// An unconnected, non-blocking UDP socket for ICE (WHIP): bound to the local address of the
/// route toward a host, so that address is the one host candidate we offer, and it sends to
/// whichever candidate the peer answers with.
pub struct UdpPort {
    socket: UdpSocket,
    local: SocketAddr,
}

impl UdpPort {
    /// Binds on the address the kernel would send from toward `host` (resolved by `deadline`).
    pub fn toward(host: &str, port: u16, deadline: Instant) -> Result<UdpPort> {
        let addrs = resolve(host, port, deadline.saturating_duration_since(Instant::now()))?;
        let probe = Udp::connect_to(addrs[0])?;
        let ip = probe.socket.local_addr().map_err(|e| Error::from_io("local address", &e))?.ip();
        let socket = UdpSocket::bind((ip, 0)).map_err(|e| Error::from_io(&format!("bind UDP on {ip}"), &e))?;
        socket.set_nonblocking(true).map_err(|e| Error::from_io("set non-blocking", &e))?;
        set_buffers(&socket);
        let local = socket.local_addr().map_err(|e| Error::from_io("local address", &e))?;
        Ok(UdpPort { socket, local })
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Sends one datagram; false when the kernel's buffer is full.
    pub fn send_to(&self, datagram: &[u8], to: SocketAddr) -> Result<bool> {
        match self.socket.send_to(datagram, to) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Ok(false),
            // A candidate with nothing behind it answers with ICMP: ICE tries the next pair.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(true),
            Err(e) => Err(Error::from_io(&format!("send to {to}"), &e)),
        }
    }

    /// One datagram and its source, or None when nothing is waiting.
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<Option<(usize, SocketAddr)>> {
        loop {
            match self.socket.recv_from(buf) {
                Ok(r) => return Ok(Some(r)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP refusal from a candidate ICE probed: not this socket's failure.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(Error::from_io("receive", &e)),
            }
        }
    }

    pub fn wait(&self, want_write: bool, waker: Option<&WakeReceiver>, timeout: Duration) -> Readiness {
        let events = if want_write { libc::POLLIN | libc::POLLOUT } else { libc::POLLIN };
        wait_socket(self.socket.as_raw_fd(), events, waker, timeout)
    }
}

fn set_buffers(socket: &UdpSocket) {
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: valid fd owned by `socket`, pointer and length of one c_int. Best effort.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&SOCKET_BUFFER as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl Udp {
    /// Resolves `host` within the deadline and connects a socket of the address's family to it
    /// (nothing is sent: UDP has no handshake of its own).
    pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<Udp> {
        let addrs = resolve(host, port, deadline.saturating_duration_since(Instant::now()))?;
        Udp::connect_to(addrs[0])
    }

    fn connect_to(peer: SocketAddr) -> Result<Udp> {
        let local: SocketAddr = if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local).map_err(|e| Error::from_io("bind UDP socket", &e))?;
        socket.connect(peer).map_err(|e| Error::from_io(&format!("connect UDP to {peer}"), &e))?;
        socket.set_nonblocking(true).map_err(|e| Error::from_io("set non-blocking", &e))?;
        set_buffers(&socket);
        Ok(Udp { socket, peer })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends one datagram; false when the kernel's buffer is full (try again when writable).
    /// A peer port with nothing behind it shows up here or in `recv` as a refused connection.
    pub fn send(&self, datagram: &[u8]) -> Result<bool> {
        match self.socket.send(datagram) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(Error::from_io(&format!("send to {}", self.peer), &e)),
        }
    }

    /// One datagram, or None when nothing is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        match self.socket.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(Error::from_io(&format!("receive from {}", self.peer), &e)),
        }
    }

    /// Sleeps until a datagram arrives, the socket takes more (when `want_write`), the waker
    /// fires, or `timeout` passes.
    pub fn wait(&self, want_write: bool, waker: Option<&WakeReceiver>, timeout: Duration) -> Readiness {
        let events = if want_write { libc::POLLIN | libc::POLLOUT } else { libc::POLLIN };
        wait_socket(self.socket.as_raw_fd(), events, waker, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_both_ways_and_a_refused_port() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = peer.local_addr().unwrap().port();
        let u = Udp::connect("127.0.0.1", port, Instant::now() + Duration::from_secs(2)).unwrap();
        assert!(u.send(b"ping").unwrap());
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        peer.send_to(b"pong", from).unwrap();
        assert!(u.wait(false, None, Duration::from_secs(5)).readable);
        assert_eq!(u.recv(&mut buf).unwrap(), Some(4));
        assert_eq!(u.recv(&mut buf).unwrap(), None);
        // Nothing listens any more: the kernel's ICMP answer comes back as a refusal.
        drop(peer);
        u.send(b"anyone?").unwrap();
        u.wait(false, None, Duration::from_secs(2));
        let e = u.recv(&mut buf).unwrap_err();
        assert_eq!(e.code(), crate::ResultCode::KP_ERR_CONNECT, "{e}");
    }
}
