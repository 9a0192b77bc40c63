//! A circuit breaker with the clock passed in: pure state, so tests drive time by hand.

use std::time::{Duration, Instant};

/// Closed until `threshold` consecutive failures, then open for the first cooldown; after that
/// one probe is let through (half-open): its success closes the breaker, its failure re-opens
/// it for twice as long as the last time, up to the longest cooldown. A probe that never
/// reports (its task was cancelled, its process died) is given up on after the probe timeout,
/// and the next caller becomes the probe.
///
/// The numbers come from the caller: the seed's webhook forwarder opens after 10 failures and
/// half-opens after 5 minutes, its cache guard after 5 failures. A short first cooldown that
/// doubles keeps a brief outage brief while a long one is still probed rarely.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    first_cooldown: Duration,
    cooldown: Duration,
    probe_timeout: Duration,
    /// Failed probes since it last opened from closed: the cooldown is the first one doubled
    /// this many times.
    reopens: u32,
    state: State,
}

/// The cooldown after `reopens` failed probes: `first` doubled that many times, at most `most`.
pub fn escalated_cooldown(first: Duration, most: Duration, reopens: u32) -> Duration {
    let first = first.min(most);
    first
        .checked_mul(1u32.checked_shl(reopens.min(31)).unwrap_or(u32::MAX))
        .map_or(most, |d| d.min(most))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out; until `deadline` nobody else is let through.
    HalfOpen {
        deadline: Instant,
    },
}

/// What the breaker reports for metrics and health output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    /// The word shown in an endpoint's state and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl Breaker {
    /// A closed breaker that stays open `cooldown` each time. The probe timeout starts equal
    /// to `cooldown`: a lost probe then costs what a failed one does.
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            first_cooldown: cooldown,
            cooldown,
            probe_timeout: cooldown,
            reopens: 0,
            state: State::Closed { failures: 0 },
        }
    }

    /// Opens for `first` the first time, doubling on each failed probe up to the cooldown
    /// given to [`Breaker::new`].
    pub fn with_first_cooldown(mut self, first: Duration) -> Breaker {
        self.first_cooldown = first.min(self.cooldown);
        self
    }

    /// How long a half-open probe may stay out before another caller may probe. Set it a little
    /// above the call's own timeout: callers refused meanwhile come back at that point.
    pub fn with_probe_timeout(mut self, probe_timeout: Duration) -> Breaker {
        self.probe_timeout = probe_timeout;
        self
    }

    /// May a call go through now? If not, `Err` holds when to come back: the half-open time
    /// while open (a delivery is deferred to it, not dropped), or the probe's deadline while a
    /// probe is out. An `Ok` in the open or half-open state makes the caller the probe.
    pub fn admit(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(at) = self.next_try_at(now) {
            return Err(at);
        }
        if !matches!(self.state, State::Closed { .. }) {
            self.state = State::HalfOpen {
                deadline: now + self.probe_timeout,
            };
        }
        Ok(())
    }

    /// May a call go through now? In half-open, only one caller gets `true` until it reports.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.admit(now).is_ok()
    }

    /// When a call may next go through, without claiming anything: `None` means now.
    pub fn next_try_at(&self, now: Instant) -> Option<Instant> {
        match self.state {
            State::Closed { .. } => None,
            State::Open { until: at } | State::HalfOpen { deadline: at } => {
                (now < at).then_some(at)
            }
        }
    }

    /// A successful call (or an operator's reset): closed, and the next open is short again.
    pub fn success(&mut self) {
        self.state = State::Closed { failures: 0 };
        self.reopens = 0;
    }

    /// A probe that was let through but never made its call (it found no room and was put
    /// off): the next caller may probe at once, instead of waiting out the probe timeout.
    pub fn release_probe(&mut self, now: Instant) {
        if let State::HalfOpen { .. } = self.state {
            self.state = State::Open { until: now };
        }
    }

    /// A failed call. A failed probe re-opens it for twice as long as before; failures
    /// reported while open (calls that started before it opened) push the half-open time back
    /// by the current cooldown: the endpoint is still failing.
    pub fn failure(&mut self, now: Instant) {
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            State::Closed { .. } => {
                self.reopens = 0;
                State::Open {
                    until: now + self.current_cooldown(),
                }
            }
            State::HalfOpen { .. } => {
                self.reopens = self.reopens.saturating_add(1);
                State::Open {
                    until: now + self.current_cooldown(),
                }
            }
            State::Open { .. } => State::Open {
                until: now + self.current_cooldown(),
            },
        };
    }

    /// How long it stays open this time.
    pub fn current_cooldown(&self) -> Duration {
        escalated_cooldown(self.first_cooldown, self.cooldown, self.reopens)
    }

    /// Failed probes since it last opened from closed.
    pub fn reopens(&self) -> u32 {
        self.reopens
    }

    /// The state as last changed by a call or a report.
    pub fn state(&self) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// The state as a reader should see it at `now`: an open breaker whose cooldown has ended
    /// is half-open (the next call will probe), though no call has come to change it yet.
    pub fn state_at(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Open { until } if now >= until => BreakerState::HalfOpen,
            _ => self.state(),
        }
    }

    /// Closed with no failure counted: the same as a new breaker, so a map of breakers per URL
    /// can drop this one and keep its size to the URLs that are failing.
    pub fn is_idle(&self) -> bool {
        self.state == State::Closed { failures: 0 }
    }
}

#[cfg(test)]
mod escalation_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(5, secs(30));
        for _ in 0..4 {
            assert!(b.allow(t0));
            b.failure(t0);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(t0 + secs(29)));
        assert!(b.allow(t0 + secs(30)), "one probe after cooldown");
        assert!(!b.allow(t0 + secs(30)), "only one probe at a time");
        b.failure(t0 + secs(31));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.allow(t0 + secs(61)));
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(t0 + secs(61)));
    }

    #[test]
    fn success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, secs(1));
        b.failure(t0);
        b.success();
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    /// The seed's forwarder numbers: 10 failures, 5 minutes. Refused calls learn when to come
    /// back, which is what a deferred delivery is scheduled for.
    #[test]
    fn refused_calls_are_told_when_to_come_back() {
        let t0 = Instant::now();
        let cooldown = secs(300);
        let mut b = Breaker::new(10, cooldown).with_probe_timeout(secs(20));
        for i in 0..10 {
            assert_eq!(b.admit(t0 + secs(i)), Ok(()));
            b.failure(t0 + secs(i));
        }
        let half_open = t0 + secs(9) + cooldown;
        assert_eq!(b.admit(t0 + secs(10)), Err(half_open));
        assert_eq!(b.admit(half_open - secs(1)), Err(half_open));
        assert_eq!(b.next_try_at(half_open), None);
        // The probe goes; others wait for its deadline, not for another cooldown.
        assert_eq!(b.admit(half_open), Ok(()));
        assert_eq!(b.admit(half_open + secs(1)), Err(half_open + secs(20)));
        b.success();
        assert_eq!(b.admit(half_open + secs(2)), Ok(()));
        assert_eq!(b.next_try_at(half_open + secs(2)), None);
    }

    #[test]
    fn a_lost_probe_is_replaced_after_its_timeout() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, secs(60)).with_probe_timeout(secs(20));
        b.failure(t0);
        assert!(b.allow(t0 + secs(60)), "the probe, which never reports");
        assert!(!b.allow(t0 + secs(79)));
        assert!(b.allow(t0 + secs(80)), "a new probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.failure(t0 + secs(81));
        assert_eq!(b.admit(t0 + secs(82)), Err(t0 + secs(141)));
    }

    #[test]
    fn the_probe_timeout_defaults_to_the_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, secs(60));
        b.failure(t0);
        assert!(b.allow(t0 + secs(60)));
        assert_eq!(b.admit(t0 + secs(61)), Err(t0 + secs(120)));
    }

    #[test]
    fn state_at_shows_the_half_open_time_without_a_call() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, secs(60));
        assert_eq!(b.state_at(t0), BreakerState::Closed);
        b.failure(t0);
        assert_eq!(b.state_at(t0 + secs(59)), BreakerState::Open);
        assert_eq!(b.state_at(t0 + secs(60)), BreakerState::HalfOpen);
        assert_eq!(b.state(), BreakerState::Open, "reading changes nothing");
        assert!(b.allow(t0 + secs(60)));
        assert_eq!(b.state_at(t0 + secs(61)), BreakerState::HalfOpen);
        assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
    }

    #[test]
    fn late_failures_while_open_push_the_half_open_time_back() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, secs(60));
        b.failure(t0);
        // A call that started before the breaker opened fails later.
        b.failure(t0 + secs(10));
        assert_eq!(b.admit(t0 + secs(60)), Err(t0 + secs(70)));
    }

    #[test]
    fn idle_breakers_can_be_dropped() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, secs(1));
        assert!(b.is_idle());
        b.failure(t0);
        assert!(!b.is_idle(), "a failure is remembered");
        b.success();
        assert!(b.is_idle());
        for _ in 0..3 {
            b.failure(t0);
        }
        assert!(!b.is_idle());
    }

    #[test]
    fn threshold_of_zero_means_one() {
        let t0 = Instant::now();
        let mut b = Breaker::new(0, secs(1));
        assert!(b.allow(t0));
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
