//! Self-test of the fault-injecting proxy in `tests/common/proxy.rs`, against a small echo server, so
//! that a failure in the reconnect tests can be blamed on the SDK and not on the proxy.
//!
//! Timing assertions only bound from below (a fault must not be weaker than asked) and very generously
//! from above, so a loaded machine cannot make them fail.

mod common;

use common::proxy::*;
use common::wait_until;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(5);

/// Echoes every connection until EOF. Its threads are left to the end of the test process.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut reader = conn.try_clone().expect("clone echo socket");
                let _ = io::copy(&mut reader, &mut conn);
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

fn connect(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect to proxy");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn assert_echoes(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("write to proxy");
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).expect("echo through proxy");
    assert_eq!(back, msg);
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The connection is gone: EOF or an error, but not merely silence.
fn assert_closed(s: &mut TcpStream) {
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!("expected a closed connection, read {n} bytes"),
        Err(e) if is_timeout(&e) => panic!("connection still open after {DEADLINE:?}"),
        Err(_) => {}
    }
}

#[test]
fn pass_forwards_both_ways_and_counts() {
    let proxy = Proxy::start(echo_server());
    assert_eq!(proxy.url("live", "key"), format!("rtmp://127.0.0.1:{}/live/key", proxy.port()));
    let mut s = connect(&proxy);
    assert_echoes(&mut s, b"hello");
    assert_echoes(&mut s, &[7u8; 20_000]);
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(proxy.refused(), 0);
    assert_eq!(proxy.attempt_times().len(), 1);
    // The echo can overtake the proxy's bookkeeping of its last write, hence the wait.
    wait_until(DEADLINE, "20 005 bytes counted", || proxy.bytes_upstream() == 20_005);
    assert_eq!(proxy.live_connections(), 1);

    // Bulk data arrives intact; the rate is printed, not asserted, to keep the test load-proof.
    const BULK: usize = 4 << 20;
    let data: Vec<u8> = (0..BULK).map(|i| (i % 253) as u8).collect();
    let mut reader = s.try_clone().unwrap();
    let start = Instant::now();
    let echo = thread::spawn(move || {
        let mut back = vec![0; BULK];
        reader.read_exact(&mut back).map(|_| back)
    });
    s.write_all(&data).unwrap();
    assert!(echo.join().unwrap().expect("bulk echo") == data, "bulk data corrupted");
    let took = start.elapsed();
    eprintln!("pass-through: 4 MiB echoed in {took:?} ({:.0} MB/s each way)", BULK as f64 / took.as_secs_f64() / 1e6);
    wait_until(DEADLINE, "bulk bytes counted", || proxy.bytes_upstream() == (20_005 + BULK) as u64);

    // A half-close travels through, and the finished connection is no longer live.
    s.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut s);
    wait_until(DEADLINE, "connection to end", || proxy.live_connections() == 0);
}

#[test]
fn cut_closes_live_connections_and_new_ones_work() {
    let proxy = Proxy::start(echo_server());
    let mut a = connect(&proxy);
    let mut b = connect(&proxy);
    assert_echoes(&mut a, b"a");
    assert_echoes(&mut b, b"b");

    proxy.set(Fault::Cut);
    assert_closed(&mut a);
    assert_closed(&mut b);

    let mut c = connect(&proxy);
    assert_echoes(&mut c, b"after the cut");
    wait_until(DEADLINE, "cut connections to end", || proxy.live_connections() == 1);
    assert_eq!(proxy.accepted(), 3);
}

#[test]
fn cut_while_stalled_closes_parked_connections() {
    let proxy = Proxy::start(echo_server());
    let mut a = connect(&proxy);
    assert_echoes(&mut a, b"a");
    proxy.set(Fault::Stall);
    proxy.set(Fault::Cut);
    assert_closed(&mut a);
    // Cut ends the stall too.
    assert_echoes(&mut connect(&proxy), b"b");
}

#[test]
fn refuse_is_a_real_refusal_and_live_connections_survive() {
    let proxy = Proxy::start(echo_server());
    let mut live = connect(&proxy);
    assert_echoes(&mut live, b"before");

    proxy.set(Fault::Refuse);
    for _ in 0..3 {
        let err = TcpStream::connect(("127.0.0.1", proxy.port())).expect_err("connect must fail under Refuse");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }
    // The port stays the proxy's while refusing: nobody else can bind it.
    assert!(TcpListener::bind(("127.0.0.1", proxy.port())).is_err());
    assert_echoes(&mut live, b"during");

    // Refuse + Cut: a server that died. It keeps refusing after the cut.
    proxy.set(Fault::Cut);
    assert_closed(&mut live);
    let err = TcpStream::connect(("127.0.0.1", proxy.port())).expect_err("still refusing");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");

    proxy.set(Fault::Pass);
    assert_echoes(&mut connect(&proxy), b"after");
    assert_eq!(proxy.accepted(), 2);
    // Kernel refusals never reach the proxy.
    assert_eq!(proxy.refused(), 0);
    assert_eq!(proxy.attempt_times().len(), 2);
}

#[test]
fn reject_resets_new_connections_counts_and_timestamps_them() {
    let proxy = Proxy::start(echo_server());
    let mut live = connect(&proxy);
    assert_echoes(&mut live, b"before");

    proxy.set(Fault::Reject);
    let before = Instant::now();
    for _ in 0..2 {
        // The kernel completes the handshake; the proxy resets the connection right after accepting it
        // (possibly before the options below are set, hence no unwrap on them — or even before
        // connect() returns, which then reports the reset itself).
        match TcpStream::connect(("127.0.0.1", proxy.port())) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(DEADLINE));
                assert_closed(&mut s);
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "connect under Reject: {e}"),
        }
    }
    wait_until(DEADLINE, "two rejections", || proxy.refused() == 2);
    assert_echoes(&mut live, b"during");

    proxy.set(Fault::Pass);
    assert_echoes(&mut connect(&proxy), b"after");
    assert_eq!(proxy.accepted(), 2);
    assert_eq!(proxy.refused(), 2);
    let times = proxy.attempt_times();
    assert_eq!(times.len(), 4);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(times[1] >= before && times[2] >= before);
}

#[test]
fn stall_holds_data_until_pass() {
    let proxy = Proxy::start(echo_server());
    let mut s = connect(&proxy);
    assert_echoes(&mut s, b"warm-up");

    proxy.set(Fault::Stall);
    let mut fresh = connect(&proxy);
    s.write_all(b"ping").expect("a write still goes into the socket");
    fresh.write_all(b"pong").unwrap();
    for c in [&mut s, &mut fresh] {
        c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut b = [0u8; 4];
        match c.read(&mut b) {
            Err(e) if is_timeout(&e) => {}
            other => panic!("expected silence while stalled, got {other:?}"),
        }
    }
    wait_until(DEADLINE, "the stalled new connection to be accepted", || proxy.accepted() == 2);
    assert_eq!(proxy.bytes_upstream(), 7);

    proxy.set(Fault::Pass);
    for (c, msg) in [(&mut s, b"ping"), (&mut fresh, b"pong")] {
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).expect("echo after the stall ends");
        assert_eq!(&b, msg);
    }
}

#[test]
fn throttle_limits_client_to_server_rate() {
    const LEN: usize = 100 * 1024;
    let proxy = Proxy::start(echo_server());
    proxy.set(Fault::Throttle { kbit_per_s: 200 });
    let mut s = connect(&proxy);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();

    let start = Instant::now();
    let mut reader = s.try_clone().unwrap();
    let echo = thread::spawn(move || {
        let mut back = vec![0; LEN];
        reader.read_exact(&mut back).map(|_| back)
    });
    s.write_all(&data).unwrap();
    let back = echo.join().unwrap().expect("throttled echo");
    let took = start.elapsed();
    assert!(back == data, "data corrupted through the throttle");
    wait_until(DEADLINE, "throttled bytes counted", || proxy.bytes_upstream() == LEN as u64);
    // 100 KiB at 25 000 B/s is 4.1 s, less the ~50 ms bucket.
    eprintln!("throttled 100 KiB at 200 kbit/s in {took:?}");
    assert!(took >= Duration::from_secs(3), "too fast: {took:?}");
    assert!(took < Duration::from_secs(30), "far too slow: {took:?}");
}

#[test]
fn delay_applies_in_both_directions() {
    let proxy = Proxy::start(echo_server());
    proxy.set(Fault::Delay { ms: 300 });
    let mut s = connect(&proxy);
    let start = Instant::now();
    assert_echoes(&mut s, b"x");
    let took = start.elapsed();
    eprintln!("round trip with 300 ms delay each way: {took:?}");
    assert!(took >= Duration::from_millis(600), "too fast: {took:?}");
    assert!(took < Duration::from_secs(10), "far too slow: {took:?}");

    // Latency, not a throughput cap: a burst takes about one round trip, not one per chunk.
    let start = Instant::now();
    assert_echoes(&mut s, &[1u8; 64 * 1024]);
    let took = start.elapsed();
    eprintln!("64 KiB burst with 300 ms delay each way: {took:?}");
    assert!(took >= Duration::from_millis(600), "too fast: {took:?}");

    proxy.set(Fault::Pass);
    assert_echoes(&mut s, b"y");
}

#[test]
fn drop_closes_connections_and_the_port() {
    let proxy = Proxy::start(echo_server());
    let port = proxy.port();
    let mut s = connect(&proxy);
    assert_echoes(&mut s, b"x");
    proxy.set(Fault::Stall);
    let start = Instant::now();
    drop(proxy);
    assert!(start.elapsed() < DEADLINE, "drop took {:?}", start.elapsed());
    assert_closed(&mut s);
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("port closed after drop");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn unreachable_upstream_closes_the_client() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = Proxy::start(dead);
    let mut s = connect(&proxy);
    assert_closed(&mut s);
    wait_until(DEADLINE, "connection to end", || proxy.live_connections() == 0);
    assert_eq!(proxy.accepted(), 1);
}
