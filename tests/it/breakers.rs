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
        first_cooldown: Duration::from_millis(300),
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

/// The re-open count travels in the Redis key: a probe one process fails after another
/// process's failed probe re-opens for four times the first cooldown, not twice.
#[tokio::test]
async fn the_cooldown_escalation_is_shared_through_redis() {
    let Some(url) = support::redis_url().await else {
        return;
    };
    let redis: Arc<dyn Cache> =
        Arc::new(RedisCache::connect(&url, support::unique("t:")).expect("redis cache"));
    let cfg = BreakerConfig {
        threshold: 1,
        first_cooldown: Duration::from_millis(300),
        cooldown: Duration::from_secs(60),
        probe_timeout: Duration::from_secs(5),
    };
    let a = Breakers::new(cfg.clone(), Some(redis.clone()), Metrics::new());
    let b = Breakers::new(cfg, Some(redis), Metrics::new());
    let target = "https://hooks.example.com/escalating";
    let open_for = |until: wagate::domain::time::Timestamp| {
        Duration::from_millis(
            u64::try_from(until.millis() - wagate::domain::time::Timestamp::now().millis())
                .unwrap_or(0),
        )
    };

    assert_eq!(a.admit(target).await, Ok(()));
    a.record(target, true).await;
    let first = open_for(a.view(target).await.open_until.expect("open"));
    assert!(first <= Duration::from_millis(300), "{first:?}");

    tokio::time::sleep(first + Duration::from_millis(50)).await;
    assert_eq!(a.admit(target).await, Ok(()), "a probes");
    a.record(target, true).await;
    let second = open_for(a.view(target).await.open_until.expect("re-opened"));
    assert!(second > Duration::from_millis(400), "doubled: {second:?}");

    tokio::time::sleep(second + Duration::from_millis(1_100)).await;
    assert_eq!(b.admit(target).await, Ok(()), "b probes");
    b.record(target, true).await;
    let third = open_for(b.view(target).await.open_until.expect("re-opened"));
    assert!(
        third > Duration::from_millis(1_000),
        "b doubled a's count (1.2 s), not its own (0.6 s): {third:?}"
    );
}
