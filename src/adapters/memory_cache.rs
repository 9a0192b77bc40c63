//! The in-process cache adapter (embedded default, and the first layer in front of Redis).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};

use crate::ports::{Cache, CacheError};

/// A bounded in-memory cache on moka, where every entry carries its own TTL.
#[derive(Clone)]
pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry>,
}

/// The value together with the TTL it was written with, so the expiry policy can read it.
#[derive(Clone)]
struct Entry {
    value: String,
    ttl: Duration,
    /// Written by `incr` on an existing key: the entry keeps the time it had left.
    keeps_ttl: bool,
}

/// moka has one expiry policy per cache; this one reads each entry's own TTL, and restarts it
/// when a `set` overwrites the entry (as Redis `SET … PX` does) but not when a counter is
/// bumped (as Redis `INCRBY` does not).
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _at: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _at: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        if entry.keeps_ttl {
            remaining
        } else {
            Some(entry.ttl)
        }
    }
}

/// What one entry costs beyond its key and value bytes: the two `String` headers and the TTL
/// in `Entry`, moka's node, its hash-table slot, its access-order links and expiry timer, and
/// the allocator's share. Measured with moka 0.12.16: an 86-byte key and a 1-byte value held
/// ~680 bytes of resident memory per entry (100,000 entries, after churning through 1,000,000),
/// so ~590 beyond the key and value. An estimate (moka does not report its own memory), kept
/// high so that the budget bounds resident memory.
pub const ENTRY_OVERHEAD_BYTES: u32 = 600;

impl MemoryCache {
    /// A cache whose entries weigh at most `max_bytes` in all (key + value + a fixed overhead
    /// each); beyond that moka evicts the least useful.
    pub fn new(max_bytes: u64) -> MemoryCache {
        MemoryCache {
            entries: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, entry: &Entry| {
                    let bytes = key.len() + entry.value.len();
                    u32::try_from(bytes)
                        .unwrap_or(u32::MAX)
                        .saturating_add(ENTRY_OVERHEAD_BYTES)
                })
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    fn entry(value: &str, ttl: Duration) -> Entry {
        Entry {
            value: value.to_owned(),
            ttl,
            keeps_ttl: false,
        }
    }
}

impl crate::metrics::process::CacheSize for MemoryCache {
    fn entries(&self) -> u64 {
        self.entries.entry_count()
    }

    fn bytes(&self) -> u64 {
        self.entries.weighted_size()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn layer(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        Ok(self.entries.get(key).await.map(|e| e.value))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, CacheError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.entries.get(key).await.map(|e| e.value));
        }
        Ok(out)
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        self.entries
            .insert(key.to_owned(), Self::entry(value, ttl))
            .await;
        Ok(())
    }

    async fn set_many(
        &self,
        entries: &[(String, String)],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        for (key, value) in entries {
            self.entries
                .insert(key.clone(), Self::entry(value, ttl))
                .await;
        }
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, CacheError> {
        // moka coalesces concurrent `or_insert_with` calls on one key: exactly one of them runs
        // its initialiser and sees a fresh entry, which is what makes this a set-if-absent.
        let entry = self
            .entries
            .entry(key.to_owned())
            .or_insert_with(async { Self::entry(value, ttl) })
            .await;
        Ok(entry.is_fresh())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.invalidate(key).await;
        Ok(())
    }

    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, CacheError> {
        // moka runs compute calls on one key one after another, so no bump is lost.
        let computed = self
            .entries
            .entry(key.to_owned())
            .and_try_compute_with(|current| async move {
                let Some(current) = current else {
                    return Ok::<_, CacheError>(Op::Put(Self::entry(&by.to_string(), ttl)));
                };
                let old = current.into_value();
                let n = old
                    .value
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_add(by))
                    .ok_or_else(|| {
                        CacheError::Unavailable(format!(
                            "`{key}` does not hold a counter below 2^64"
                        ))
                    })?;
                Ok::<_, CacheError>(Op::Put(Entry {
                    value: n.to_string(),
                    keeps_ttl: true,
                    ..old
                }))
            })
            .await?;
        let entry = match computed {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e) => e,
            CompResult::StillNone(_) | CompResult::Removed(_) => {
                return Err(CacheError::Unavailable(format!("`{key}` vanished")));
            }
        };
        entry
            .into_value()
            .value
            .parse()
            .map_err(|_| CacheError::Unavailable(format!("`{key}` does not hold a counter")))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_set_nx_has_exactly_one_winner() {
        let cache = Arc::new(MemoryCache::new(100));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let value = i.to_string();
                    let won = cache.set_nx("k", &value, Duration::from_secs(60)).await;
                    (won.unwrap(), value)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (won, value) = task.await.unwrap();
            if won {
                winners.push(value);
            }
        }
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        assert_eq!(cache.get("k").await.unwrap(), Some(winners[0].clone()));
    }

    /// Far more than the budget goes in; what stays weighs no more than the budget, and the
    /// cache still holds entries (it evicts, it does not empty).
    #[tokio::test]
    async fn holds_no_more_than_its_byte_budget() {
        let budget = 64 * 1024;
        let cache = MemoryCache::new(budget);
        let value = "v".repeat(100);
        for i in 0..20_000 {
            cache
                .set(
                    &format!("seen:s:wamid.{i:08}:delivered"),
                    &value,
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
        }
        // moka applies evictions in batches; flush them before weighing.
        cache.entries.run_pending_tasks().await;
        use crate::metrics::process::CacheSize;
        let (bytes, entries) = (cache.bytes(), cache.entries());
        assert!(bytes <= budget, "{bytes} > {budget}");
        let each = u64::from(ENTRY_OVERHEAD_BYTES) + 28 + 100;
        assert!(entries >= budget / each / 2, "kept only {entries} entries");
    }
}
