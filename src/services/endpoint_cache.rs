//! The forwarder's endpoint config lookup, the seed's cache: memory (5 min) → shared cache
//! (1 h) → store, written through, with every change seen by all processes within seconds.
//!
//! A change through the API bumps `endpoint:gen` and deletes `endpoint:<id>` in the shared
//! cache; each process watches the generation about once a second and empties its memory
//! layer when it moves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::endpoint::{
    Endpoint, EndpointId, PreviousSecret, SharedSecret, Topics, WebhookUrl,
};
use crate::domain::project::ProjectId;
use crate::domain::sealing;
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ports::{Cache, CacheError, Endpoints, StoreError};
use crate::services::Sealer;

/// The shared key whose value changes at every invalidation.
const GEN_KEY: &str = "endpoint:gen";

/// Long enough that the generation does not lapse between changes; if it does, watchers see
/// it change (to absent) and clear once more, which costs nothing but a few store reads.
const GEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long "no such endpoint" is kept in the shared layer: unknown ids (a delivery of an
/// endpoint just deleted) do not each hit the store, and nothing stays hidden long.
const ABSENT_TTL: Duration = Duration::from_secs(30);

/// The shared layer's value for a cached absence.
const ABSENT: &str = "";

/// How often the watcher reads the generation.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The memory TTL when no shared layer carries invalidations and other processes may change
/// endpoints: a change is then seen within this.
const UNSHARED_MEMORY_TTL: Duration = Duration::from_secs(5);

/// What one cached endpoint costs beyond its strings: the struct, the key, and moka's node,
/// links and timers (~590 bytes measured; see `memory_cache::ENTRY_OVERHEAD_BYTES`).
const ENTRY_OVERHEAD_BYTES: usize = 800;

#[derive(Debug, Clone)]
pub struct EndpointCacheConfig {
    pub memory_ttl: Duration,
    pub shared_ttl: Duration,
    /// What the memory layer may weigh in all.
    pub max_bytes: u64,
    /// No other process changes endpoints (the embedded store): without a shared layer, the
    /// API's `invalidate` reaches every cache there is, so memory may keep the full TTL.
    pub single_process: bool,
}

impl Default for EndpointCacheConfig {
    fn default() -> EndpointCacheConfig {
        EndpointCacheConfig {
            memory_ttl: Duration::from_secs(300),
            shared_ttl: Duration::from_secs(3600),
            max_bytes: 8 * 1024 * 1024,
            single_process: false,
        }
    }
}

impl EndpointCacheConfig {
    /// The memory TTL this setup can afford (see `UNSHARED_MEMORY_TTL`).
    pub fn effective_memory_ttl(&self, has_shared: bool) -> Duration {
        if has_shared || self.single_process {
            self.memory_ttl
        } else {
            self.memory_ttl.min(UNSHARED_MEMORY_TTL)
        }
    }
}

pub struct EndpointCache {
    endpoints: Arc<dyn Endpoints>,
    shared: Option<Arc<dyn Cache>>,
    shared_ttl: Duration,
    memory: moka::future::Cache<EndpointId, Arc<Endpoint>>,
    /// Moves at every local clear, so a lookup that started before one does not put what it
    /// read into memory after it.
    clears: AtomicU64,
    /// Seals the secrets kept in the shared layer; opening them happens once per memory fill.
    sealer: Arc<Sealer>,
    metrics: Metrics,
}

/// The shared layer's form of an endpoint (`Endpoint` itself has no serde: its secrets are
/// not to be serialized by accident).
#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    project_id: String,
    url: String,
    topics: String,
    description: Option<String>,
    secret: String,
    previous_secret: Option<(String, i64)>,
    enabled: bool,
    disabled_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Stored {
    /// The secrets are sealed as the store seals them: Redis is storage too.
    fn of(e: &Endpoint, sealer: &Sealer) -> Stored {
        let context = sealing::endpoint_context(e.id.as_str());
        Stored {
            id: e.id.to_string(),
            project_id: e.project_id.as_str().to_owned(),
            url: e.url.as_str().to_owned(),
            topics: e.topics.to_stored(),
            description: e.description.clone(),
            secret: sealer.seal(e.secret.expose(), &context),
            previous_secret: e.previous_secret.as_ref().map(|p| {
                (
                    sealer.seal(p.secret.expose(), &context),
                    p.expires_at.millis(),
                )
            }),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            created_at: e.created_at.millis(),
            updated_at: e.updated_at.millis(),
        }
    }

    /// `None` when a secret does not open here (another key sealed it): read the store then.
    fn into_endpoint(self, sealer: &Sealer) -> Option<Endpoint> {
        let context = sealing::endpoint_context(&self.id);
        let open = |s: &str| {
            sealer
                .open(s, &context)
                .ok()
                .map(SharedSecret::from_trusted)
        };
        let secret = open(&self.secret)?;
        let previous_secret = match self.previous_secret {
            Some((s, at)) => Some(PreviousSecret {
                secret: open(&s)?,
                expires_at: Timestamp::from_millis(at),
            }),
            None => None,
        };
        Some(Endpoint {
            id: EndpointId::from_trusted(self.id),
            project_id: ProjectId::from_trusted(self.project_id),
            url: WebhookUrl::from_trusted(self.url),
            topics: Topics::from_stored(&self.topics),
            description: self.description,
            secret,
            previous_secret,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

fn key(id: &EndpointId) -> String {
    format!("endpoint:{id}")
}

fn weight(e: &Endpoint) -> u32 {
    let strings = e.id.as_str().len()
        + e.project_id.as_str().len()
        + e.url.as_str().len()
        + e.description.as_deref().map_or(0, str::len)
        + e.secret.expose().len() * 2
        + e.disabled_reason.as_deref().map_or(0, str::len);
    u32::try_from(strings + ENTRY_OVERHEAD_BYTES).unwrap_or(u32::MAX)
}

impl EndpointCache {
    pub fn new(
        endpoints: Arc<dyn Endpoints>,
        shared: Option<Arc<dyn Cache>>,
        cfg: EndpointCacheConfig,
        metrics: Metrics,
    ) -> EndpointCache {
        let memory = moka::future::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|_id: &EndpointId, e: &Arc<Endpoint>| weight(e))
            .time_to_live(cfg.effective_memory_ttl(shared.is_some()))
            .build();
        EndpointCache {
            endpoints,
            shared,
            shared_ttl: cfg.shared_ttl,
            memory,
            clears: AtomicU64::new(0),
            sealer: Arc::new(Sealer::clear()),
            metrics,
        }
    }

    /// Seals what the shared layer keeps with `sealer` (the stores' own), instead of keeping
    /// it in clear.
    pub fn with_sealer(mut self, sealer: Arc<Sealer>) -> EndpointCache {
        self.sealer = sealer;
        self
    }

    pub async fn get(&self, id: &EndpointId) -> Result<Option<Arc<Endpoint>>, StoreError> {
        if let Some(e) = self.memory.get(id).await {
            self.metrics.endpoint_cache_hit("memory");
            return Ok(Some(e));
        }
        let clears = self.clears.load(Ordering::Acquire);
        if let Some(shared) = &self.shared
            && let Ok(Some(value)) = shared.get(&key(id)).await
        {
            if value == ABSENT {
                self.metrics.endpoint_cache_hit("shared");
                return Ok(None);
            }
            if let Some(e) = serde_json::from_str::<Stored>(&value)
                .ok()
                .and_then(|stored| stored.into_endpoint(&self.sealer))
            {
                self.metrics.endpoint_cache_hit("shared");
                let e = Arc::new(e);
                self.remember(id, &e, clears).await;
                return Ok(Some(e));
            }
        }
        let gen_before = self.generation().await;
        let found = self.endpoints.by_id(id).await?;
        self.metrics.endpoint_cache_hit("store");
        let found = found.map(Arc::new);
        if let Some(shared) = &self.shared {
            let (value, ttl) = match &found {
                Some(e) => match serde_json::to_string(&Stored::of(e, &self.sealer)) {
                    Ok(json) => (json, self.shared_ttl),
                    Err(_) => return Ok(found),
                },
                None => (ABSENT.to_owned(), ABSENT_TTL.min(self.shared_ttl)),
            };
            if shared.set(&key(id), &value, ttl).await.is_ok()
                && self.generation().await != gen_before
            {
                // An invalidation ran while the store was read: what was written may be
                // older than the change. (Invalidation bumps the generation before deleting
                // the key, so one of the two always removes it.)
                let _ = shared.delete(&key(id)).await;
                return Ok(found);
            }
        }
        if let Some(e) = &found {
            self.remember(id, e, clears).await;
        }
        Ok(found)
    }

    /// The endpoint as the store has it now, past both layers, kept in memory for the
    /// next `get`: for what must not act on a change the watcher has yet to see.
    pub async fn get_fresh(&self, id: &EndpointId) -> Result<Option<Arc<Endpoint>>, StoreError> {
        let clears = self.clears.load(Ordering::Acquire);
        let found = self.endpoints.by_id(id).await?.map(Arc::new);
        self.metrics.endpoint_cache_hit("store");
        match &found {
            Some(e) => self.remember(id, e, clears).await,
            None => self.memory.invalidate(id).await,
        }
        Ok(found)
    }

    /// after any change through the API: drop it here and everywhere
    pub async fn invalidate(&self, id: &EndpointId) {
        self.clears.fetch_add(1, Ordering::AcqRel);
        self.memory.invalidate(id).await;
        if let Some(shared) = &self.shared {
            let generation = uuid::Uuid::new_v4().simple().to_string();
            let _ = shared.set(GEN_KEY, &generation, GEN_TTL).await;
            let _ = shared.delete(&key(id)).await;
        }
    }

    /// polls the shared generation key about once a second; clears memory when it changed
    pub fn spawn_watcher(self: &Arc<Self>, tracker: &TaskTracker, stop: CancellationToken) {
        if self.shared.is_none() {
            return;
        }
        let cache = self.clone();
        tracker.spawn(async move {
            let mut seen = cache.generation().await;
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Ok(now) = cache.read_generation().await else {
                    continue;
                };
                if now != seen {
                    seen = now;
                    cache.clear_memory();
                }
            }
        });
    }

    fn clear_memory(&self) {
        self.clears.fetch_add(1, Ordering::AcqRel);
        self.memory.invalidate_all();
    }

    async fn remember(&self, id: &EndpointId, e: &Arc<Endpoint>, clears_before: u64) {
        if self.clears.load(Ordering::Acquire) == clears_before {
            self.memory.insert(id.clone(), e.clone()).await;
        }
    }

    /// The generation, `None` when absent or unreadable (then compared as such).
    async fn generation(&self) -> Option<String> {
        self.read_generation().await.ok().flatten()
    }

    async fn read_generation(&self) -> Result<Option<String>, CacheError> {
        match &self.shared {
            Some(shared) => shared.get(GEN_KEY).await,
            None => Ok(None),
        }
    }
}

impl crate::metrics::process::CacheSize for EndpointCache {
    fn entries(&self) -> u64 {
        self.memory.entry_count()
    }

    fn bytes(&self) -> u64 {
        self.memory.weighted_size()
    }
}

#[cfg(test)]
mod tests;
