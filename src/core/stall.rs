//! Notices a connection that is open but no longer carries data.
//!
//! Three signals, because none is enough alone: on a dead link the kernel's socket buffer (up
//! to megabytes) keeps accepting writes for a long time, so write progress stops only once that
//! buffer is full; the server's RTMP acknowledgements stop at once. But some servers never send
//! acknowledgements, so acks count only once the server has shown that it sends them. And the
//! sender may stop writing altogether (the congestion policy drops every frame once what is in
//! the socket is old; a video-only stream then writes nothing): the kernel's own count of bytes
//! the peer has not acknowledged still shows the stall, where the platform reports it.
//!
//! Pure: time is passed in. One detector per connection.

use std::time::{Duration, Instant};

/// Stall detection for one connection.
#[derive(Debug, Clone)]
pub struct StallDetector {
    timeout: Duration,
    total_written: u64,
    last_write_progress: Instant,
    total_acked: u64,
    last_ack_progress: Instant,
    ack_seen: bool,
    /// Bytes the peer's TCP acknowledged (written less the kernel's unacknowledged count), once
    /// the link reports them.
    total_delivered: Option<u64>,
    last_delivery_progress: Instant,
}

impl StallDetector {
    /// A detector for a connection that starts at `now`; `timeout` is how long without progress
    /// counts as a stall (5 s by default in the pusher).
    pub fn new(timeout: Duration, now: Instant) -> Self {
        StallDetector {
            timeout,
            total_written: 0,
            last_write_progress: now,
            total_acked: 0,
            last_ack_progress: now,
            ack_seen: false,
            total_delivered: None,
            last_delivery_progress: now,
        }
    }

    /// Bytes were written to the socket: `total_written` is the running total on this
    /// connection, counted the same way as the server's acknowledgements.
    pub fn on_write(&mut self, now: Instant, total_written: u64) {
        if total_written > self.total_written {
            if self.total_delivered.is_some_and(|d| d >= self.total_written) {
                // Everything before had left: the wait for this write's delivery starts now,
                // not at the last delivery before a quiet spell.
                self.last_delivery_progress = now;
            }
            self.total_written = total_written;
            self.last_write_progress = now;
        }
    }

    /// The server acknowledged `total_acked` bytes (the RTMP Acknowledgement sequence number).
    /// The wire value is 32 bits and wraps after 4 GiB (about two hours at 4 Mbit/s); a value
    /// below the previous one is taken as a wrap, so the raw number may be passed as is.
    pub fn on_ack(&mut self, now: Instant, total_acked: u64) {
        let total = if total_acked >= self.total_acked {
            total_acked
        } else {
            let delta = (total_acked as u32).wrapping_sub(self.total_acked as u32);
            self.total_acked + u64::from(delta)
        };
        if total > self.total_acked || !self.ack_seen {
            self.total_acked = total;
            self.last_ack_progress = now;
        }
        self.ack_seen = true;
    }

    /// The peer's TCP has acknowledged `total_delivered` bytes of those written (the kernel's
    /// unacknowledged count, e.g. Linux `SIOCOUTQ`, taken from the total written). A link that
    /// cannot tell never calls this, and the rule stays off.
    pub fn on_delivered(&mut self, now: Instant, total_delivered: u64) {
        if self.total_delivered.is_none_or(|d| total_delivered > d) {
            self.total_delivered = Some(total_delivered);
            self.last_delivery_progress = now;
        }
    }

    /// Whether the connection is stalled now:
    /// - `pending_output` (the session holds bytes the socket did not take) and no write
    ///   progress for `timeout`; or
    /// - once the server has acknowledged at least once, more than `2 × ack_window` bytes written
    ///   beyond the last acknowledgement and no acknowledgement progress for `timeout`.
    ///   `ack_window` is the server's Window Acknowledgement Size; 0 (not announced) turns
    ///   this rule off; or
    /// - bytes written that the peer's TCP has not acknowledged (see [`Self::on_delivered`]) and
    ///   no delivery progress for `timeout`.
    ///
    /// An idle connection with nothing pending is never stalled. Call it after every write
    /// attempt as well as on timer wake-ups: a stall can begin with a write that the socket
    /// refuses after a quiet spell, and no timer announces that. Reporting such a stall at once
    /// is right: a socket that takes nothing after `timeout` of quiet has not drained its
    /// buffer in all that time.
    pub fn is_stalled(&self, now: Instant, pending_output: bool, ack_window: u64) -> bool {
        let write_stalled = pending_output && self.since(now, self.last_write_progress);
        let ack_stalled = self.ack_rule_armed(ack_window) && self.since(now, self.last_ack_progress);
        let delivery_stalled = self.total_delivered.is_some_and(|d| d < self.total_written)
            && self.since(now, self.last_delivery_progress);
        write_stalled || ack_stalled || delivery_stalled
    }

    /// How long until the detector could first report a stall, for the worker's poll timeout.
    /// When every deadline has passed already, a stall can only begin with a change the worker
    /// sees itself (a refused write, unacked bytes growing), so this returns `timeout` as a
    /// re-check interval rather than zero, which would spin.
    pub fn next_check(&self, now: Instant) -> Duration {
        let write = Some(self.last_write_progress + self.timeout);
        let ack = self.ack_seen.then(|| self.last_ack_progress + self.timeout);
        let delivery = self.total_delivered.map(|_| self.last_delivery_progress + self.timeout);
        [write, ack, delivery].into_iter().flatten().filter(|d| *d > now).map(|d| d - now).min().unwrap_or(self.timeout)
    }

    /// Bytes written that the server has not acknowledged yet.
    pub fn unacked(&self) -> u64 {
        self.total_written.saturating_sub(self.total_acked)
    }

    fn ack_rule_armed(&self, ack_window: u64) -> bool {
        self.ack_seen && ack_window > 0 && self.unacked() > ack_window.saturating_mul(2)
    }

    fn since(&self, now: Instant, at: Instant) -> bool {
        now.saturating_duration_since(at) >= self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);
    const WINDOW: u64 = 2_500_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steady_writes_and_acks_never_stall() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        // 4 Mbit/s = 500 kB/s in 20 ms writes; the server acks every window for 10 minutes.
        let mut written = 0u64;
        let mut next_ack = WINDOW;
        for step in 0..30_000u64 {
            let now = t0 + ms(step * 20);
            written += 10_000;
            s.on_write(now, written);
            if written >= next_ack {
                s.on_ack(now, next_ack);
                next_ack += WINDOW;
            }
            // Sometimes the socket is momentarily full.
            let pending = step % 7 == 0;
            assert!(!s.is_stalled(now, pending, WINDOW), "at {step}");
        }
    }

    #[test]
    fn blocked_writes_stall_at_the_timeout_not_before() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        s.on_write(t0, 64_000);
        // The socket takes nothing more; the session keeps bytes pending.
        assert!(!s.is_stalled(t0 + ms(4_900), true, WINDOW));
        assert!(s.is_stalled(t0 + ms(5_000), true, WINDOW));
        // Writing the same total again is not progress.
        s.on_write(t0 + ms(5_000), 64_000);
        assert!(s.is_stalled(t0 + ms(5_001), true, WINDOW));
        // Real progress clears it.
        s.on_write(t0 + ms(5_100), 64_001);
        assert!(!s.is_stalled(t0 + ms(5_100), true, WINDOW));
        assert!(s.is_stalled(t0 + ms(10_100), true, WINDOW));
    }

    #[test]
    fn writes_flowing_but_acks_stopped_stalls_after_the_timeout() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        s.on_write(t0, WINDOW + 100);
        s.on_ack(t0, WINDOW);
        // The link dies at t0: the kernel buffer still swallows every write (2 MB/s), acks stop.
        let mut written = WINDOW + 100;
        let mut stalled_at = None;
        for step in 1..=1_000u64 {
            let now = t0 + ms(step * 10);
            written += 20_000;
            s.on_write(now, written);
            if s.is_stalled(now, false, WINDOW) {
                stalled_at = Some(now - t0);
                break;
            }
        }
        // More than 3 windows are unacked from 3.75 s on; the silence reaches 5 s at 5 s.
        assert_eq!(stalled_at, Some(ms(5_000)));
        assert!(s.unacked() > 3 * WINDOW);
    }

    #[test]
    fn ack_rule_needs_both_the_backlog_and_the_silence() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        s.on_ack(t0, 0);
        // 3 windows unacked, but the last ack is recent.
        s.on_write(t0, 3 * WINDOW);
        assert!(!s.is_stalled(t0 + ms(4_999), false, WINDOW));
        assert!(s.is_stalled(t0 + ms(5_000), false, WINDOW));
        // A low-bitrate stream: acks far apart, but less than 2 windows outstanding.
        let mut s = StallDetector::new(TIMEOUT, t0);
        s.on_ack(t0, 0);
        s.on_write(t0 + ms(60_000), 2 * WINDOW);
        assert!(!s.is_stalled(t0 + ms(60_000), false, WINDOW));
        // An ack that moves forward resets the clock.
        let mut s = StallDetector::new(TIMEOUT, t0);
        s.on_ack(t0, 0);
        s.on_write(t0, 3 * WINDOW);
        s.on_ack(t0 + ms(4_000), 10);
        assert!(!s.is_stalled(t0 + ms(8_999), false, WINDOW));
        assert!(s.is_stalled(t0 + ms(9_000), false, WINDOW));
        // A repeated ack does not.
        s.on_ack(t0 + ms(8_000), 10);
        assert!(s.is_stalled(t0 + ms(9_000), false, WINDOW));
    }

    #[test]
    fn without_any_ack_only_the_write_rule_applies() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        // A server that never acks, 100 windows in: fine while writes progress.
        for step in 0..=600u64 {
            let now = t0 + ms(step * 100);
            s.on_write(now, (step + 1) * WINDOW);
            assert!(!s.is_stalled(now, true, WINDOW));
        }
        // Then the socket blocks.
        let last = t0 + ms(60_000);
        assert!(!s.is_stalled(last + ms(4_999), true, WINDOW));
        assert!(s.is_stalled(last + ms(5_000), true, WINDOW));
    }

    #[test]
    fn idle_connection_is_never_stalled() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        assert!(!s.is_stalled(t0 + ms(3_600_000), false, WINDOW));
        s.on_write(t0, 1_000);
        s.on_ack(t0, 1_000);
        assert!(!s.is_stalled(t0 + ms(3_600_000), false, WINDOW));
    }

    #[test]
    fn zero_window_disables_the_ack_rule() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        s.on_ack(t0, 0);
        s.on_write(t0 + ms(10_000), 100 * WINDOW);
        assert!(!s.is_stalled(t0 + ms(10_000), false, 0));
        assert!(s.is_stalled(t0 + ms(10_000), false, WINDOW));
    }

    #[test]
    fn ack_sequence_number_wraps_at_32_bits() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        let near = u64::from(u32::MAX) - 1_000;
        s.on_write(t0, near + 1_000);
        s.on_ack(t0, near);
        // Raw wire values after the wrap: 500, then 2 000.
        s.on_write(t0 + ms(1_000), near + 3_000);
        s.on_ack(t0 + ms(1_000), 500);
        assert_eq!(s.unacked(), 1_499);
        // The server may count a few bytes more than we wrote (e.g. the handshake): never negative.
        s.on_ack(t0 + ms(2_000), 2_000);
        assert_eq!(s.unacked(), 0);
        // Progress across the wrap counts as progress.
        assert!(!s.is_stalled(t0 + ms(6_000), false, 1));
    }

    #[test]
    fn next_check_points_at_the_earliest_deadline() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(TIMEOUT, t0);
        assert_eq!(s.next_check(t0), TIMEOUT);
        s.on_write(t0 + ms(1_000), 10);
        assert_eq!(s.next_check(t0 + ms(2_000)), ms(4_000));
        s.on_ack(t0 + ms(500), 5);
        assert_eq!(s.next_check(t0 + ms(2_000)), ms(3_500));
        // All deadlines behind us: a re-check interval, never zero (the worker would spin).
        assert_eq!(s.next_check(t0 + ms(60_000)), TIMEOUT);
        // Waking at the reported time finds the stall (for a blocked socket).
        let mut s = StallDetector::new(TIMEOUT, t0);
        s.on_write(t0 + ms(700), 10);
        let wake = t0 + ms(700) + s.next_check(t0 + ms(700));
        assert!(!s.is_stalled(wake - ms(1), true, WINDOW));
        assert!(s.is_stalled(wake, true, WINDOW));
    }

    #[test]
    fn undelivered_bytes_stall_even_when_nothing_more_is_written() {
        let t0 = Instant::now();
        let mut d = StallDetector::new(TIMEOUT, t0);
        d.on_write(t0, 100_000);
        d.on_delivered(t0, 60_000);
        // The sender stops writing (its congestion policy drops everything); the socket keeps
        // 40 KB the peer never acknowledges. No backlog, no RTMP acks: only this rule sees it.
        d.on_delivered(t0 + ms(2000), 90_000);
        assert!(!d.is_stalled(t0 + ms(6999), false, 0));
        assert!(d.is_stalled(t0 + ms(7000), false, 0));
        assert_eq!(d.next_check(t0 + ms(3000)), ms(2000));
        // Delivered at last: no longer stalled.
        d.on_delivered(t0 + ms(7100), 100_000);
        assert!(!d.is_stalled(t0 + ms(20_000), false, 0));
    }

    #[test]
    fn a_write_after_a_quiet_spell_waits_its_own_timeout_for_delivery() {
        let t0 = Instant::now();
        let mut d = StallDetector::new(TIMEOUT, t0);
        d.on_write(t0, 1000);
        d.on_delivered(t0 + ms(10), 1000);
        // Idle for a minute, everything delivered; then a write the peer has not acknowledged yet.
        let t1 = t0 + ms(60_000);
        d.on_write(t1, 2000);
        d.on_delivered(t1, 1000);
        assert!(!d.is_stalled(t1 + ms(1), false, 0));
        assert!(!d.is_stalled(t1 + ms(4999), false, 0));
        assert!(d.is_stalled(t1 + ms(5000), false, 0));
    }

    #[test]
    fn links_that_cannot_count_deliveries_never_use_the_rule() {
        let t0 = Instant::now();
        let mut d = StallDetector::new(TIMEOUT, t0);
        d.on_write(t0, 100_000);
        assert!(!d.is_stalled(t0 + ms(60_000), false, 0));
    }
}
