//! The endpoint cache's layers, write-through and invalidation, over a counting fake store and
//! a `MemoryCache` standing in for Redis.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;

use super::*;
use crate::adapters::memory_cache::MemoryCache;
use crate::domain::endpoint::{EndpointIn, EndpointPatch, Topic, WebhookDeliveryId};
use crate::ports::endpoints::{DeliveryDetail, DeliveryQuery, DeliveryView};

/// Only `by_id` is read by the cache; the rest is never called.
#[derive(Default)]
struct FakeEndpoints {
    rows: Mutex<HashMap<EndpointId, Endpoint>>,
    reads: AtomicUsize,
}

impl FakeEndpoints {
    fn put(&self, e: &Endpoint) {
        self.rows.lock().unwrap().insert(e.id.clone(), e.clone());
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Endpoints for FakeEndpoints {
    async fn create(&self, _: &Endpoint) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn get(&self, _: &ProjectId, _: &EndpointId) -> Result<Option<Endpoint>, StoreError> {
        unreachable!()
    }
    async fn by_id(&self, id: &EndpointId) -> Result<Option<Endpoint>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.rows.lock().unwrap().get(id).cloned())
    }
    async fn list(&self, _: &ProjectId) -> Result<Vec<Endpoint>, StoreError> {
        unreachable!()
    }
    async fn update(
        &self,
        _: &ProjectId,
        _: &EndpointId,
        _: &EndpointPatch,
        _: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        unreachable!()
    }
    async fn disable(&self, _: &EndpointId, _: &str, _: Timestamp) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn delete(&self, _: &ProjectId, _: &EndpointId) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn rotate_secret(
        &self,
        _: &ProjectId,
        _: &EndpointId,
        _: &SharedSecret,
        _: Timestamp,
        _: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        unreachable!()
    }
    async fn for_project_topic(
        &self,
        _: &ProjectId,
        _: Topic,
    ) -> Result<Vec<Endpoint>, StoreError> {
        unreachable!()
    }
    async fn deliveries(
        &self,
        _: &ProjectId,
        _: &EndpointId,
        _: &DeliveryQuery,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        unreachable!()
    }
    async fn delivery(
        &self,
        _: &ProjectId,
        _: &WebhookDeliveryId,
    ) -> Result<Option<DeliveryDetail>, StoreError> {
        unreachable!()
    }
}

fn endpoint() -> Endpoint {
    let input = EndpointIn::parse(
        "https://hooks.example.com/wa",
        &["meta.delivery"],
        Some("CRM"),
        None,
    )
    .unwrap();
    let mut e = Endpoint::create(
        ProjectId::from_trusted("acme".into()),
        input,
        Timestamp::from_millis(1_000),
    );
    e.previous_secret = Some(PreviousSecret {
        secret: SharedSecret::generate(),
        expires_at: Timestamp::from_millis(9_000),
    });
    e
}

fn hits(m: &Metrics, layer: &'static str) -> u64 {
    m.endpoint_cache_lookups
        .get_or_create(&crate::metrics::LayerLabel { layer })
        .get()
}

fn cache(
    store: &Arc<FakeEndpoints>,
    shared: Option<&Arc<dyn Cache>>,
    metrics: &Metrics,
) -> Arc<EndpointCache> {
    Arc::new(EndpointCache::new(
        store.clone(),
        shared.cloned(),
        EndpointCacheConfig::default(),
        metrics.clone(),
    ))
}

#[tokio::test]
async fn each_layer_answers_in_turn_and_is_written_through() {
    let store = Arc::new(FakeEndpoints::default());
    let e = endpoint();
    store.put(&e);
    let shared: Arc<dyn Cache> = Arc::new(MemoryCache::new(1 << 20));
    let m = Metrics::new();
    let one = cache(&store, Some(&shared), &m);

    assert_eq!(one.get(&e.id).await.unwrap().as_deref(), Some(&e));
    assert_eq!((hits(&m, "store"), store.reads()), (1, 1));
    assert_eq!(one.get(&e.id).await.unwrap().as_deref(), Some(&e));
    assert_eq!(hits(&m, "memory"), 1);

    // A second process: its memory is empty, the shared layer has it, whole.
    let two = cache(&store, Some(&shared), &m);
    assert_eq!(two.get(&e.id).await.unwrap().as_deref(), Some(&e));
    assert_eq!(hits(&m, "shared"), 1);
    assert_eq!(store.reads(), 1, "the store was read once in all");
    assert_eq!(two.get(&e.id).await.unwrap().as_deref(), Some(&e));
    assert_eq!(hits(&m, "memory"), 2);
}

#[tokio::test]
async fn absence_is_cached_in_the_shared_layer() {
    let store = Arc::new(FakeEndpoints::default());
    let shared: Arc<dyn Cache> = Arc::new(MemoryCache::new(1 << 20));
    let m = Metrics::new();
    let c = cache(&store, Some(&shared), &m);
    let id = EndpointId::generate();
    assert!(c.get(&id).await.unwrap().is_none());
    assert!(c.get(&id).await.unwrap().is_none());
    assert_eq!(store.reads(), 1);
    assert_eq!(hits(&m, "shared"), 1);
}

#[tokio::test]
async fn invalidate_drops_memory_and_shared() {
    let store = Arc::new(FakeEndpoints::default());
    let mut e = endpoint();
    store.put(&e);
    let shared: Arc<dyn Cache> = Arc::new(MemoryCache::new(1 << 20));
    let m = Metrics::new();
    let c = cache(&store, Some(&shared), &m);
    c.get(&e.id).await.unwrap();
    e.url = WebhookUrl::from_trusted("https://hooks.example.com/new".into());
    store.put(&e);
    c.invalidate(&e.id).await;
    assert_eq!(
        c.get(&e.id).await.unwrap().unwrap().url.as_str(),
        "https://hooks.example.com/new"
    );
    assert_eq!(hits(&m, "store"), 2);
}

#[tokio::test]
async fn without_a_shared_layer_invalidate_reaches_memory() {
    let store = Arc::new(FakeEndpoints::default());
    let mut e = endpoint();
    store.put(&e);
    let m = Metrics::new();
    let c = cache(&store, None, &m);
    c.get(&e.id).await.unwrap();
    c.get(&e.id).await.unwrap();
    assert_eq!(store.reads(), 1);
    e.enabled = false;
    store.put(&e);
    c.invalidate(&e.id).await;
    assert!(!c.get(&e.id).await.unwrap().unwrap().enabled);
}

#[tokio::test(start_paused = true)]
async fn another_process_sees_an_invalidation_within_a_watcher_tick() {
    let store = Arc::new(FakeEndpoints::default());
    let mut e = endpoint();
    store.put(&e);
    let shared: Arc<dyn Cache> = Arc::new(MemoryCache::new(1 << 20));
    let m = Metrics::new();
    let (a, b) = (
        cache(&store, Some(&shared), &m),
        cache(&store, Some(&shared), &m),
    );
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    b.spawn_watcher(&tracker, stop.clone());
    a.get(&e.id).await.unwrap();
    b.get(&e.id).await.unwrap();
    tokio::time::advance(WATCH_EVERY).await;

    e.enabled = false;
    store.put(&e);
    a.invalidate(&e.id).await;
    assert!(
        b.get(&e.id).await.unwrap().unwrap().enabled,
        "b's memory still has it"
    );
    tokio::time::advance(WATCH_EVERY).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !b.get(&e.id).await.unwrap().unwrap().enabled,
        "b's watcher cleared its memory"
    );
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}

#[test]
fn memory_ttl_is_short_only_where_invalidations_cannot_reach() {
    let cfg = EndpointCacheConfig::default();
    assert_eq!(cfg.effective_memory_ttl(true), Duration::from_secs(300));
    assert_eq!(cfg.effective_memory_ttl(false), Duration::from_secs(5));
    let single = EndpointCacheConfig {
        single_process: true,
        ..cfg
    };
    assert_eq!(single.effective_memory_ttl(false), Duration::from_secs(300));
}
