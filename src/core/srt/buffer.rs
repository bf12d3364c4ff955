//! The sender's buffer: a ring of fixed-size packet slots holding every packet from the oldest
//! unacknowledged one to the newest queued one, in sequence order. Slot `i` (counted from the
//! head) carries sequence number `base_seq + i`; the first `sent` slots have been transmitted at
//! least once. The payload bytes live in one contiguous allocation that only grows (doubling, up
//! to a cap) when the ring is full, so steady state allocates nothing.

use std::time::{Duration, Instant};

use super::packet::{seq_add, seq_diff};

#[derive(Debug, Clone, Copy)]
struct Meta {
    len: u16,
    msgno: u32,
    /// When `send` queued it: the packet's timestamp, and its age for the too-late drop.
    origin: Instant,
    /// Last (re)transmission, for the retransmission hold-off.
    last_tx: Option<Instant>,
    /// Reported lost by the peer and not yet retransmitted.
    lost: bool,
    /// Lost past its play time at the receiver: never retransmitted again.
    given_up: bool,
}

/// A range of packets removed from the front without acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub first_seq: u32,
    pub last_seq: u32,
    pub first_msgno: u32,
    pub count: usize,
}

#[derive(Debug)]
pub struct SendBuffer {
    slot_size: usize,
    data: Vec<u8>,
    meta: Vec<Meta>,
    max_slots: usize,
    head: usize,
    len: usize,
    sent: usize,
    base_seq: u32,
    lost: usize,
}

impl SendBuffer {
    pub fn new(slot_size: usize, slots: usize, max_slots: usize, base_seq: u32, now: Instant) -> SendBuffer {
        let slots = slots.clamp(1, max_slots.max(1));
        SendBuffer {
            slot_size,
            data: vec![0; slot_size * slots],
            meta: vec![Meta { len: 0, msgno: 0, origin: now, last_tx: None, lost: false, given_up: false }; slots],
            max_slots: max_slots.max(slots),
            head: 0,
            len: 0,
            sent: 0,
            base_seq,
            lost: 0,
        }
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Packets transmitted at least once and not yet acknowledged (the flight).
    pub fn sent(&self) -> usize {
        self.sent
    }
    pub fn unsent(&self) -> usize {
        self.len - self.sent
    }
    pub fn lost(&self) -> usize {
        self.lost
    }
    pub fn base_seq(&self) -> u32 {
        self.base_seq
    }
    /// Whether `push` can take one more packet (now, or after growing).
    pub fn has_room(&self) -> bool {
        self.len < self.meta.len() || self.meta.len() < self.max_slots
    }
    pub fn oldest_origin(&self) -> Option<Instant> {
        (self.len > 0).then(|| self.meta[self.head].origin)
    }

    /// When the oldest packet not sent yet was queued.
    pub fn next_unsent_origin(&self) -> Option<Instant> {
        (self.sent < self.len).then(|| self.meta[self.idx(self.sent)].origin)
    }

    fn idx(&self, i: usize) -> usize {
        (self.head + i) % self.meta.len()
    }

    /// Queues a packet and returns the slot's payload for in-place processing (encryption),
    /// with its sequence number. `None` when full at the cap.
    pub fn push(&mut self, now: Instant, payload: &[u8], msgno: u32) -> Option<(u32, &mut [u8])> {
        debug_assert!(payload.len() <= self.slot_size);
        if self.len == self.meta.len() {
            if self.meta.len() >= self.max_slots {
                return None;
            }
            self.grow();
        }
        let seq = seq_add(self.base_seq, self.len as u32);
        let i = self.idx(self.len);
        self.meta[i] =
            Meta { len: payload.len() as u16, msgno, origin: now, last_tx: None, lost: false, given_up: false };
        self.len += 1;
        let slot = &mut self.data[i * self.slot_size..i * self.slot_size + payload.len()];
        slot.copy_from_slice(payload);
        Some((seq, slot))
    }

    /// Doubles the ring (up to the cap), unrolling it so the head is at slot 0. Rare: the ring
    /// starts sized for the expected rate and the too-late drop bounds its occupancy.
    fn grow(&mut self) {
        let old = self.meta.len();
        let new = (old * 2).min(self.max_slots);
        let mut data = vec![0u8; new * self.slot_size];
        let mut meta = Vec::with_capacity(new);
        for k in 0..self.len {
            let i = self.idx(k);
            data[k * self.slot_size..(k + 1) * self.slot_size]
                .copy_from_slice(&self.data[i * self.slot_size..(i + 1) * self.slot_size]);
            meta.push(self.meta[i]);
        }
        let filler = self.meta[self.head];
        meta.resize(new, filler);
        self.data = data;
        self.meta = meta;
        self.head = 0;
    }

    /// Packet `i` from the head: (sequence number, message number, origin, payload).
    pub fn packet(&self, i: usize) -> (u32, u32, Instant, &[u8]) {
        let j = self.idx(i);
        let m = &self.meta[j];
        (
            seq_add(self.base_seq, i as u32),
            m.msgno,
            m.origin,
            &self.data[j * self.slot_size..j * self.slot_size + usize::from(m.len)],
        )
    }

    /// Marks the next unsent packet as sent and returns its index.
    pub fn next_unsent(&mut self, now: Instant) -> Option<usize> {
        if self.sent >= self.len {
            return None;
        }
        let i = self.sent;
        let j = self.idx(i);
        self.meta[j].last_tx = Some(now);
        self.sent += 1;
        Some(i)
    }

    /// Removes the first `n` packets (acknowledged or dropped).
    fn pop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        for k in 0..n {
            let j = self.idx(k);
            if self.meta[j].lost {
                self.meta[j].lost = false;
                self.lost -= 1;
            }
        }
        self.head = self.idx(n);
        self.len -= n;
        self.sent = self.sent.saturating_sub(n);
        self.base_seq = seq_add(self.base_seq, n as u32);
    }

    /// Applies an acknowledgement of everything before `ack_seq`. Returns how many packets it
    /// released, or `None` when it acknowledges packets never sent (a bogus or foreign ACK).
    pub fn acknowledge(&mut self, ack_seq: u32) -> Option<usize> {
        let d = seq_diff(ack_seq, self.base_seq);
        if d <= 0 {
            return Some(0);
        }
        let d = d as usize;
        if d > self.sent {
            return None;
        }
        self.pop_front(d);
        Some(d)
    }

    /// Marks the sent packets in `lo..=hi` lost; returns how many were newly marked. Parts of
    /// the range outside the flight (acknowledged, dropped, never sent) are ignored, so a
    /// hostile range costs at most one pass over the flight.
    pub fn mark_lost(&mut self, lo: u32, hi: u32) -> usize {
        if self.sent == 0 {
            return 0;
        }
        let lo_off = seq_diff(lo, self.base_seq);
        let hi_off = seq_diff(hi, self.base_seq);
        if hi_off < lo_off || hi_off < 0 || lo_off >= self.sent as i32 {
            return 0;
        }
        let from = lo_off.max(0) as usize;
        let to = (hi_off as usize).min(self.sent - 1);
        let mut newly = 0;
        for k in from..=to {
            let j = self.idx(k);
            if !self.meta[j].lost && !self.meta[j].given_up {
                self.meta[j].lost = true;
                self.lost += 1;
                newly += 1;
            }
        }
        newly
    }

    /// Takes the lost packets queued before `cutoff` off the loss list for good (later NAKs for
    /// them are ignored): their play time at the receiver has passed, so a retransmission would
    /// only be discarded there, and on a lossy link it takes bandwidth from packets that can
    /// still make it. Returns how many were given up.
    pub fn give_up_lost_before(&mut self, cutoff: Instant) -> usize {
        let mut n = 0;
        for k in 0..self.sent {
            if self.lost == 0 {
                break;
            }
            let j = self.idx(k);
            if self.meta[j].origin >= cutoff {
                // Queued in order: the rest are younger.
                break;
            }
            if self.meta[j].lost {
                self.meta[j].lost = false;
                self.meta[j].given_up = true;
                self.lost -= 1;
                n += 1;
            }
        }
        n
    }

    /// The oldest lost packet that was not (re)transmitted within `hold_off`, marked as
    /// retransmitted now. Lost packets inside the hold-off are taken off the loss list (as
    /// libsrt does): the receiver's periodic NAK report asks for them again if needed.
    pub fn next_lost(&mut self, now: Instant, hold_off: Duration) -> Option<usize> {
        if self.lost == 0 {
            return None;
        }
        for k in 0..self.sent {
            let j = self.idx(k);
            if !self.meta[j].lost {
                continue;
            }
            self.meta[j].lost = false;
            self.lost -= 1;
            let recent = self.meta[j].last_tx.is_some_and(|t| now.saturating_duration_since(t) < hold_off);
            if recent {
                if self.lost == 0 {
                    return None;
                }
                continue;
            }
            self.meta[j].last_tx = Some(now);
            return Some(k);
        }
        None
    }

    /// When the oldest packet was last (re)transmitted, if it has been sent and is not already
    /// waiting for retransmission.
    pub fn head_last_tx(&self) -> Option<Instant> {
        if self.sent == 0 {
            return None;
        }
        let m = &self.meta[self.head];
        if m.lost {
            None
        } else {
            m.last_tx
        }
    }

    /// The newest transmitted packet's sequence number, origin and last (re)transmission, if it
    /// is not already waiting for retransmission.
    pub fn tail_last_tx(&self) -> Option<(u32, Instant, Instant)> {
        if self.sent == 0 {
            return None;
        }
        let m = &self.meta[self.idx(self.sent - 1)];
        if m.lost || m.given_up {
            return None;
        }
        Some((seq_add(self.base_seq, self.sent as u32 - 1), m.origin, m.last_tx?))
    }

    /// Drops packets queued before `cutoff` from the front.
    pub fn drop_older_than(&mut self, cutoff: Instant) -> Option<Dropped> {
        let mut n = 0;
        while n < self.len && self.meta[self.idx(n)].origin < cutoff {
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let first_msgno = self.meta[self.head].msgno;
        let d =
            Dropped { first_seq: self.base_seq, last_seq: seq_add(self.base_seq, n as u32 - 1), first_msgno, count: n };
        self.pop_front(n);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::srt::packet::SEQ_MASK;

    #[test]
    fn push_ack_wrap_and_grow() {
        let t0 = Instant::now();
        let mut b = SendBuffer::new(8, 2, 8, SEQ_MASK - 1, t0);
        for k in 0..5u8 {
            let (seq, slot) = b.push(t0, &[k; 3], u32::from(k) + 1).unwrap();
            assert_eq!(seq, seq_add(SEQ_MASK - 1, u32::from(k)));
            slot[0] = 100 + k;
        }
        assert_eq!(b.capacity(), 8);
        for _ in 0..3 {
            b.next_unsent(t0).unwrap();
        }
        // Acknowledging beyond the flight is refused; within it releases packets.
        assert_eq!(b.acknowledge(seq_add(SEQ_MASK - 1, 4)), None);
        assert_eq!(b.acknowledge(1), Some(3));
        assert_eq!(b.base_seq(), 1);
        assert_eq!(b.len(), 2);
        assert_eq!(b.sent(), 0);
        let (seq, msgno, _, data) = b.packet(0);
        assert_eq!((seq, msgno, data), (1, 4, &[103u8, 3, 3][..]));
        // Stale ACKs change nothing.
        assert_eq!(b.acknowledge(SEQ_MASK), Some(0));
        for k in 0..6 {
            assert!(b.push(t0, &[k], 9).is_some());
        }
        assert!(!b.has_room());
        assert!(b.push(t0, &[0], 9).is_none());
    }

    #[test]
    fn loss_marking_and_hold_off() {
        let t0 = Instant::now();
        let mut b = SendBuffer::new(4, 16, 16, 100, t0);
        for _ in 0..10 {
            b.push(t0, &[1], 1).unwrap();
        }
        for _ in 0..8 {
            b.next_unsent(t0);
        }
        // Ranges clipped to the flight 100..=107; a reversed range is ignored.
        assert_eq!(b.mark_lost(90, 101), 2);
        assert_eq!(b.mark_lost(106, 200), 2);
        assert_eq!(b.mark_lost(105, 103), 0);
        assert_eq!(b.mark_lost(100, 100), 0);
        assert_eq!(b.lost(), 4);
        let t1 = t0 + Duration::from_millis(50);
        // Sent at t0, hold-off 10 ms: all eligible, oldest first.
        assert_eq!(b.next_lost(t1, Duration::from_millis(10)), Some(0));
        assert_eq!(b.next_lost(t1, Duration::from_millis(10)), Some(1));
        // Mark 100 again right after its retransmission: held off and forgotten.
        b.mark_lost(100, 100);
        assert_eq!(b.next_lost(t1, Duration::from_millis(10)), Some(6));
        assert_eq!(b.next_lost(t1, Duration::from_millis(10)), Some(7));
        assert_eq!(b.next_lost(t1, Duration::from_millis(10)), None);
        assert_eq!(b.lost(), 0);
    }

    #[test]
    fn drop_older_counts_and_clears_loss() {
        let t0 = Instant::now();
        let mut b = SendBuffer::new(4, 8, 8, 5, t0);
        for k in 0..4u32 {
            b.push(t0 + Duration::from_millis(u64::from(k) * 10), &[0], 20 + k).unwrap();
        }
        b.next_unsent(t0);
        b.next_unsent(t0);
        b.mark_lost(5, 6);
        let d = b.drop_older_than(t0 + Duration::from_millis(25)).unwrap();
        assert_eq!(d, Dropped { first_seq: 5, last_seq: 7, first_msgno: 20, count: 3 });
        assert_eq!((b.len(), b.sent(), b.lost(), b.base_seq()), (1, 0, 0, 8));
        assert!(b.drop_older_than(t0).is_none());
    }
}
