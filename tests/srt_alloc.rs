//! The SRT sender core allocates nothing per packet in steady state: a counting
//! `#[global_allocator]` watches a scripted session (no sockets) that sends, retransmits on NAKs,
//! answers full ACKs, drops too-late packets and encrypts, after a warm-up that lets the send
//! ring reach its working size. One test in this binary: the counter is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use kitepush::core::srt::packet::{write_control_header, write_nak_entry, Ack, Handshake, HsExt, SRT_MAGIC};
use kitepush::core::srt::{packet, SrtConfig, SrtSender, MAX_DATAGRAM};

struct Counting;
static ENABLED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ENABLED.load(Relaxed) {
            COUNT.fetch_add(1, Relaxed);
        }
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ENABLED.load(Relaxed) {
            COUNT.fetch_add(1, Relaxed);
        }
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ME: u32 = 0x0100_0001;
const PEER: u32 = 0x0200_0002;

fn control(buf: &mut [u8], ctype: u16, info: u32, cif: &[u8]) -> usize {
    let n = write_control_header(buf, ctype, info, 0, ME);
    buf[n..n + cif.len()].copy_from_slice(cif);
    n + cif.len()
}

#[test]
fn steady_state_allocates_nothing_per_packet() {
    let t0 = Instant::now();
    let cfg = SrtConfig { passphrase: Some("steady-state-secret".into()), ..SrtConfig::default() };
    let mut s = SrtSender::new(cfg, ME, 1000, 9, t0).unwrap();
    let mut out = [0u8; MAX_DATAGRAM];
    let mut inp = [0u8; MAX_DATAGRAM];

    // Handshake.
    s.poll_transmit(t0, &mut out).unwrap();
    let mut cif = [0u8; 64];
    let hs =
        Handshake { version: 5, extension: SRT_MAGIC, hs_type: 1, socket_id: PEER, cookie: 7, ..Default::default() };
    hs.write(&mut cif);
    let n = control(&mut inp, packet::CTRL_HANDSHAKE, 0, &cif[..48]);
    s.handle_datagram(t0, &inp[..n]);
    let n = s.poll_transmit(t0, &mut out).unwrap();
    let km_at = 16 + 48 + 16;
    let km = out[km_at + 4..n].to_vec();
    let hs = Handshake {
        version: 5,
        hs_type: packet::HS_TYPE_CONCLUSION,
        socket_id: PEER,
        flow_window: 8192,
        ..Default::default()
    };
    let mut cif = vec![0u8; 48 + 16 + 4 + km.len()];
    hs.write(&mut cif);
    packet::write_ext_header(&mut cif[48..], packet::EXT_HSRSP, 3);
    HsExt { version: packet::SRT_VERSION, flags: 0xBF, recv_delay_ms: 120, send_delay_ms: 0 }.write(&mut cif[52..]);
    packet::write_ext_header(&mut cif[64..], packet::EXT_KMRSP, (km.len() / 4) as u16);
    cif[68..].copy_from_slice(&km);
    let n = control(&mut inp, packet::CTRL_HANDSHAKE, 0, &cif);
    s.handle_datagram(t0, &inp[..n]);
    assert!(s.is_connected());
    while s.poll_event().is_some() {}

    // 1 packet per 2 ms, 1316 bytes; every 10 ms a full ACK trailing by ~20 packets; every
    // 50 ms a NAK; every 3 s a 1.5 s gap in ACKs, so packets get dropped too late.
    let payload = [0x47u8; 1316];
    let mut next_seq_to_ack = 1000u32;
    let mut sent = 0u64;
    let mut run = |from: u64, to: u64, s: &mut SrtSender| {
        for k in from..to {
            let now = t0 + Duration::from_millis(k * 2);
            s.send(now, &payload).unwrap();
            while s.poll_transmit(now, &mut out).is_some() {
                sent += 1;
            }
            let silent = (k / 1500) % 2 == 1 && (k % 1500) < 750;
            if k % 5 == 0 && !silent {
                let ack_seq = packet::seq_add(1000, (k as u32).saturating_sub(20));
                let mut c = [0u8; 28];
                Ack {
                    ack_seq: if packet::seq_diff(ack_seq, next_seq_to_ack) > 0 { ack_seq } else { next_seq_to_ack },
                    rtt_us: Some(20_000),
                    rtt_var_us: Some(1_000),
                    buffer_available: Some(8000),
                    recv_rate_pkts: Some(500),
                    link_capacity_pkts: Some(5000),
                    recv_rate_bytes: Some(600_000),
                }
                .write(&mut c);
                next_seq_to_ack = ack_seq;
                let n = control(&mut inp, packet::CTRL_ACK, k as u32, &c);
                s.handle_datagram(now, &inp[..n]);
            }
            if k % 25 == 0 && !silent {
                let mut c = [0u8; 8];
                let lo = packet::seq_add(1000, (k as u32).saturating_sub(5));
                let w = write_nak_entry(&mut c, lo, packet::seq_add(lo, 1));
                let n = control(&mut inp, packet::CTRL_NAK, 0, &c[..w]);
                s.handle_datagram(now, &inp[..n]);
            }
            s.handle_timeout(now);
            while s.poll_transmit(now, &mut out).is_some() {
                sent += 1;
            }
            let _ = s.poll_timeout();
            while s.poll_event().is_some() {}
            let _ = s.stats();
        }
    };
    run(0, 4000, &mut s);
    ENABLED.store(true, Relaxed);
    run(4000, 12000, &mut s);
    ENABLED.store(false, Relaxed);
    let st = s.stats();
    assert!(st.packets_retransmitted > 100, "{st:?}");
    assert!(st.packets_dropped > 0, "{st:?}");
    assert!(sent > 12000);
    assert_eq!(COUNT.load(Relaxed), 0, "allocations in 8000 steady-state packets; {st:?}");
}
