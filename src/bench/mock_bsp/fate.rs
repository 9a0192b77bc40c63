//! What happens to each send the mock receives: throttled, rejected, or accepted with the final
//! status it will report, and the sequence of status webhooks that tells it. Pure: every choice
//! comes from one seeded generator per request.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::config::MockConfig;

/// The status a message ends in, as the mock will report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Final {
    Delivered,
    Read,
    Failed,
}

/// One status webhook of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Word {
    pub fn as_str(self) -> &'static str {
        match self {
            Word::Sent => "sent",
            Word::Delivered => "delivered",
            Word::Read => "read",
            Word::Failed => "failed",
        }
    }

    /// Seconds after the send this status happened: the provider's event times keep the real
    /// order even when the posts are shuffled.
    pub fn offset_secs(self) -> u64 {
        match self {
            Word::Sent => 0,
            Word::Delivered | Word::Failed => 1,
            Word::Read => 2,
        }
    }
}

/// What the mock answers one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 429: not accepted.
    Throttle,
    /// 400 for good: not accepted.
    Reject,
    /// Accepted: its final status and the statuses to post, in posting order.
    Accept { last: Final, statuses: Vec<Word> },
}

/// Decides request number `seq`'s fate. The same seed and sequence number give the same answer.
pub fn decide(config: &MockConfig, seq: u64) -> Verdict {
    // Consecutive sequence numbers must not give correlated streams: spread them first.
    let mut rng = SmallRng::seed_from_u64(config.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if rng.random_bool(config.throttle_rate) {
        return Verdict::Throttle;
    }
    if rng.random_bool(config.reject_rate) {
        return Verdict::Reject;
    }
    let last = if rng.random_bool(config.fail_rate) {
        Final::Failed
    } else if rng.random_bool(config.read_rate) {
        Final::Read
    } else {
        Final::Delivered
    };
    let path: &[Word] = match last {
        Final::Failed => &[Word::Sent, Word::Failed],
        Final::Delivered => &[Word::Sent, Word::Delivered],
        Final::Read => &[Word::Sent, Word::Delivered, Word::Read],
    };
    let mut statuses = Vec::with_capacity(path.len() * 2);
    for &word in path {
        statuses.push(word);
        if rng.random_bool(config.duplicate_rate) {
            statuses.push(word);
        }
    }
    if config.reorder {
        statuses.shuffle(&mut rng);
    }
    Verdict::Accept { last, statuses }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(f: impl FnOnce(&mut MockConfig)) -> MockConfig {
        let mut c = MockConfig {
            seed: 7,
            ..MockConfig::default()
        };
        f(&mut c);
        c
    }

    fn tally(c: &MockConfig, n: u64) -> [u64; 5] {
        let mut t = [0; 5];
        for seq in 0..n {
            match decide(c, seq) {
                Verdict::Throttle => t[0] += 1,
                Verdict::Reject => t[1] += 1,
                Verdict::Accept { last, .. } => match last {
                    Final::Failed => t[2] += 1,
                    Final::Delivered => t[3] += 1,
                    Final::Read => t[4] += 1,
                },
            }
        }
        t
    }

    #[test]
    fn defaults_accept_everything_and_read_it() {
        let c = config(|_| {});
        assert_eq!(
            decide(&c, 3),
            Verdict::Accept {
                last: Final::Read,
                statuses: vec![Word::Sent, Word::Delivered, Word::Read]
            }
        );
        assert_eq!(tally(&c, 1000), [0, 0, 0, 0, 1000]);
    }

    #[test]
    fn rates_are_roughly_kept() {
        let c = config(|c| {
            c.throttle_rate = 0.1;
            c.reject_rate = 0.1;
            c.fail_rate = 0.2;
            c.read_rate = 0.5;
        });
        let [throttled, rejected, failed, delivered, read] = tally(&c, 20_000);
        assert!((1_800..2_200).contains(&throttled), "{throttled}");
        // Of the 90% not throttled, 10% are rejected.
        assert!((1_600..2_000).contains(&rejected), "{rejected}");
        // Of the 81% accepted, 20% fail; half of the rest are read.
        assert!((3_000..3_500).contains(&failed), "{failed}");
        assert!((6_100..6_900).contains(&delivered), "{delivered}");
        assert!((6_100..6_900).contains(&read), "{read}");
        assert_eq!(
            tally(&c, 500),
            tally(&c, 500),
            "the same seed decides alike"
        );
    }

    #[test]
    fn failures_report_sent_then_failed() {
        let c = config(|c| c.fail_rate = 1.0);
        assert_eq!(
            decide(&c, 0),
            Verdict::Accept {
                last: Final::Failed,
                statuses: vec![Word::Sent, Word::Failed]
            }
        );
    }

    #[test]
    fn duplicates_and_reordering_keep_every_status() {
        let c = config(|c| {
            c.duplicate_rate = 1.0;
            c.reorder = true;
        });
        let mut out_of_order = 0;
        for seq in 0..200 {
            let Verdict::Accept { statuses, .. } = decide(&c, seq) else {
                panic!("all accepted")
            };
            let mut sorted = statuses.clone();
            sorted.sort_by_key(|w| w.offset_secs());
            assert_eq!(
                sorted,
                [
                    Word::Sent,
                    Word::Sent,
                    Word::Delivered,
                    Word::Delivered,
                    Word::Read,
                    Word::Read
                ]
            );
            out_of_order += usize::from(statuses != sorted);
        }
        assert!(out_of_order > 150, "{out_of_order}");
    }
}
