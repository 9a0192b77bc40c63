//! The seed's two cache layers as one value: process memory first, then the shared cache.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::ports::Cache;

/// Memory (always) and a shared cache (Redis, when configured). Reads try memory, then the
/// shared layer, and copy shared hits into memory; writes go to both. A failing shared layer
/// reads as a miss, so callers fall through to the store: Redis being down costs speed, not
/// correctness.
#[derive(Clone)]
pub struct Tiers {
    pub memory: Arc<dyn Cache>,
    pub shared: Option<Arc<dyn Cache>>,
    pub memory_ttl: Duration,
    pub shared_ttl: Duration,
    pub metrics: Metrics,
    /// No other process shares this store (the embedded default), so this process sees every
    /// change and may keep invalidatable entries in memory when there is no shared layer.
    pub single_process: bool,
}

impl Tiers {
    /// The value of a cached absence ("looked, nothing there").
    pub const ABSENT: &'static str = "";

    /// One slot per key, `None` where no layer had it. `cache` names the use in metrics.
    pub async fn get_many(&self, cache: &'static str, keys: &[String]) -> Vec<Option<String>> {
        let mut found = self
            .memory
            .get_many(keys)
            .await
            .unwrap_or_else(|_| vec![None; keys.len()]);
        for f in &found {
            self.metrics.cache_lookup(cache, "memory", f.is_some());
        }
        let Some(shared) = &self.shared else {
            return found;
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        if missing.is_empty() {
            return found;
        }
        let missing_keys: Vec<String> = missing.iter().map(|&i| keys[i].clone()).collect();
        let Ok(from_shared) = shared.get_many(&missing_keys).await else {
            return found;
        };
        let mut promote = Vec::new();
        for (&i, value) in missing.iter().zip(from_shared) {
            self.metrics.cache_lookup(cache, "redis", value.is_some());
            if let Some(v) = value {
                promote.push((keys[i].clone(), v.clone()));
                found[i] = Some(v);
            }
        }
        // Shared hits are copied into memory, except cached absences, which must stay where
        // another process's invalidation reaches them.
        promote.retain(|(_, v)| v != Tiers::ABSENT);
        if !promote.is_empty() {
            let _ = self.memory.set_many(&promote, self.memory_ttl).await;
        }
        found
    }

    /// Writes to every layer; `ttl` caps both layers' own TTLs (negative entries are short).
    pub async fn set_many(&self, entries: &[(String, String)], ttl: Option<Duration>) {
        self.set_in(entries, ttl, true).await;
    }

    /// For entries that another process may invalidate (a cached "absent", an API key that can
    /// be rotated): written to the shared layer only, where every process's `delete` reaches
    /// them. Without one they stay in memory only when no other process can change the store,
    /// and are not cached at all otherwise: a stale entry there could not be invalidated.
    pub async fn set_invalidatable(&self, entries: &[(String, String)], ttl: Option<Duration>) {
        if self.shared.is_none() && !self.single_process {
            return;
        }
        self.set_in(entries, ttl, self.shared.is_none()).await;
    }

    async fn set_in(&self, entries: &[(String, String)], ttl: Option<Duration>, memory: bool) {
        if entries.is_empty() {
            return;
        }
        let cap = |t: Duration| ttl.map_or(t, |c| c.min(t));
        if memory {
            let _ = self.memory.set_many(entries, cap(self.memory_ttl)).await;
        }
        if let Some(shared) = &self.shared {
            let _ = shared.set_many(entries, cap(self.shared_ttl)).await;
        }
    }

    pub async fn delete(&self, key: &str) {
        let _ = self.memory.delete(key).await;
        if let Some(shared) = &self.shared {
            let _ = shared.delete(key).await;
        }
    }
}
