//! The UDP fault proxy itself, with plain UdpSockets at both ends: what the SRT tests rely on it for
//! (pass-through, loss rate, delay, bottleneck rate, black hole, live switching) is measured here.

mod common;

use common::udp_proxy::{large_buffers, UdpFaults, UdpProxy};
use common::wait_until;
use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind test socket");
    large_buffers(&s);
    s.set_read_timeout(Some(Duration::from_millis(20))).expect("read timeout");
    s
}

/// Receives one datagram, or `None` once `within` has passed without one.
fn recv(s: &UdpSocket, buf: &mut [u8], within: Duration) -> Option<(usize, SocketAddr)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(r) = s.recv_from(buf) {
            return Some(r);
        }
    }
    None
}

/// Everything that arrives within `within` after the last datagram (the quiet period ends the drain).
fn drain(s: &UdpSocket, quiet: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Some((n, _)) = recv(s, &mut buf, quiet) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn seq(d: &[u8]) -> u32 {
    u32::from_be_bytes(d[..4].try_into().expect("4-byte sequence number"))
}

/// Reads a socket on its own thread, so a test can send thousands of datagrams without them piling up
/// (and overflowing) in the kernel's receive buffer.
struct Collector {
    got: Arc<std::sync::Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn start(s: &UdpSocket) -> Collector {
        let s = s.try_clone().expect("clone socket");
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (got2, stop2) = (Arc::clone(&got), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !stop2.load(Ordering::SeqCst) {
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    if n >= 4 {
                        got2.lock().unwrap().push(seq(&buf));
                    }
                }
            }
        });
        Collector { got, stop, thread: Some(thread) }
    }

    fn count(&self) -> u64 {
        self.got.lock().unwrap().len() as u64
    }

    /// The sequence numbers received, once `expected` have arrived (the proxy's forwarded counter says
    /// how many to expect).
    fn finish(mut self, expected: u64) -> Vec<u32> {
        wait_until(Duration::from_secs(5), "forwarded datagrams to arrive", || self.count() >= expected);
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// An upstream that sends every datagram back to where it came from.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let s = socket();
        let addr = s.local_addr().expect("echo address");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !stop2.load(Ordering::SeqCst) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        });
        Echo { addr, stop, thread: Some(thread) }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Round-trip time of one echo through the proxy, or `None` if nothing came back within `within`.
fn ping(client: &UdpSocket, proxy: &UdpProxy, tag: u32, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    client.send_to(&tag.to_be_bytes(), proxy.addr()).expect("send ping");
    let mut buf = [0u8; 64];
    let deadline = t0 + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let (n, _) = recv(client, &mut buf, left)?;
        if n == 4 && seq(&buf) == tag {
            return Some(t0.elapsed());
        }
    }
}

/// Sends `count` numbered datagrams of `size` bytes from `from` to `to` in bursts of 100, each sent
/// once the previous one has been taken in by the proxy (`received`, the proxy's counter) and by the
/// receiving end (`delivered() >= forwarded()`), so no datagram is lost in a kernel buffer and every
/// loss counted is the proxy's.
fn send_paced(
    from: &UdpSocket,
    to: SocketAddr,
    count: u32,
    size: usize,
    received: impl Fn() -> u64,
    caught_up: impl Fn() -> bool,
) {
    let base = received();
    let mut buf = vec![0xa5u8; size.max(4)];
    for i in 0..count {
        buf[..4].copy_from_slice(&i.to_be_bytes());
        from.send_to(&buf, to).expect("send");
        if i % 100 == 99 || i + 1 == count {
            let want = base + u64::from(i) + 1;
            wait_fast(
                || format!("burst {i}: proxy received {} of {want}, receiver caught up: {}", received(), caught_up()),
                || received() >= want && caught_up(),
            );
        }
    }
}

/// `wait_until` polling every millisecond: pacing thousands of datagrams at 20 ms per check would
/// take seconds.
fn wait_fast(what: impl Fn() -> String, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out after 5 s waiting: {}", what());
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn passes_datagrams_both_ways_unchanged_and_counts_them() {
    let echo = Echo::start();
    let proxy = UdpProxy::start(echo.addr);
    let client = socket();
    let sizes = [1usize, 4, 188, 1316, 1456, 1500, 9000, 60000];
    let mut sent = Vec::new();
    for (i, &size) in sizes.iter().cycle().take(200).enumerate() {
        let mut d: Vec<u8> = (0..size.max(4)).map(|b| (b * 7 + i) as u8).collect();
        d[..4].copy_from_slice(&(i as u32).to_be_bytes());
        client.send_to(&d, proxy.addr()).expect("send");
        sent.push(d);
        if i % 50 == 49 {
            // The echo and proxy keep up with small bursts; this keeps kernel buffers out of the test.
            wait_until(Duration::from_secs(5), "echoes", || proxy.s2c().datagrams as usize > i);
        }
    }
    let got = drain(&client, Duration::from_millis(300));
    assert_eq!(got.len(), sent.len(), "every datagram came back");
    assert!(got == sent, "datagrams came back unchanged and in order");
    let bytes: u64 = sent.iter().map(|d| d.len() as u64).sum();
    let (c2s, s2c) = (proxy.c2s(), proxy.s2c());
    assert_eq!((c2s.received, c2s.datagrams, c2s.bytes, c2s.dropped), (200, 200, bytes, 0), "{c2s:?}");
    assert_eq!((s2c.received, s2c.datagrams, s2c.bytes, s2c.dropped), (200, 200, bytes, 0), "{s2c:?}");
    assert_eq!(proxy.client(), Some(client.local_addr().unwrap()), "replies go to the client");

    // A new client 5-tuple (a caller that rebinds) takes the replies over.
    let client2 = socket();
    client2.send_to(b"\0\0\0\x07new", proxy.addr()).expect("send");
    let mut buf = [0u8; 64];
    let (n, _) = recv(&client2, &mut buf, Duration::from_secs(2)).expect("reply to the new client");
    assert_eq!(&buf[..n], b"\0\0\0\x07new");
    assert!(recv(&client, &mut buf, Duration::from_millis(100)).is_none(), "old client gets nothing");
}

#[test]
fn random_loss_matches_the_percentage_independently_per_direction_and_is_reproducible() {
    const N: u32 = 10_000;
    const LOSS: f32 = 10.0;
    let run = |seed: u64| {
        let server = socket();
        let proxy = UdpProxy::start_seeded(server.local_addr().unwrap(), seed);
        let client = socket();
        // Learn the proxy's upstream-side address so the server can send back through it.
        client.send_to(&u32::MAX.to_be_bytes(), proxy.addr()).unwrap();
        let mut buf = [0u8; 64];
        let (_, proxy_up) = recv(&server, &mut buf, Duration::from_secs(2)).expect("hello through the proxy");
        proxy.set(UdpFaults::PASS.with_loss(LOSS));
        let base = proxy.c2s();

        let at_server = Collector::start(&server);
        let c2s_fwd = || proxy.c2s().datagrams - base.datagrams;
        send_paced(&client, proxy.addr(), N, 200, || proxy.c2s().received, || at_server.count() >= c2s_fwd());
        let up = at_server.finish(c2s_fwd());
        let at_client = Collector::start(&client);
        send_paced(&server, proxy_up, N, 200, || proxy.s2c().received, || at_client.count() >= proxy.s2c().datagrams);
        let down = at_client.finish(proxy.s2c().datagrams);
        // Nothing more trickles in after the counters said so.
        assert!(
            drain(&server, Duration::from_millis(50)).is_empty()
                && drain(&client, Duration::from_millis(50)).is_empty()
        );

        let (c2s, s2c) = (proxy.c2s(), proxy.s2c());
        assert_eq!(c2s.datagrams - base.datagrams, up.len() as u64, "c2s counter = datagrams that arrived");
        assert_eq!(c2s.dropped + c2s.datagrams - base.datagrams - base.dropped, u64::from(N), "{c2s:?}");
        assert_eq!(s2c.datagrams, down.len() as u64, "s2c counter = datagrams that arrived");
        assert_eq!(s2c.dropped + s2c.datagrams, u64::from(N), "{s2c:?}");
        (up, down)
    };
    let (up, down) = run(1);
    for (dir, got) in [("client→server", &up), ("server→client", &down)] {
        let lost = f64::from(N) - got.len() as f64;
        let percent = lost * 100.0 / f64::from(N);
        // Binomial σ = √(N·p·(1−p)) = 30 datagrams = 0.3 points; 1.5 points is 5σ.
        assert!((percent - f64::from(LOSS)).abs() < 1.5, "{dir}: {percent:.2} % lost, want {LOSS} %");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{dir}: order kept");
    }
    // Independent directions: the datagrams lost one way are not the ones lost the other way (both
    // draw from one generator each; identical streams would lose the same sequence numbers).
    let lost = |got: &Vec<u32>| -> HashSet<u32> {
        let got: HashSet<u32> = got.iter().copied().collect();
        (0..N).filter(|i| !got.contains(i)).collect()
    };
    let (lost_up, lost_down) = (lost(&up), lost(&down));
    let both = lost_up.intersection(&lost_down).count();
    assert!(both < 250, "{both} sequence numbers lost both ways; independent draws give ~100");

    let (up_again, _) = run(1);
    assert_eq!(up_again, up, "same seed, same traffic: same losses");
    let (up_other, _) = run(2);
    assert_ne!(up_other, up, "another seed loses other datagrams");
}

#[test]
fn delay_adds_to_each_direction_and_keeps_order() {
    let echo = Echo::start();
    let proxy = UdpProxy::start(echo.addr);
    let client = socket();
    assert!(ping(&client, &proxy, 0, Duration::from_secs(2)).is_some(), "pass-through first");
    proxy.set(UdpFaults::PASS.with_delay_ms(50));
    let mut rtts: Vec<Duration> =
        (1..=10).map(|i| ping(&client, &proxy, i, Duration::from_secs(2)).expect("echo under delay")).collect();
    rtts.sort();
    eprintln!("RTT with 50 ms each way: min {:?}, median {:?}, max {:?}", rtts[0], rtts[5], rtts[9]);
    assert!(rtts[0] >= Duration::from_millis(100), "RTT {:?} < 2 × 50 ms", rtts[0]);
    assert!(rtts[5] < Duration::from_millis(125), "median RTT {:?} far above 100 ms", rtts[5]);

    // A burst far denser than the delay: all of it arrives, in order, ~100 ms later.
    let t0 = Instant::now();
    for i in 0..500u32 {
        client.send_to(&i.to_be_bytes(), proxy.addr()).unwrap();
    }
    let mut buf = [0u8; 64];
    let (_, _) = recv(&client, &mut buf, Duration::from_secs(2)).expect("first of the burst");
    let first = t0.elapsed();
    let mut got = vec![seq(&buf)];
    got.extend(drain(&client, Duration::from_millis(300)).iter().map(|d| seq(d)));
    assert!(first >= Duration::from_millis(100), "first of the burst after {first:?}");
    assert_eq!(got, (0..500).collect::<Vec<_>>(), "whole burst, in order");

    // Lowering the delay live lets nothing overtake what is already queued.
    proxy.set(UdpFaults::PASS.with_delay_ms(200));
    client.send_to(&1000u32.to_be_bytes(), proxy.addr()).unwrap();
    std::thread::sleep(Duration::from_millis(20)); // let 1000 enter the 200 ms queue first
    proxy.set(UdpFaults::PASS);
    client.send_to(&1001u32.to_be_bytes(), proxy.addr()).unwrap();
    let got: Vec<u32> = drain(&client, Duration::from_millis(600)).iter().map(|d| seq(d)).collect();
    assert_eq!(got, vec![1000, 1001], "order kept across a live delay change");
}

#[test]
fn rate_limit_is_a_bottleneck_with_a_bounded_queue() {
    const KBPS: u32 = 800; // 100 000 bytes/s
    const SIZE: usize = 1000;
    let server = socket();
    let proxy = UdpProxy::start(server.local_addr().unwrap());
    proxy.set(UdpFaults::PASS.with_rate_kbps(KBPS));
    let client = socket();
    // Offer twice the rate for 1.5 s: one datagram every 5 ms, each stamped with its send time.
    let start = Instant::now();
    let receiver = std::thread::spawn(move || {
        let mut arrivals = Vec::new(); // (arrival, one-way delay)
        let mut buf = [0u8; 2048];
        while let Some((n, _)) = recv(&server, &mut buf, Duration::from_millis(500)) {
            let sent_us = u64::from_be_bytes(buf[4..12].try_into().unwrap());
            let now = start.elapsed();
            arrivals.push((now, n, now.saturating_sub(Duration::from_micros(sent_us))));
        }
        arrivals
    });
    let mut buf = [0u8; SIZE];
    let mut i = 0u32;
    while start.elapsed() < Duration::from_millis(1500) {
        let due = Duration::from_millis(5) * i;
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait); // pacing the offered load, not waiting for a result
        }
        buf[..4].copy_from_slice(&i.to_be_bytes());
        buf[4..12].copy_from_slice(&(start.elapsed().as_micros() as u64).to_be_bytes());
        client.send_to(&buf, proxy.addr()).unwrap();
        i += 1;
    }
    let arrivals = receiver.join().unwrap();
    // Throughput over the saturated part (from the first arrival once the queue has filled).
    let steady: Vec<_> = arrivals.iter().filter(|a| a.0 >= Duration::from_millis(300)).collect();
    let span = steady.last().unwrap().0 - steady.first().unwrap().0;
    let bytes: usize = steady.iter().skip(1).map(|a| a.1).sum();
    let rate = bytes as f64 / span.as_secs_f64();
    let max_delay = arrivals.iter().map(|a| a.2).max().unwrap();
    let c2s = proxy.c2s();
    eprintln!(
        "offered {} B/s, forwarded {rate:.0} B/s, {} forwarded, {} dropped, max one-way delay {max_delay:?}",
        SIZE * 200,
        c2s.datagrams,
        c2s.dropped
    );
    assert!((rate / 100_000.0 - 1.0).abs() < 0.08, "bottleneck rate {rate:.0} B/s, want 100000 B/s ± 8 %");
    assert!(
        c2s.dropped as f64 > 0.35 * f64::from(i),
        "about half the offered load must be dropped at the full queue: {c2s:?}"
    );
    assert_eq!(c2s.datagrams, arrivals.len() as u64);
    // The queue holds ~100 ms at the rate: a datagram never waits much longer than that.
    // Unbounded, the backlog would reach ~750 ms by the end; the margin is for a loaded machine.
    assert!(max_delay < Duration::from_millis(200), "queueing delay {max_delay:?}: the queue is not bounded");
    assert!(max_delay > Duration::from_millis(80), "queueing delay {max_delay:?}: no queue at all?");
}

#[test]
fn black_hole_drops_both_ways_including_queued_and_recovers_live() {
    let server = socket();
    let proxy = UdpProxy::start(server.local_addr().unwrap());
    let client = socket();
    let mut buf = [0u8; 64];
    client.send_to(&0u32.to_be_bytes(), proxy.addr()).unwrap();
    let (_, proxy_up) = recv(&server, &mut buf, Duration::from_secs(2)).expect("pass-through first");

    // What is queued when the hole opens is swallowed too.
    proxy.set(UdpFaults::PASS.with_delay_ms(200));
    for i in 1..=10u32 {
        client.send_to(&i.to_be_bytes(), proxy.addr()).unwrap();
    }
    wait_until(Duration::from_secs(2), "10 datagrams queued", || proxy.c2s().received == 11);
    proxy.set(UdpFaults::BLACK_HOLE);
    for i in 11..=60u32 {
        client.send_to(&i.to_be_bytes(), proxy.addr()).unwrap();
        server.send_to(&i.to_be_bytes(), proxy_up).unwrap();
    }
    wait_until(Duration::from_secs(2), "proxy to take everything in", || {
        proxy.c2s().received == 61 && proxy.s2c().received == 50
    });
    assert!(drain(&server, Duration::from_millis(400)).is_empty(), "nothing reaches the server");
    assert!(drain(&client, Duration::from_millis(50)).is_empty(), "nothing reaches the client");
    let (c2s, s2c) = (proxy.c2s(), proxy.s2c());
    assert_eq!((c2s.datagrams, c2s.dropped, c2s.dropped_bytes), (1, 60, 240), "{c2s:?}");
    assert_eq!((s2c.datagrams, s2c.dropped), (0, 50), "{s2c:?}");

    proxy.set(UdpFaults::PASS);
    client.send_to(&100u32.to_be_bytes(), proxy.addr()).unwrap();
    server.send_to(&101u32.to_be_bytes(), proxy_up).unwrap();
    let (_, _) = recv(&server, &mut buf, Duration::from_secs(2)).expect("client→server after the hole");
    assert_eq!(seq(&buf), 100);
    let (_, _) = recv(&client, &mut buf, Duration::from_secs(2)).expect("server→client after the hole");
    assert_eq!(seq(&buf), 101);
}

#[test]
fn faults_switch_live_and_combine() {
    let echo = Echo::start();
    let proxy = UdpProxy::start(echo.addr);
    let client = socket();
    let rtt = |tag| ping(&client, &proxy, tag, Duration::from_secs(2));

    let pass = rtt(1).expect("pass");
    assert!(pass < Duration::from_millis(30), "pass-through RTT {pass:?}");
    proxy.set(UdpFaults::PASS.with_delay_ms(40));
    let delayed = rtt(2).expect("delay");
    assert!(delayed >= Duration::from_millis(80), "RTT {delayed:?} under 40 ms each way");
    proxy.set(UdpFaults::PASS.with_loss(100.0));
    assert!(rtt(3).is_none(), "100 % loss lets nothing through");
    proxy.set(UdpFaults::PASS);
    let back = rtt(4).expect("pass again");
    assert!(back < Duration::from_millis(30), "RTT {back:?} after switching back to pass");

    // Loss and delay together: 30 % each way leaves ~49 % of echoes, every one of them late.
    proxy.set(UdpFaults::PASS.with_loss(30.0).with_delay_ms(30));
    let t0 = Instant::now();
    for i in 0..1000u32 {
        client.send_to(&i.to_be_bytes(), proxy.addr()).unwrap();
        if i % 100 == 99 {
            wait_until(Duration::from_secs(2), "burst taken in", || proxy.c2s().received >= 5 + u64::from(i));
        }
    }
    let mut buf = [0u8; 64];
    recv(&client, &mut buf, Duration::from_secs(2)).expect("first echo");
    let first = t0.elapsed();
    let got = 1 + drain(&client, Duration::from_millis(300)).len();
    assert!(first >= Duration::from_millis(60), "first echo after {first:?}, want ≥ 2 × 30 ms");
    assert!((420..=560).contains(&got), "{got} of 1000 echoes through 30 % loss each way (expect ~490)");
}
