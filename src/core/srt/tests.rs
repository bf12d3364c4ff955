//! SrtSender on scripted timelines: a fake listener answers with hand-built packets and the
//! test reads what the sender writes.

use std::time::{Duration, Instant};

use super::crypto::{derive_kek, unwrap_key, Crypto};
use super::packet::*;
use super::*;

const ME: u32 = 0x0ABC_0001;
const PEER: u32 = 0x0DEF_0002;
const COOKIE: u32 = 0x1357_9BDF;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Run {
    s: SrtSender,
    t0: Instant,
    buf: Vec<u8>,
}

impl Run {
    fn new(cfg: SrtConfig, isn: u32) -> Run {
        let t0 = Instant::now();
        Run { s: SrtSender::new(cfg, ME, isn, 7, t0).unwrap(), t0, buf: vec![0; MAX_DATAGRAM] }
    }

    fn at(&self, t: u64) -> Instant {
        self.t0 + ms(t)
    }

    fn out(&mut self, t: u64) -> Option<Vec<u8>> {
        let now = self.at(t);
        self.s.poll_transmit(now, &mut self.buf).map(|n| self.buf[..n].to_vec())
    }

    fn all_out(&mut self, t: u64) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.out(t)).collect()
    }

    fn feed(&mut self, t: u64, d: &[u8]) {
        let now = self.at(t);
        self.s.handle_datagram(now, d);
    }

    fn events(&mut self) -> Vec<SrtEvent> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    /// Handshake through to Connected with a peer latency and flow window.
    fn connect(cfg: SrtConfig, isn: u32, flow_window: u32) -> Run {
        let mut r = Run::new(cfg, isn);
        r.out(0).unwrap();
        r.feed(1, &induction_response());
        r.out(1).unwrap();
        r.feed(2, &conclusion_response(120, flow_window, &[]));
        assert_eq!(r.events(), vec![SrtEvent::Connected]);
        r
    }
}

fn control(ctype: u16, info: u32, cif: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN + cif.len()];
    write_control_header(&mut b, ctype, info, 0, ME);
    b[HEADER_LEN..].copy_from_slice(cif);
    b
}

fn handshake(hs: Handshake, exts: &[u8]) -> Vec<u8> {
    let mut cif = vec![0u8; HS_CIF_LEN];
    hs.write(&mut cif);
    cif.extend_from_slice(exts);
    control(CTRL_HANDSHAKE, 0, &cif)
}

fn induction_response() -> Vec<u8> {
    handshake(
        Handshake {
            version: 5,
            extension: SRT_MAGIC,
            mtu: 1500,
            flow_window: 8192,
            hs_type: HS_TYPE_INDUCTION,
            socket_id: PEER,
            cookie: COOKIE,
            ..Default::default()
        },
        &[],
    )
}

fn conclusion_response(latency: u16, flow_window: u32, extra: &[u8]) -> Vec<u8> {
    let mut ext = vec![0u8; 16];
    write_ext_header(&mut ext, EXT_HSRSP, 3);
    HsExt { version: SRT_VERSION, flags: 0xBF, recv_delay_ms: latency, send_delay_ms: 0 }.write(&mut ext[4..]);
    ext.extend_from_slice(extra);
    handshake(
        Handshake {
            version: 5,
            extension: HS_EXT_FLAG_HSREQ,
            mtu: 1500,
            flow_window,
            hs_type: HS_TYPE_CONCLUSION,
            socket_id: PEER,
            ..Default::default()
        },
        &ext,
    )
}

fn full_ack(ack_no: u32, ack_seq: u32, rtt_us: u32, avail: u32) -> Vec<u8> {
    let mut cif = [0u8; 28];
    Ack {
        ack_seq,
        rtt_us: Some(rtt_us),
        rtt_var_us: Some(rtt_us / 10),
        buffer_available: Some(avail),
        recv_rate_pkts: Some(100),
        link_capacity_pkts: Some(1000),
        recv_rate_bytes: Some(130_000),
    }
    .write(&mut cif);
    control(CTRL_ACK, ack_no, &cif)
}

fn nak(ranges: &[(u32, u32)]) -> Vec<u8> {
    let mut cif = vec![0u8; ranges.len() * 8];
    let mut n = 0;
    for (lo, hi) in ranges {
        n += write_nak_entry(&mut cif[n..], *lo, *hi);
    }
    control(CTRL_NAK, 0, &cif[..n])
}

fn data(d: &[u8]) -> DataHeader {
    parse_data_header(d).expect("a data packet")
}

#[test]
fn handshake_induction_then_conclusion_with_resend() {
    let cfg = SrtConfig { stream_id: Some("#!::r=live/x,m=publish".into()), ..SrtConfig::default() };
    let mut r = Run::new(cfg, 1000);
    let p = r.out(0).unwrap();
    let c = parse_control(&p).unwrap();
    assert_eq!((c.ctype, c.dest), (CTRL_HANDSHAKE, 0));
    let hs = Handshake::parse(c.cif).unwrap();
    assert_eq!((hs.version, hs.extension, hs.hs_type, hs.socket_id, hs.initial_seq), (4, UDT_DGRAM, 1, ME, 1000));
    assert_eq!(hs.cookie, 0);
    // Nothing until the 250 ms resend.
    assert!(r.out(249).is_none());
    assert_eq!(r.s.poll_timeout(), Some(r.at(250)));
    assert_eq!(Handshake::parse(parse_control(&r.out(250).unwrap()).unwrap().cif).unwrap().hs_type, 1);

    // The listener's answer (a copy addressed to another socket is ignored).
    let mut foreign = induction_response();
    foreign[12..16].copy_from_slice(&9u32.to_be_bytes());
    r.feed(260, &foreign);
    assert!(r.out(260).is_none());
    r.feed(261, &induction_response());
    let p = r.out(261).unwrap();
    let c = parse_control(&p).unwrap();
    let hs = Handshake::parse(c.cif).unwrap();
    assert_eq!((hs.version, hs.hs_type, hs.cookie, hs.socket_id), (5, HS_TYPE_CONCLUSION, COOKIE, ME));
    assert_eq!(hs.extension, HS_EXT_FLAG_HSREQ | HS_EXT_FLAG_CONFIG);
    assert_eq!(hs.encryption, 0);
    assert_eq!(c.timestamp, 261_000);
    let exts: Vec<_> = hs_extensions(&c.cif[HS_CIF_LEN..]).collect();
    assert_eq!(exts.len(), 2);
    assert_eq!(exts[0].0, EXT_HSREQ);
    let h = HsExt::parse(exts[0].1).unwrap();
    assert_eq!((h.version, h.flags, h.recv_delay_ms, h.send_delay_ms), (SRT_VERSION, 0x3F, 120, 120));
    assert_eq!(exts[1].0, EXT_SID);
    // 22 bytes → 6 words, each byte-reversed.
    assert_eq!(exts[1].1.len(), 24);
    assert_eq!(&exts[1].1[..8], b"::!#il=r");
    // The conclusion is resent too until answered.
    assert!(r.out(510).is_none());
    assert_eq!(Handshake::parse(parse_control(&r.out(511).unwrap()).unwrap().cif).unwrap().cookie, COOKIE);
    assert!(r.s.send(r.at(511), &[0; 10]).is_err(), "no data before the handshake completes");

    r.feed(520, &conclusion_response(200, 4000, &[]));
    assert_eq!(r.events(), vec![SrtEvent::Connected]);
    assert!(r.s.is_connected());
    // A repeated conclusion response changes nothing.
    r.feed(521, &conclusion_response(200, 4000, &[]));
    assert!(r.events().is_empty());
    assert_eq!(r.s.stats().flow_window, 4000);
}

#[test]
fn rejection_is_reported_at_once_without_retry() {
    let mut r = Run::new(SrtConfig::default(), 1);
    r.out(0).unwrap();
    r.feed(1, &induction_response());
    r.out(1).unwrap();
    let mut rej = induction_response();
    // Handshake type field: CIF offset 20.
    rej[HEADER_LEN + 20..HEADER_LEN + 24].copy_from_slice(&1010u32.to_be_bytes());
    r.feed(2, &rej);
    assert_eq!(r.events(), vec![SrtEvent::Rejected { code: 1010, reason: "incorrect passphrase" }]);
    assert_eq!(r.s.poll_timeout(), None);
    assert!(r.out(1000).is_none());

    // An HSv4-only listener (no SRT magic in its induction answer).
    let mut r = Run::new(SrtConfig::default(), 1);
    r.out(0).unwrap();
    let mut v4 = induction_response();
    v4[HEADER_LEN + 6..HEADER_LEN + 8].copy_from_slice(&0u16.to_be_bytes());
    r.feed(1, &v4);
    assert!(matches!(r.events()[..], [SrtEvent::Rejected { code: 1008, .. }]));
}

#[test]
fn data_packets_carry_sequence_message_timestamp_and_peer_id() {
    let mut r = Run::connect(SrtConfig::default(), SEQ_MASK - 1, 8192);
    for k in 0..4u8 {
        r.s.send(r.at(10 + u64::from(k)), &[k; 100]).unwrap();
    }
    let out = r.all_out(20);
    assert_eq!(out.len(), 4);
    let seqs: Vec<_> = out.iter().map(|p| data(p).seq).collect();
    assert_eq!(seqs, vec![SEQ_MASK - 1, SEQ_MASK, 0, 1]);
    for (k, p) in out.iter().enumerate() {
        let h = data(p);
        assert_eq!((h.position, h.in_order, h.kk, h.retransmitted), (0b11, false, KK_NONE, false));
        assert_eq!(h.msgno, k as u32 + 1);
        assert_eq!(h.timestamp, (10 + k as u32) * 1000, "timestamp = queue time since the start");
        assert_eq!(h.dest, PEER);
        assert_eq!(&p[HEADER_LEN..], &[k as u8; 100][..]);
    }
    assert_eq!(r.s.unacked(), 4);
    // Too big, empty.
    assert!(r.s.send(r.at(21), &[0; 1317]).is_err());
    assert!(r.s.send(r.at(21), &[]).is_err());
}

#[test]
fn full_ack_releases_and_is_answered_light_ack_is_not() {
    let mut r = Run::connect(SrtConfig::default(), 100, 8192);
    for _ in 0..5 {
        r.s.send(r.at(10), &[1; 50]).unwrap();
    }
    assert_eq!(r.all_out(10).len(), 5);
    // Within the handshake's RTT (1 ms) + an ACK period of the sends: an ACK naming 102 later
    // than that would mean 102's copy was lost, and 102 would be resent.
    r.feed(20, &control(CTRL_ACK, 0, &102u32.to_be_bytes()));
    assert_eq!(r.s.unacked(), 3);
    assert!(r.all_out(20).is_empty(), "no ACKACK for a light ACK");
    r.feed(40, &full_ack(7, 105, 30_000, 5000));
    assert_eq!(r.s.unacked(), 0);
    let out = r.all_out(40);
    assert_eq!(out.len(), 1);
    let c = parse_control(&out[0]).unwrap();
    assert_eq!((c.ctype, c.info, c.dest), (CTRL_ACKACK, 7, PEER));
    let st = r.s.stats();
    assert_eq!((st.rtt_ms, st.rtt_var_ms, st.flow_window), (30.0, 3.0, 5000));
    assert_eq!((st.peer_recv_rate_pkts, st.peer_link_capacity_pkts, st.peer_recv_rate_bps), (100, 1000, 1_040_000));
    assert_eq!(st.last_ack, Some(r.at(40)));
    // An ACK beyond what was sent is ignored, and so are stale ones.
    r.s.send(r.at(50), &[1; 50]).unwrap();
    r.all_out(50);
    r.feed(51, &full_ack(8, 110, 30_000, 5000));
    assert_eq!(r.s.unacked(), 1);
    assert!(r.all_out(51).is_empty());
    r.feed(52, &full_ack(9, 104, 30_000, 5000));
    assert_eq!(r.s.unacked(), 1);
    // Flushed once acknowledged and the peer's latency (120 ms) has passed.
    r.feed(60, &full_ack(10, 106, 30_000, 5000));
    // 60 + 120 ms latency + max(RTT 30 ms, 100 ms).
    assert!(!r.s.is_flushed(r.at(279)));
    assert!(r.s.is_flushed(r.at(280)));
}

#[test]
fn nak_triggers_retransmission_with_r_flag_and_hold_off() {
    let mut r = Run::connect(SrtConfig::default(), 500, 8192);
    for k in 0..10u8 {
        r.s.send(r.at(10), &[k; 20]).unwrap();
    }
    let first = r.all_out(10);
    assert_eq!(first.len(), 10);
    // RTT 20 ms, var 2 ms: hold-off 20 − 8 = 12 ms.
    r.feed(15, &full_ack(1, 500, 20_000, 8000));
    r.all_out(15);
    r.feed(30, &nak(&[(502, 502), (505, 507)]));
    let out = r.all_out(30);
    let seqs: Vec<_> = out.iter().map(|p| data(p).seq).collect();
    assert_eq!(seqs, vec![502, 505, 506, 507]);
    for p in &out {
        let h = data(p);
        assert!(h.retransmitted);
        assert_eq!(h.timestamp, 10_000, "a retransmission keeps the original timestamp");
        assert_eq!(&p[HEADER_LEN..], &first[(h.seq - 500) as usize][HEADER_LEN..]);
    }
    assert_eq!(r.s.stats().packets_lost, 4);
    assert_eq!(r.s.stats().packets_retransmitted, 4);
    // The same NAK 5 ms later: within the hold-off, nothing is resent.
    r.feed(35, &nak(&[(502, 502)]));
    assert!(r.all_out(35).is_empty());
    // A periodic NAK report after the hold-off: resent again.
    r.feed(50, &nak(&[(502, 502)]));
    let out = r.all_out(50);
    assert_eq!(out.iter().map(|p| data(p).seq).collect::<Vec<_>>(), vec![502]);
    // NAKs for acknowledged or never-sent packets are ignored.
    r.feed(60, &full_ack(2, 504, 20_000, 8000));
    r.all_out(60);
    r.feed(61, &nak(&[(400, 503), (600, 700)]));
    assert!(r.all_out(61).is_empty());
}

#[test]
fn head_is_resent_when_acks_keep_naming_it() {
    let mut r = Run::connect(SrtConfig::default(), 300, 8192);
    r.feed(5, &full_ack(1, 300, 20_000, 8000));
    r.all_out(5);
    for _ in 0..3 {
        r.s.send(r.at(10), &[0; 10]).unwrap();
    }
    assert_eq!(r.all_out(10).len(), 3);
    let data_seqs = |out: Vec<Vec<u8>>| -> Vec<(u32, bool)> {
        out.iter().filter_map(|p| parse_data_header(p)).map(|h| (h.seq, h.retransmitted)).collect()
    };
    // RTT 20 ms: an ACK naming 300 that arrives before 10 + 20 + 10 ms may predate the copy.
    r.feed(39, &full_ack(2, 300, 20_000, 8000));
    assert!(data_seqs(r.all_out(39)).is_empty());
    // At 40 ms it no longer can: the copy was lost, resend it at once.
    r.feed(40, &full_ack(3, 300, 20_000, 8000));
    assert_eq!(data_seqs(r.all_out(40)), vec![(300, true)]);
    // The receiver goes quiet (its ACK is stuck): again after RTT + min(4 × 2, 20) + 10 = 38 ms.
    assert!(data_seqs(r.all_out(77)).is_empty());
    assert_eq!(r.s.poll_timeout(), Some(r.at(78)), "the driver is woken for it");
    r.s.handle_timeout(r.at(78));
    assert_eq!(data_seqs(r.all_out(78)), vec![(300, true)]);
    // An ACK past the head that names the next one, sent long ago: that one is missing too.
    r.feed(80, &full_ack(4, 301, 20_000, 8000));
    assert_eq!(data_seqs(r.all_out(80)), vec![(301, true)]);
    // Everything acknowledged: nothing more.
    r.feed(90, &full_ack(5, 303, 20_000, 8000));
    r.s.handle_timeout(r.at(300));
    assert!(data_seqs(r.all_out(300)).is_empty());
    assert_eq!(r.s.stats().packets_lost, 0, "not counted as reported losses");
}

/// CI at 7b775a3 (tests/srt.rs, 5 % loss, RTT 42 ms, latency 200 ms): the stream's third frame
/// never played. Its first packet was lost, NAKed and resent at once; the copy was lost too.
/// A libsrt receiver sends no ACK while that packet holds its ACK back and, still on its
/// initial RTT guess, spaces its periodic NAKs 150 ms apart: nothing came until the packet's
/// play time had passed. A NAK naming our oldest packet now arms the head-resend timer.
#[test]
fn a_nak_for_the_head_keeps_it_resent_while_the_ack_stays_stuck() {
    let mut r = Run::connect(SrtConfig { latency: ms(200), ..SrtConfig::default() }, 920, 8192);
    for k in 0..8u8 {
        r.s.send(r.at(10 + u64::from(k / 4) * 30), &[k; 10]).unwrap();
        r.all_out(10 + u64::from(k / 4) * 30);
    }
    let data_seqs = |out: Vec<Vec<u8>>| -> Vec<(u32, bool)> {
        out.iter().filter_map(|p| parse_data_header(p)).map(|h| (h.seq, h.retransmitted)).collect()
    };
    // 920..=923 arrive; 924 (the next frame's first packet) is lost. RTT 40 ms, var 4 ms.
    r.feed(45, &full_ack(1, 924, 40_000, 8000));
    r.all_out(45);
    r.feed(70, &nak(&[(924, 924)]));
    assert_eq!(data_seqs(r.all_out(70)), vec![(924, true)]);
    // That copy is lost too, and the receiver goes quiet: 924 again after 40 + 16 + 10 ms, and
    // again after as long while nothing moves; never another packet.
    let mut resent = Vec::new();
    for t in 71..=230 {
        r.s.handle_timeout(r.at(t));
        for (seq, re) in data_seqs(r.all_out(t)) {
            assert_eq!((seq, re), (924, true), "at {t} ms");
            resent.push(t);
        }
    }
    assert_eq!(resent, vec![136, 202], "both before its play deadline (40 + 200 + 20 ms)");
    // It arrived: the ACK moves past everything, and nothing more is sent.
    r.feed(240, &full_ack(2, 928, 40_000, 8000));
    r.s.handle_timeout(r.at(400));
    assert!(data_seqs(r.all_out(400)).is_empty());
}

/// The handshake's round trip is the RTT (RTTVar half of it) until the receiver reports a
/// measured one: libsrt's receiver puts its initial 100 ms / 50 ms guess in its ACKs until its
/// first ACK/ACKACK sample, and that guess is not taken over the measurement.
#[test]
fn the_handshake_times_the_rtt_until_the_receiver_measures_one() {
    let ack = |no: u32, seq: u32, rtt_us: u32, var_us: u32| {
        let mut cif = [0u8; 28];
        Ack {
            ack_seq: seq,
            rtt_us: Some(rtt_us),
            rtt_var_us: Some(var_us),
            buffer_available: Some(8000),
            ..Ack::default()
        }
        .write(&mut cif);
        control(CTRL_ACK, no, &cif)
    };
    let mut r = Run::new(SrtConfig::default(), 10);
    r.out(0).unwrap();
    r.feed(20, &induction_response());
    r.out(20).unwrap();
    r.feed(62, &conclusion_response(120, 8192, &[]));
    assert_eq!(r.events(), vec![SrtEvent::Connected]);
    let rtt = |r: &Run| (r.s.stats().rtt_ms, r.s.stats().rtt_var_ms);
    assert_eq!(rtt(&r), (42.0, 21.0), "the conclusion's round trip");
    r.feed(80, &ack(1, 10, 100_000, 50_000));
    assert_eq!(rtt(&r), (42.0, 21.0), "the receiver's initial guess does not replace it");
    r.feed(90, &ack(2, 10, 43_000, 21_500));
    assert_eq!(rtt(&r), (43.0, 21.5));
    // Once the receiver has measured, whatever it reports is taken, even those numbers.
    r.feed(100, &ack(3, 10, 100_000, 50_000));
    assert_eq!(rtt(&r), (100.0, 50.0));

    // A conclusion answered after our resend may answer the first copy: no sample.
    let mut r = Run::new(SrtConfig::default(), 10);
    r.out(0).unwrap();
    r.feed(1, &induction_response());
    r.out(1).unwrap();
    r.out(251).unwrap();
    r.feed(252, &conclusion_response(120, 8192, &[]));
    assert!(r.s.is_connected());
    assert_eq!(rtt(&r), (100.0, 50.0), "1 ms after the resend: the guess stays");
    let mut r = Run::new(SrtConfig::default(), 10);
    r.out(0).unwrap();
    r.feed(1, &induction_response());
    r.out(1).unwrap();
    r.feed(400, &conclusion_response(120, 8192, &[]));
    assert!(r.s.is_connected());
    assert_eq!(rtt(&r), (100.0, 50.0), "no resend polled, 399 ms: the guess stays");
}

#[test]
fn a_lost_tail_is_probed_then_backs_off() {
    // 500 ms latency: room for several probes before the packets' play time.
    let cfg = SrtConfig { latency: ms(500), ..SrtConfig::default() };
    let mut r = Run::connect(cfg, 700, 8192);
    for k in 0..4u8 {
        r.s.send(r.at(10), &[k; 10]).unwrap();
    }
    assert_eq!(r.all_out(10).len(), 4);
    let data_seqs = |out: Vec<Vec<u8>>| -> Vec<(u32, bool)> {
        out.iter().filter_map(|p| parse_data_header(p)).map(|h| (h.seq, h.retransmitted)).collect()
    };
    // 700 and 701 arrive; 702 and 703 are lost, and no later packet shows the receiver the gap.
    r.feed(30, &full_ack(1, 702, 20_000, 2000));
    assert!(data_seqs(r.all_out(30)).is_empty());
    // RTT 20 ms, var 2 ms: the newest packet goes again 20 + 8 + 2 × 10 ms after the last progress.
    assert_eq!(r.s.poll_timeout(), Some(r.at(78)));
    r.s.handle_timeout(r.at(77));
    assert!(data_seqs(r.all_out(77)).is_empty());
    r.s.handle_timeout(r.at(78));
    assert_eq!(data_seqs(r.all_out(78)), vec![(703, true)]);
    // Nothing answers: the second probe waits as long (from the probe's own departure), the
    // third twice as long.
    assert_eq!(r.s.poll_timeout(), Some(r.at(78 + 48)));
    r.s.handle_timeout(r.at(126));
    assert_eq!(data_seqs(r.all_out(126)), vec![(703, true)]);
    assert_eq!(r.s.poll_timeout(), Some(r.at(126 + 96)));
    // The probe arrived: the receiver NAKs the gap before it, then acknowledges everything.
    r.feed(190, &nak(&[(702, 702)]));
    assert_eq!(data_seqs(r.all_out(190)), vec![(702, true)]);
    r.feed(215, &full_ack(2, 704, 20_000, 2000));
    r.s.handle_timeout(r.at(2000));
    assert!(data_seqs(r.all_out(2000)).is_empty());
    assert!(r.s.is_flushed(r.at(2000)));
}

/// CI at f10a207 (5 % loss, RTT 41 ms, latency 160 ms): the stream's last packet and its one
/// probe were both lost. With the second probe as soon as the first, a tail has two probes
/// before it plays: at RTT 30 ms (var 3) and 160 ms latency, 30 + 62 and 30 + 124 ms after the
/// last ACK moved, both before the play deadline (10 + 160 + 20 ms); doubling at once left one.
#[test]
fn a_lost_tail_gets_two_probes_within_a_four_rtt_latency() {
    let cfg = SrtConfig { latency: ms(160), ..SrtConfig::default() };
    let mut r = Run::connect(cfg, 300, 8192);
    r.s.send(r.at(10), &[1; 10]).unwrap();
    r.s.send(r.at(10), &[2; 10]).unwrap();
    assert_eq!(r.all_out(10).len(), 2);
    // 300 arrives; 301, the last packet of the stream, is lost. (The ACK comes within the
    // handshake's 1 ms RTT + 2 ACK periods of the sends: no probe before it.)
    r.feed(30, &full_ack(1, 301, 30_000, 2000));
    let mut probes = Vec::new();
    for t in 31..=400 {
        r.s.handle_timeout(r.at(t));
        for p in r.all_out(t) {
            if let Some(h) = parse_data_header(&p) {
                assert_eq!((h.seq, h.retransmitted), (301, true));
                probes.push(t);
            }
        }
    }
    assert_eq!(probes, vec![92, 154], "two probes, both before the play deadline at 190 ms");
}

#[test]
fn no_tail_probe_once_the_tail_is_too_late_to_play() {
    let mut r = Run::connect(SrtConfig::default(), 900, 8192);
    r.s.send(r.at(10), &[1; 10]).unwrap();
    assert_eq!(r.all_out(10).len(), 1);
    // The sender is next woken at 300 ms (a stalled thread), past the packet's play deadline
    // (10 + 120 + 20 ms): the probe that was due long before is not sent any more.
    r.s.handle_timeout(r.at(300));
    assert!(r.all_out(300).iter().all(|p| parse_data_header(p).is_none()));
    assert_eq!(r.s.stats().packets_too_late, 0);
}

#[test]
fn lost_packets_past_their_play_time_are_given_up_not_retransmitted() {
    // Peer latency 120 ms: play deadline 140 ms after queueing.
    let mut r = Run::connect(SrtConfig::default(), 500, 8192);
    for k in 0..4u8 {
        r.s.send(r.at(100), &[k; 20]).unwrap();
    }
    assert_eq!(r.all_out(100).len(), 4);
    r.feed(120, &nak(&[(500, 501)]));
    let seqs: Vec<_> = r.all_out(120).iter().map(|p| data(p).seq).collect();
    assert_eq!(seqs, vec![500, 501], "young enough: retransmitted");
    // The retransmissions were lost too; the periodic report comes past the play time.
    r.feed(241, &nak(&[(500, 502)]));
    assert!(r.all_out(241).is_empty(), "nothing the receiver could still play");
    assert_eq!(r.s.stats().packets_too_late, 3);
    // 500 and 501 at 120 ms, 501 and 502 now: 500 was already marked for resending, its ACK
    // stuck since the NAK at 120 ms named it (the sender was not woken in between).
    assert_eq!(r.s.stats().packets_lost, 4);
    // Asked again: still not sent, not counted twice.
    r.feed(300, &nak(&[(500, 502)]));
    assert!(r.all_out(300).is_empty());
    assert_eq!(r.s.stats().packets_too_late, 3);
    // The receiver skips them (its ACK moves past); the buffer empties.
    r.feed(310, &full_ack(1, 504, 20_000, 8000));
    assert_eq!(r.s.unacked(), 0);
}

#[test]
fn too_late_packets_are_dropped_with_a_drop_request() {
    let mut r = Run::connect(SrtConfig::default(), 10, 8192);
    for k in 0..5u64 {
        r.s.send(r.at(100 + k * 10), &[0; 100]).unwrap();
    }
    r.all_out(150);
    // Threshold: max(120 ms, 1 s) + 20 ms = 1020 ms after each packet's queue time.
    r.s.handle_timeout(r.at(1119));
    assert_eq!(r.s.stats().packets_dropped, 0);
    assert_eq!(r.s.poll_timeout(), Some(r.at(1120)), "next wake-up: the oldest packet's deadline");
    r.s.handle_timeout(r.at(1135));
    assert_eq!(r.s.stats().packets_dropped, 2);
    assert_eq!(r.s.unacked(), 3);
    let out = r.all_out(1135);
    assert_eq!(out.len(), 1);
    let c = parse_control(&out[0]).unwrap();
    assert_eq!((c.ctype, c.info, c.dest), (CTRL_DROPREQ, 1, PEER));
    assert_eq!(c.cif, &[0, 0, 0, 10, 0, 0, 0, 11]);
    // The peer's ACK now may start after the dropped ones.
    r.feed(1140, &full_ack(3, 15, 10_000, 8000));
    assert_eq!(r.s.unacked(), 0);
}

#[test]
fn larger_peer_latency_moves_the_drop_threshold() {
    let mut r = Run::new(SrtConfig::default(), 10);
    r.out(0).unwrap();
    r.feed(1, &induction_response());
    r.out(1).unwrap();
    r.feed(2, &conclusion_response(2000, 8192, &[]));
    r.events();
    r.s.send(r.at(10), &[0; 10]).unwrap();
    r.all_out(10);
    r.s.handle_timeout(r.at(2029));
    assert_eq!(r.s.stats().packets_dropped, 0);
    r.s.handle_timeout(r.at(2031));
    assert_eq!(r.s.stats().packets_dropped, 1);
}

#[test]
fn pacing_follows_max_bw_and_retransmissions_go_first() {
    // 1316 + 44 bytes at 10.88 Mbit/s: one packet per ms.
    let cfg = SrtConfig { max_bw_bps: Some(10_880_000), ..SrtConfig::default() };
    let mut r = Run::connect(cfg, 0, 8192);
    for _ in 0..80 {
        r.s.send(r.at(100), &[0; 1316]).unwrap();
    }
    // The 20 ms catch-up credit and the 10 ms send-ahead let a burst out at once.
    let burst = r.all_out(100).len();
    assert!((30..=32).contains(&burst), "burst of {burst}");
    // The driver is woken when the next packet is due; that wake-up also sends the packets due
    // within the 10 ms after it, so the rate stays one per ms.
    let next = r.s.poll_timeout().unwrap();
    assert!(next > r.at(110) && next <= r.at(111), "{:?}", next - r.at(100));
    assert_eq!(r.all_out(111).len(), 11);
    let next = r.s.poll_timeout().unwrap();
    assert!(next > r.at(121) && next <= r.at(122), "{:?}", next - r.at(100));
    // A NAK: the lost packet goes before new data in the next slot.
    r.feed(112, &nak(&[(3, 3)]));
    let out: Vec<(u32, bool)> = r.all_out(122).iter().map(|p| (data(p).seq, data(p).retransmitted)).collect();
    assert_eq!(out[0], (3, true));
    assert!((10..=11).contains(&out.len()) && out[1..].iter().all(|&(_, re)| !re), "{out:?}");
    assert_eq!(r.s.stats().pacing_bps, 10_880_000);
}

#[test]
fn pacing_from_the_input_rate_plus_25_percent() {
    let mut r = Run::connect(SrtConfig::default(), 0, 8192);
    // 200 packets/s of 1316 bytes for one second: the estimate after the first 0.5 s window.
    let mut sent = 0;
    for k in 0..200u64 {
        let t = 100 + k * 5;
        r.s.send(r.at(t), &[0; 1316]).unwrap();
        sent += r.all_out(t).len();
    }
    let bps = r.s.stats().pacing_bps;
    let want = 200 * 1360 * 8 * 125 / 100;
    assert!(bps.abs_diff(want) < want / 20, "pacing {bps} bit/s, want ≈ {want}");
    assert!(sent >= 198, "the sender keeps up with its input: {sent}");
}

/// CI-like load (tests/srt.rs under 4 busy loops on 2 cores): a 300 kbit/s stream's sender got
/// no CPU for 120 ms, then its backlog left one packet per 10.9 ms (the 1 Mbit/s pacing floor),
/// up to 110 ms late; a loss among them had no time for a second repair within the 200 ms
/// latency. A new packet now waits at most a quarter of the latency for the pacer.
#[test]
fn a_starved_senders_backlog_waits_at_most_a_quarter_of_the_latency() {
    for max_bw in [None, Some(1_088_000)] {
        let cfg = SrtConfig { latency: ms(200), max_bw_bps: max_bw, ..SrtConfig::default() };
        let mut r = Run::connect(cfg, 0, 8192);
        // 0.6 s of a slow input (one packet per 40 ms): pacing settles at its 1 Mbit/s floor.
        for k in 0..15u64 {
            r.s.send(r.at(100 + k * 40), &[0; 1316]).unwrap();
            assert_eq!(r.all_out(100 + k * 40).len(), 1);
            r.feed(110 + k * 40, &full_ack(k as u32 + 1, k as u32 + 1, 20_000, 8000));
            r.all_out(110 + k * 40);
        }
        // The app was starved: 20 packets come at once at 800 ms.
        for _ in 0..20 {
            r.s.send(r.at(800), &[0; 1316]).unwrap();
        }
        let mut left_at = Vec::new();
        for t in 800..=1100 {
            r.s.handle_timeout(r.at(t));
            let fresh = r.all_out(t).iter().filter(|p| parse_data_header(p).is_some_and(|h| !h.retransmitted)).count();
            left_at.extend(std::iter::repeat_n(t, fresh));
        }
        assert_eq!(left_at.len(), 20);
        let last = left_at[19] - 800;
        if max_bw.is_none() {
            assert!(last <= 50, "the backlog is out within a quarter latency (50 ms): {left_at:?}");
            assert!(left_at.iter().filter(|&&t| t == 800).count() < 20, "paced at first: {left_at:?}");
        } else {
            // One packet per 10 ms at the app's cap: 20 take ~190 ms, as the cap says.
            assert!(last >= 150, "max_bw is the app's limit: {left_at:?}");
        }
    }
}

#[test]
fn flow_window_limits_the_flight() {
    let mut r = Run::connect(SrtConfig::default(), 0, 4);
    for _ in 0..10 {
        r.s.send(r.at(10), &[0; 10]).unwrap();
    }
    assert_eq!(r.all_out(10).len(), 4);
    assert_eq!(r.s.stats().flight_size, 4);
    r.feed(20, &full_ack(1, 2, 10_000, 100));
    // ACKACK, then two more data packets.
    let out = r.all_out(20);
    assert_eq!(out.iter().filter(|p| parse_data_header(p).is_some()).count(), 2);
    // The ACK's available-buffer field shrinks the window further.
    r.feed(30, &full_ack(2, 6, 10_000, 2));
    let out = r.all_out(30);
    assert_eq!(out.iter().filter(|p| parse_data_header(p).is_some()).count(), 2);
}

#[test]
fn keepalive_shutdown_and_close() {
    let mut r = Run::connect(SrtConfig::default(), 0, 8192);
    assert!(r.out(500).is_none());
    assert_eq!(r.s.poll_timeout(), Some(r.at(1002)));
    let p = r.out(1002).unwrap();
    assert_eq!(parse_control(&p).unwrap().ctype, CTRL_KEEPALIVE);
    assert!(r.out(1500).is_none());
    // close(): one shutdown packet, then nothing.
    r.s.close(r.at(1600));
    assert_eq!(r.events(), vec![SrtEvent::Closed { by_peer: false }]);
    let p = r.out(1600).unwrap();
    let c = parse_control(&p).unwrap();
    assert_eq!((c.ctype, c.dest), (CTRL_SHUTDOWN, PEER));
    assert!(r.out(1600).is_none());
    assert_eq!(r.s.poll_timeout(), None);
    assert!(r.s.send(r.at(1601), &[1]).is_err());

    // The peer's shutdown.
    let mut r = Run::connect(SrtConfig::default(), 0, 8192);
    r.feed(10, &control(CTRL_SHUTDOWN, 0, &[0; 4]));
    assert_eq!(r.events(), vec![SrtEvent::Closed { by_peer: true }]);
    assert!(!r.s.is_connected());
}

#[test]
fn message_numbers_wrap_to_one() {
    let mut r = Run::connect(SrtConfig::default(), 0, 8192);
    r.s.next_msgno_for_test(MSGNO_MASK - 1);
    for _ in 0..3 {
        r.s.send(r.at(10), &[0; 10]).unwrap();
    }
    let m: Vec<_> = r.all_out(10).iter().map(|p| data(p).msgno).collect();
    assert_eq!(m, vec![MSGNO_MASK - 1, MSGNO_MASK, 1]);
}

#[test]
fn encryption_kmreq_and_decryptable_payload() {
    let pass = "correct horse battery";
    let cfg = SrtConfig { passphrase: Some(pass.into()), pbkeylen: 24, ..SrtConfig::default() };
    let mut r = Run::new(cfg, 42);
    r.out(0).unwrap();
    r.feed(1, &induction_response());
    let p = r.out(1).unwrap();
    let c = parse_control(&p).unwrap();
    let hs = Handshake::parse(c.cif).unwrap();
    assert_eq!(hs.encryption, 3, "AES-192 advertised as 3");
    assert_eq!(hs.extension, HS_EXT_FLAG_HSREQ | HS_EXT_FLAG_KMREQ);
    let (_, km) = hs_extensions(&c.cif[HS_CIF_LEN..]).find(|(t, _)| *t == EXT_KMREQ).unwrap();
    let km = km.to_vec();
    assert_eq!(km.len(), 16 + 16 + 24 + 8);
    // Recover the SEK as the listener would, then decrypt a data packet.
    let salt: [u8; 16] = km[16..32].try_into().unwrap();
    let mut kek = [0u8; 24];
    derive_kek(pass.as_bytes(), &salt, &mut kek);
    let mut sek = [0u8; 24];
    unwrap_key(&kek, &km[32..], &mut sek).unwrap();
    let peer = Crypto::with_keys(&kek, &sek, salt).unwrap();

    // KMRSP echoing the KM: accepted.
    let mut ext = vec![0u8; 4];
    write_ext_header(&mut ext, EXT_KMRSP, (km.len() / 4) as u16);
    ext.extend_from_slice(&km);
    r.feed(2, &conclusion_response(120, 8192, &ext));
    assert_eq!(r.events(), vec![SrtEvent::Connected]);
    let plain: Vec<u8> = (0..1316).map(|i| (i * 7) as u8).collect();
    r.s.send(r.at(3), &plain).unwrap();
    let p = r.out(3).unwrap();
    let h = data(&p);
    assert_eq!(h.kk, KK_EVEN);
    let mut body = p[HEADER_LEN..].to_vec();
    assert_ne!(body, plain);
    peer.apply(h.seq, &mut body);
    assert_eq!(body, plain);
    // The retransmission carries the same ciphertext (sent while the receiver can still play
    // it: within 120 + 20 ms of the packet's queueing).
    r.feed(10, &nak(&[(42, 42)]));
    let again = r.out(140).unwrap();
    assert_eq!(&again[HEADER_LEN..], &p[HEADER_LEN..]);
}

#[test]
fn kmrsp_with_a_bad_secret_state_is_a_rejection() {
    let cfg = SrtConfig { passphrase: Some("0123456789".into()), ..SrtConfig::default() };
    let mut r = Run::new(cfg, 42);
    r.out(0).unwrap();
    r.feed(1, &induction_response());
    r.out(1).unwrap();
    let mut ext = vec![0u8; 8];
    write_ext_header(&mut ext, EXT_KMRSP, 1);
    ext[4..8].copy_from_slice(&4u32.to_be_bytes());
    r.feed(2, &conclusion_response(120, 8192, &ext));
    assert!(matches!(r.events()[..], [SrtEvent::Rejected { code: 1010, .. }]));
    // The listener thinks it is connected: tell it we are not.
    assert_eq!(parse_control(&r.out(2).unwrap()).unwrap().ctype, CTRL_SHUTDOWN);
    // No KMRSP at all from a listener without a passphrase: 1011.
    let cfg = SrtConfig { passphrase: Some("0123456789".into()), ..SrtConfig::default() };
    let mut r = Run::new(cfg, 42);
    r.out(0).unwrap();
    r.feed(1, &induction_response());
    r.out(1).unwrap();
    r.feed(2, &conclusion_response(120, 8192, &[]));
    assert!(matches!(r.events()[..], [SrtEvent::Rejected { code: 1011, .. }]));
}

#[test]
fn config_is_validated() {
    let t0 = Instant::now();
    let new = |cfg: SrtConfig| SrtSender::new(cfg, ME, 0, 1, t0);
    assert!(new(SrtConfig { passphrase: Some("short".into()), ..Default::default() }).is_err());
    assert!(new(SrtConfig { passphrase: Some("x".repeat(80)), ..Default::default() }).is_err());
    assert!(new(SrtConfig { passphrase: Some("x".repeat(79)), ..Default::default() }).is_ok());
    assert!(new(SrtConfig { passphrase: Some("x".repeat(10)), pbkeylen: 20, ..Default::default() }).is_err());
    assert!(new(SrtConfig { stream_id: Some("s".repeat(513)), ..Default::default() }).is_err());
    assert!(new(SrtConfig { stream_id: Some("s".repeat(512)), ..Default::default() }).is_ok());
    assert!(new(SrtConfig { payload_size: 1457, ..Default::default() }).is_err());
    assert!(new(SrtConfig { latency: Duration::from_secs(70), ..Default::default() }).is_err());
    assert!(SrtSender::new(SrtConfig::default(), 0, 0, 1, t0).is_err());
    // Zero means default.
    let s = new(SrtConfig { payload_size: 0, flight_window: 0, ..Default::default() }).unwrap();
    assert_eq!(s.stats().flow_window, DEFAULT_FLIGHT_WINDOW);
}

#[test]
fn garbage_never_panics() {
    // Random datagrams, and valid ones with random bytes flipped, in every state.
    let mut rng = 0x1234_5678_9ABC_DEF0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let templates = [
        induction_response(),
        conclusion_response(120, 8192, &[]),
        full_ack(1, 5, 1000, 10),
        nak(&[(1, 3), (7, 7)]),
        control(CTRL_SHUTDOWN, 0, &[0; 4]),
    ];
    for round in 0..300u64 {
        let cfg = SrtConfig {
            passphrase: (round % 4 == 0).then(|| "0123456789ab".to_string()),
            stream_id: Some("s".into()),
            ..Default::default()
        };
        let mut r = if round % 2 == 0 { Run::new(cfg, 5) } else { Run::connect(cfg, 5, 8192) };
        for k in 0..200u64 {
            let t = k * 3;
            let mut d = if next() % 2 == 0 {
                let len = (next() % 200) as usize;
                (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                let mut d = templates[(next() % templates.len() as u64) as usize].clone();
                for _ in 0..(next() % 4) {
                    let i = (next() as usize) % d.len();
                    d[i] = next() as u8;
                }
                d
            };
            if next() % 3 == 0 && d.len() >= 16 {
                d[12..16].copy_from_slice(&ME.to_be_bytes());
                d[0] |= 0x80;
            }
            r.feed(t, &d);
            if r.s.is_connected() && next() % 4 == 0 {
                let _ = r.s.send(r.at(t), &[1; 100]);
            }
            r.all_out(t);
            r.s.handle_timeout(r.at(t));
            let _ = r.s.poll_timeout();
            r.events();
        }
    }
}

#[test]
fn buffer_grows_then_refuses_when_full() {
    // Nothing is acknowledged and nothing is sent (flow window 0 → 2 in flight): the ring
    // grows to its cap of 8192 packets, then send fails and can_send says so.
    let mut r = Run::connect(SrtConfig::default(), 0, 2);
    let mut accepted = 0;
    while r.s.can_send() {
        r.s.send(r.at(10), &[0; 4]).unwrap();
        accepted += 1;
        assert!(accepted <= 8192);
    }
    assert_eq!(accepted, 8192);
    assert!(matches!(r.s.send(r.at(10), &[0; 4]), Err(crate::error::Error::QueueFull(_))));
}

/// Datagrams captured on loopback (tcpdump) between libsrt 1.5.1's srt-live-transmit as caller
/// (`streamid=abcdef&latency=120`) and as listener: our handshake must match the caller's
/// field for field, and the listener's real answers must connect us.
mod captured_libsrt {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    const CALLER_INDUCTION: &str = "8000000000000000000000b900000000000000040000000248b0392a000005dc000020000000000123f98907000000000100007f000000000000000000000000";
    const LISTENER_INDUCTION: &str = "8000000000000000000792de23f989070000000500004a1748b0392a000005dc000020000000000123f98907c3d4f0710100007f000000000000000000000000";
    const CALLER_CONCLUSION: &str = "8000000000000000000001a500000000000000050000000548b0392a000005dc00002000ffffffff23f98907c3d4f0710100007f0000000000000000000000000001000300010501000000bf00780078000500026463626100006665";
    const LISTENER_CONCLUSION: &str = "80000000000000000000017523f98907000000050000000148b0392a000005dc00002000ffffffff30ed492dc3d4f0710100007f0000000000000000000000000002000300010501000000bf00780078";

    #[test]
    fn handshake_matches_libsrt_and_connects_to_its_listener() {
        let t0 = Instant::now();
        let cfg = SrtConfig { stream_id: Some("abcdef".into()), flight_window: 8192, ..SrtConfig::default() };
        let mut s = SrtSender::new(cfg, 0x23f9_8907, 0x48b0_392a, 1, t0).unwrap();
        let mut buf = [0u8; MAX_DATAGRAM];

        // Induction: identical except the timestamp (8..12) and the peer address (libsrt
        // writes the listener's IP there; listeners do not read it).
        let n = s.poll_transmit(t0, &mut buf).unwrap();
        let want = hex(CALLER_INDUCTION);
        assert_eq!(n, want.len());
        assert_eq!(&buf[..8], &want[..8]);
        assert_eq!(&buf[12..48], &want[12..48]);

        s.handle_datagram(t0 + ms(1), &hex(LISTENER_INDUCTION));
        let n = s.poll_transmit(t0 + ms(1), &mut buf).unwrap();
        let want = hex(CALLER_CONCLUSION);
        assert_eq!(n, want.len());
        assert_eq!(&buf[..8], &want[..8]);
        assert_eq!(&buf[12..48], &want[12..48], "CIF through the cookie");
        // HSREQ: same version and latencies; libsrt also sets 0x80 (packet-filter capable),
        // which a caller without FEC does not need.
        assert_eq!(&buf[64..72], &want[64..72]);
        assert_eq!(u32::from_be_bytes(buf[72..76].try_into().unwrap()) | 0x80, 0xBF);
        assert_eq!(&buf[76..80], &want[76..80]);
        // The SID block, byte order included.
        assert_eq!(&buf[80..n], &want[80..]);

        s.handle_datagram(t0 + ms(2), &hex(LISTENER_CONCLUSION));
        assert_eq!(s.poll_event(), Some(SrtEvent::Connected));
        s.send(t0 + ms(3), &[0xAB; 188]).unwrap();
        let n = s.poll_transmit(t0 + ms(3), &mut buf).unwrap();
        // Like libsrt's first data packet: its ISN, PP=11 / O=0 / KK=0 / R=0 / msgno 1, and
        // the listener's new socket id.
        assert_eq!(&buf[..8], &hex("48b0392ac0000001")[..]);
        assert_eq!(&buf[12..16], &hex("30ed492d")[..]);
        assert_eq!(n, 16 + 188);
    }
}
