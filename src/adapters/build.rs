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
use crate::config::{Config, endpoint};
use crate::metrics::Metrics;
use crate::ports::{Cache, Campaigns, Deliveries, Endpoints, Queue, SealedSecrets, Store};
use crate::services::{RecentMarks, Sealer};

/// The ports, wired.
pub struct Backends {
    pub store: Arc<dyn Store>,
    /// The same database as `store`.
    pub endpoints: Arc<dyn Endpoints>,
    /// The outbox rows the forwarder works through; the same database as `store`.
    pub deliveries: Arc<dyn Deliveries>,
    /// Campaigns, their recipients, opt-outs and provider settings; the same database as
    /// `store`.
    pub campaigns: Arc<dyn Campaigns>,
    /// The stored secrets, counted and re-sealed; the same database as `store`.
    pub secrets: Arc<dyn SealedSecrets>,
    /// What the stores seal secrets with; the endpoint cache seals what it keeps in Redis
    /// with it too.
    pub sealer: Arc<Sealer>,
    pub queue: Arc<dyn Queue>,
    /// Project and API-key lookups, in memory.
    pub memory: Arc<dyn Cache>,
    /// Marks of applied events, in memory, with a budget of their own: a flood of events must
    /// not evict the lookups every event needs.
    pub dedupe_marks: Arc<RecentMarks>,
    /// Redis behind its circuit breaker, when configured.
    pub shared: Option<Arc<dyn Cache>>,
    closers: Vec<Closer>,
}

impl Backends {
    /// Backends assembled by hand (dedupe marks get 1 MiB for a day, secrets are stored in
    /// clear); nothing to close.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        endpoints: Arc<dyn Endpoints>,
        deliveries: Arc<dyn Deliveries>,
        campaigns: Arc<dyn Campaigns>,
        secrets: Arc<dyn SealedSecrets>,
        queue: Arc<dyn Queue>,
        memory: Arc<dyn Cache>,
        shared: Option<Arc<dyn Cache>>,
    ) -> Backends {
        Backends {
            store,
            endpoints,
            deliveries,
            campaigns,
            secrets,
            sealer: Arc::new(Sealer::clear()),
            queue,
            dedupe_marks: Arc::new(RecentMarks::new(1 << 20, Duration::from_secs(86_400))),
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

/// A backend that could not be set up, named by where it was looked for (never with its
/// password), with the adapter's error as the source.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{target}")]
    Store {
        target: String,
        #[source]
        source: crate::ports::StoreError,
    },
    #[error("{target}")]
    Queue {
        target: String,
        #[source]
        source: crate::ports::QueueError,
    },
    #[error(transparent)]
    Secrets(#[from] crate::config::ConfigError),
    #[error("{target}")]
    Cache {
        target: String,
        #[source]
        source: crate::ports::CacheError,
    },
}

/// How long a startup check of a TCP endpoint waits.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `<what> at host:port`, plus why the port cannot be reached when a plain TCP connect fails
/// too: the client libraries often report only a timeout.
async fn describe(what: &str, url: &str) -> String {
    let at = endpoint(url);
    let has_host = url::Url::parse(url).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()));
    if !has_host {
        // A Unix socket (`?host=/run/postgresql`): nothing to probe over TCP.
        return format!("{what} at {at}");
    }
    let tcp = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(at.as_str()));
    match tcp.await {
        Ok(Ok(_)) => format!("{what} at {at}"),
        Ok(Err(e)) => format!("{what} at {at} is unreachable ({e})"),
        Err(_) => format!("{what} at {at} is unreachable (no answer within {PROBE_TIMEOUT:?})"),
    }
}

/// PostgreSQL's target names the database too, since a missing one is a common mistake.
async fn postgres(url: &str, pool_size: u32) -> Result<PgStore, BuildError> {
    match PgStore::connect(url, pool_size).await {
        Ok(pg) => Ok(pg),
        Err(source) => {
            let database = url::Url::parse(url)
                .ok()
                .map(|u| u.path().trim_start_matches('/').to_owned())
                .unwrap_or_default();
            Err(BuildError::Store {
                target: format!(
                    "{}, database `{database}`",
                    describe("PostgreSQL", url).await
                ),
                source,
            })
        }
    }
}

async fn sqlite(url: &str, synchronous_full: bool) -> Result<SqliteDb, BuildError> {
    SqliteDb::open(url, synchronous_full)
        .await
        .map_err(|source| BuildError::Store {
            target: format!("SQLite database {}", url.trim_start_matches("sqlite://")),
            source,
        })
}

/// The sealer the configured keys make (clear without a key).
pub fn sealer(cfg: &Config) -> Result<Arc<Sealer>, BuildError> {
    Ok(Arc::new(match cfg.seal_keys()? {
        Some((current, previous)) => Sealer::new(current, previous),
        None => Sealer::clear(),
    }))
}

/// Connects (and migrates) the store only: what `wagate migrate` needs.
pub async fn store(cfg: &Config) -> Result<(Arc<dyn Store>, Vec<SqliteDb>), BuildError> {
    let sealer = sealer(cfg)?;
    let url = cfg.database_url();
    if url.starts_with("sqlite:") {
        let db = sqlite(&url, cfg.sqlite_synchronous == "full").await?;
        Ok((
            Arc::new(SqliteStore::new(db.clone()).with_sealer(sealer)),
            vec![db],
        ))
    } else {
        Ok((
            Arc::new(
                postgres(&url, cfg.store_pool_size)
                    .await?
                    .with_sealer(sealer),
            ),
            Vec::new(),
        ))
    }
}

/// The store's sealed secrets and the sealer the configuration makes: what `wagate secrets`
/// needs.
pub async fn sealed_secrets(
    cfg: &Config,
) -> Result<(Arc<dyn SealedSecrets>, Arc<Sealer>), BuildError> {
    let sealer = sealer(cfg)?;
    let url = cfg.database_url();
    let secrets: Arc<dyn SealedSecrets> = if url.starts_with("sqlite:") {
        let db = sqlite(&url, cfg.sqlite_synchronous == "full").await?;
        Arc::new(SqliteStore::new(db).with_sealer(sealer.clone()))
    } else {
        Arc::new(
            postgres(&url, cfg.store_pool_size)
                .await?
                .with_sealer(sealer.clone()),
        )
    };
    Ok((secrets, sealer))
}

pub async fn build(cfg: &Config, metrics: &Metrics) -> Result<Backends, BuildError> {
    let mut closers = Vec::new();
    let url = cfg.database_url();
    let synchronous_full = cfg.sqlite_synchronous == "full";
    let sealer = sealer(cfg)?;
    type Stores = (
        Arc<dyn Store>,
        Arc<dyn Endpoints>,
        Arc<dyn Deliveries>,
        Arc<dyn Campaigns>,
        Arc<dyn SealedSecrets>,
        Option<SqliteDb>,
    );
    let (store, endpoints, deliveries, campaigns, secrets, embedded): Stores =
        if url.starts_with("sqlite:") {
            let db = sqlite(&url, synchronous_full).await?;
            closers.push(Closer::Sqlite(db.clone()));
            let store = Arc::new(SqliteStore::new(db.clone()).with_sealer(sealer.clone()));
            let s = store.clone();
            (s.clone(), s.clone(), s.clone(), s, store, Some(db))
        } else {
            let pg = postgres(&url, cfg.store_pool_size).await?;
            closers.push(Closer::Postgres(pg.clone()));
            let store = Arc::new(pg.with_sealer(sealer.clone()));
            let s = store.clone();
            (s.clone(), s.clone(), s.clone(), s, store, None)
        };
    let queue: Arc<dyn Queue> = match &cfg.amqp_url {
        Some(amqp) => match RabbitQueue::connect(amqp, rabbit_options(cfg)).await {
            Ok(queue) => Arc::new(queue),
            Err(source) => {
                return Err(BuildError::Queue {
                    target: describe("RabbitMQ", amqp).await,
                    source,
                });
            }
        },
        None => {
            // The local queue lives in the SQLite store's file, or in its own file when the
            // store is PostgreSQL but no broker is configured.
            let db = match embedded {
                Some(db) => db,
                None => {
                    let path = cfg.data_dir.join("queue.db");
                    let db =
                        sqlite(&format!("sqlite://{}", path.display()), synchronous_full).await?;
                    closers.push(Closer::Sqlite(db.clone()));
                    db
                }
            };
            let local = LocalQueue::new(
                db,
                Config::ms(cfg.queue_visibility_timeout_ms),
                cfg.max_attempts,
            );
            let released = local
                .release_claims()
                .await
                .map_err(|source| BuildError::Queue {
                    target: "the embedded queue".into(),
                    source,
                })?;
            if released > 0 {
                tracing::info!(
                    jobs = released,
                    "released jobs a previous process held when it stopped"
                );
            }
            Arc::new(local)
        }
    };
    let (lookups, dedupe) = cfg.memory_budgets();
    let memory = Arc::new(MemoryCache::new(lookups));
    let dedupe_marks = Arc::new(RecentMarks::new(
        dedupe,
        Duration::from_secs(cfg.dedupe_ttl_secs),
    ));
    metrics.sizes.add("lookups", memory.clone());
    metrics.sizes.add("dedupe", dedupe_marks.clone());
    let shared: Option<Arc<dyn Cache>> = match &cfg.redis_url {
        Some(url) => {
            let redis = RedisCache::connect(url, cfg.redis_prefix.clone()).map_err(|source| {
                BuildError::Cache {
                    target: format!("Redis at {}", endpoint(url)),
                    source,
                }
            })?;
            // Redis down is no reason to refuse to start (reads go to the store), but whoever
            // starts the process should hear where it was looked for.
            match tokio::time::timeout(PROBE_TIMEOUT, redis.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(
                    redis = %endpoint(url), error = %e,
                    "Redis is unreachable; using the memory cache and the store until it is back"
                ),
                Err(_) => tracing::warn!(
                    redis = %endpoint(url),
                    "Redis did not answer; using the memory cache and the store until it is back"
                ),
            }
            Some(Arc::new(GuardedCache::new(redis, Duration::from_secs(5))))
        }
        None => None,
    };
    Ok(Backends {
        store: Instrumented::wrap(store, metrics.clone()),
        endpoints,
        deliveries,
        campaigns,
        secrets,
        sealer,
        queue,
        memory,
        dedupe_marks,
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
