//! The cache port: string values with a TTL. Only ever a speed-up; the store stays the truth.

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The cache cannot be reached (or its breaker is open). Callers treat this as a miss.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// A short name for metrics and health output (`memory`, `redis`).
    fn layer(&self) -> &'static str;

    async fn get(&self, key: &str) -> Result<Option<String>, CacheError>;

    /// One round trip for many keys; the result has one slot per key, in order.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, CacheError>;

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError>;

    async fn set_many(&self, entries: &[(String, String)], ttl: Duration)
    -> Result<(), CacheError>;

    /// Sets only if absent; `true` when this call set it.
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, CacheError>;

    async fn delete(&self, key: &str) -> Result<(), CacheError>;

    /// Adds `by` to the counter at `key` (absent counts as 0) and returns the new value. The
    /// TTL is set only when this call creates the key, so a counter per time window expires
    /// with its window however often it is bumped. A key holding something other than a
    /// counter is an error.
    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, CacheError>;

    async fn ping(&self) -> Result<(), CacheError>;
}
