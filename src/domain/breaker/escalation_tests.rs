//! The escalating cooldown: short first, doubled by each failed probe, capped, reset by a close.

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_first_open_is_short_and_each_failed_probe_doubles_it_up_to_the_longest() {
    let t0 = Instant::now();
    let mut b = Breaker::new(1, secs(300)).with_first_cooldown(secs(5));
    b.failure(t0);
    assert_eq!(b.admit(t0), Err(t0 + secs(5)), "a first open lasts 5 s");
    let mut at = t0 + secs(5);
    for want in [10, 20, 40, 80, 160, 300, 300] {
        assert_eq!(b.admit(at), Ok(()), "the probe");
        b.failure(at);
        assert_eq!(b.admit(at), Err(at + secs(want)));
        at += secs(want);
    }
    assert!(b.allow(at));
    b.success();
    assert_eq!(b.reopens(), 0);
    b.failure(at);
    assert_eq!(
        b.admit(at),
        Err(at + secs(5)),
        "closing resets the escalation"
    );
}

#[test]
fn late_failures_while_open_do_not_escalate() {
    let t0 = Instant::now();
    let mut b = Breaker::new(1, secs(300)).with_first_cooldown(secs(5));
    b.failure(t0);
    b.failure(t0 + secs(1));
    assert_eq!(b.admit(t0 + secs(2)), Err(t0 + secs(6)));
    assert_eq!(b.reopens(), 0);
}

#[test]
fn a_released_probe_lets_the_next_caller_probe_at_once() {
    let t0 = Instant::now();
    let mut b = Breaker::new(1, secs(60)).with_probe_timeout(secs(20));
    b.failure(t0);
    assert!(
        b.allow(t0 + secs(60)),
        "the probe, which then finds no room"
    );
    b.release_probe(t0 + secs(61));
    assert!(b.allow(t0 + secs(61)), "another caller probes now");
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn the_cooldown_never_overflows() {
    assert_eq!(escalated_cooldown(secs(5), secs(300), 200), secs(300));
    assert_eq!(escalated_cooldown(secs(500), secs(300), 0), secs(300));
}
