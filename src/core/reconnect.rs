//! When to (re)connect, to which URL, and when to give up.
//!
//! A pure state machine: time comes in as an argument and jitter comes from a small PRNG seeded
//! by the config, so a test can replay an outage exactly. The pusher seeds it from the clock so
//! that many devices cut off by the same outage do not hammer the server in lockstep.

use crate::error::Error;
use std::time::{Duration, Instant};

/// Longer delays are a misconfiguration; the ceiling keeps `now + delay` far from overflowing
/// `Instant`, which would panic inside the network worker.
const MAX_SANE_DELAY: Duration = Duration::from_secs(24 * 3600);

/// Backoff, give-up and failover settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first retry (after a failed first connect, or after losing a publish).
    pub first_delay: Duration,
    /// Growth of the delay per consecutive failure.
    pub multiplier: f64,
    /// Relative jitter: each delay is scaled by a uniform factor in `1 ± jitter`.
    pub jitter: f64,
    /// Cap on the nominal delay (jitter is applied after the cap).
    pub max_delay: Duration,
    /// Consecutive failed attempts since the last successful publish before giving up (the quick
    /// retries of `refused_retry` do not count); `None` = never give up on retryable errors.
    pub max_attempts: Option<u32>,
    /// Consecutive failed attempts on one URL before moving to the next (0 is treated as 1).
    pub failover_after: u32,
    /// While publishing on a backup, how often to check whether the primary answers again.
    /// Zero disables returning to the primary (the stream stays on the backup until it fails).
    pub primary_retry_interval: Duration,
    /// While the server refuses at once (connection refused: its host answers, nothing listens
    /// yet), retry this often instead of backing off: a refused attempt costs nothing, and a
    /// restarting server should get its publisher back the moment it listens again (±jitter).
    /// Zero turns it off. Timeouts and DNS failures always back off.
    pub refused_retry: Duration,
    /// For how long after the first failure of an outage refusals are retried that fast; later
    /// ones back off as usual.
    pub refused_retry_window: Duration,
    /// Seed of the jitter PRNG.
    pub seed: u64,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            first_delay: Duration::from_millis(500),
            multiplier: 1.5,
            jitter: 0.10,
            max_delay: Duration::from_secs(30),
            max_attempts: None,
            failover_after: 2,
            primary_retry_interval: Duration::from_secs(30),
            refused_retry: Duration::from_millis(250),
            refused_retry_window: Duration::from_secs(5),
            seed: 0,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before retry `n` (1-based) without jitter:
    /// `min(first_delay × multiplier^(n-1), max_delay)`. `n = 0` is the first connect: no delay.
    /// Delays are also capped at one day, whatever `max_delay` says.
    pub fn nominal_delay(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        // A multiplier below 1 (or NaN) would make retries speed up during an outage.
        let m = if self.multiplier >= 1.0 { self.multiplier } else { 1.0 };
        let max = self.max_delay.min(MAX_SANE_DELAY).as_secs_f64();
        // powf overflows to infinity after a few thousand attempts; min() absorbs that, and
        // comparing in f64 keeps Duration::from_secs_f64 away from inf/NaN.
        let secs = self.first_delay.as_secs_f64() * m.powf(f64::from(n - 1));
        let secs = if secs.is_finite() { secs.min(max) } else { max };
        Duration::from_secs_f64(secs)
    }

    fn jitter_fraction(&self) -> f64 {
        if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// What the pusher should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Connect now to URL index `url` (0 = primary). `attempt` = consecutive failed attempts so
    /// far + 1 (1 on the first connect and on the first reconnect after losing a publish).
    Connect { url: usize, attempt: u32 },
    /// Wait until `until`, then call [`Reconnector::poll`] again. `delay` is what the
    /// RECONNECTING event reports; `attempt` and `url` describe the connect that will follow.
    Wait { until: Instant, delay: Duration, attempt: u32, url: usize },
    /// Give up: the error is not retryable, or attempts are exhausted.
    GiveUp,
}

/// Reconnect state for one destination with a primary URL and optional backups.
#[derive(Debug, Clone)]
pub struct Reconnector {
    policy: ReconnectPolicy,
    url_count: usize,
    rng: XorShift64,
    url: usize,
    /// Consecutive failed connect attempts since the last publish (attempt numbers, max_attempts).
    failures: u32,
    /// Consecutive failed connect attempts on `url` (failover).
    url_failures: u32,
    /// Index of the last delay taken in this outage; 0 = none yet. Kept apart from `failures`
    /// because losing a publish costs a delay but is not a failed attempt.
    backoff_step: u32,
    wait: Option<(Instant, Duration)>,
    given_up: bool,
    publishing: bool,
    /// While publishing on a backup: when the primary was last tried (or publishing began).
    primary_checked_at: Option<Instant>,
    switch: Option<(usize, usize)>,
    /// When the current run of failures began (None while publishing).
    outage_since: Option<Instant>,
    /// Quick retries after refusals in this run (attempts that do not count toward max_attempts).
    quick: u32,
}

impl Reconnector {
    /// `url_count` is the primary plus backups; 0 is treated as 1.
    pub fn new(policy: ReconnectPolicy, url_count: usize) -> Self {
        let rng = XorShift64::new(policy.seed);
        Reconnector {
            policy,
            url_count: url_count.max(1),
            rng,
            url: 0,
            failures: 0,
            url_failures: 0,
            backoff_step: 0,
            wait: None,
            given_up: false,
            publishing: false,
            primary_checked_at: None,
            switch: None,
            outage_since: None,
            quick: 0,
        }
    }

    /// The policy this reconnector runs.
    pub fn policy(&self) -> &ReconnectPolicy {
        &self.policy
    }

    /// What to do now. Call at start, after each failure, and when a `Wait`'s time has come.
    /// Repeated calls without an intervening event return the same decision.
    pub fn poll(&mut self, now: Instant) -> Decision {
        if self.given_up {
            return Decision::GiveUp;
        }
        let attempt = self.failures.saturating_add(self.quick).saturating_add(1);
        match self.wait {
            Some((until, delay)) if now < until => Decision::Wait { until, delay, attempt, url: self.url },
            _ => {
                self.wait = None;
                Decision::Connect { url: self.url, attempt }
            }
        }
    }

    /// The connection attempt to the current URL failed with `error` before publishing, or an
    /// established publish was lost (`was_publishing = true`).
    pub fn on_failure(&mut self, now: Instant, error: &Error, was_publishing: bool) {
        if self.given_up {
            return;
        }
        self.publishing = false;
        self.primary_checked_at = None;
        let since = *self.outage_since.get_or_insert(now);
        if was_publishing {
            // The URL, credentials and TLS setup were just proven by a working publish, so the
            // error describes the link, not the config: retry whatever it is. If the key was
            // revoked meanwhile, the reconnect itself fails with Auth and gives up then.
            self.failures = 0;
            self.quick = 0;
            self.url_failures = 0;
            self.backoff_step = 1;
        } else {
            if !error.is_retryable() {
                self.give_up();
                return;
            }
            self.failures = self.failures.saturating_add(1);
            self.url_failures = self.url_failures.saturating_add(1);
            self.backoff_step = self.backoff_step.saturating_add(1);
            if let Some(max) = self.policy.max_attempts {
                if self.failures >= max {
                    self.give_up();
                    return;
                }
            }
            if self.url_count > 1 && self.url_failures >= self.policy.failover_after.max(1) {
                let to = (self.url + 1) % self.url_count;
                self.switch_to(to);
            }
            let refused = matches!(error, Error::Connect(_));
            let p = &self.policy;
            if refused && !p.refused_retry.is_zero() && now.saturating_duration_since(since) < p.refused_retry_window {
                // Free: not a step of the backoff (once the window has passed it starts from its
                // first) and not an attempt toward max_attempts (a limit of 5 must not run out in a
                // second). It does count toward failover: a refusing primary hands over quickly.
                self.backoff_step -= 1;
                self.failures -= 1;
                self.quick = self.quick.saturating_add(1);
                let delay = self.jitter(p.refused_retry.min(MAX_SANE_DELAY));
                self.wait = Some((now + delay, delay));
                return;
            }
        }
        let mut delay = self.jittered(self.backoff_step);
        if let Error::Busy { retry_after, .. } = error {
            // The server said when: sooner would be refused again, and a herd of devices
            // retrying on their own schedules is what the header asks to avoid.
            delay = delay.max((*retry_after).min(MAX_SANE_DELAY));
        }
        self.wait = Some((now + delay, delay));
    }

    /// Publishing started on the URL of the last `Connect`.
    pub fn on_published(&mut self, now: Instant) {
        self.publishing = true;
        self.failures = 0;
        self.quick = 0;
        self.url_failures = 0;
        // The next outage starts again at first_delay rather than where this one left off.
        self.backoff_step = 0;
        self.outage_since = None;
        self.wait = None;
        self.primary_checked_at = (self.url != 0).then_some(now);
    }

    /// The device's network changed (Wi-Fi gave way to cellular): whatever the old route did
    /// says nothing about the new one, so the next `poll` connects at once to the current URL,
    /// with the failure counts and the backoff cleared. Call it after `on_failure` for the
    /// connection the change ended, or while waiting.
    pub fn on_network_changed(&mut self) {
        if self.given_up {
            return;
        }
        self.failures = 0;
        self.quick = 0;
        self.url_failures = 0;
        self.backoff_step = 0;
        self.wait = None;
    }

    /// The app supplied a fresh URL (e.g. a newly signed one from its refresh callback): clear
    /// the give-up state and the counts and connect again at once, to the current URL index.
    pub fn reset_after_new_url(&mut self) {
        self.given_up = false;
        self.failures = 0;
        self.quick = 0;
        self.url_failures = 0;
        self.backoff_step = 0;
        self.wait = None;
    }

    /// Whether the last decision (or the next one) is a give-up.
    pub fn is_given_up(&self) -> bool {
        self.given_up
    }

    /// The URL index the next (or current) connection uses.
    pub fn current_url(&self) -> usize {
        self.url
    }

    /// `Some((from, to))` once per URL switch (for the FAILOVER event). Switches that happen
    /// between two calls are folded into one; a round trip back to `from` reports nothing.
    pub fn take_switch(&mut self) -> Option<(usize, usize)> {
        self.switch.take()
    }

    /// While publishing on a backup: whether it is time to try the primary again. The pusher
    /// then makes a probe connection to the primary and reports it with `on_primary_probe`.
    pub fn primary_probe_due(&self, now: Instant) -> bool {
        if self.policy.primary_retry_interval.is_zero() {
            return false;
        }
        match self.primary_checked_at {
            Some(at) if self.publishing && self.url != 0 => {
                now.saturating_duration_since(at) >= self.policy.primary_retry_interval
            }
            _ => false,
        }
    }

    /// Result of a probe connection to the primary. On success the current URL becomes the
    /// primary (a switch is reported) and the next `poll` says to connect to it at once; on
    /// failure the stream stays on the backup and the next probe is due an interval later.
    pub fn on_primary_probe(&mut self, now: Instant, ok: bool) {
        if self.url == 0 {
            return;
        }
        if ok {
            self.switch_to(0);
            self.publishing = false;
            self.primary_checked_at = None;
            self.failures = 0;
            self.quick = 0;
            self.url_failures = 0;
            self.backoff_step = 0;
            self.wait = None;
        } else {
            self.primary_checked_at = Some(now);
        }
    }

    fn give_up(&mut self) {
        self.given_up = true;
        self.wait = None;
    }

    fn switch_to(&mut self, to: usize) {
        let from = self.switch.map_or(self.url, |(from, _)| from);
        self.url = to;
        self.url_failures = 0;
        self.switch = (from != to).then_some((from, to));
    }

    fn jittered(&mut self, n: u32) -> Duration {
        let nominal = self.policy.nominal_delay(n);
        self.jitter(nominal)
    }

    fn jitter(&mut self, nominal: Duration) -> Duration {
        let j = self.policy.jitter_fraction();
        if j == 0.0 {
            return nominal;
        }
        let factor = 1.0 + j * (2.0 * self.rng.next_unit() - 1.0);
        nominal.mul_f64(factor)
    }
}

/// xorshift64: enough to spread retries; not for anything secret.
#[derive(Debug, Clone)]
struct XorShift64(u64);

impl XorShift64 {
    fn new(seed: u64) -> Self {
        // splitmix64 first: seeds taken from the clock differ only in their low bits, and
        // xorshift's early outputs would then be close to each other. Zero is xorshift's
        // fixed point, so it is replaced.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift64(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connect that timed out: always backs off (a refusal is retried quickly, see
    /// `refusals_are_retried_quickly_for_a_while_then_back_off`).
    fn timed_out() -> Error {
        Error::Timeout("connect to 192.0.2.1:1935".into())
    }

    fn refused() -> Error {
        Error::Connect("connection refused".into())
    }

    #[test]
    fn refusals_are_retried_quickly_for_a_while_then_back_off() {
        let t0 = Instant::now();
        let policy = ReconnectPolicy { jitter: 0.1, max_attempts: Some(3), ..Default::default() };
        let mut rc = Reconnector::new(policy, 1);
        let mut now = t0;
        let mut delays = vec![];
        let mut attempts = vec![];
        // A server that refuses for 8 s: quick probes for the first 5 s (jittered), then the
        // backoff from its first step; none of the quick ones counts toward max_attempts.
        let gave_up = loop {
            match rc.poll(now) {
                Decision::Connect { .. } => rc.on_failure(now, &refused(), false),
                Decision::Wait { until, delay, attempt, .. } => {
                    delays.push(delay);
                    attempts.push(attempt);
                    now = until;
                }
                Decision::GiveUp => break now,
            }
        };
        assert!(gave_up >= t0 + Duration::from_secs(5), "the quick retries counted toward max_attempts: {delays:?}");
        assert!(attempts.windows(2).all(|w| w[1] == w[0] + 1), "attempts are still numbered: {attempts:?}");
        let quick: Vec<_> = delays.iter().take_while(|d| **d < Duration::from_millis(400)).collect();
        assert!((18..=23).contains(&quick.len()), "{} quick retries: {delays:?}", quick.len());
        assert!(quick.iter().all(|d| **d >= Duration::from_millis(225) && **d <= Duration::from_millis(275)));
        assert!(quick.windows(2).any(|w| w[0] != w[1]), "jittered: {quick:?}");
        let after = &delays[quick.len()..];
        assert_eq!(after.len(), 2, "three slow attempts, then the limit: {after:?}");
        assert!((450..=550).contains(&(after[0].as_millis() as u64)), "backoff starts afresh: {after:?}");
        // Timeouts back off from the start, and the quick retries can be turned off.
        let mut slow = Reconnector::new(ReconnectPolicy { jitter: 0.0, ..Default::default() }, 1);
        slow.on_failure(t0, &timed_out(), false);
        slow.on_failure(t0, &timed_out(), false);
        assert!(matches!(slow.poll(t0), Decision::Wait { delay, .. } if delay == Duration::from_millis(750)));
        let off = ReconnectPolicy { refused_retry: Duration::ZERO, jitter: 0.0, ..Default::default() };
        let mut off = Reconnector::new(off, 1);
        off.on_failure(t0, &refused(), false);
        assert!(matches!(off.poll(t0), Decision::Wait { delay, .. } if delay == Duration::from_millis(500)));
        // A publish that held ends the outage: the next one gets its own window.
        let mut rc = Reconnector::new(ReconnectPolicy::default(), 1);
        rc.on_failure(now, &refused(), false);
        now += Duration::from_secs(6);
        rc.on_published(now);
        rc.on_failure(now, &refused(), true);
        let Decision::Wait { until, .. } = rc.poll(now) else { panic!() };
        rc.on_failure(until, &refused(), false);
        assert!(matches!(rc.poll(until), Decision::Wait { delay, .. } if delay < Duration::from_millis(300)));
    }

    #[test]
    fn a_network_change_reconnects_at_once_with_the_backoff_cleared() {
        let t0 = Instant::now();
        let mut rc = Reconnector::new(ReconnectPolicy { jitter: 0.0, ..Default::default() }, 1);
        assert!(matches!(rc.poll(t0), Decision::Connect { .. }));
        rc.on_published(t0);
        // The publish is lost to the old route: normally a 0.5 s wait, then growing.
        rc.on_failure(t0, &timed_out(), true);
        for _ in 0..4 {
            rc.on_failure(t0, &timed_out(), false);
        }
        assert!(matches!(rc.poll(t0), Decision::Wait { .. }));
        rc.on_network_changed();
        assert_eq!(rc.poll(t0), Decision::Connect { url: 0, attempt: 1 });
        // The next failure on the new route starts the backoff from its first step.
        rc.on_failure(t0, &timed_out(), false);
        match rc.poll(t0) {
            Decision::Wait { delay, .. } => assert_eq!(delay, Duration::from_millis(500)),
            d => panic!("{d:?}"),
        }
        // A destination that gave up stays given up.
        let mut gone = Reconnector::new(ReconnectPolicy::default(), 1);
        gone.on_failure(t0, &Error::Auth("denied".into()), false);
        gone.on_network_changed();
        assert_eq!(gone.poll(t0), Decision::GiveUp);
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Fails every attempt at the moment it is made and returns the delays taken.
    fn delays(policy: ReconnectPolicy, n: usize) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut r = Reconnector::new(policy, 1);
        let mut now = t0;
        let mut out = Vec::new();
        while out.len() < n {
            match r.poll(now) {
                Decision::Connect { .. } => r.on_failure(now, &timed_out(), false),
                Decision::Wait { until, delay, .. } => {
                    out.push(delay);
                    now = until;
                }
                Decision::GiveUp => panic!("gave up on a retryable error"),
            }
        }
        out
    }

    fn within_jitter(actual: Duration, nominal: Duration, jitter: f64) -> bool {
        let (a, n) = (actual.as_secs_f64(), nominal.as_secs_f64());
        a >= n * (1.0 - jitter) - 1e-9 && a <= n * (1.0 + jitter) + 1e-9
    }

    #[test]
    fn nominal_sequence_grows_by_half_and_caps_at_30s() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.nominal_delay(0), Duration::ZERO);
        assert_eq!(p.nominal_delay(1), secs(0.5));
        assert_eq!(p.nominal_delay(2), secs(0.75));
        assert_eq!(p.nominal_delay(3), secs(1.125));
        assert_eq!(p.nominal_delay(4), secs(1.6875));
        // 0.5 × 1.5^10 ≈ 28.8 s, 0.5 × 1.5^11 ≈ 43 s.
        assert!(p.nominal_delay(11) < secs(30.0));
        assert_eq!(p.nominal_delay(12), secs(30.0));
        assert_eq!(p.nominal_delay(1000), secs(30.0));
        assert_eq!(p.nominal_delay(u32::MAX), secs(30.0));
    }

    #[test]
    fn first_connect_is_immediate() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy::default(), 1);
        assert_eq!(r.poll(t0), Decision::Connect { url: 0, attempt: 1 });
        // Idempotent until something happens.
        assert_eq!(r.poll(t0), Decision::Connect { url: 0, attempt: 1 });
    }

    #[test]
    fn delays_follow_the_sequence_with_jitter() {
        let p = ReconnectPolicy { seed: 42, ..Default::default() };
        let got = delays(p.clone(), 20);
        for (i, d) in got.iter().enumerate() {
            let nominal = p.nominal_delay(i as u32 + 1);
            assert!(within_jitter(*d, nominal, 0.10), "delay {} = {d:?}, nominal {nominal:?}", i + 1);
        }
        // Jitter is present: the capped tail would otherwise be all exactly 30 s.
        let tail = &got[12..];
        assert!(tail.iter().any(|d| *d != tail[0]), "no jitter: {tail:?}");
        // Some delays above nominal and some below, i.e. jitter is ± and not a one-sided bias.
        let rel: Vec<f64> = got
            .iter()
            .enumerate()
            .map(|(i, d)| d.as_secs_f64() / p.nominal_delay(i as u32 + 1).as_secs_f64())
            .collect();
        assert!(rel.iter().any(|r| *r > 1.0) && rel.iter().any(|r| *r < 1.0));
    }

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let a = ReconnectPolicy { seed: 7, ..Default::default() };
        let b = ReconnectPolicy { seed: 8, ..Default::default() };
        assert_eq!(delays(a.clone(), 15), delays(a, 15));
        assert_ne!(delays(b, 15), delays(ReconnectPolicy::default(), 15));
    }

    #[test]
    fn zero_jitter_gives_exact_nominal_delays() {
        let p = ReconnectPolicy { jitter: 0.0, ..Default::default() };
        let got = delays(p.clone(), 14);
        let want: Vec<Duration> = (1..=14).map(|n| p.nominal_delay(n)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn attempts_in_20s_of_refusal() {
        // Attempts at 0, 0.5, 1.25, 2.375, 4.06, 6.59, 10.39, 16.08 (then 24.6): 8 within 20 s.
        // This is what an app watching a refusing server should see; the pusher's test compares
        // real attempt times against nominal_delay.
        let p = ReconnectPolicy::default();
        let mut t = Duration::ZERO;
        let mut nominal_attempts = 0;
        while t < secs(20.0) {
            nominal_attempts += 1;
            t += p.nominal_delay(nominal_attempts);
        }
        assert_eq!(nominal_attempts, 8);

        // With jitter, the count stays within one of the nominal count for any seed.
        for seed in 0..50 {
            let t0 = Instant::now();
            let mut r = Reconnector::new(ReconnectPolicy { seed, ..p.clone() }, 1);
            let mut now = t0;
            let mut attempts = 0;
            loop {
                match r.poll(now) {
                    Decision::Connect { attempt, .. } => {
                        attempts += 1;
                        assert_eq!(attempt, attempts);
                        r.on_failure(now, &timed_out(), false);
                    }
                    Decision::Wait { until, .. } if until - t0 < secs(20.0) => now = until,
                    Decision::Wait { .. } => break,
                    Decision::GiveUp => unreachable!(),
                }
            }
            assert!((7..=9).contains(&attempts), "seed {seed}: {attempts}");
        }
    }

    #[test]
    fn wait_reports_until_the_deadline_then_connects() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy { jitter: 0.0, ..Default::default() }, 1);
        assert!(matches!(r.poll(t0), Decision::Connect { .. }));
        r.on_failure(t0, &timed_out(), false);
        let until = t0 + secs(0.5);
        let w = Decision::Wait { until, delay: secs(0.5), attempt: 2, url: 0 };
        assert_eq!(r.poll(t0), w);
        assert_eq!(r.poll(t0 + secs(0.499)), w);
        assert_eq!(r.poll(until), Decision::Connect { url: 0, attempt: 2 });
    }

    #[test]
    fn lost_publish_waits_first_delay_then_backs_off_afresh() {
        let t0 = Instant::now();
        let p = ReconnectPolicy { jitter: 0.0, ..Default::default() };
        let mut r = Reconnector::new(p, 1);
        // A bad start: three refusals, then success.
        let mut now = t0;
        for _ in 0..3 {
            match r.poll(now) {
                Decision::Connect { .. } => r.on_failure(now, &timed_out(), false),
                d => panic!("{d:?}"),
            }
            if let Decision::Wait { until, .. } = r.poll(now) {
                now = until;
            }
        }
        assert_eq!(r.poll(now), Decision::Connect { url: 0, attempt: 4 });
        r.on_published(now);

        // Publish lost an hour later: not immediately, but after first_delay, as attempt 1.
        let lost = now + Duration::from_secs(3600);
        r.on_failure(lost, &Error::Io("connection reset".into()), true);
        assert_eq!(r.poll(lost), Decision::Wait { until: lost + secs(0.5), delay: secs(0.5), attempt: 1, url: 0 });
        let t = lost + secs(0.5);
        assert_eq!(r.poll(t), Decision::Connect { url: 0, attempt: 1 });
        // The first failed reconnect moves on to the next step, not back to 0.5 s.
        r.on_failure(t, &timed_out(), false);
        assert!(matches!(
            r.poll(t),
            Decision::Wait { delay, attempt: 2, .. } if delay == secs(0.75)
        ));
    }

    #[test]
    fn lost_publish_retries_even_a_non_retryable_error() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy::default(), 1);
        r.poll(t0);
        r.on_published(t0);
        r.on_failure(t0, &Error::Tls("bad record mac".into()), true);
        assert!(matches!(r.poll(t0), Decision::Wait { attempt: 1, .. }));
    }

    #[test]
    fn non_retryable_gives_up_and_a_new_url_resumes() {
        let t0 = Instant::now();
        for err in [
            Error::ConnectRejected { code: "NetConnection.Connect.Rejected".into(), description: "no".into() },
            Error::Auth("bad key".into()),
            Error::InvalidUrl("x".into()),
            Error::Unsupported("x".into()),
            Error::Tls("certificate".into()),
        ] {
            let mut r = Reconnector::new(ReconnectPolicy::default(), 2);
            assert_eq!(r.poll(t0), Decision::Connect { url: 0, attempt: 1 });
            r.on_failure(t0, &err, false);
            assert_eq!(r.poll(t0), Decision::GiveUp, "{err:?}");
            assert_eq!(r.poll(t0 + secs(100.0)), Decision::GiveUp);
            assert!(r.is_given_up());
            // Later failures reported by a confused caller do not revive it.
            r.on_failure(t0, &timed_out(), false);
            assert_eq!(r.poll(t0 + secs(200.0)), Decision::GiveUp);

            r.reset_after_new_url();
            assert!(!r.is_given_up());
            assert_eq!(r.poll(t0 + secs(200.0)), Decision::Connect { url: 0, attempt: 1 });
        }
    }

    #[test]
    fn max_attempts_gives_up_after_the_third_failure() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy { max_attempts: Some(3), ..Default::default() }, 1);
        let mut now = t0;
        let mut connects = Vec::new();
        loop {
            match r.poll(now) {
                Decision::Connect { attempt, .. } => {
                    connects.push(attempt);
                    r.on_failure(now, &timed_out(), false);
                }
                Decision::Wait { until, .. } => now = until,
                Decision::GiveUp => break,
            }
        }
        assert_eq!(connects, [1, 2, 3]);

        // A publish in between resets the count: the limit is on consecutive failures.
        let mut r = Reconnector::new(ReconnectPolicy { max_attempts: Some(3), ..Default::default() }, 1);
        let mut now = t0;
        for round in 0..5 {
            for _ in 0..2 {
                assert!(matches!(r.poll(now), Decision::Connect { .. }), "{round}");
                r.on_failure(now, &timed_out(), false);
                if let Decision::Wait { until, .. } = r.poll(now) {
                    now = until;
                }
            }
            assert!(matches!(r.poll(now), Decision::Connect { attempt: 3, .. }));
            r.on_published(now);
            r.on_failure(now, &Error::Io("reset".into()), true);
            if let Decision::Wait { until, .. } = r.poll(now) {
                now = until;
            }
        }
    }

    #[test]
    fn unlimited_attempts_never_give_up() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.max_attempts, None);
        // 10 000 refusals ≈ 3.5 days of outage.
        let got = delays(p, 10_000);
        assert!(got.iter().all(|d| *d <= secs(33.0)));
    }

    #[test]
    fn publish_rejected_is_retried_with_backoff() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy { jitter: 0.0, ..Default::default() }, 1);
        let bad_name = Error::PublishRejected {
            code: "NetStream.Publish.BadName".into(),
            description: "already publishing".into(),
        };
        let mut now = t0;
        let mut seen = Vec::new();
        for _ in 0..4 {
            assert!(matches!(r.poll(now), Decision::Connect { .. }));
            r.on_failure(now, &bad_name, false);
            match r.poll(now) {
                Decision::Wait { until, delay, .. } => {
                    seen.push(delay);
                    now = until;
                }
                d => panic!("BadName must be retried: {d:?}"),
            }
        }
        assert_eq!(seen, [secs(0.5), secs(0.75), secs(1.125), secs(1.6875)]);
    }

    /// Runs connects against a script of outcomes and returns (url, attempt) per connect.
    fn run_failover(r: &mut Reconnector, now: &mut Instant, fails: usize) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        while out.len() < fails {
            match r.poll(*now) {
                Decision::Connect { url, attempt } => {
                    out.push((url, attempt));
                    r.on_failure(*now, &timed_out(), false);
                }
                Decision::Wait { until, .. } => *now = until,
                Decision::GiveUp => unreachable!(),
            }
        }
        out
    }

    #[test]
    fn failover_moves_along_the_list_and_wraps() {
        let mut now = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy::default(), 3);
        assert_eq!(r.take_switch(), None);

        let got = run_failover(&mut r, &mut now, 2);
        assert_eq!(got, [(0, 1), (0, 2)]);
        assert_eq!(r.current_url(), 1);
        assert_eq!(r.take_switch(), Some((0, 1)));
        assert_eq!(r.take_switch(), None, "reported once");
        // The wait after the switch already names the backup.
        assert!(matches!(r.poll(now), Decision::Wait { url: 1, attempt: 3, .. }));

        let got = run_failover(&mut r, &mut now, 2);
        assert_eq!(got, [(1, 3), (1, 4)]);
        assert_eq!(r.take_switch(), Some((1, 2)));

        let got = run_failover(&mut r, &mut now, 2);
        assert_eq!(got, [(2, 5), (2, 6)]);
        assert_eq!(r.take_switch(), Some((2, 0)));
        assert_eq!(r.current_url(), 0);
        assert!(matches!(r.poll(now), Decision::Connect { url: 0, .. } | Decision::Wait { url: 0, .. }));
    }

    #[test]
    fn backoff_continues_across_a_failover() {
        // A failover does not reset the delay: when the device's own network is down every URL
        // fails, and restarting at 0.5 s on each switch would keep retrying at a fast pace.
        let mut now = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy { jitter: 0.0, ..Default::default() }, 2);
        run_failover(&mut r, &mut now, 2);
        assert!(matches!(
            r.poll(now),
            Decision::Wait { url: 1, delay, .. } if delay == secs(0.75)
        ));
    }

    #[test]
    fn switches_between_takes_are_folded() {
        let mut now = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy::default(), 3);
        run_failover(&mut r, &mut now, 4);
        assert_eq!(r.take_switch(), Some((0, 2)));
        run_failover(&mut r, &mut now, 2);
        assert_eq!(r.take_switch(), Some((2, 0)));
        // A full round trip between takes reports nothing: the URL did not change.
        run_failover(&mut r, &mut now, 6);
        assert_eq!(r.current_url(), 0);
        assert_eq!(r.take_switch(), None);
    }

    #[test]
    fn one_url_never_switches() {
        let mut now = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy::default(), 1);
        let got = run_failover(&mut r, &mut now, 10);
        assert!(got.iter().all(|(url, _)| *url == 0));
        assert_eq!(r.take_switch(), None);
    }

    #[test]
    fn publish_resets_the_per_url_failure_count() {
        let mut now = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy::default(), 2);
        run_failover(&mut r, &mut now, 1);
        assert!(matches!(r.poll(now), Decision::Wait { .. }));
        let Decision::Wait { until, .. } = r.poll(now) else { unreachable!() };
        now = until;
        assert_eq!(r.poll(now), Decision::Connect { url: 0, attempt: 2 });
        r.on_published(now);
        // One more failure after the publish is the first on this URL again: no switch.
        r.on_failure(now, &Error::Io("reset".into()), true);
        run_failover(&mut r, &mut now, 1);
        assert_eq!(r.current_url(), 0);
        assert_eq!(r.take_switch(), None);
    }

    #[test]
    fn backup_probes_the_primary_and_returns() {
        let mut now = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy::default(), 2);
        run_failover(&mut r, &mut now, 2);
        assert_eq!(r.take_switch(), Some((0, 1)));
        let Decision::Wait { until, .. } = r.poll(now) else { unreachable!() };
        now = until;
        assert_eq!(r.poll(now), Decision::Connect { url: 1, attempt: 3 });
        assert!(!r.primary_probe_due(now + secs(60.0)), "not publishing yet");
        r.on_published(now);
        let published = now;

        assert!(!r.primary_probe_due(published));
        assert!(!r.primary_probe_due(published + secs(29.9)));
        assert!(r.primary_probe_due(published + secs(30.0)));

        // The primary is still down: stay on the backup, next probe an interval later.
        let probe1 = published + secs(30.0);
        r.on_primary_probe(probe1, false);
        assert_eq!(r.current_url(), 1);
        assert_eq!(r.take_switch(), None);
        assert!(!r.primary_probe_due(probe1 + secs(29.0)));
        assert!(r.primary_probe_due(probe1 + secs(30.0)));

        // The primary answers: back to it, reported once, and reconnect at once.
        let probe2 = probe1 + secs(30.0);
        r.on_primary_probe(probe2, true);
        assert_eq!(r.current_url(), 0);
        assert_eq!(r.take_switch(), Some((1, 0)));
        assert_eq!(r.take_switch(), None);
        assert_eq!(r.poll(probe2), Decision::Connect { url: 0, attempt: 1 });
        r.on_published(probe2);
        assert!(!r.primary_probe_due(probe2 + secs(3600.0)), "on the primary");
    }

    #[test]
    fn no_probe_while_on_primary_or_when_disabled() {
        let now = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy::default(), 2);
        r.poll(now);
        r.on_published(now);
        assert!(!r.primary_probe_due(now + secs(120.0)));

        let mut now = Instant::now();
        let mut r =
            Reconnector::new(ReconnectPolicy { primary_retry_interval: Duration::ZERO, ..Default::default() }, 2);
        run_failover(&mut r, &mut now, 2);
        let Decision::Wait { until, .. } = r.poll(now) else { unreachable!() };
        r.poll(until);
        r.on_published(until);
        assert!(!r.primary_probe_due(until + secs(3600.0)));
    }

    #[test]
    fn silly_configs_do_not_panic() {
        let now = Instant::now();
        for p in [
            ReconnectPolicy { multiplier: f64::NAN, jitter: f64::INFINITY, ..Default::default() },
            ReconnectPolicy { multiplier: 0.1, jitter: -3.0, failover_after: 0, ..Default::default() },
            ReconnectPolicy {
                multiplier: 1e300,
                jitter: 5.0,
                first_delay: Duration::from_secs(u64::MAX / 4),
                max_delay: Duration::from_secs(1 << 40),
                ..Default::default()
            },
        ] {
            let mut r = Reconnector::new(p.clone(), 0);
            let mut t = now;
            for _ in 0..50 {
                match r.poll(t) {
                    Decision::Connect { url, .. } => {
                        assert_eq!(url, 0);
                        r.on_failure(t, &timed_out(), false);
                    }
                    Decision::Wait { until, delay, .. } => {
                        assert!(delay <= MAX_SANE_DELAY * 2);
                        t = until;
                    }
                    Decision::GiveUp => unreachable!(),
                }
            }
        }
    }
}
