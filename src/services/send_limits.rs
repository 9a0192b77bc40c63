//! Send rates per sender number: a token bucket in this process, and, with Redis, a per-second
//! window every sender process shares, so two processes sending for one number keep its rate
//! together rather than each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::domain::campaign::bucket::TokenBucket;
use crate::domain::phone::PhoneNumber;
use crate::ports::Cache;

/// How long a window's counter lives in Redis: its own second and the next, for clocks a
/// little apart.
const WINDOW_TTL: Duration = Duration::from_secs(3);

pub struct SendLimits {
    default_rate: u32,
    overrides: HashMap<PhoneNumber, u32>,
    buckets: Mutex<Buckets>,
    shared: Option<Arc<dyn Cache>>,
}

/// Buckets are dropped once this many are held, if at rest (a fresh one acts the same), so
/// numbers that sent once and went quiet do not pile up for the life of the process.
const PRUNE_ABOVE: usize = 1024;

#[derive(Default)]
struct Buckets {
    by_number: HashMap<PhoneNumber, TokenBucket>,
    /// The size at which the next prune runs: twice what the last one kept, so numbers all
    /// sending at once cost one scan per doubling, not one per new number.
    prune_at: usize,
}

impl Buckets {
    fn get(&mut self, number: &PhoneNumber, rate: u32, now: Instant) -> &mut TokenBucket {
        if !self.by_number.contains_key(number) && self.by_number.len() >= self.prune_at {
            self.by_number.retain(|_, b| !b.at_rest(now));
            self.prune_at = (self.by_number.len() * 2).max(PRUNE_ABOVE);
        }
        self.by_number
            .entry(number.clone())
            .or_insert_with(|| TokenBucket::new(rate, rate))
    }
}

/// What a throttle answer does to the number's rate: halve it (the bucket recovers it).
const SLOW_DOWN: f64 = 0.5;

impl SendLimits {
    pub fn new(
        default_rate: u32,
        overrides: Vec<(PhoneNumber, u32)>,
        shared: Option<Arc<dyn Cache>>,
    ) -> SendLimits {
        SendLimits {
            default_rate,
            overrides: overrides.into_iter().collect(),
            buckets: Mutex::default(),
            shared,
        }
    }

    /// The rate a send from `number` keeps: the campaign's own if it set one, else the
    /// number's configured one, else the server default.
    pub fn rate_for(&self, number: &PhoneNumber, campaign_rate: Option<u32>) -> u32 {
        campaign_rate
            .or_else(|| self.overrides.get(number).copied())
            .unwrap_or(self.default_rate)
            .max(1)
    }

    /// Waits until `number` may send `n` more messages; false if shutdown came first. Taking
    /// them together costs one shared-window round trip for all of them, not one each (50
    /// sequential Redis calls per send message had been most of a message's time).
    pub async fn acquire(
        &self,
        number: &PhoneNumber,
        campaign_rate: Option<u32>,
        n: u32,
        shutdown: &CancellationToken,
    ) -> bool {
        let rate = self.rate_for(number, campaign_rate);
        let mut left = n;
        while left > 0 {
            let wait = {
                let now = Instant::now();
                let mut buckets = self.buckets.lock().expect("not poisoned");
                let bucket = buckets.get(number, rate, now);
                bucket.set_rate(now, rate, rate);
                loop {
                    match bucket.try_take(now) {
                        Ok(()) => {
                            left -= 1;
                            if left == 0 {
                                break None;
                            }
                        }
                        Err(d) => break Some(d),
                    }
                }
            };
            if let Some(d) = wait
                && !nap(d, shutdown).await
            {
                return false;
            }
        }
        let Some(shared) = &self.shared else {
            return true;
        };
        let mut left = u64::from(n);
        while left > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let key = format!("rate:{}:{}", number.as_str(), now.as_secs());
            match shared.incr(&key, left, WINDOW_TTL).await {
                Ok(count) => {
                    left -= granted(rate, count, left);
                    if left == 0 {
                        return true;
                    }
                    let to_next = Duration::from_secs(1)
                        - Duration::from_nanos(u64::from(now.subsec_nanos()));
                    if !nap(to_next, shutdown).await {
                        return false;
                    }
                }
                // Redis is down: this process's own bucket still holds the rate.
                Err(_) => return true,
            }
        }
        true
    }

    /// The BSP said this number sends too fast: its bucket slows down for a while.
    pub fn throttled(&self, number: &PhoneNumber) {
        let mut buckets = self.buckets.lock().expect("not poisoned");
        if let Some(b) = buckets.by_number.get_mut(number) {
            b.slow_down(Instant::now(), SLOW_DOWN);
        }
    }
}

/// How many of `asked` sends fit a window of `rate` whose counter reads `count` after adding
/// them: the room the window had before. The rest wait for the next window (their count stays
/// in this one, which only makes other processes wait more this second, never send more).
fn granted(rate: u32, count: u64, asked: u64) -> u64 {
    let before = count.saturating_sub(asked);
    u64::from(rate).saturating_sub(before).min(asked)
}

async fn nap(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(i: usize) -> PhoneNumber {
        PhoneNumber::parse(&format!("+9198{i:08}")).expect("valid number")
    }

    #[tokio::test]
    async fn quiet_numbers_are_dropped_and_busy_or_slowed_ones_kept() {
        let limits = SendLimits::new(1, Vec::new(), None);
        let open = CancellationToken::new();
        // Each number takes its one token: none is at rest for the next second.
        for i in 0..PRUNE_ABOVE {
            assert!(limits.acquire(&number(i), None, 1, &open).await);
        }
        limits.throttled(&number(0));
        assert_eq!(limits.buckets.lock().unwrap().by_number.len(), PRUNE_ABOVE);
        // A second on, all are full again; only the slowed one is not at rest.
        let later = Instant::now() + Duration::from_secs(1);
        let mut buckets = limits.buckets.lock().unwrap();
        buckets.get(&number(PRUNE_ABOVE), 1, later);
        assert_eq!(buckets.by_number.len(), 2);
        assert!(buckets.by_number.contains_key(&number(0)));
        assert_eq!(buckets.prune_at, PRUNE_ABOVE);
    }

    #[test]
    fn a_window_grants_what_room_it_had() {
        assert_eq!(granted(10, 4, 4), 4, "an empty window takes all");
        assert_eq!(granted(10, 12, 4), 2, "8 were in: room for 2");
        assert_eq!(granted(10, 10, 4), 4, "exactly full after");
        assert_eq!(granted(10, 20, 4), 0, "full before");
        assert_eq!(granted(0, 4, 4), 0, "no room at all");
    }

    #[tokio::test]
    async fn many_sends_count_in_the_shared_window_at_once() {
        let shared: Arc<dyn Cache> =
            Arc::new(crate::adapters::memory_cache::MemoryCache::new(1 << 20));
        let limits = SendLimits::new(1000, Vec::new(), Some(shared.clone()));
        let open = CancellationToken::new();
        let n = number(7);
        let window = || {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            format!("rate:{}:{secs}", n.as_str())
        };
        // Retried if a second boundary falls between the acquire and the read.
        for _ in 0..3 {
            let key = window();
            assert!(limits.acquire(&n, None, 40, &open).await);
            let count = shared.incr(&key, 0, WINDOW_TTL).await.unwrap();
            if window() == key {
                assert_eq!(count % 40, 0, "40 counted together: {count}");
                assert!(count >= 40);
                return;
            }
        }
        panic!("three second boundaries in a row");
    }

    #[test]
    fn numbers_all_busy_are_scanned_once_per_doubling() {
        let mut buckets = Buckets::default();
        let now = Instant::now();
        for i in 0..3 * PRUNE_ABOVE {
            buckets.get(&number(i), 1, now).try_take(now).unwrap();
        }
        assert_eq!(buckets.by_number.len(), 3 * PRUNE_ABOVE);
        assert_eq!(buckets.prune_at, 4 * PRUNE_ABOVE);
    }
}
