//! The token bucket that paces sends from one business number, and how it backs off when the
//! BSP throttles. Pure: every call is given the time, so tests move time by hand.
//!
//! Tokens are counted in integers (a token is 10^12 units, rates are in thousandths of a send
//! per second, time in nanoseconds), so 80 sends/s is exactly one send every 12.5 ms, with no
//! drift however long it runs.

use std::time::{Duration, Instant};

/// Units per token: milli-sends per second times nanoseconds.
const UNIT: u128 = 1_000_000_000_000;
/// The slowest a throttled bucket goes, in milli-sends per second (one send per 10 s).
const FLOOR_MILLI: u64 = 100;
/// Throttles this close after the previous one are the same episode (the answers to requests
/// already in flight when the BSP started refusing), so they do not halve the rate again.
const SAME_EPISODE: Duration = Duration::from_secs(1);
/// How long a slowed rate holds before recovering.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(10);
/// How fast a slowed rate recovers: by the configured rate's worth per this long, in a
/// straight line (from half the rate, back to full in half of it).
pub const DEFAULT_RAMP: Duration = Duration::from_secs(30);

/// A rate of `rate_per_sec` sends per second that allows `burst` sends at once after a quiet
/// spell. It starts full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    /// The configured rate, in milli-sends per second.
    rate: u64,
    burst: u32,
    tokens: u128,
    /// Up to when `tokens` is counted; `None` until the first call.
    last: Option<Instant>,
    slow: Option<SlowDown>,
    cool_down: Duration,
    ramp: Duration,
}

/// A throttle's effect: the rate it set, held until `until`, then climbing back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlowDown {
    rate: u64,
    at: Instant,
    until: Instant,
}

impl TokenBucket {
    /// A rate or burst of 0 is taken as 1.
    pub fn new(rate_per_sec: u32, burst: u32) -> TokenBucket {
        let burst = burst.max(1);
        TokenBucket {
            rate: u64::from(rate_per_sec.max(1)) * 1000,
            burst,
            tokens: u128::from(burst) * UNIT,
            last: None,
            slow: None,
            cool_down: DEFAULT_COOL_DOWN,
            ramp: DEFAULT_RAMP,
        }
    }

    /// How long a throttled rate holds, and how fast it then recovers (see [`DEFAULT_RAMP`]).
    pub fn with_recovery(mut self, cool_down: Duration, ramp: Duration) -> TokenBucket {
        self.cool_down = cool_down;
        self.ramp = ramp;
        self
    }

    /// Takes one send's token, or says how long until one is there. The wait assumes the
    /// rate of `now`; while recovering the rate only grows, so it is never too short.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= UNIT {
            self.tokens -= UNIT;
            return Ok(());
        }
        let missing = UNIT - self.tokens;
        let rate = u128::from(self.rate_at(now));
        let nanos = missing.div_ceil(rate);
        Err(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// Changes the configured rate and burst from `now` on; a slowed rate stays slowed, but
    /// never above the new rate.
    pub fn set_rate(&mut self, now: Instant, rate_per_sec: u32, burst: u32) {
        self.refill(now);
        self.rate = u64::from(rate_per_sec.max(1)) * 1000;
        self.burst = burst.max(1);
        self.tokens = self.tokens.min(u128::from(self.burst) * UNIT);
        if let Some(s) = &mut self.slow {
            s.rate = s.rate.min(self.rate);
        }
    }

    /// The BSP throttled this number: multiply the rate by `factor` (0.5 halves it; values
    /// outside 0..=1 are clamped, NaN halves), empty the bucket (the BSP's own is empty), hold
    /// for the cool-down, then recover gradually to the configured rate. Throttles within a
    /// second of the last one only restart the cool-down.
    pub fn slow_down(&mut self, now: Instant, factor: f64) {
        self.refill(now);
        self.tokens = 0;
        let until = now + self.cool_down;
        if let Some(s) = &mut self.slow
            && now.saturating_duration_since(s.at) < SAME_EPISODE
        {
            s.until = s.until.max(until);
            return;
        }
        let factor = if factor.is_nan() {
            0.5
        } else {
            factor.clamp(0.0, 1.0)
        };
        let current = self.rate_at(now);
        // Rates are at most 1000 * u32::MAX, exact in an f64.
        let slowed = ((current as f64) * factor) as u64;
        self.slow = Some(SlowDown {
            rate: slowed.clamp(FLOOR_MILLI.min(self.rate), self.rate),
            at: now,
            until,
        });
    }

    /// Whether the bucket is full and at its configured rate at `now`: then it acts exactly as
    /// a new one would, so a caller holding many may drop it.
    pub fn at_rest(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.slow.is_none() && self.tokens >= u128::from(self.burst) * UNIT
    }

    /// The rate in force at `now`, in sends per second.
    pub fn rate_per_sec(&self, now: Instant) -> f64 {
        self.rate_at(now) as f64 / 1000.0
    }

    /// The rate at `t`, in milli-sends per second.
    fn rate_at(&self, t: Instant) -> u64 {
        let Some(s) = self.slow else {
            return self.rate;
        };
        if t < s.until {
            return s.rate;
        }
        if self.ramp.is_zero() {
            return self.rate;
        }
        let climbed =
            u128::from(self.rate) * t.duration_since(s.until).as_nanos() / self.ramp.as_nanos();
        let rate = u128::from(s.rate).saturating_add(climbed);
        u64::try_from(rate.min(u128::from(self.rate))).unwrap_or(self.rate)
    }

    /// Adds the tokens earned from the last call to `now`: the integral of the rate, which is
    /// constant, then a straight climb, then constant again.
    fn refill(&mut self, now: Instant) {
        let Some(last) = self.last else {
            self.last = Some(now);
            return;
        };
        if now <= last {
            return;
        }
        let cap = u128::from(self.burst) * UNIT;
        let earned = self.earned(last, now);
        self.tokens = self.tokens.saturating_add(earned).min(cap);
        self.last = Some(now);
        if self.slow.is_some_and(|s| now >= s.until) && self.rate_at(now) >= self.rate {
            self.slow = None;
        }
    }

    fn earned(&self, a: Instant, b: Instant) -> u128 {
        let len = b.duration_since(a).as_nanos();
        let Some(s) = self.slow else {
            return u128::from(self.rate).saturating_mul(len);
        };
        let configured = u128::from(self.rate);
        let slowed = u128::from(s.rate);
        // When the climb reaches the configured rate.
        let climb = (self.ramp.as_nanos())
            .saturating_mul(configured.saturating_sub(slowed))
            .checked_div(configured)
            .unwrap_or(0);
        let offset = |t: Instant| t.saturating_duration_since(a).as_nanos().min(len);
        let climb_start = offset(s.until);
        let climb_end = s
            .until
            .checked_add(Duration::from_nanos(
                u64::try_from(climb).unwrap_or(u64::MAX),
            ))
            .map_or(len, offset);
        let held = slowed.saturating_mul(climb_start);
        let climbing = if self.ramp.is_zero() {
            0
        } else {
            // The area under a straight line from the rate `before` ns into the climb, over
            // `n` ns, with a single division so stepping through it loses nothing.
            let n = climb_end - climb_start;
            let ramp = self.ramp.as_nanos();
            let before = a.saturating_duration_since(s.until).as_nanos();
            let heights = (2 * slowed)
                .saturating_mul(ramp)
                .saturating_add(configured.saturating_mul(2 * before + n));
            heights.saturating_mul(n) / (2 * ramp)
        };
        let full = configured.saturating_mul(len - climb_end);
        held.saturating_add(climbing).saturating_add(full)
    }
}

#[cfg(test)]
mod tests;
