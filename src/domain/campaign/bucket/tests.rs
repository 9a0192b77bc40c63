//! Tests of the token bucket with explicit times: the steady rate, bursts, throttling and
//! recovery.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Takes every token there is at `t`.
fn drain(b: &mut TokenBucket, t: Instant) -> u32 {
    let mut n = 0;
    while b.try_take(t).is_ok() {
        n += 1;
    }
    n
}

#[test]
fn a_full_burst_then_one_send_per_interval() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(80, 80);
    assert_eq!(drain(&mut b, t0), 80);
    assert_eq!(b.try_take(t0), Err(Duration::from_micros(12_500)));
    assert_eq!(b.try_take(t0 + ms(5)), Err(Duration::from_micros(7_500)));
    assert_eq!(b.try_take(t0 + Duration::from_micros(12_500)), Ok(()));
    assert!(b.try_take(t0 + Duration::from_micros(12_500)).is_err());
    assert_eq!(b.try_take(t0 + ms(25)), Ok(()));
    // One second later: 80 more, not a second's worth on top of a saved burst.
    assert_eq!(drain(&mut b, t0 + ms(1_025)), 80);
}

#[test]
fn the_rate_holds_over_a_long_run_without_drift() {
    let t0 = Instant::now();
    // A burst above 1, so that a token that came due between two steps is not lost to the
    // cap (a full bucket earns nothing).
    let mut b = TokenBucket::new(3, 2);
    let mut sent = 0;
    // 3 per second never divides a second evenly into nanoseconds.
    for step in 0..=60_000 {
        sent += drain(&mut b, t0 + ms(step));
    }
    assert_eq!(sent, 2 + 3 * 60);
}

#[test]
fn idle_time_fills_only_up_to_the_burst() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(10, 5);
    assert_eq!(drain(&mut b, t0), 5);
    assert_eq!(drain(&mut b, t0 + secs(3_600)), 5);
}

#[test]
fn zero_rate_or_burst_is_one() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(0, 0);
    assert_eq!(drain(&mut b, t0), 1);
    assert_eq!(b.try_take(t0), Err(secs(1)));
}

#[test]
fn time_going_backwards_earns_nothing() {
    let t0 = Instant::now() + secs(10);
    let mut b = TokenBucket::new(1, 1);
    assert_eq!(drain(&mut b, t0), 1);
    assert!(b.try_take(t0 - secs(5)).is_err());
    assert_eq!(b.try_take(t0 + secs(1)), Ok(()));
}

#[test]
fn set_rate_applies_from_then_on() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(10, 10);
    assert_eq!(drain(&mut b, t0), 10);
    // Half a second at 10/s earns 5, then the new rate.
    b.set_rate(t0 + ms(500), 100, 2);
    assert_eq!(drain(&mut b, t0 + ms(500)), 2, "capped at the new burst");
    assert_eq!(b.try_take(t0 + ms(500)), Err(ms(10)));
    assert_eq!(drain(&mut b, t0 + ms(520)), 2);
}

#[test]
fn a_throttle_halves_the_rate_and_empties_the_bucket() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(80, 80);
    b.slow_down(t0, 0.5);
    assert_eq!(b.rate_per_sec(t0), 40.0);
    assert_eq!(b.try_take(t0), Err(ms(25)));
    assert_eq!(b.try_take(t0 + ms(25)), Ok(()));
    assert_eq!(b.try_take(t0 + ms(25)), Err(ms(25)));
}

#[test]
fn throttles_of_one_episode_halve_once() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(80, 80);
    for i in 0..10 {
        b.slow_down(t0 + ms(50 * i), 0.5);
    }
    assert_eq!(b.rate_per_sec(t0 + ms(450)), 40.0);
    // The cool-down runs from the last of them.
    assert_eq!(b.rate_per_sec(t0 + ms(450) + secs(10) - ms(1)), 40.0);
    // A throttle after the episode halves again.
    b.slow_down(t0 + secs(2), 0.5);
    assert_eq!(b.rate_per_sec(t0 + secs(2)), 20.0);
}

#[test]
fn the_rate_recovers_after_the_cool_down_in_a_straight_line() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(80, 80);
    b.slow_down(t0, 0.5);
    let rate = |t| b.rate_per_sec(t0 + t);
    assert_eq!(rate(secs(5)), 40.0);
    assert_eq!(rate(secs(10)), 40.0);
    assert_eq!(rate(secs(10) + ms(7_500)), 60.0);
    assert_eq!(rate(secs(25)), 80.0);
    assert_eq!(rate(secs(100)), 80.0);
}

#[test]
fn tokens_earned_while_recovering_are_the_area_under_the_rate() {
    let t0 = Instant::now();
    let fresh = || {
        let mut b = TokenBucket::new(80, 10_000).with_recovery(secs(10), secs(40));
        drain(&mut b, t0);
        b.slow_down(t0, 0.5);
        b
    };
    // 10 s at 40/s, then 20 s climbing from 40 to 80 (600), then 5 s at 80.
    let mut once = fresh();
    assert_eq!(drain(&mut once, t0 + secs(35)), 400 + 1_200 + 400);
    // Stepping through earns exactly the same.
    let mut stepped = fresh();
    let mut sent = 0;
    for s in 0..=35 {
        sent += drain(&mut stepped, t0 + secs(s));
    }
    assert_eq!(sent, 2_000);
}

#[test]
fn repeated_throttles_stop_at_the_floor_and_recover_fully() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(1, 1).with_recovery(secs(1), secs(4));
    // A second apart, each is a new episode, still in the last one's cool-down.
    for i in 0..20 {
        b.slow_down(t0 + secs(i), 0.5);
    }
    let last = t0 + secs(19);
    assert_eq!(b.rate_per_sec(last), 0.1);
    assert_eq!(b.try_take(last), Err(secs(10)));
    assert_eq!(b.rate_per_sec(last + secs(1) + secs(4)), 1.0);
}

#[test]
fn odd_factors_are_clamped() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(100, 1);
    b.slow_down(t0, 7.0);
    assert_eq!(b.rate_per_sec(t0), 100.0);
    let mut b = TokenBucket::new(100, 1);
    b.slow_down(t0, f64::NAN);
    assert_eq!(b.rate_per_sec(t0), 50.0);
    let mut b = TokenBucket::new(100, 1);
    b.slow_down(t0, -1.0);
    assert_eq!(b.rate_per_sec(t0), 0.1);
}

#[test]
fn set_rate_keeps_a_slowed_rate_below_the_new_one() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(100, 1);
    b.slow_down(t0, 0.5);
    b.set_rate(t0 + ms(10), 20, 1);
    assert_eq!(b.rate_per_sec(t0 + ms(10)), 20.0);
    b.set_rate(t0 + ms(20), 200, 1);
    assert_eq!(b.rate_per_sec(t0 + ms(20)), 20.0, "still cooling down");
}

#[test]
fn a_bucket_is_at_rest_only_when_full_and_not_slowed() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(10, 10).with_recovery(secs(10), secs(30));
    assert!(b.at_rest(t0));
    b.try_take(t0).unwrap();
    assert!(!b.at_rest(t0));
    // A tenth of a second refills the one token taken.
    assert!(b.at_rest(t0 + ms(100)));
    b.slow_down(t0 + ms(100), 0.5);
    // Full again after the cool-down, but still climbing back to its rate: not at rest.
    assert!(!b.at_rest(t0 + secs(20)));
    assert!(b.at_rest(t0 + secs(60)));
}
