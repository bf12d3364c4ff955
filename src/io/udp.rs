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
    /// The kernel takes UDP_SEGMENT (Linux 4.18+): a run of equal-size datagrams to one
    /// destination goes down the stack as one.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    gso: bool,
}

/// Datagrams per `sendmmsg` call, and segments per GSO message (the kernel's UDP_MAX_SEGMENTS
/// was 64 before Linux 6.x raised it).
#[cfg(any(target_os = "linux", target_os = "android"))]
const BATCH: usize = 64;
/// Bytes in one GSO message: the UDP length field's 64 KiB less headers, with room to spare.
#[cfg(any(target_os = "linux", target_os = "android"))]
const GSO_MAX_BYTES: usize = 60_000;

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
        Ok(UdpPort {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            gso: gso_supported(&socket),
            socket,
            local,
        })
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

    /// Sends datagrams in order, as [`UdpPort::send_to`] would one by one (a full kernel buffer
    /// drops what does not fit), in as few system calls as the platform allows: per-packet
    /// `sendto` was the largest single cost of a WHIP push.
    pub fn send_all<D: AsRef<[u8]>>(&mut self, datagrams: &[(SocketAddr, D)]) -> Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if datagrams.len() > 1 {
            for chunk in datagrams.chunks(BATCH) {
                self.send_chunk(chunk)?;
            }
            return Ok(());
        }
        for (to, d) in datagrams {
            self.send_to(d.as_ref(), *to)?;
        }
        Ok(())
    }

    /// One `sendmmsg` (repeated only past a datagram the kernel refused) for at most [`BATCH`]
    /// datagrams; with GSO a run of equal sizes to one destination (the last may be shorter) is
    /// one message.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn send_chunk<D: AsRef<[u8]>>(&mut self, chunk: &[(SocketAddr, D)]) -> Result<()> {
        use std::mem::zeroed;
        debug_assert!(chunk.len() <= BATCH);
        // SAFETY: plain C structs for which all-zero is a valid value.
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        // One cmsghdr (16 bytes) and its u16 payload, 8-byte aligned.
        let mut controls = [[0u64; 4]; BATCH];
        // Each message's first datagram and datagram count (for the fallback).
        let mut runs = [(0usize, 0usize); BATCH];
        for (i, (_, d)) in chunk.iter().enumerate() {
            let d = d.as_ref();
            iov[i] = libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() };
        }
        let mut n = 0;
        let mut i = 0;
        while i < chunk.len() {
            let (to, first) = (chunk[i].0, chunk[i].1.as_ref().len());
            let mut run = 1;
            let mut bytes = first;
            if self.gso {
                while i + run < chunk.len() {
                    let (next_to, next) = (chunk[i + run].0, chunk[i + run].1.as_ref().len());
                    if next_to != to || next > first || bytes + next > GSO_MAX_BYTES {
                        break;
                    }
                    run += 1;
                    bytes += next;
                    if next < first {
                        break; // a shorter datagram can only end a run
                    }
                }
            }
            let (addr, addr_len) = raw_addr(to);
            addrs[n] = addr;
            let hdr = &mut msgs[n].msg_hdr;
            hdr.msg_name = (&mut addrs[n] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = addr_len;
            hdr.msg_iov = iov[i..].as_mut_ptr();
            hdr.msg_iovlen = run as _;
            if run > 1 {
                hdr.msg_control = controls[n].as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE(2) = 24 <= 32 bytes of 8-byte-aligned storage.
                unsafe {
                    hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let cmsg = libc::CMSG_FIRSTHDR(hdr);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), first as u16);
                }
            }
            runs[n] = (i, run);
            n += 1;
            i += run;
        }
        let fd = self.socket.as_raw_fd();
        let mut at = 0;
        while at < n {
            // SAFETY: msgs[at..n] point into iov, addrs and controls, all alive until we return,
            // and at the datagrams the caller lends us.
            let sent = unsafe { libc::sendmmsg(fd, msgs[at..].as_mut_ptr(), (n - at) as _, 0) };
            if sent >= 0 {
                at += (sent as usize).max(1);
                continue;
            }
            let e = io::Error::last_os_error();
            let (first, run) = runs[at];
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                // A full buffer drops the message, as the network would: RTP repairs. A refused
                // candidate is ICE's business (see send_to).
                io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused => at += 1,
                // No GSO after all (EIO: no checksum offload on the route's device; EINVAL: the
                // kernel refuses the segment size): this message and all later ones one by one.
                _ if run > 1 && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) => {
                    log::debug!("UDP GSO refused ({e}); sending datagrams one by one");
                    self.gso = false;
                    for (to, d) in &chunk[first..] {
                        self.send_to(d.as_ref(), *to)?;
                    }
                    return Ok(());
                }
                _ => return Err(Error::from_io(&format!("send to {}", chunk[first].0), &e)),
            }
        }
        Ok(())
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

/// Whether the kernel knows UDP_SEGMENT (reading it fails on kernels before 4.18).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn gso_supported(socket: &UdpSocket) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd owned by `socket`, pointer and length of one c_int.
    unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        ) == 0
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn raw_addr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let sa = socket2::SockAddr::from(addr);
    // SAFETY: all-zero is a valid sockaddr_storage; `sa` holds `len` bytes of a sockaddr, which fit.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            sa.len() as usize,
        );
        (storage, sa.len())
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

    fn receive_all(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2048];
        (0..count)
            .map(|_| {
                let n = socket.recv(&mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_batch_arrives_datagram_by_datagram_in_order_with_and_without_gso() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        for gso in [true, false] {
            let mut port = UdpPort::toward("127.0.0.1", to_a.port(), Instant::now() + Duration::from_secs(2)).unwrap();
            port.gso &= gso;
            // Equal runs, a shorter one ending a run, a longer one, another destination between,
            // and more than one chunk's worth.
            let sizes = [1000, 1000, 1000, 600, 1000, 1200, 1200, 50, 1000, 1000];
            let mut batch: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
            for round in 0..8u8 {
                for (i, &n) in sizes.iter().enumerate() {
                    let to = if i == 7 { to_b } else { to_a };
                    batch.push((to, vec![round * 16 + i as u8; n]));
                }
            }
            port.send_all(&batch).unwrap();
            let want = |to| batch.iter().filter(|(t, _)| *t == to).map(|(_, d)| d.clone()).collect::<Vec<_>>();
            let (want_a, want_b) = (want(to_a), want(to_b));
            assert_eq!(receive_all(&a, want_a.len()), want_a, "gso {gso}");
            assert_eq!(receive_all(&b, want_b.len()), want_b, "gso {gso}");
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_kernel_that_refuses_gso_gets_the_batch_one_datagram_at_a_time() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = a.local_addr().unwrap();
        let mut port = UdpPort::toward("127.0.0.1", to.port(), Instant::now() + Duration::from_secs(2)).unwrap();
        assert!(port.gso, "this kernel has UDP GSO (Linux 4.18+): the refusal below needs it on");
        // Without UDP checksums the kernel refuses a GSO message with EINVAL (udp_send_skb), as
        // a device without checksum offload does with EIO.
        let one: libc::c_int = 1;
        // SAFETY: valid fd owned by the port, pointer and length of one c_int.
        let r = unsafe {
            libc::setsockopt(
                port.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        // A single datagram, then runs of equal sizes (each would be one GSO message).
        let mut batch: Vec<(SocketAddr, Vec<u8>)> = vec![(to, vec![0xee; 300])];
        batch.extend((0..24u8).map(|i| (to, vec![i; if i % 8 == 7 { 500 } else { 1100 }])));
        port.send_all(&batch).unwrap();
        assert!(!port.gso, "the refusal turned GSO off");
        let want: Vec<Vec<u8>> = batch.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(receive_all(&a, want.len()), want);
        // And it stays off: the next batch goes datagram by datagram from the start.
        port.send_all(&batch).unwrap();
        assert_eq!(receive_all(&a, want.len()), want);
    }

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
