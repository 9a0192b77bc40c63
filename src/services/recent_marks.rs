//! Keys of recently applied events, kept as 128-bit fingerprints within a byte budget.
//!
//! The dedupe marks were once entries of the general memory cache (moka). Measured with moka
//! 0.12, an 86-byte key and a one-byte value cost ~680 bytes of resident memory each
//! (~360 for a `u128` key and no value): the node, its expiry timer, the access-order
//! links and the allocator's share. A mark needs none of that: it is a yes/no answer about a
//! key, read and written a batch at a time, where forgetting one only costs the store a
//! duplicate check (its unique keys are the guarantee). So marks are fingerprints in two plain
//! hash sets, ~17–39 bytes each: the same budget holds ten times as many.
//!
//! Two generations: new marks go into `current`; when it is full, or older than the TTL, it
//! becomes `previous` and the old `previous` is dropped whole. A mark is so remembered for at
//! least one generation. A false "seen" needs two keys with the same 128 bits: with keys from
//! a hasher seeded at random per process, the odds over a billion events are below 10⁻²⁰.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One hash-table slot: the fingerprint and hashbrown's control byte.
const SLOT_BYTES: u64 = 16 + 1;

/// Fingerprints are already uniformly random: their low bits serve as the table's hash.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only u128 fingerprints are hashed")
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

type Set = HashSet<u128, BuildHasherDefault<Identity>>;

struct Generations {
    current: Set,
    previous: Set,
    since: Instant,
}

pub struct RecentMarks {
    seeds: (RandomState, RandomState),
    /// Marks per generation: the most whose table fits half the budget.
    per_generation: usize,
    max_age: Duration,
    state: Mutex<Generations>,
}

impl RecentMarks {
    /// Marks within `budget_bytes` (both generations' tables together), each generation
    /// replaced after `max_age`.
    pub fn new(budget_bytes: u64, max_age: Duration) -> RecentMarks {
        RecentMarks {
            seeds: (RandomState::new(), RandomState::new()),
            per_generation: per_generation(budget_bytes),
            max_age,
            state: Mutex::new(Generations {
                current: Set::default(),
                previous: Set::default(),
                since: Instant::now(),
            }),
        }
    }

    fn fingerprint(&self, key: &str) -> u128 {
        let high = self.seeds.0.hash_one(key);
        let low = self.seeds.1.hash_one(key);
        (u128::from(high) << 64) | u128::from(low)
    }

    /// For each key, whether it was marked (and not yet forgotten).
    pub fn seen(&self, keys: &[String]) -> Vec<bool> {
        let prints: Vec<u128> = keys.iter().map(|k| self.fingerprint(k)).collect();
        let state = self.state.lock().expect("marks lock");
        prints
            .iter()
            .map(|p| state.current.contains(p) || state.previous.contains(p))
            .collect()
    }

    pub fn mark(&self, keys: &[String]) {
        self.mark_at(keys, Instant::now());
    }

    fn mark_at(&self, keys: &[String], now: Instant) {
        let prints: Vec<u128> = keys.iter().map(|k| self.fingerprint(k)).collect();
        let mut state = self.state.lock().expect("marks lock");
        for p in prints {
            if state.current.len() >= self.per_generation
                || now.saturating_duration_since(state.since) >= self.max_age
            {
                // The old table is freed here, under the lock; it is one `free` call.
                state.previous = std::mem::take(&mut state.current);
                state.since = now;
            }
            state.current.insert(p);
        }
    }
}

/// The most marks one generation may hold so that its table, grown by doubling, stays
/// within half the budget: hashbrown keeps at most 7/8 of a power-of-two number of slots full.
fn per_generation(budget_bytes: u64) -> usize {
    let slots = (budget_bytes / 2 / SLOT_BYTES).max(16);
    let slots = 1u64 << (63 - slots.leading_zeros()); // the power of two at or below
    usize::try_from(slots / 8 * 7).unwrap_or(usize::MAX)
}

/// Bytes a table holding up to `capacity` marks has allocated.
fn table_bytes(capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let slots = (capacity as u64 * 8).div_ceil(7).next_power_of_two();
    slots * SLOT_BYTES
}

impl crate::metrics::process::CacheSize for RecentMarks {
    fn entries(&self) -> u64 {
        let state = self.state.lock().expect("marks lock");
        (state.current.len() + state.previous.len()) as u64
    }

    fn bytes(&self) -> u64 {
        let state = self.state.lock().expect("marks lock");
        table_bytes(state.current.capacity()) + table_bytes(state.previous.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::process::CacheSize;

    fn keys(range: std::ops::Range<u32>) -> Vec<String> {
        range
            .map(|i| format!("s:wamid.{i:012}:delivered"))
            .collect()
    }

    #[test]
    fn marked_keys_are_seen_and_others_are_not() {
        let marks = RecentMarks::new(1 << 20, Duration::from_secs(60));
        marks.mark(&keys(0..100));
        let seen = marks.seen(&keys(50..150));
        assert!(seen[..50].iter().all(|s| *s), "marked keys are seen");
        assert!(seen[50..].iter().all(|s| !*s), "unmarked keys are not");
    }

    #[test]
    fn far_more_marks_than_the_budget_keep_its_weight_under_it() {
        let budget = 1 << 20;
        let marks = RecentMarks::new(budget, Duration::from_secs(3600));
        for chunk in 0..100u32 {
            marks.mark(&keys(chunk * 10_000..(chunk + 1) * 10_000));
            assert!(marks.bytes() <= budget, "{} > {budget}", marks.bytes());
        }
        let per_generation = per_generation(budget);
        assert!(marks.entries() as usize <= 2 * per_generation);
        assert!(
            marks.entries() as usize > per_generation,
            "a full budget keeps more than one generation"
        );
        // The latest marks are the ones kept.
        assert!(marks.seen(&keys(990_000..1_000_000)).iter().all(|s| *s));
        assert!(marks.seen(&keys(0..10_000)).iter().all(|s| !*s));
    }

    #[test]
    fn a_generation_older_than_the_ttl_is_replaced() {
        let marks = RecentMarks::new(1 << 20, Duration::from_secs(10));
        let start = Instant::now();
        marks.mark_at(&keys(0..10), start);
        // One generation later the marks are still there (in `previous`)…
        marks.mark_at(&keys(10..20), start + Duration::from_secs(11));
        assert!(marks.seen(&keys(0..10)).iter().all(|s| *s));
        // …and two generations later they are gone.
        marks.mark_at(&keys(20..30), start + Duration::from_secs(22));
        assert!(marks.seen(&keys(0..10)).iter().all(|s| !*s));
        assert!(marks.seen(&keys(10..30)).iter().all(|s| *s));
    }

    #[test]
    fn the_generation_size_fits_half_the_budget() {
        for budget in [1u64 << 20, 7 << 20, 56 << 20, 1 << 30] {
            let n = per_generation(budget);
            assert!(table_bytes(n) <= budget / 2, "{budget}: {n}");
            assert!(table_bytes(n * 2) > budget / 2, "{budget}: {n} wastes half");
        }
    }
}
