//! The endpoint cache over the real Redis and a SQLite store: written through to Redis, and a
//! change made through one process seen by another's watcher within about a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wagate::adapters::redis_cache::RedisCache;
use wagate::adapters::sqlite::{SqliteDb, SqliteStore};
use wagate::domain::endpoint::{Endpoint, EndpointIn, EndpointPatch};
use wagate::domain::project::ProjectId;
use wagate::domain::time::Timestamp;
use wagate::metrics::Metrics;
use wagate::ports::{Cache, Endpoints};
use wagate::services::endpoint_cache::{EndpointCache, EndpointCacheConfig};

use crate::store_conformance::create;
use crate::support;

#[tokio::test]
async fn an_invalidation_reaches_another_process_through_redis() {
    let Some(url) = support::redis_url().await else {
        return;
    };
    let redis: Arc<dyn Cache> =
        Arc::new(RedisCache::connect(&url, support::unique("t:")).expect("redis cache"));
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Arc::new(SqliteStore::new(SqliteDb::open(&db, false).await.unwrap()));
    create(&*store, "acme", &["+919812345678"]).await.unwrap();
    let acme = ProjectId::parse("acme").unwrap();
    let input = EndpointIn::parse("https://hooks.example.com/a", &["*"], None, None).unwrap();
    let e = Endpoint::create(acme.clone(), input, Timestamp::now());
    store.create(&e).await.unwrap();

    let endpoints: Arc<dyn Endpoints> = store.clone();
    let new_cache = || {
        Arc::new(EndpointCache::new(
            endpoints.clone(),
            Some(redis.clone()),
            EndpointCacheConfig::default(),
            Metrics::new(),
        ))
    };
    let (api, forwarder) = (new_cache(), new_cache());
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    forwarder.spawn_watcher(&tracker, stop.clone());

    assert_eq!(forwarder.get(&e.id).await.unwrap().as_deref(), Some(&e));
    let through_redis = new_cache();
    assert_eq!(through_redis.get(&e.id).await.unwrap().as_deref(), Some(&e));

    let patch = EndpointPatch {
        enabled: Some(false),
        ..EndpointPatch::default()
    };
    store
        .update(&acme, &e.id, &patch, Timestamp::now())
        .await
        .unwrap();
    api.invalidate(&e.id).await;

    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if !forwarder.get(&e.id).await.unwrap().unwrap().enabled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change was not seen within 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}
