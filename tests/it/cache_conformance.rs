//! The cache port's conformance suite, run against the memory and the Redis adapter, plus the
//! Redis-specific behaviour: key prefixes and failing fast when Redis is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wagate::adapters::guarded_cache::{DEFAULT_COOLDOWN, FAILURE_THRESHOLD, GuardedCache};
use wagate::adapters::memory_cache::MemoryCache;
use wagate::adapters::redis_cache::RedisCache;
use wagate::domain::breaker::BreakerState;
use wagate::ports::{Cache, CacheError};

use crate::support;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(150);

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| k.to_string()).collect()
}

fn some(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Everything the rest of wagate may rely on from any `Cache`. Keys are unique within one run,
/// so the cases share one cache (and, for Redis, one key prefix).
async fn conformance(cache: Arc<dyn Cache>) {
    let c = cache.as_ref();
    let layer = c.layer();
    c.ping()
        .await
        .unwrap_or_else(|e| panic!("{layer}: ping: {e}"));

    assert_eq!(c.get("missing").await.unwrap(), None, "{layer}: get miss");

    c.set("a", "1", LONG).await.unwrap();
    assert_eq!(
        c.get("a").await.unwrap(),
        some("1"),
        "{layer}: set then get"
    );
    c.set("a", "2", LONG).await.unwrap();
    assert_eq!(c.get("a").await.unwrap(), some("2"), "{layer}: overwrite");

    c.set("b", "3", LONG).await.unwrap();
    let got = c
        .get_many(&keys(&["b", "missing", "a", "b"]))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![some("3"), None, some("2"), some("3")],
        "{layer}: get_many order"
    );
    assert_eq!(c.get_many(&[]).await.unwrap(), Vec::<Option<String>>::new());

    let batch: Vec<(String, String)> = (0..50)
        .map(|i| (format!("m{i}"), format!("v{i}")))
        .collect();
    c.set_many(&batch, LONG).await.unwrap();
    c.set_many(&[], LONG).await.unwrap();
    let names: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
    let expected: Vec<Option<String>> = batch.iter().map(|(_, v)| Some(v.clone())).collect();
    assert_eq!(
        c.get_many(&names).await.unwrap(),
        expected,
        "{layer}: set_many"
    );

    assert!(
        c.set_nx("nx", "first", LONG).await.unwrap(),
        "{layer}: set_nx on absent key"
    );
    assert!(
        !c.set_nx("nx", "second", LONG).await.unwrap(),
        "{layer}: set_nx on present key"
    );
    assert_eq!(
        c.get("nx").await.unwrap(),
        some("first"),
        "{layer}: set_nx kept the value"
    );

    c.delete("a").await.unwrap();
    assert_eq!(c.get("a").await.unwrap(), None, "{layer}: delete");
    c.delete("a").await.unwrap();
    assert!(
        c.set_nx("a", "again", LONG).await.unwrap(),
        "{layer}: set_nx after delete"
    );

    for key in [
        "with space",
        "a:b:c",
        "ключ 🔑",
        "tab\there",
        "",
        "{braces}*?[]",
    ] {
        let value = format!("value of {key} ✓");
        c.set(key, &value, LONG).await.unwrap();
        assert_eq!(
            c.get(key).await.unwrap(),
            Some(value),
            "{layer}: key {key:?}"
        );
    }
    c.set("empty-value", "", LONG).await.unwrap();
    assert_eq!(
        c.get("empty-value").await.unwrap(),
        some(""),
        "{layer}: empty value"
    );

    counters(&cache).await;
    expiry(c).await;
}

/// `incr` adds and returns the sum, starts absent keys at 0, reads back through `get`, refuses
/// a key that holds something else, and loses no bump when callers race.
async fn counters(cache: &Arc<dyn Cache>) {
    let c = cache.as_ref();
    let layer = c.layer();
    assert_eq!(
        c.incr("n", 1, LONG).await.unwrap(),
        1,
        "{layer}: incr absent"
    );
    assert_eq!(c.incr("n", 4, LONG).await.unwrap(), 5, "{layer}: incr by 4");
    assert_eq!(
        c.get("n").await.unwrap(),
        some("5"),
        "{layer}: counter read"
    );
    assert_eq!(
        c.incr("zero", 0, LONG).await.unwrap(),
        0,
        "{layer}: incr by 0"
    );
    c.set("text", "not a number", LONG).await.unwrap();
    assert!(
        c.incr("text", 1, LONG).await.is_err(),
        "{layer}: non-counter"
    );
    assert_eq!(c.get("text").await.unwrap(), some("not a number"));

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.incr("raced", 1, LONG).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>(), "{layer}: racing incr");
}

/// Every write path honours its TTL, and a later TTL replaces an earlier one. The one real wait
/// of the suite: Redis expiry cannot be paused.
async fn expiry(c: &dyn Cache) {
    let layer = c.layer();
    c.set("t:set", "v", SHORT).await.unwrap();
    c.set_many(&[("t:many".into(), "v".into())], SHORT)
        .await
        .unwrap();
    assert!(c.set_nx("t:nx", "v", SHORT).await.unwrap());
    c.set("t:renewed", "v", SHORT).await.unwrap();
    c.set("t:renewed", "v2", LONG).await.unwrap();
    c.set("t:shortened", "v", LONG).await.unwrap();
    c.set("t:shortened", "v2", SHORT).await.unwrap();
    // A counter's TTL comes from the call that created it; later bumps do not extend it.
    assert_eq!(c.incr("t:counter", 1, SHORT).await.unwrap(), 1);
    assert_eq!(c.incr("t:counter", 2, LONG).await.unwrap(), 3);
    assert_eq!(
        c.get("t:set").await.unwrap(),
        some("v"),
        "{layer}: alive before its TTL"
    );

    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;

    let gone = keys(&["t:set", "t:many", "t:nx", "t:shortened"]);
    assert_eq!(
        c.get_many(&gone).await.unwrap(),
        vec![None; 4],
        "{layer}: expired"
    );
    assert_eq!(
        c.get("t:set").await.unwrap(),
        None,
        "{layer}: expired (get)"
    );
    assert_eq!(
        c.get("t:renewed").await.unwrap(),
        some("v2"),
        "{layer}: overwrite renews TTL"
    );
    assert!(
        c.set_nx("t:nx", "w", LONG).await.unwrap(),
        "{layer}: set_nx after expiry"
    );
    assert_eq!(c.get("t:nx").await.unwrap(), some("w"));
    assert_eq!(
        c.incr("t:counter", 1, LONG).await.unwrap(),
        1,
        "{layer}: a bumped counter still expires with its first TTL"
    );
}

async fn redis(prefix: &str) -> Option<RedisCache> {
    let url = support::redis_url().await?;
    Some(RedisCache::connect(&url, prefix.to_owned()).expect("redis cache"))
}

#[tokio::test]
async fn memory_cache_conforms() {
    conformance(Arc::new(MemoryCache::new(10_000))).await;
}

#[tokio::test]
async fn redis_cache_conforms() {
    let Some(cache) = redis(&support::unique("t:")).await else {
        return;
    };
    conformance(Arc::new(cache)).await;
}

#[tokio::test]
async fn guarded_caches_conform() {
    conformance(Arc::new(GuardedCache::new(
        MemoryCache::new(10_000),
        DEFAULT_COOLDOWN,
    )))
    .await;
    let Some(cache) = redis(&support::unique("t:")).await else {
        return;
    };
    conformance(Arc::new(GuardedCache::new(cache, DEFAULT_COOLDOWN))).await;
}

#[tokio::test]
async fn redis_prefixes_keep_caches_apart() {
    let Some(one) = redis(&support::unique("t:")).await else {
        return;
    };
    let Some(two) = redis(&support::unique("t:")).await else {
        return;
    };
    one.set("k", "one", LONG).await.unwrap();
    assert_eq!(two.get("k").await.unwrap(), None);
    assert!(two.set_nx("k", "two", LONG).await.unwrap());
    two.set_many(&[("m".into(), "two".into())], LONG)
        .await
        .unwrap();
    assert_eq!(
        one.get_many(&keys(&["k", "m"])).await.unwrap(),
        vec![some("one"), None]
    );
    one.delete("k").await.unwrap();
    assert_eq!(two.get("k").await.unwrap(), some("two"));
}

#[tokio::test]
async fn a_dead_redis_fails_fast_then_the_breaker_refuses_at_once() {
    let prefix = support::unique("t:");
    let dead = RedisCache::connect("redis://127.0.0.1:1/", prefix).expect("lazy connect succeeds");
    let cache = GuardedCache::new(dead, DEFAULT_COOLDOWN);

    for i in 0..FAILURE_THRESHOLD {
        let started = Instant::now();
        let result = cache.get("k").await;
        let took = started.elapsed();
        assert!(
            result.is_err(),
            "call {i} reached a dead Redis and succeeded"
        );
        assert!(took < Duration::from_millis(1500), "call {i} took {took:?}");
    }
    assert_eq!(cache.state(), BreakerState::Open);

    for i in 0..20 {
        let started = Instant::now();
        let result = cache.set("k", "v", LONG).await;
        let took = started.elapsed();
        assert!(
            matches!(&result, Err(CacheError::Unavailable(m)) if m == "circuit open"),
            "call {i}: {result:?}"
        );
        assert!(
            took < Duration::from_millis(10),
            "call {i} took {took:?} with the circuit open"
        );
    }
}
