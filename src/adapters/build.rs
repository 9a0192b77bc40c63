//! Picks the adapters the configuration asks for: one short path from URLs to ports.

use std::sync::Arc;
use std::time::Duration;

use super::guarded_cache::GuardedCache;
use super::instrumented::Instrumented;
use super::memory_cache::MemoryCache;
use super::postgres::PgStore;
use super::rabbitmq::{RabbitOptions, RabbitQueue};
use super::redis_cache::RedisCache;
use super::sqlite::{LocalQueue, SqliteDb, SqliteStore};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ports::{Cache, Queue, Store};

/// Entries the in-process cache holds at most (project lookups, API keys, dedupe marks).
const MEMORY_CACHE_ENTRIES: u64 = 1_000_000;

/// The three ports, wired.
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub memory: Arc<dyn Cache>,
    /// Redis behind its circuit breaker, when configured.
    pub shared: Option<Arc<dyn Cache>>,
    closers: Vec<Closer>,
}

impl Backends {
    /// Backends assembled by hand; nothing to close.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        memory: Arc<dyn Cache>,
        shared: Option<Arc<dyn Cache>>,
    ) -> Backends {
        Backends {
            store,
            queue,
            memory,
            shared,
            closers: Vec::new(),
        }
    }
}

enum Closer {
    Sqlite(SqliteDb),
    Postgres(PgStore),
}

impl Backends {
    /// Flushes and closes connection pools (SQLite checkpoints its WAL on close).
    pub async fn close(&self) {
        for c in &self.closers {
            match c {
                Closer::Sqlite(db) => db.close().await,
                Closer::Postgres(pg) => pg.close().await,
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("store: {0}")]
    Store(#[from] crate::ports::StoreError),
    #[error("queue: {0}")]
    Queue(#[from] crate::ports::QueueError),
    #[error("cache: {0}")]
    Cache(#[from] crate::ports::CacheError),
}

/// Connects (and migrates) the store only: what `wagate migrate` needs.
pub async fn store(cfg: &Config) -> Result<(Arc<dyn Store>, Vec<SqliteDb>), BuildError> {
    let url = cfg.database_url();
    if url.starts_with("sqlite:") {
        let db = SqliteDb::open(&url, cfg.sqlite_synchronous == "full").await?;
        Ok((Arc::new(SqliteStore::new(db.clone())), vec![db]))
    } else {
        Ok((
            Arc::new(PgStore::connect(&url, cfg.store_pool_size).await?),
            Vec::new(),
        ))
    }
}

pub async fn build(cfg: &Config, metrics: &Metrics) -> Result<Backends, BuildError> {
    let mut closers = Vec::new();
    let url = cfg.database_url();
    let synchronous_full = cfg.sqlite_synchronous == "full";
    let (store, sqlite): (Arc<dyn Store>, Option<SqliteDb>) = if url.starts_with("sqlite:") {
        let db = SqliteDb::open(&url, synchronous_full).await?;
        closers.push(Closer::Sqlite(db.clone()));
        (Arc::new(SqliteStore::new(db.clone())), Some(db))
    } else {
        let pg = PgStore::connect(&url, cfg.store_pool_size).await?;
        closers.push(Closer::Postgres(pg.clone()));
        (Arc::new(pg), None)
    };
    let queue: Arc<dyn Queue> = match &cfg.amqp_url {
        Some(amqp) => Arc::new(RabbitQueue::connect(amqp, rabbit_options(cfg)).await?),
        None => {
            // The local queue lives in the SQLite store's file, or in its own file when the
            // store is PostgreSQL but no broker is configured.
            let db = match sqlite {
                Some(db) => db,
                None => {
                    let path = cfg.data_dir.join("queue.db");
                    let db =
                        SqliteDb::open(&format!("sqlite://{}", path.display()), synchronous_full)
                            .await?;
                    closers.push(Closer::Sqlite(db.clone()));
                    db
                }
            };
            let local = LocalQueue::new(
                db,
                Config::ms(cfg.queue_visibility_timeout_ms),
                cfg.max_attempts,
            );
            let released = local.release_claims().await?;
            if released > 0 {
                tracing::info!(
                    jobs = released,
                    "released jobs a previous process held when it stopped"
                );
            }
            Arc::new(local)
        }
    };
    let memory: Arc<dyn Cache> = Arc::new(MemoryCache::new(MEMORY_CACHE_ENTRIES));
    let shared: Option<Arc<dyn Cache>> = match &cfg.redis_url {
        Some(url) => {
            let redis = RedisCache::connect(url, cfg.redis_prefix.clone())?;
            Some(Arc::new(GuardedCache::new(redis, Duration::from_secs(5))))
        }
        None => None,
    };
    Ok(Backends {
        store: Instrumented::wrap(store, metrics.clone()),
        queue,
        memory,
        shared,
        closers,
    })
}

fn rabbit_options(cfg: &Config) -> RabbitOptions {
    RabbitOptions {
        prefix: cfg.amqp_prefix.clone(),
        max_attempts: cfg.max_attempts,
        queue_expires: cfg.amqp_queue_expires_ms.map(Duration::from_millis),
        connection_name: format!("wagate-{}", std::process::id()),
    }
}
