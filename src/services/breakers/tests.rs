//! The shared breakers with paused time: alone, two "processes" on one shared cache, and a
//! shared cache that fails.

use async_trait::async_trait;

use super::*;
use crate::adapters::memory_cache::MemoryCache;
use crate::ports::CacheError;

const URL: &str = "https://hooks.example.com/a";

fn cfg() -> BreakerConfig {
    BreakerConfig {
        threshold: 3,
        first_cooldown: Duration::from_secs(60),
        cooldown: Duration::from_secs(60),
        probe_timeout: Duration::from_secs(5),
    }
}

/// First open 5 s, doubling to 60 s.
fn escalating() -> BreakerConfig {
    BreakerConfig {
        first_cooldown: Duration::from_secs(5),
        ..cfg()
    }
}

fn transitions(m: &Metrics, to: BreakerState) -> u64 {
    m.breaker_transitions
        .get_or_create(&crate::metrics::ToLabel { to: to.as_str() })
        .get()
}

/// Opens from closed, then fails `probes` probes, each when the breaker half-opens; returns
/// each open's length in whole seconds, as `reader` sees it. (Two `Breakers` read the wall
/// clock at their creation, a few microseconds apart: hence the rounding and the margin.)
async fn open_lengths(writer: &Breakers, reader: &Breakers, probes: usize) -> Vec<i64> {
    fail(writer, 3).await;
    let mut lengths = Vec::new();
    loop {
        let now = reader.wall(Instant::now()).millis();
        let until = reader.view(URL).await.open_until.expect("open").millis();
        lengths.push((until - now + 500) / 1000);
        if lengths.len() > probes {
            return lengths;
        }
        let left = u64::try_from(until - now).unwrap();
        tokio::time::advance(Duration::from_millis(left + 10)).await;
        assert_eq!(writer.enter(URL).await, Ok(Admitted::Probe));
        writer.record(URL, true).await;
    }
}

#[tokio::test(start_paused = true)]
async fn each_failed_probe_doubles_the_cooldown_up_to_the_longest() {
    let m = Metrics::new();
    let b = Breakers::new(escalating(), None, m.clone());
    assert_eq!(open_lengths(&b, &b, 5).await, vec![5, 10, 20, 40, 60, 60]);
    assert_eq!(transitions(&m, BreakerState::Open), 6);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(b.enter(URL).await, Ok(Admitted::Probe));
    b.record(URL, false).await;
    assert_eq!(transitions(&m, BreakerState::Closed), 1);
    assert_eq!(open_lengths(&b, &b, 0).await, vec![5], "a close resets it");
}

#[tokio::test(start_paused = true)]
async fn the_escalation_is_shared_across_processes() {
    let shared: Arc<dyn Cache> = Arc::new(MemoryCache::new(1 << 20));
    let a = Breakers::new(escalating(), Some(shared.clone()), Metrics::new());
    let b = Breakers::new(escalating(), Some(shared.clone()), Metrics::new());
    // a opens it and fails two probes; b's probe then re-opens it for 40 s, not 10.
    assert_eq!(open_lengths(&a, &b, 2).await, vec![5, 10, 20]);
    tokio::time::advance(Duration::from_millis(20_010)).await;
    assert_eq!(b.enter(URL).await, Ok(Admitted::Probe));
    b.record(URL, true).await;
    tokio::time::advance(MEMO).await;
    let until = a.view(URL).await.open_until.unwrap();
    let left = until.millis() - a.wall(Instant::now()).millis();
    assert!((38_900..=39_100).contains(&left), "{left}");
}

#[tokio::test(start_paused = true)]
async fn a_released_probe_lets_another_caller_probe_at_once() {
    for shared in [
        None,
        Some(Arc::new(MemoryCache::new(1 << 20)) as Arc<dyn Cache>),
    ] {
        let b = Breakers::new(cfg(), shared, Metrics::new());
        fail(&b, 3).await;
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(b.enter(URL).await, Ok(Admitted::Probe));
        assert!(b.admit(URL).await.is_err(), "the probe is out");
        b.release(URL).await;
        assert_eq!(
            b.enter(URL).await,
            Ok(Admitted::Probe),
            "a probe that never went out is given back, not held for its timeout"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_reset_closes_it_everywhere() {
    let shared: Arc<dyn Cache> = Arc::new(MemoryCache::new(1 << 20));
    let m = Metrics::new();
    let forwarder = Breakers::new(cfg(), Some(shared.clone()), Metrics::new());
    let api = Breakers::new(cfg(), Some(shared.clone()), m.clone());
    fail(&forwarder, 3).await;
    assert!(forwarder.admit(URL).await.is_err());
    let view = api.reset(URL).await;
    assert_eq!(
        view,
        BreakerView {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            open_until: None
        }
    );
    assert_eq!(transitions(&m, BreakerState::Closed), 1);
    tokio::time::advance(OPEN_MEMO).await;
    assert_eq!(forwarder.enter(URL).await, Ok(Admitted::Closed));
    assert_eq!(forwarder.view(URL).await.state, BreakerState::Closed);

    let alone = Breakers::new(cfg(), None, Metrics::new());
    fail(&alone, 3).await;
    alone.reset(URL).await;
    assert_eq!(alone.enter(URL).await, Ok(Admitted::Closed));
    assert_eq!(alone.view(URL).await.consecutive_failures, 0);
}

async fn fail(b: &Breakers, times: u32) {
    for _ in 0..times {
        assert_eq!(b.admit(URL).await, Ok(()));
        b.record(URL, true).await;
    }
}

fn gauge(m: &Metrics, state: BreakerState) -> i64 {
    m.forward_breaker(state).get()
}

#[tokio::test(start_paused = true)]
async fn opens_after_the_threshold_and_defers_until_the_cooldown() {
    let m = Metrics::new();
    let b = Breakers::new(cfg(), None, m.clone());
    fail(&b, 2).await;
    assert_eq!(b.view(URL).await.state, BreakerState::Closed);
    assert_eq!(b.view(URL).await.consecutive_failures, 2);
    fail(&b, 1).await;
    let view = b.view(URL).await;
    assert_eq!(view.state, BreakerState::Open);
    let until = view.open_until.expect("an open breaker says until when");
    assert_eq!(b.admit(URL).await, Err(until));
    assert_eq!(gauge(&m, BreakerState::Open), 1);
    assert_eq!(gauge(&m, BreakerState::Closed), 0);

    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(b.admit(URL).await, Err(until), "still open");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.admit(URL).await, Ok(()), "the one probe");
    assert!(
        b.admit(URL).await.is_err(),
        "a second caller waits for the probe"
    );
    b.record(URL, false).await;
    assert_eq!(b.admit(URL).await, Ok(()));
    assert_eq!(b.view(URL).await.state, BreakerState::Closed);
    assert_eq!(gauge(&m, BreakerState::Closed), 1);
    assert_eq!(gauge(&m, BreakerState::Open), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_another_cooldown() {
    let b = Breakers::new(cfg(), None, Metrics::new());
    fail(&b, 3).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(b.admit(URL).await, Ok(()));
    b.record(URL, true).await;
    let view = b.view(URL).await;
    assert_eq!(view.state, BreakerState::Open);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(b.admit(URL).await, Err(view.open_until.unwrap()));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(b.admit(URL).await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn successes_reset_the_count_and_urls_are_apart() {
    let b = Breakers::new(cfg(), None, Metrics::new());
    fail(&b, 2).await;
    b.record(URL, false).await;
    fail(&b, 2).await;
    assert_eq!(b.view(URL).await.state, BreakerState::Closed);
    fail(&b, 1).await;
    assert_eq!(b.view(URL).await.state, BreakerState::Open);
    assert_eq!(b.admit("https://other.example.com/").await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn two_processes_share_open_probe_and_close() {
    let shared: Arc<dyn Cache> = Arc::new(MemoryCache::new(1 << 20));
    let a = Breakers::new(cfg(), Some(shared.clone()), Metrics::new());
    let b = Breakers::new(cfg(), Some(shared.clone()), Metrics::new());
    assert_eq!(b.admit(URL).await, Ok(()), "b has seen it closed");
    fail(&a, 3).await;
    let until = a.view(URL).await.open_until.unwrap();
    // b's memo of "closed" lasts at most a second.
    tokio::time::advance(MEMO).await;
    assert_eq!(b.admit(URL).await, Err(until), "b defers to a's open time");
    assert_eq!(b.view(URL).await.state, BreakerState::Open);

    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(b.admit(URL).await, Ok(()), "b wins the probe");
    assert!(a.admit(URL).await.is_err(), "one probe across processes");
    b.record(URL, true).await;
    let reopened = b.view(URL).await.open_until.unwrap();
    assert!(reopened > until);
    tokio::time::advance(MEMO).await;
    assert_eq!(
        a.admit(URL).await,
        Err(reopened),
        "b's failed probe re-opened it for a"
    );

    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(a.admit(URL).await, Ok(()), "a probes this time");
    a.record(URL, false).await;
    tokio::time::advance(MEMO).await;
    assert_eq!(b.admit(URL).await, Ok(()), "a's probe closed it for b");
    assert_eq!(b.admit(URL).await, Ok(()));
    assert_eq!(a.view(URL).await.state, BreakerState::Closed);
    assert_eq!(b.view(URL).await.state, BreakerState::Closed);
}

/// A shared cache that is down: every call fails.
struct DeadCache;

#[async_trait]
impl Cache for DeadCache {
    fn layer(&self) -> &'static str {
        "dead"
    }
    async fn get(&self, _: &str) -> Result<Option<String>, CacheError> {
        Err(CacheError::Unavailable("down".into()))
    }
    async fn get_many(&self, _: &[String]) -> Result<Vec<Option<String>>, CacheError> {
        Err(CacheError::Unavailable("down".into()))
    }
    async fn set(&self, _: &str, _: &str, _: Duration) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("down".into()))
    }
    async fn set_many(&self, _: &[(String, String)], _: Duration) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("down".into()))
    }
    async fn set_nx(&self, _: &str, _: &str, _: Duration) -> Result<bool, CacheError> {
        Err(CacheError::Unavailable("down".into()))
    }
    async fn delete(&self, _: &str) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("down".into()))
    }
    async fn incr(&self, _: &str, _: u64, _: Duration) -> Result<u64, CacheError> {
        Err(CacheError::Unavailable("down".into()))
    }
    async fn ping(&self) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("down".into()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_dead_shared_cache_leaves_the_local_breaker_in_charge() {
    let b = Breakers::new(cfg(), Some(Arc::new(DeadCache)), Metrics::new());
    assert_eq!(
        b.admit(URL).await,
        Ok(()),
        "sending does not wait on the cache"
    );
    b.record(URL, true).await;
    fail(&b, 2).await;
    assert!(b.admit(URL).await.is_err());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(b.admit(URL).await, Ok(()));
    b.record(URL, false).await;
    assert_eq!(b.view(URL).await.state, BreakerState::Closed);
}

#[test]
fn keys_hash_the_url_to_16_hex_digits() {
    let key = open_key(URL);
    let hash = key.strip_prefix("breaker:open:").unwrap();
    assert_eq!(hash.len(), 16);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(open_key("https://a/"), open_key("https://b/"));
}
