//! The Redis cache adapter: the shared layer between processes, behind a key prefix.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisError, RedisResult};

use crate::ports::{Cache, CacheError};

/// How long Redis may take before a call gives up. Short, because the cache is only a speed-up:
/// a slow or dead Redis must cost a caller a fraction of a second, then the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisCacheConfig {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl Default for RedisCacheConfig {
    fn default() -> Self {
        RedisCacheConfig {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(250),
        }
    }
}

/// A Redis-backed cache; cloning shares the connection.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisCache {
    /// [`RedisCache::connect_with`] and the default timeouts.
    pub fn connect(url: &str, prefix: String) -> Result<RedisCache, CacheError> {
        RedisCache::connect_with(url, prefix, RedisCacheConfig::default())
    }

    /// Every key is stored as `prefix + key`. No connection is made here: it is opened on first
    /// use and reopened after a failure, so the gateway starts (and degrades) while Redis is
    /// down and picks Redis up again once it is back. Fails only on a malformed URL or when
    /// called outside a Tokio runtime (the connection manager spawns a task).
    pub fn connect_with(
        url: &str,
        prefix: String,
        config: RedisCacheConfig,
    ) -> Result<RedisCache, CacheError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(CacheError::Unavailable(
                "redis cache must be created inside a Tokio runtime".into(),
            ));
        }
        let client = redis::Client::open(url).map_err(|e| unavailable("connect", e))?;
        // No reconnect retries inside one call: each would add its backoff to the caller's wait.
        // The next call tries again, and the breaker in front decides how often that happens.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| unavailable("connect", e))?;
        Ok(RedisCache { conn, prefix })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn query<T: FromRedisValue>(&self, op: &str, cmd: &Cmd) -> Result<T, CacheError> {
        retry_refused(|| {
            // The manager is a cheap handle onto one shared multiplexed connection.
            let mut conn = self.conn.clone();
            async move { cmd.query_async(&mut conn).await }
        })
        .await
        .map_err(|e| unavailable(op, e))
    }
}

/// Runs `attempt` again, once, if its connection was refused. The connection manager remembers
/// a failed connect and only starts a new one when a call trips over it, so without this the
/// first call after Redis comes back would always fail, and a breaker's probe with it. Only a
/// refusal is retried: the command was certainly never sent (so `SET NX` cannot be applied
/// twice), and a refusal comes back at once, so the retry cannot double a timeout.
async fn retry_refused<T, F, Fut>(mut attempt: F) -> RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    match attempt().await {
        Err(e) if e.is_connection_refusal() => attempt().await,
        result => result,
    }
}

/// Redis wants a positive whole number of milliseconds; sub-millisecond TTLs round up to 1 ms.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// INCRBY, then the TTL if the key has none (it was just created), in one atomic step: a
/// pipelined `PEXPIRE … NX` needs Redis 7, and a connection lost between two plain commands
/// would leave a counter that never expires.
const INCR_SCRIPT: &str = "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
     if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
     return n";

fn unavailable(op: &str, e: RedisError) -> CacheError {
    CacheError::Unavailable(format!("redis {op}: {e}"))
}

#[async_trait]
impl Cache for RedisCache {
    fn layer(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        self.query("GET", redis::cmd("GET").arg(self.key(key)))
            .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.query("MGET", redis::cmd("MGET").arg(keys)).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let cmd = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .to_owned();
        self.query("SET", &cmd).await
    }

    async fn set_many(
        &self,
        entries: &[(String, String)],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ttl = ttl_millis(ttl);
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("PX")
                .arg(ttl)
                .ignore();
        }
        retry_refused(|| {
            let mut conn = self.conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut conn).await }
        })
        .await
        .map_err(|e| unavailable("SET pipeline", e))
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, CacheError> {
        let cmd = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl))
            .to_owned();
        // `OK` when this call set the key, nil when it already existed.
        let reply: Option<String> = self.query("SET NX", &cmd).await?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let _removed: u64 = self
            .query("DEL", redis::cmd("DEL").arg(self.key(key)))
            .await?;
        Ok(())
    }

    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, CacheError> {
        let by = i64::try_from(by)
            .map_err(|_| CacheError::Unavailable(format!("redis INCRBY: {by} is out of range")))?;
        let cmd = redis::cmd("EVAL")
            .arg(INCR_SCRIPT)
            .arg(1)
            .arg(self.key(key))
            .arg(by)
            .arg(ttl_millis(ttl))
            .to_owned();
        self.query("INCRBY", &cmd).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let _pong: String = self.query("PING", &redis::cmd("PING")).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_whole_positive_milliseconds() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn refuses_to_start_outside_a_runtime() {
        let err = RedisCache::connect("redis://127.0.0.1:6379/", "t:".into()).err();
        assert!(matches!(err, Some(CacheError::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_malformed_url_is_an_error_but_a_dead_server_is_not() {
        assert!(RedisCache::connect("not a url", "t:".into()).is_err());
        assert!(RedisCache::connect("redis://127.0.0.1:1/", "t:".into()).is_ok());
    }
}
