//! How long the oldest ready message of a work queue has waited, bounded from what this process
//! saw: AMQP gives a queue's ready count but no way to look at its head without taking it.
//!
//! Two observations bound the head's ready time from below, so its age from above:
//! - a count of 0 at `t`: every message ready now became ready after `t`;
//! - a message received that became ready at `r`: in a FIFO queue the ones behind it became
//!   ready at `r` or later.
//!
//! The bound is tight while consumers drain a backlog (they receive its head), and grows a
//! second per second while they are stalled, which is what an age alert is for. Where priorities
//! mix, a starved lower priority can be older than the bound; each process only knows what it
//! saw, so the fleet's figure is the smallest of the processes' bounds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one process saw of one queue; `i64::MIN` means nothing yet.
#[derive(Debug)]
pub struct Seen {
    empty_at: AtomicI64,
    newest_ready: AtomicI64,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            empty_at: AtomicI64::new(i64::MIN),
            newest_ready: AtomicI64::new(i64::MIN),
        }
    }
}

impl Seen {
    /// A consumer received a message that became ready at `ready_ms` (epoch ms).
    pub fn received(&self, ready_ms: i64) {
        self.newest_ready.fetch_max(ready_ms, Ordering::Relaxed);
    }

    /// The queue held `ready` ready messages at `now_ms`.
    pub fn counted(&self, ready: u64, now_ms: i64) {
        if ready == 0 {
            self.empty_at.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    /// The bound on the head's age given a count of `ready` just taken: zero for an empty queue,
    /// `None` when nothing seen yet bounds it.
    pub fn oldest(&self, ready: u64, now_ms: i64) -> Option<Duration> {
        if ready == 0 {
            return Some(Duration::ZERO);
        }
        let floor = self
            .empty_at
            .load(Ordering::Relaxed)
            .max(self.newest_ready.load(Ordering::Relaxed));
        if floor == i64::MIN {
            return None;
        }
        // A publisher whose clock runs ahead of ours can stamp a future time.
        let waited = u64::try_from(now_ms.saturating_sub(floor)).unwrap_or(0);
        Some(Duration::from_millis(waited))
    }
}

/// Every logical queue's observations in this process, shared by the handle and its consumers.
#[derive(Debug, Default)]
pub struct Ages {
    queues: Mutex<HashMap<String, Arc<Seen>>>,
}

impl Ages {
    pub fn of(&self, queue: &str) -> Arc<Seen> {
        let mut queues = self.queues.lock().expect("queue ages lock");
        queues.entry(queue.to_owned()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn an_empty_count_is_age_zero_and_bounds_what_comes_after() {
        let seen = Seen::default();
        assert_eq!(seen.oldest(3, 10 * S), None, "nothing seen bounds it yet");
        seen.counted(0, 10 * S);
        assert_eq!(seen.oldest(0, 10 * S), Some(Duration::ZERO));
        assert_eq!(seen.oldest(5, 25 * S), Some(Duration::from_secs(15)));
        // A later non-empty count does not move the bound.
        seen.counted(5, 25 * S);
        assert_eq!(seen.oldest(5, 30 * S), Some(Duration::from_secs(20)));
    }

    #[test]
    fn a_received_message_tightens_the_bound_and_an_older_one_does_not_loosen_it() {
        let seen = Seen::default();
        seen.counted(0, 10 * S);
        seen.received(40 * S);
        assert_eq!(seen.oldest(7, 100 * S), Some(Duration::from_secs(60)));
        seen.received(20 * S);
        assert_eq!(seen.oldest(7, 100 * S), Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_stalled_queue_ages_with_the_clock_and_a_future_stamp_is_zero() {
        let seen = Seen::default();
        seen.received(50 * S);
        let a = seen.oldest(9, 60 * S).unwrap();
        let b = seen.oldest(9, 90 * S).unwrap();
        assert_eq!(b - a, Duration::from_secs(30));
        seen.received(200 * S);
        assert_eq!(seen.oldest(9, 100 * S), Some(Duration::ZERO));
    }

    #[test]
    fn queues_are_tracked_apart() {
        let ages = Ages::default();
        ages.of("events").counted(0, 10 * S);
        assert_eq!(ages.of("forward").oldest(1, 20 * S), None);
        assert_eq!(
            ages.of("events").oldest(1, 20 * S),
            Some(Duration::from_secs(10))
        );
    }
}
