//! The forwarder's circuit breakers shared through the real Redis: what one process opens,
//! another defers to; one probe between them; its success closes it for both.

use std::sync::Arc;
use std::time::Duration;

use wagate::adapters::redis_cache::RedisCache;
use wagate::domain::breaker::BreakerState;
use wagate::metrics::Metrics;
use wagate::ports::Cache;
use wagate::services::breakers::{BreakerConfig, Breakers};

use crate::support;

#[tokio::test]
async fn breakers_share_state_through_redis() {
    let Some(url) = support::redis_url().await else {
        return;
    };
    let redis: Arc<dyn Cache> =
        Arc::new(RedisCache::connect(&url, support::unique("t:")).expect("redis cache"));
    // Real time, since the calls go to a real server: a short cooldown keeps it quick.
    let cfg = BreakerConfig {
        threshold: 2,
        cooldown: Duration::from_millis(300),
        probe_timeout: Duration::from_secs(5),
    };
    let a = Breakers::new(cfg.clone(), Some(redis.clone()), Metrics::new());
    let b = Breakers::new(cfg.clone(), Some(redis.clone()), Metrics::new());
    let target = "https://hooks.example.com/shared";

    for _ in 0..2 {
        assert_eq!(a.admit(target).await, Ok(()));
        a.record(target, true).await;
    }
    let until = a.view(target).await.open_until.expect("open");
    assert_eq!(
        b.admit(target).await,
        Err(until),
        "b defers to what a opened"
    );
    assert_eq!(b.view(target).await.state, BreakerState::Open);

    tokio::time::sleep(cfg.cooldown).await;
    assert_eq!(b.admit(target).await, Ok(()), "b probes");
    assert!(a.admit(target).await.is_err(), "only one probe across both");
    b.record(target, false).await;

    let c = Breakers::new(cfg, Some(redis), Metrics::new());
    assert_eq!(c.admit(target).await, Ok(()), "closed for everyone");
    assert_eq!(c.view(target).await.state, BreakerState::Closed);
}
