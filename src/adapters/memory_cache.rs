//! The in-process cache adapter (embedded default, and the first layer in front of Redis).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;

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
}

/// moka has one expiry policy per cache; this one reads each entry's own TTL, and restarts it
/// when a `set` overwrites the entry (as Redis `SET … PX` does).
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
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl MemoryCache {
    /// A cache holding at most `max_entries` entries; beyond that moka evicts the least useful.
    pub fn new(max_entries: u64) -> MemoryCache {
        MemoryCache {
            entries: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    fn entry(value: &str, ttl: Duration) -> Entry {
        Entry {
            value: value.to_owned(),
            ttl,
        }
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

    #[tokio::test]
    async fn holds_no_more_than_its_capacity() {
        let cache = MemoryCache::new(10);
        for i in 0..200 {
            cache
                .set(&format!("k{i}"), "v", Duration::from_secs(60))
                .await
                .unwrap();
        }
        // moka applies evictions in batches; flush them before counting.
        cache.entries.run_pending_tasks().await;
        assert!(
            cache.entries.entry_count() <= 10,
            "{}",
            cache.entries.entry_count()
        );
    }
}
