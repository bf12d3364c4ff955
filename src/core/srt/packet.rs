//! SRT wire format: the 16-byte packet header, sequence/message number arithmetic, and the
//! control packets a live-mode caller reads or writes. Everything is written into a caller's
//! buffer and read from a borrowed slice, so nothing here allocates.
//!
//! Layout (draft-sharabayko-srt §3): word 0 is the F bit and the sequence number (data) or the
//! control type and subtype (control); word 1 is the message flags and number (data) or the
//! type-specific field (control); word 2 the timestamp in µs; word 3 the destination socket id.

pub const HEADER_LEN: usize = 16;
/// Sequence numbers are 31 bits.
pub const SEQ_MASK: u32 = 0x7FFF_FFFF;
/// Message numbers are 26 bits once the retransmitted flag (REXMITFLG) is negotiated.
pub const MSGNO_MASK: u32 = 0x03FF_FFFF;

pub const CTRL_HANDSHAKE: u16 = 0;
pub const CTRL_KEEPALIVE: u16 = 1;
pub const CTRL_ACK: u16 = 2;
pub const CTRL_NAK: u16 = 3;
pub const CTRL_SHUTDOWN: u16 = 5;
pub const CTRL_ACKACK: u16 = 6;
pub const CTRL_DROPREQ: u16 = 7;

/// Encryption key flags of a data packet (the KK field).
pub const KK_NONE: u8 = 0;
pub const KK_EVEN: u8 = 1;

/// `a + n` in the 31-bit sequence space.
pub fn seq_add(a: u32, n: u32) -> u32 {
    a.wrapping_add(n) & SEQ_MASK
}

/// `a - b` in the 31-bit sequence space, as a signed distance (valid while |a - b| < 2^30).
pub fn seq_diff(a: u32, b: u32) -> i32 {
    // Shift the 31-bit difference into the top bits so the sign bit is bit 30 of the distance.
    ((a.wrapping_sub(b) << 1) as i32) >> 1
}

/// The message number after `m`. libsrt numbers messages from 1 and never uses 0, which the
/// receiver reads as "no message number".
pub fn msgno_next(m: u32) -> u32 {
    if m >= MSGNO_MASK {
        1
    } else {
        m + 1
    }
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn put32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Writes a data packet header. `seq` and `msgno` are masked to their widths. Live mode sends
/// every message as one packet (PP = 11, "solo") with the in-order flag clear, as libsrt does.
pub fn write_data_header(buf: &mut [u8], seq: u32, msgno: u32, kk: u8, retransmitted: bool, timestamp: u32, dest: u32) {
    put32(buf, 0, seq & SEQ_MASK);
    let w1 = (0b11 << 30) | (u32::from(kk & 0b11) << 27) | (u32::from(retransmitted) << 26) | (msgno & MSGNO_MASK);
    put32(buf, 4, w1);
    put32(buf, 8, timestamp);
    put32(buf, 12, dest);
}

/// A parsed data packet header (used by tests and by anything that inspects our own output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    pub seq: u32,
    pub position: u8,
    pub in_order: bool,
    pub kk: u8,
    pub retransmitted: bool,
    pub msgno: u32,
    pub timestamp: u32,
    pub dest: u32,
}

pub fn parse_data_header(d: &[u8]) -> Option<DataHeader> {
    if d.len() < HEADER_LEN || d[0] & 0x80 != 0 {
        return None;
    }
    let w1 = be32(d, 4);
    Some(DataHeader {
        seq: be32(d, 0) & SEQ_MASK,
        position: (w1 >> 30) as u8,
        in_order: w1 & (1 << 29) != 0,
        kk: ((w1 >> 27) & 0b11) as u8,
        retransmitted: w1 & (1 << 26) != 0,
        msgno: w1 & MSGNO_MASK,
        timestamp: be32(d, 8),
        dest: be32(d, 12),
    })
}

/// Writes a control header and returns its length.
pub fn write_control_header(buf: &mut [u8], ctype: u16, info: u32, timestamp: u32, dest: u32) -> usize {
    put32(buf, 0, 0x8000_0000 | (u32::from(ctype & 0x7FFF) << 16));
    put32(buf, 4, info);
    put32(buf, 8, timestamp);
    put32(buf, 12, dest);
    HEADER_LEN
}

/// A control packet as received: its header fields and the control information field (CIF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control<'a> {
    pub ctype: u16,
    pub subtype: u16,
    pub info: u32,
    pub timestamp: u32,
    pub dest: u32,
    pub cif: &'a [u8],
}

pub fn parse_control(d: &[u8]) -> Option<Control<'_>> {
    if d.len() < HEADER_LEN || d[0] & 0x80 == 0 {
        return None;
    }
    let w0 = be32(d, 0);
    Some(Control {
        ctype: ((w0 >> 16) & 0x7FFF) as u16,
        subtype: (w0 & 0xFFFF) as u16,
        info: be32(d, 4),
        timestamp: be32(d, 8),
        dest: be32(d, 12),
        cif: &d[HEADER_LEN..],
    })
}

/// The fields of an ACK's CIF. A light ACK carries only `ack_seq`; a small one adds RTT, RTT
/// variance and the available buffer; a full one adds the three rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack {
    /// The sequence number after the last packet received in order (everything before it is
    /// acknowledged).
    pub ack_seq: u32,
    pub rtt_us: Option<u32>,
    pub rtt_var_us: Option<u32>,
    pub buffer_available: Option<u32>,
    pub recv_rate_pkts: Option<u32>,
    pub link_capacity_pkts: Option<u32>,
    pub recv_rate_bytes: Option<u32>,
}

impl Ack {
    pub fn parse(cif: &[u8]) -> Option<Ack> {
        if cif.len() < 4 {
            return None;
        }
        let word = |i: usize| (cif.len() >= (i + 1) * 4).then(|| be32(cif, i * 4));
        Some(Ack {
            ack_seq: be32(cif, 0) & SEQ_MASK,
            rtt_us: word(1),
            rtt_var_us: word(2),
            buffer_available: word(3),
            recv_rate_pkts: word(4),
            link_capacity_pkts: word(5),
            recv_rate_bytes: word(6),
        })
    }

    /// A light ACK (sequence number only) is not answered with an ACKACK.
    pub fn is_light(cif: &[u8]) -> bool {
        cif.len() < 8
    }

    /// Writes the CIF (full form); used by tests that play the receiver.
    pub fn write(&self, buf: &mut [u8]) -> usize {
        let words = [
            self.ack_seq,
            self.rtt_us.unwrap_or(0),
            self.rtt_var_us.unwrap_or(0),
            self.buffer_available.unwrap_or(0),
            self.recv_rate_pkts.unwrap_or(0),
            self.link_capacity_pkts.unwrap_or(0),
            self.recv_rate_bytes.unwrap_or(0),
        ];
        for (i, w) in words.iter().enumerate() {
            put32(buf, i * 4, *w);
        }
        28
    }
}

/// Iterates a NAK's loss list as inclusive ranges. A word with the top bit set starts a range
/// whose last sequence number is the next word; any other word is a single lost packet. A
/// range start without its end (a truncated list) ends the iteration.
pub fn nak_ranges(cif: &[u8]) -> impl Iterator<Item = (u32, u32)> + '_ {
    let mut words = cif.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    std::iter::from_fn(move || {
        let w = words.next()?;
        if w & 0x8000_0000 != 0 {
            let hi = words.next()?;
            Some((w & SEQ_MASK, hi & SEQ_MASK))
        } else {
            Some((w & SEQ_MASK, w & SEQ_MASK))
        }
    })
}

/// Writes a loss list entry (a range when `lo != hi`) and returns its length; for tests.
pub fn write_nak_entry(buf: &mut [u8], lo: u32, hi: u32) -> usize {
    if lo == hi {
        put32(buf, 0, lo & SEQ_MASK);
        4
    } else {
        put32(buf, 0, 0x8000_0000 | (lo & SEQ_MASK));
        put32(buf, 4, hi & SEQ_MASK);
        8
    }
}

// ---- handshake ----

pub const HS_CIF_LEN: usize = 48;
pub const HS_VERSION_UDT4: u32 = 4;
pub const HS_VERSION_SRT5: u32 = 5;
/// The extension field of the listener's induction response: "SRT here, speak HSv5".
pub const SRT_MAGIC: u16 = 0x4A17;
/// HSv4 socket type carried in the caller's induction extension field.
pub const UDT_DGRAM: u16 = 2;

pub const HS_TYPE_INDUCTION: u32 = 1;
pub const HS_TYPE_CONCLUSION: u32 = 0xFFFF_FFFF;
/// Handshake types from 1000 up are rejections: 1000 + the reason code.
pub const HS_TYPE_REJECT_BASE: u32 = 1000;

pub const HS_EXT_FLAG_HSREQ: u16 = 0x1;
pub const HS_EXT_FLAG_KMREQ: u16 = 0x2;
pub const HS_EXT_FLAG_CONFIG: u16 = 0x4;

pub const EXT_HSREQ: u16 = 1;
pub const EXT_HSRSP: u16 = 2;
pub const EXT_KMREQ: u16 = 3;
pub const EXT_KMRSP: u16 = 4;
pub const EXT_SID: u16 = 5;

pub const SRT_OPT_TSBPDSND: u32 = 0x01;
pub const SRT_OPT_TSBPDRCV: u32 = 0x02;
pub const SRT_OPT_HAICRYPT: u32 = 0x04;
pub const SRT_OPT_TLPKTDROP: u32 = 0x08;
pub const SRT_OPT_NAKREPORT: u32 = 0x10;
pub const SRT_OPT_REXMITFLG: u32 = 0x20;

/// The SRT version we announce in HSREQ: 1.5.1, what Debian's libsrt speaks; ≥ 1.3 is what
/// enables HSv5 features on the listener.
pub const SRT_VERSION: u32 = 0x0001_0501;

/// The 48-byte handshake CIF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Handshake {
    pub version: u32,
    pub encryption: u16,
    pub extension: u16,
    pub initial_seq: u32,
    pub mtu: u32,
    pub flow_window: u32,
    pub hs_type: u32,
    pub socket_id: u32,
    pub cookie: u32,
    pub peer_ip: [u8; 16],
}

impl Handshake {
    pub fn parse(cif: &[u8]) -> Option<Handshake> {
        if cif.len() < HS_CIF_LEN {
            return None;
        }
        let mut peer_ip = [0u8; 16];
        peer_ip.copy_from_slice(&cif[32..48]);
        Some(Handshake {
            version: be32(cif, 0),
            encryption: u16::from_be_bytes([cif[4], cif[5]]),
            extension: u16::from_be_bytes([cif[6], cif[7]]),
            initial_seq: be32(cif, 8) & SEQ_MASK,
            mtu: be32(cif, 12),
            flow_window: be32(cif, 16),
            hs_type: be32(cif, 20),
            socket_id: be32(cif, 24),
            cookie: be32(cif, 28),
            peer_ip,
        })
    }

    pub fn write(&self, buf: &mut [u8]) -> usize {
        put32(buf, 0, self.version);
        buf[4..6].copy_from_slice(&self.encryption.to_be_bytes());
        buf[6..8].copy_from_slice(&self.extension.to_be_bytes());
        put32(buf, 8, self.initial_seq);
        put32(buf, 12, self.mtu);
        put32(buf, 16, self.flow_window);
        put32(buf, 20, self.hs_type);
        put32(buf, 24, self.socket_id);
        put32(buf, 28, self.cookie);
        buf[32..48].copy_from_slice(&self.peer_ip);
        HS_CIF_LEN
    }
}

/// Iterates the HSv5 extension blocks after the CIF as (type, contents). A block whose declared
/// length runs past the datagram ends the iteration.
pub fn hs_extensions(after_cif: &[u8]) -> impl Iterator<Item = (u16, &[u8])> + '_ {
    let mut rest = after_cif;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let ty = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]])) * 4;
        if rest.len() < 4 + len {
            rest = &[];
            return None;
        }
        let body = &rest[4..4 + len];
        rest = &rest[4 + len..];
        Some((ty, body))
    })
}

/// Writes an extension block header (`words` = content length in 32-bit words).
pub fn write_ext_header(buf: &mut [u8], ty: u16, words: u16) -> usize {
    buf[0..2].copy_from_slice(&ty.to_be_bytes());
    buf[2..4].copy_from_slice(&words.to_be_bytes());
    4
}

/// The HSREQ/HSRSP contents: version, flags, and both TSBPD delays in ms (receiver's in the
/// high half, sender's in the low half).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HsExt {
    pub version: u32,
    pub flags: u32,
    pub recv_delay_ms: u16,
    pub send_delay_ms: u16,
}

impl HsExt {
    pub fn parse(body: &[u8]) -> Option<HsExt> {
        if body.len() < 12 {
            return None;
        }
        let w2 = be32(body, 8);
        Some(HsExt {
            version: be32(body, 0),
            flags: be32(body, 4),
            recv_delay_ms: (w2 >> 16) as u16,
            send_delay_ms: (w2 & 0xFFFF) as u16,
        })
    }

    pub fn write(&self, buf: &mut [u8]) -> usize {
        put32(buf, 0, self.version);
        put32(buf, 4, self.flags);
        put32(buf, 8, (u32::from(self.recv_delay_ms) << 16) | u32::from(self.send_delay_ms));
        12
    }
}

/// Writes a stream id as libsrt puts it on the wire: zero-padded to whole 32-bit words, each
/// word's bytes reversed (libsrt copies the string into host-order words and byte-swaps every
/// control word on little-endian machines). Returns the length written (a multiple of 4).
pub fn write_stream_id(buf: &mut [u8], sid: &[u8]) -> usize {
    let padded = sid.len().div_ceil(4) * 4;
    buf[..padded].fill(0);
    for (i, b) in sid.iter().enumerate() {
        let word = i / 4;
        buf[word * 4 + 3 - i % 4] = *b;
    }
    padded
}

/// The reverse of [`write_stream_id`]: the stream id bytes, without the zero padding.
pub fn read_stream_id(body: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    for chunk in body.chunks_exact(4) {
        for b in chunk.iter().rev() {
            if n < out.len() {
                out[n] = *b;
                n += 1;
            }
        }
    }
    while n > 0 && out[n - 1] == 0 {
        n -= 1;
    }
    n
}

/// libsrt's name for a rejection reason (handshake type − 1000).
pub fn reject_reason(code: u32) -> &'static str {
    match code.saturating_sub(HS_TYPE_REJECT_BASE) {
        0 => "unknown or erroneous",
        1 => "system function error",
        2 => "rejected by peer",
        3 => "resource allocation problem",
        4 => "incorrect data in handshake",
        5 => "listener's backlog exceeded",
        6 => "internal program error",
        7 => "socket is closing",
        8 => "peer is older version than agent's minimum set",
        9 => "rendezvous cookie collision",
        10 => "incorrect passphrase",
        11 => "password required or unexpected",
        12 => "stream flag collision",
        13 => "incompatible congestion-controller type",
        14 => "incompatible packet filter",
        15 => "incompatible group",
        16 => "connection timeout",
        17 => "crypto mode mismatch",
        _ if code >= 2000 => "rejected by the application (user code)",
        _ if code >= 1400 => "rejected by the server's access control",
        _ => "unknown reason",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_arithmetic_wraps_at_31_bits() {
        assert_eq!(seq_add(SEQ_MASK, 1), 0);
        assert_eq!(seq_add(SEQ_MASK - 1, 5), 3);
        assert_eq!(seq_diff(3, SEQ_MASK - 1), 5);
        assert_eq!(seq_diff(SEQ_MASK - 1, 3), -5);
        assert_eq!(seq_diff(100, 100), 0);
        assert_eq!(seq_diff(0, 1), -1);
    }

    #[test]
    fn msgno_wraps_to_one_never_zero() {
        assert_eq!(msgno_next(1), 2);
        assert_eq!(msgno_next(MSGNO_MASK - 1), MSGNO_MASK);
        assert_eq!(msgno_next(MSGNO_MASK), 1);
    }

    #[test]
    fn data_header_round_trip() {
        let mut b = [0u8; 16];
        write_data_header(&mut b, 0x7FFF_FFFE, 0x03FF_FFFF, KK_EVEN, true, 0xDEAD_BEEF, 0x1234_5678);
        let h = parse_data_header(&b).unwrap();
        assert_eq!(
            h,
            DataHeader {
                seq: 0x7FFF_FFFE,
                position: 0b11,
                in_order: false,
                kk: KK_EVEN,
                retransmitted: true,
                msgno: 0x03FF_FFFF,
                timestamp: 0xDEAD_BEEF,
                dest: 0x1234_5678
            }
        );
        // Solo packet, KK = 01, R set: 11 0 01 1 then the message number.
        assert_eq!(b[4], 0b1100_1111);
        assert!(parse_control(&b).is_none());
    }

    #[test]
    fn control_header_round_trip() {
        let mut b = [0u8; 20];
        write_control_header(&mut b, CTRL_ACKACK, 77, 1000, 42);
        let c = parse_control(&b).unwrap();
        assert_eq!((c.ctype, c.subtype, c.info, c.timestamp, c.dest, c.cif.len()), (CTRL_ACKACK, 0, 77, 1000, 42, 4));
        assert_eq!(&b[..4], &[0x80, 0x06, 0, 0]);
        assert!(parse_data_header(&b).is_none());
    }

    #[test]
    fn nak_list_decodes_ranges_and_singles() {
        let mut cif = [0u8; 32];
        let mut n = write_nak_entry(&mut cif, 5, 5);
        n += write_nak_entry(&mut cif[n..], 10, 14);
        n += write_nak_entry(&mut cif[n..], SEQ_MASK - 1, 2);
        let v: Vec<_> = nak_ranges(&cif[..n]).collect();
        assert_eq!(v, vec![(5, 5), (10, 14), (SEQ_MASK - 1, 2)]);
        assert_eq!(&cif[4..8], &[0x80, 0, 0, 10]);
        // A range start with its end cut off is ignored, as are trailing odd bytes.
        let v: Vec<_> = nak_ranges(&cif[..n - 4 + 2]).collect();
        assert_eq!(v, vec![(5, 5), (10, 14)]);
    }

    #[test]
    fn ack_parse_light_and_full() {
        let mut cif = [0u8; 28];
        let full = Ack {
            ack_seq: 9,
            rtt_us: Some(20_000),
            rtt_var_us: Some(5_000),
            buffer_available: Some(8000),
            recv_rate_pkts: Some(300),
            link_capacity_pkts: Some(9000),
            recv_rate_bytes: Some(400_000),
        };
        assert_eq!(full.write(&mut cif), 28);
        assert_eq!(Ack::parse(&cif).unwrap(), full);
        assert!(!Ack::is_light(&cif));
        let light = Ack::parse(&cif[..4]).unwrap();
        assert_eq!(light, Ack { ack_seq: 9, ..Default::default() });
        assert!(Ack::is_light(&cif[..4]));
        assert!(Ack::parse(&cif[..3]).is_none());
    }

    #[test]
    fn handshake_round_trip_and_extensions() {
        let hs = Handshake {
            version: 5,
            encryption: 2,
            extension: HS_EXT_FLAG_HSREQ | HS_EXT_FLAG_CONFIG,
            initial_seq: 12345,
            mtu: 1500,
            flow_window: 8192,
            hs_type: HS_TYPE_CONCLUSION,
            socket_id: 0x1111_2222,
            cookie: 0xABCD_EF01,
            peer_ip: [1; 16],
        };
        let mut b = [0u8; 128];
        let mut n = hs.write(&mut b);
        n += write_ext_header(&mut b[n..], EXT_HSREQ, 3);
        let ext = HsExt { version: SRT_VERSION, flags: 0x3F, recv_delay_ms: 120, send_delay_ms: 120 };
        n += ext.write(&mut b[n..]);
        n += write_ext_header(&mut b[n..], EXT_SID, 2);
        n += write_stream_id(&mut b[n..], b"abcdef");
        assert_eq!(Handshake::parse(&b[..n]).unwrap(), hs);
        let exts: Vec<_> = hs_extensions(&b[HS_CIF_LEN..n]).collect();
        assert_eq!(exts.len(), 2);
        assert_eq!(HsExt::parse(exts[0].1).unwrap(), ext);
        assert_eq!(exts[1].1, b"dcba\0\0fe");
        let mut sid = [0u8; 16];
        let k = read_stream_id(exts[1].1, &mut sid);
        assert_eq!(&sid[..k], b"abcdef");
        // A block claiming more than the datagram holds ends the list.
        assert_eq!(hs_extensions(&b[HS_CIF_LEN..n - 1]).count(), 1);
    }

    #[test]
    fn reject_reasons() {
        assert_eq!(reject_reason(1010), "incorrect passphrase");
        assert_eq!(reject_reason(1011), "password required or unexpected");
        assert_eq!(reject_reason(1403), "rejected by the server's access control");
    }
}
