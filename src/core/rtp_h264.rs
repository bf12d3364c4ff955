//! RTP payloads for H.264 (RFC 6184, non-interleaved mode: packetization-mode=1) made straight
//! from access units in AVCC form (4-byte big-endian NAL unit lengths), so the WebRTC stack never
//! has to scan for start codes or split frames itself.
//!
//! NAL units that fit go whole, and consecutive small ones share a STAP-A (the SPS and PPS ahead
//! of a keyframe, SEI, small slices); a NAL unit larger than a packet is split into FU-A fragments
//! of near-equal size (a tail fragment of a few bytes would cost a packet's overhead for nothing).
//! The marker bit is on the access unit's last packet. Access unit delimiters are left out: RTP's
//! marker and timestamp already say where a picture ends.

use crate::core::annexb::{length_prefixed_nals, NAL_AUD};
use crate::error::Result;
use std::ops::Range;

const STAP_A: u8 = 24;
const FU_A: u8 = 28;
/// FU indicator and FU header.
const FU_A_HEADER: usize = 2;
/// STAP-A NAL unit header.
const STAP_A_HEADER: usize = 1;
/// Each aggregated NAL unit's size field.
const STAP_A_LENGTH: usize = 2;

/// Makes the RTP payloads of one access unit at a time, in a buffer it keeps (one per link, so
/// nothing is allocated per packet here).
pub struct H264Packetizer {
    max_payload: usize,
    buf: Vec<u8>,
    /// NAL units waiting to be sent whole or aggregated: ranges into the caller's input, the
    /// first of them maybe in `prefix`.
    pending: Vec<(Source, usize, usize)>,
}

#[derive(Clone, Copy)]
enum Source {
    Prefix,
    Unit,
}

impl H264Packetizer {
    /// `max_payload`: the largest RTP payload to make (at least 3 bytes: an FU-A must carry one).
    pub fn new(max_payload: usize) -> H264Packetizer {
        let max_payload = max_payload.max(FU_A_HEADER + 1);
        H264Packetizer { max_payload, buf: Vec::with_capacity(max_payload), pending: Vec::with_capacity(16) }
    }

    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Calls `emit(payload, marker)` for each RTP packet of the access unit `unit`, preceded by the
    /// NAL units of `prefix` (both AVCC; `prefix` holds the SPS and PPS before a keyframe, or is
    /// empty). Checked first, so a malformed length makes an error before any packet is emitted.
    /// Returns the number of packets (0 when the unit holds only delimiters).
    pub fn packetize(&mut self, prefix: &[u8], unit: &[u8], mut emit: impl FnMut(&[u8], bool)) -> Result<usize> {
        let nals = count_nals(prefix)? + count_nals(unit)?;
        if nals == 0 {
            return Ok(0);
        }
        self.pending.clear();
        let mut packets = 0;
        let mut seen = 0;
        // Bytes the pending NAL units take in one STAP-A.
        let mut aggregated = STAP_A_HEADER;
        for (source, data) in [(Source::Prefix, prefix), (Source::Unit, unit)] {
            for Range { start, end } in nal_ranges(data) {
                seen += 1;
                let last = seen == nals;
                let len = end - start;
                if len > self.max_payload {
                    packets += self.flush(prefix, unit, false, &mut emit);
                    aggregated = STAP_A_HEADER;
                    packets += self.fragment(&data[start..end], last, &mut emit);
                    continue;
                }
                if !self.pending.is_empty() && aggregated + STAP_A_LENGTH + len > self.max_payload {
                    packets += self.flush(prefix, unit, false, &mut emit);
                    aggregated = STAP_A_HEADER;
                }
                self.pending.push((source, start, end));
                aggregated += STAP_A_LENGTH + len;
                if last {
                    packets += self.flush(prefix, unit, true, &mut emit);
                }
            }
        }
        Ok(packets)
    }

    /// Sends the pending NAL units: one alone as it is, more as a STAP-A.
    fn flush(&mut self, prefix: &[u8], unit: &[u8], marker: bool, emit: &mut impl FnMut(&[u8], bool)) -> usize {
        let nal = |(source, start, end): (Source, usize, usize)| match source {
            Source::Prefix => &prefix[start..end],
            Source::Unit => &unit[start..end],
        };
        match self.pending.len() {
            0 => return 0,
            1 => emit(nal(self.pending[0]), marker),
            _ => {
                self.buf.clear();
                self.buf.push(0);
                let (mut forbidden, mut nri) = (0u8, 0u8);
                for &p in &self.pending {
                    let n = nal(p);
                    forbidden |= n[0] & 0x80;
                    nri = nri.max(n[0] & 0x60);
                    self.buf.extend_from_slice(&(n.len() as u16).to_be_bytes());
                    self.buf.extend_from_slice(n);
                }
                self.buf[0] = forbidden | nri | STAP_A;
                emit(&self.buf, marker);
            }
        }
        self.pending.clear();
        1
    }

    /// Splits one NAL unit into FU-A fragments of near-equal size: all of one size but the last,
    /// which is at most that (a run the UDP socket can send as one GSO message).
    fn fragment(&mut self, nal: &[u8], last_nal: bool, emit: &mut impl FnMut(&[u8], bool)) -> usize {
        let (header, body) = (nal[0], &nal[1..]);
        let room = self.max_payload - FU_A_HEADER;
        let count = body.len().div_ceil(room);
        let size = body.len().div_ceil(count);
        let mut at = 0;
        for i in 0..count {
            let size = size.min(body.len() - at);
            let mut fu_header = header & 0x1f;
            if i == 0 {
                fu_header |= 0x80;
            }
            let end = i + 1 == count;
            if end {
                fu_header |= 0x40;
            }
            self.buf.clear();
            self.buf.extend_from_slice(&[(header & 0xe0) | FU_A, fu_header]);
            self.buf.extend_from_slice(&body[at..at + size]);
            at += size;
            emit(&self.buf, last_nal && end);
        }
        count
    }
}

/// The NAL units of an AVCC buffer to be sent (delimiters left out), after [`count_nals`] passed.
fn nal_ranges(data: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    length_prefixed_nals(data).filter_map(Result::ok).filter(|r| data[r.start] & 0x1f != NAL_AUD)
}

/// The NAL units to be sent in an AVCC buffer; Err on a length that is zero or overruns it.
fn count_nals(data: &[u8]) -> Result<usize> {
    length_prefixed_nals(data).try_fold(0, |n, r| r.map(|r| n + usize::from(data[r.start] & 0x1f != NAL_AUD)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avcc(nals: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    fn nal(header: u8, len: usize) -> Vec<u8> {
        let mut n = vec![header];
        n.extend((1..len).map(|i| (i * 7 + header as usize) as u8));
        n
    }

    fn packets(p: &mut H264Packetizer, prefix: &[u8], unit: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let n = p.packetize(prefix, unit, |payload, marker| out.push((payload.to_vec(), marker))).unwrap();
        assert_eq!(n, out.len());
        out
    }

    /// What a receiver rebuilds (RFC 6184 5.7, 5.8): the NAL units in order.
    fn reassemble(packets: &[(Vec<u8>, bool)]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut fu: Option<Vec<u8>> = None;
        for (p, _) in packets {
            match p[0] & 0x1f {
                STAP_A => {
                    let mut rest = &p[1..];
                    while !rest.is_empty() {
                        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                        nals.push(rest[2..2 + len].to_vec());
                        rest = &rest[2 + len..];
                    }
                }
                FU_A => {
                    let (start, end) = (p[1] & 0x80 != 0, p[1] & 0x40 != 0);
                    if start {
                        assert!(fu.is_none(), "FU-A start inside a fragmented NAL unit");
                        fu = Some(vec![(p[0] & 0xe0) | (p[1] & 0x1f)]);
                    }
                    fu.as_mut().expect("FU-A without a start").extend_from_slice(&p[2..]);
                    if end {
                        nals.push(fu.take().unwrap());
                    }
                }
                _ => nals.push(p.clone()),
            }
        }
        assert!(fu.is_none(), "FU-A without an end");
        nals
    }

    #[test]
    fn keyframe_round_trip_with_parameter_sets_aggregated() {
        let mut p = H264Packetizer::new(1120);
        let (sps, pps) = (nal(0x67, 20), nal(0x68, 4));
        let sei = nal(0x06, 30);
        let idr = nal(0x65, 5000);
        let prefix = avcc(&[sps.clone(), pps.clone()]);
        let unit = avcc(&[nal(0x09, 2), sei.clone(), idr.clone()]);
        let out = packets(&mut p, &prefix, &unit);
        assert_eq!(reassemble(&out), vec![sps, pps, sei, idr]);
        // SPS, PPS and SEI in one STAP-A, NRI the highest of them; then the IDR in 5 fragments.
        assert_eq!(out[0].0[0], 0x60 | STAP_A);
        assert_eq!(out.len(), 1 + 5);
        assert!(out.iter().all(|(p, _)| p.len() <= 1120));
        let markers: Vec<bool> = out.iter().map(|(_, m)| *m).collect();
        assert_eq!(markers, [false, false, false, false, false, true]);
    }

    #[test]
    fn fu_a_fragments_are_near_equal_with_start_and_end_bits() {
        let mut p = H264Packetizer::new(1120);
        // 1 header byte + 2237 body bytes: 3 fragments (1118 fit each), 746/746/745.
        let unit = avcc(&[nal(0x41, 2238)]);
        let out = packets(&mut p, &[], &unit);
        let sizes: Vec<usize> = out.iter().map(|(p, _)| p.len() - FU_A_HEADER).collect();
        assert_eq!(sizes, [746, 746, 745]);
        assert_eq!(out[0].0[0], 0x40 | FU_A, "F and NRI of the NAL unit, type FU-A");
        let fu_headers: Vec<u8> = out.iter().map(|(p, _)| p[1]).collect();
        assert_eq!(fu_headers, [0x80 | 1, 1, 0x40 | 1]);
        assert_eq!(out.iter().map(|(_, m)| *m).collect::<Vec<_>>(), [false, false, true]);
        // Exactly one packet's room is not fragmented; one byte more is two fragments.
        assert_eq!(packets(&mut p, &[], &avcc(&[nal(0x41, 1120)])).len(), 1);
        let two = packets(&mut p, &[], &avcc(&[nal(0x41, 1121)]));
        assert_eq!(two.iter().map(|(p, _)| p.len()).collect::<Vec<_>>(), [562, 562]);
        // Only the last fragment may be shorter, and by less than a fragment.
        let three = packets(&mut p, &[], &avcc(&[nal(0x41, 2240)]));
        assert_eq!(three.iter().map(|(p, _)| p.len() - FU_A_HEADER).collect::<Vec<_>>(), [747, 747, 745]);
        assert_eq!(reassemble(&three), vec![nal(0x41, 2240)]);
    }

    #[test]
    fn small_nal_units_aggregate_until_the_packet_is_full() {
        let mut p = H264Packetizer::new(100);
        let nals: Vec<Vec<u8>> = (0..5).map(|i| nal(0x21 + i, 40)).collect();
        let out = packets(&mut p, &[], &avcc(&nals));
        // 1 + 2 * (2 + 40) = 85 fits, a third does not: 2 + 2 + 1 alone (sent as it is).
        assert_eq!(out.iter().map(|(p, _)| p.len()).collect::<Vec<_>>(), [85, 85, 40]);
        assert_eq!(out[2].0, nals[4]);
        assert_eq!(out.iter().map(|(_, m)| *m).collect::<Vec<_>>(), [false, false, true]);
        assert_eq!(reassemble(&out), nals);
    }

    #[test]
    fn a_large_nal_unit_flushes_what_waits_before_it() {
        let mut p = H264Packetizer::new(100);
        let nals = vec![nal(0x06, 10), nal(0x41, 250), nal(0x41, 10)];
        let out = packets(&mut p, &[], &avcc(&nals));
        assert_eq!(out[0].0, nals[0]);
        assert_eq!(out.len(), 1 + 3 + 1);
        assert_eq!(out.last().unwrap(), &(nals[2].clone(), true));
        assert_eq!(reassemble(&out), nals);
    }

    #[test]
    fn malformed_lengths_are_errors_before_anything_is_sent() {
        let mut p = H264Packetizer::new(1120);
        let mut sent = 0;
        let good = avcc(&[nal(0x41, 50)]);
        for bad in [
            [good.clone(), vec![0, 0, 0, 9, 1, 2]].concat(), // overruns
            [good.clone(), vec![0, 0, 0, 0]].concat(),       // zero length
            [good.clone(), vec![0, 0]].concat(),             // trailing bytes
        ] {
            assert!(p.packetize(&[], &bad, |_, _| sent += 1).is_err());
            assert!(p.packetize(&bad, &good, |_, _| sent += 1).is_err());
        }
        assert_eq!(sent, 0);
        // Only delimiters: nothing to send, not an error.
        assert_eq!(p.packetize(&[], &avcc(&[nal(0x09, 2)]), |_, _| sent += 1).unwrap(), 0);
        assert_eq!(sent, 0);
    }

    #[test]
    fn a_tiny_packet_size_still_makes_progress() {
        let mut p = H264Packetizer::new(0);
        assert_eq!(p.max_payload(), 3);
        let nals = vec![nal(0x65, 10)];
        let out = packets(&mut p, &[], &avcc(&nals));
        assert_eq!(out.len(), 9);
        assert_eq!(reassemble(&out), nals);
    }
}
