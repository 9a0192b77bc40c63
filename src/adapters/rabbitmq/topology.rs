//! Names and arguments of the queues the RabbitMQ adapter declares, and the delay-tier ladder.
//!
//! RabbitMQ 3.10 here has no delayed-message plugin, and a per-message `expiration` in one shared
//! queue only expires at the head (a 3 s message holds up a 0.3 s one). So each delay is a fixed
//! TTL queue that dead-letters into its work queue, and a delay between tiers takes several hops.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::ports::QueueError;
use crate::ports::queue::MAX_PRIORITY;

/// The fixed delays a message can wait in. Neighbours are at most 6x apart, so even a delay just
/// under a tier needs only a handful of hops per step down the ladder.
pub const TIERS: [Duration; 9] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(12 * 60 * 60),
];

/// A tier may overshoot the time left by this fraction of it (but at least [`MIN_SLACK`]): each
/// hop through the consumer takes a few milliseconds, and without slack a message due in 498 ms
/// would skip the 500 ms tier and take five 100 ms hops instead.
const SLACK_DIVISOR: u32 = 20;
const MIN_SLACK: Duration = Duration::from_millis(25);

/// The tier for a message due in `remaining`: the longest that does not overshoot (beyond a small
/// slack), so a message is never back early and is late by little; below the shortest tier it is
/// late by less than that tier.
pub fn tier_for(remaining: Duration) -> Duration {
    let reach = remaining + (remaining / SLACK_DIVISOR).max(MIN_SLACK);
    TIERS
        .iter()
        .rev()
        .find(|t| **t <= reach)
        .copied()
        .unwrap_or(TIERS[0])
}

/// Which of a logical queue's broker queues a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Work,
    /// One of [`TIERS`].
    Delay(Duration),
    Dead,
}

/// Broker names are `{prefix}.{queue}`, `{prefix}.{queue}.delay.{ms}` and `{prefix}.{queue}.dead`.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    expires: Option<Duration>,
}

/// AMQP caps queue names at 255 bytes.
const MAX_NAME: usize = 255;

impl Topology {
    pub fn new(prefix: String, expires: Option<Duration>) -> Topology {
        Topology { prefix, expires }
    }

    /// Rejects logical names whose broker names would be too long, or would collide with another
    /// queue's delay or dead-letter queue.
    pub fn check(&self, queue: &str) -> Result<(), QueueError> {
        let bad = |why: &str| {
            Err(QueueError::Unavailable(format!(
                "queue name {queue:?} {why}"
            )))
        };
        if queue.is_empty() {
            return bad("is empty");
        }
        if queue.ends_with(".dead") || queue.contains(".delay.") {
            return bad("would collide with a dead-letter or delay queue name");
        }
        let longest = self.name(queue, Target::Delay(TIERS[TIERS.len() - 1]));
        if longest.len() > MAX_NAME {
            return bad("makes broker queue names longer than 255 bytes");
        }
        Ok(())
    }

    pub fn name(&self, queue: &str, target: Target) -> String {
        match target {
            Target::Work => format!("{}.{queue}", self.prefix),
            Target::Delay(t) => format!("{}.{queue}.delay.{}", self.prefix, t.as_millis()),
            Target::Dead => format!("{}.{queue}.dead", self.prefix),
        }
    }

    /// Declare arguments; they must be the same on every declare, or the broker refuses it.
    pub fn args(&self, queue: &str, target: Target) -> FieldTable {
        let mut args = FieldTable::default();
        let mut expires = self.expires;
        match target {
            Target::Work => {
                args.insert(
                    "x-max-priority".into(),
                    AMQPValue::LongInt(i32::from(MAX_PRIORITY)),
                );
            }
            Target::Delay(ttl) => {
                args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(millis(ttl)));
                args.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString(LongString::from("")),
                );
                args.insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(LongString::from(self.name(queue, Target::Work))),
                );
                // An idle queue expires with its messages in it, so a delay queue must outlive
                // the messages it holds.
                expires = expires.map(|e| e + ttl);
            }
            Target::Dead => {}
        }
        if let Some(e) = expires {
            args.insert("x-expires".into(), AMQPValue::LongLongInt(millis(e).max(1)));
        }
        args
    }
}

pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A broker name as the protocol's short string; [`Topology::check`] keeps it short enough.
pub fn short(name: &str) -> Result<ShortString, QueueError> {
    ShortString::try_new(name.to_owned())
        .map_err(|e| QueueError::Unavailable(format!("queue name {name:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_overshoots_by_at_most_the_slack() {
        assert_eq!(
            tier_for(Duration::from_millis(1500)),
            Duration::from_millis(500)
        );
        assert_eq!(tier_for(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(
            tier_for(Duration::from_secs(3600)),
            Duration::from_secs(1800)
        );
        assert_eq!(tier_for(Duration::from_secs(86_400)), TIERS[8]);
        assert_eq!(tier_for(Duration::from_millis(3)), TIERS[0]);
        assert_eq!(
            tier_for(Duration::from_millis(490)),
            Duration::from_millis(500)
        );
        assert_eq!(
            tier_for(Duration::from_millis(1990)),
            Duration::from_secs(2)
        );
        assert_eq!(
            tier_for(Duration::from_millis(1800)),
            Duration::from_millis(500)
        );
        for w in TIERS.windows(2) {
            assert!(w[0] < w[1] && w[1] <= w[0] * 6);
        }
    }

    #[test]
    fn names_and_collisions() {
        let t = Topology::new("p".into(), None);
        assert_eq!(t.name("q", Target::Work), "p.q");
        assert_eq!(t.name("q", Target::Dead), "p.q.dead");
        assert_eq!(t.name("q", Target::Delay(TIERS[0])), "p.q.delay.100");
        assert!(t.check("events").is_ok());
        assert!(t.check("x.dead").is_err());
        assert!(t.check("x.delay.5").is_err());
        assert!(t.check("").is_err());
        assert!(t.check(&"a".repeat(250)).is_err());
    }

    #[test]
    fn delay_queues_outlive_their_messages() {
        let t = Topology::new("p".into(), Some(Duration::from_secs(60)));
        let args = t.args("q", Target::Delay(Duration::from_secs(10)));
        assert_eq!(
            args.inner().get("x-expires"),
            Some(&AMQPValue::LongLongInt(70_000))
        );
        assert_eq!(
            args.inner().get("x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString("p.q".into()))
        );
        let work = t.args("q", Target::Work);
        assert!(work.inner().contains_key("x-max-priority"));
        assert!(
            Topology::new("p".into(), None)
                .args("q", Target::Dead)
                .inner()
                .is_empty()
        );
    }
}
