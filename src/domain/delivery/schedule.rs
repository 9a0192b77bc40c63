//! When to try a failed delivery again: the retry schedule, its jitter, and the decision that
//! follows an attempt.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::outcome::Outcome;

/// Most delays a schedule may hold.
const MAX_RETRIES: usize = 50;

/// Longest single delay: a typo like `5000h` is refused rather than parking a delivery for
/// months.
const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// The delays between attempts: after attempt `n` fails, wait the `n`-th delay; when there is
/// none left, the delivery is dead-lettered. Written in configuration as a comma-separated list
/// of whole numbers with a unit (`ms`, `s`, `m`, `h`), e.g. `5s,5m,30m,2h,5h,10h`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

/// Why a retry schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSchedule {
    #[error("the retry schedule is empty: give delays like `5s,5m,30m`")]
    Empty,
    #[error("`{0}` is not a delay: write a whole number and a unit (ms, s, m or h), like `30s`")]
    BadDelay(String),
    #[error("`{0}` is longer than the 24 h a single retry delay may be")]
    TooLong(String),
    #[error("a retry schedule holds at most 50 delays")]
    TooMany,
}

/// The action that follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    /// Try again after this long.
    RetryIn(Duration),
    /// Disable the endpoint (the receiver answered 410); the delivery is dead-lettered.
    Disable,
    /// Dead-letter the delivery.
    DeadLetter(DeadLetterReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The receiver's answer will not change on a retry.
    Permanent,
    /// Every attempt the schedule allows failed.
    Exhausted,
}

impl RetrySchedule {
    pub fn parse(text: &str) -> Result<RetrySchedule, BadSchedule> {
        if text.trim().is_empty() {
            return Err(BadSchedule::Empty);
        }
        let delays = text
            .split(',')
            .map(|part| {
                let part = part.trim();
                let delay = parse_delay(part).ok_or_else(|| BadSchedule::BadDelay(part.into()))?;
                if delay > MAX_DELAY {
                    return Err(BadSchedule::TooLong(part.into()));
                }
                Ok(delay)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.len() > MAX_RETRIES {
            return Err(BadSchedule::TooMany);
        }
        Ok(RetrySchedule { delays })
    }

    /// The delays, in order; their count is the number of retries.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// Attempts a delivery gets in all: the first and one per delay.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len() + 1).unwrap_or(u32::MAX)
    }

    /// How long to wait after `attempt` (counted from 1: the attempts made so far, the failed one
    /// included) before the next, or `None` when the schedule is exhausted. The delay is spread
    /// by ±10%, so deliveries that failed together (an endpoint's outage) do not all come back
    /// in the same instant: `jitter` in `[0, 1)` picks the point in that range, `0.5` is the
    /// delay itself (values outside are clamped).
    pub fn next_delay(&self, attempt: u32, jitter: f64) -> Option<Duration> {
        let index = usize::try_from(attempt.saturating_sub(1)).ok()?;
        let delay = *self.delays.get(index)?;
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.5
        };
        Some(delay.mul_f64(0.9 + 0.2 * jitter))
    }

    /// [`next_delay`](Self::next_delay), or the receiver's `Retry-After` when that is longer.
    /// A `Retry-After` does not add attempts: an exhausted schedule stays exhausted.
    pub fn retry_delay(
        &self,
        attempt: u32,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let delay = self.next_delay(attempt, jitter)?;
        Some(delay.max(retry_after.unwrap_or_default()))
    }

    /// What follows attempt number `attempt` (from 1) with this `outcome`.
    pub fn decide(&self, outcome: Outcome, attempt: u32, jitter: f64) -> Decision {
        match outcome {
            Outcome::Delivered => Decision::Delivered,
            Outcome::Disable => Decision::Disable,
            Outcome::Permanent => Decision::DeadLetter(DeadLetterReason::Permanent),
            Outcome::Retry { after } => match self.retry_delay(attempt, jitter, after) {
                Some(delay) => Decision::RetryIn(delay),
                None => Decision::DeadLetter(DeadLetterReason::Exhausted),
            },
        }
    }
}

/// The seed's rule: 3 attempts, 3 seconds apart.
impl Default for RetrySchedule {
    fn default() -> RetrySchedule {
        RetrySchedule {
            delays: vec![Duration::from_secs(3); 2],
        }
    }
}

impl FromStr for RetrySchedule {
    type Err = BadSchedule;

    fn from_str(s: &str) -> Result<RetrySchedule, BadSchedule> {
        RetrySchedule::parse(s)
    }
}

/// The configuration form, each delay in the largest unit that writes it exactly; parsing it
/// gives the same schedule back.
impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, delay) in self.delays.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let ms = delay.as_millis();
            match ms {
                0 => f.write_str("0s")?,
                ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000)?,
                ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000)?,
                ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000)?,
                ms => write!(f, "{ms}ms")?,
            }
        }
        Ok(())
    }
}

fn parse_delay(part: &str) -> Option<Duration> {
    let split = part.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = part.split_at(split);
    if number.is_empty() {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    let ms_per_unit = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(ms_per_unit).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_config_text() {
        let s = RetrySchedule::parse("5s,5m,30m,2h,5h,10h").unwrap();
        assert_eq!(
            s.delays(),
            [
                secs(5),
                secs(300),
                secs(1800),
                secs(7200),
                secs(18000),
                secs(36000)
            ]
        );
        assert_eq!(s.max_attempts(), 7);
        assert_eq!(
            RetrySchedule::parse(" 250ms , 3s ").unwrap().delays(),
            [Duration::from_millis(250), secs(3)]
        );
        assert_eq!(
            "3s,3s".parse::<RetrySchedule>().unwrap(),
            RetrySchedule::default()
        );
        assert_eq!(RetrySchedule::parse("0s").unwrap().delays(), [secs(0)]);
        assert_eq!(RetrySchedule::parse("24h").unwrap().delays(), [secs(86400)]);
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!(RetrySchedule::parse(" "), Err(BadSchedule::Empty));
        for bad in [
            "5", "s", "5x", "5 s", "-5s", "1.5s", "5S", "3s,,3s", "3s,", "5sec",
        ] {
            assert!(
                matches!(RetrySchedule::parse(bad), Err(BadSchedule::BadDelay(_))),
                "{bad}"
            );
        }
        assert_eq!(
            RetrySchedule::parse("3s,25h"),
            Err(BadSchedule::TooLong("25h".into()))
        );
        assert!(matches!(
            RetrySchedule::parse("99999999999999999999h"),
            Err(BadSchedule::BadDelay(_))
        ));
        assert_eq!(
            RetrySchedule::parse(&["1s"; 51].join(",")),
            Err(BadSchedule::TooMany)
        );
        assert!(RetrySchedule::parse(&["1s"; 50].join(",")).is_ok());
        assert!(
            BadSchedule::BadDelay("5x".into())
                .to_string()
                .contains("`5x`")
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["3s,3s", "5s,5m,30m,2h,5h,10h", "250ms,1500ms,0s,90s"] {
            let s = RetrySchedule::parse(text).unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(RetrySchedule::parse(&s.to_string()).unwrap(), s);
        }
        assert_eq!(
            RetrySchedule::parse("60s,120m").unwrap().to_string(),
            "1m,2h"
        );
    }

    /// The seed's default: three attempts three seconds apart, then give up.
    #[test]
    fn default_is_the_seeds() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 3);
        assert_eq!(s.next_delay(1, 0.5), Some(secs(3)));
        assert_eq!(s.next_delay(2, 0.5), Some(secs(3)));
        assert_eq!(s.next_delay(3, 0.5), None);
        assert_eq!(s.to_string(), "3s,3s");
    }

    #[test]
    fn jitter_spreads_ten_percent_either_way() {
        let s = RetrySchedule::parse("10s,100s").unwrap();
        assert_eq!(s.next_delay(1, 0.0), Some(secs(9)));
        assert_eq!(s.next_delay(1, 0.5), Some(secs(10)));
        let top = s.next_delay(1, 0.999_999).unwrap();
        assert!(
            top < secs(11) && top > Duration::from_millis(10_999),
            "{top:?}"
        );
        assert_eq!(s.next_delay(2, 0.25), Some(secs(95)));
        // Out-of-range jitter is clamped, never a negative or runaway delay.
        assert_eq!(s.next_delay(1, -3.0), Some(secs(9)));
        assert_eq!(s.next_delay(1, 7.0), Some(secs(11)));
        assert_eq!(s.next_delay(1, f64::NAN), Some(secs(10)));
        assert_eq!(s.next_delay(3, 0.5), None);
        assert_eq!(s.next_delay(u32::MAX, 0.5), None);
        assert_eq!(s.next_delay(0, 0.5), Some(secs(10)), "0 reads as the first");
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let s = RetrySchedule::parse("10s,10s").unwrap();
        assert_eq!(s.retry_delay(1, 0.5, Some(secs(60))), Some(secs(60)));
        assert_eq!(s.retry_delay(1, 0.5, Some(secs(2))), Some(secs(10)));
        assert_eq!(s.retry_delay(1, 0.5, None), Some(secs(10)));
        assert_eq!(
            s.retry_delay(3, 0.5, Some(secs(60))),
            None,
            "no extra attempt"
        );
    }

    #[test]
    fn decisions() {
        let s = RetrySchedule::default();
        let retry = Outcome::Retry { after: None };
        assert_eq!(s.decide(Outcome::Delivered, 1, 0.5), Decision::Delivered);
        assert_eq!(s.decide(retry, 1, 0.5), Decision::RetryIn(secs(3)));
        assert_eq!(s.decide(retry, 2, 0.5), Decision::RetryIn(secs(3)));
        assert_eq!(
            s.decide(retry, 3, 0.5),
            Decision::DeadLetter(DeadLetterReason::Exhausted)
        );
        assert_eq!(
            s.decide(
                Outcome::Retry {
                    after: Some(secs(30))
                },
                1,
                0.5
            ),
            Decision::RetryIn(secs(30))
        );
        assert_eq!(
            s.decide(Outcome::Permanent, 1, 0.5),
            Decision::DeadLetter(DeadLetterReason::Permanent)
        );
        assert_eq!(s.decide(Outcome::Disable, 1, 0.5), Decision::Disable);
    }
}
