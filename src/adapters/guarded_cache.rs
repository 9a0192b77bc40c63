//! A circuit breaker around a cache, so a dead Redis costs callers nothing once noticed.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::domain::breaker::{Breaker, BreakerState};
use crate::ports::{Cache, CacheError};

/// Consecutive failures that open the breaker (the seed's rule).
pub const FAILURE_THRESHOLD: u32 = 5;

/// How long the breaker stays open before one probe is let through.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5);

/// Where the breaker reads the time; tests pass a clock they move by hand.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Wraps a cache: after [`FAILURE_THRESHOLD`] consecutive errors every call fails at once with
/// `Unavailable("circuit open")`, without touching the inner cache, until the cooldown ends
/// and one probe call succeeds.
pub struct GuardedCache<C> {
    inner: C,
    breaker: Mutex<Breaker>,
    clock: Clock,
}

impl<C: Cache> GuardedCache<C> {
    pub fn new(inner: C, cooldown: Duration) -> GuardedCache<C> {
        GuardedCache::with_clock(inner, cooldown, Arc::new(Instant::now))
    }

    pub fn with_clock(inner: C, cooldown: Duration, clock: Clock) -> GuardedCache<C> {
        GuardedCache {
            inner,
            breaker: Mutex::new(Breaker::new(FAILURE_THRESHOLD, cooldown)),
            clock,
        }
    }

    /// For health output: `Open` means calls are being refused without trying.
    pub fn state(&self) -> BreakerState {
        self.breaker().state()
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        // The breaker's state is valid after any panic (each method is one assignment), so a
        // poisoned lock is safe to reuse.
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn guard<T>(
        &self,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        if !self.breaker().allow((self.clock)()) {
            return Err(CacheError::Unavailable("circuit open".into()));
        }
        let mut verdict = Verdict {
            cache: self,
            ok: None,
        };
        let result = call.await;
        verdict.ok = Some(result.is_ok());
        result
    }
}

/// Reports the outcome of an allowed call to the breaker when dropped. A call cancelled before
/// it finished (the caller timed out or gave up) counts as a failure: otherwise a cancelled
/// half-open probe would leave the breaker waiting for a verdict forever.
struct Verdict<'a, C: Cache> {
    cache: &'a GuardedCache<C>,
    ok: Option<bool>,
}

impl<C: Cache> Drop for Verdict<'_, C> {
    fn drop(&mut self) {
        let mut breaker = self.cache.breaker();
        if self.ok == Some(true) {
            breaker.success();
        } else {
            breaker.failure((self.cache.clock)());
        }
    }
}

#[async_trait]
impl<C: Cache> Cache for GuardedCache<C> {
    fn layer(&self) -> &'static str {
        self.inner.layer()
    }

    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        self.guard(self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, CacheError> {
        self.guard(self.inner.get_many(keys)).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        self.guard(self.inner.set(key, value, ttl)).await
    }

    async fn set_many(
        &self,
        entries: &[(String, String)],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.guard(self.inner.set_many(entries, ttl)).await
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, CacheError> {
        self.guard(self.inner.set_nx(key, value, ttl)).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.guard(self.inner.delete(key)).await
    }

    async fn incr(&self, key: &str, by: u64, ttl: Duration) -> Result<u64, CacheError> {
        self.guard(self.inner.incr(key, by, ttl)).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.guard(self.inner.ping()).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use futures_util::FutureExt;

    use super::*;

    /// A cache that fails, or never answers, on demand, and counts the calls that reach it.
    #[derive(Default)]
    struct Flaky {
        failing: AtomicBool,
        hanging: AtomicBool,
        calls: AtomicUsize,
    }

    impl Flaky {
        async fn answer<T>(&self, value: T) -> Result<T, CacheError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.hanging.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if self.failing.load(Ordering::SeqCst) {
                return Err(CacheError::Unavailable("flaky".into()));
            }
            Ok(value)
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Cache for Flaky {
        fn layer(&self) -> &'static str {
            "flaky"
        }
        async fn get(&self, _: &str) -> Result<Option<String>, CacheError> {
            self.answer(None).await
        }
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, CacheError> {
            self.answer(vec![None; keys.len()]).await
        }
        async fn set(&self, _: &str, _: &str, _: Duration) -> Result<(), CacheError> {
            self.answer(()).await
        }
        async fn set_many(&self, _: &[(String, String)], _: Duration) -> Result<(), CacheError> {
            self.answer(()).await
        }
        async fn set_nx(&self, _: &str, _: &str, _: Duration) -> Result<bool, CacheError> {
            self.answer(true).await
        }
        async fn delete(&self, _: &str) -> Result<(), CacheError> {
            self.answer(()).await
        }
        async fn incr(&self, _: &str, by: u64, _: Duration) -> Result<u64, CacheError> {
            self.answer(by).await
        }
        async fn ping(&self) -> Result<(), CacheError> {
            self.answer(()).await
        }
    }

    const COOLDOWN: Duration = Duration::from_secs(5);

    /// A guarded `Flaky` and a hand to move its clock forward.
    fn guarded() -> (GuardedCache<Flaky>, impl Fn(Duration)) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let read = now.clone();
        let clock: Clock = Arc::new(move || *read.lock().unwrap());
        let advance = move |by: Duration| *now.lock().unwrap() += by;
        (
            GuardedCache::with_clock(Flaky::default(), COOLDOWN, clock),
            advance,
        )
    }

    async fn open(cache: &GuardedCache<Flaky>) {
        cache.inner().failing.store(true, Ordering::SeqCst);
        for _ in 0..FAILURE_THRESHOLD {
            assert!(cache.get("k").await.is_err());
        }
    }

    fn is_circuit_open<T>(result: Result<T, CacheError>) -> bool {
        matches!(result, Err(CacheError::Unavailable(m)) if m == "circuit open")
    }

    #[tokio::test]
    async fn opens_after_five_consecutive_failures() {
        let (cache, _) = guarded();
        cache.inner().failing.store(true, Ordering::SeqCst);
        for _ in 0..FAILURE_THRESHOLD - 1 {
            assert!(cache.set("k", "v", COOLDOWN).await.is_err());
        }
        assert_eq!(cache.state(), BreakerState::Closed);
        assert!(!is_circuit_open(cache.set("k", "v", COOLDOWN).await));
        assert_eq!(cache.state(), BreakerState::Open);
        assert_eq!(cache.inner().calls(), FAILURE_THRESHOLD as usize);
    }

    #[tokio::test]
    async fn a_success_resets_the_failure_count() {
        let (cache, _) = guarded();
        cache.inner().failing.store(true, Ordering::SeqCst);
        for _ in 0..FAILURE_THRESHOLD - 1 {
            assert!(cache.get("k").await.is_err());
        }
        cache.inner().failing.store(false, Ordering::SeqCst);
        assert!(cache.get("k").await.is_ok());
        cache.inner().failing.store(true, Ordering::SeqCst);
        for _ in 0..FAILURE_THRESHOLD - 1 {
            assert!(cache.get("k").await.is_err());
        }
        assert_eq!(cache.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn fails_fast_while_open_without_calling_the_inner_cache() {
        let (cache, advance) = guarded();
        open(&cache).await;
        let calls = cache.inner().calls();
        cache.inner().failing.store(false, Ordering::SeqCst);
        advance(COOLDOWN - Duration::from_millis(1));
        assert!(is_circuit_open(cache.get("k").await));
        assert!(is_circuit_open(cache.get_many(&["k".into()]).await));
        assert!(is_circuit_open(cache.set("k", "v", COOLDOWN).await));
        assert!(is_circuit_open(cache.set_many(&[], COOLDOWN).await));
        assert!(is_circuit_open(cache.set_nx("k", "v", COOLDOWN).await));
        assert!(is_circuit_open(cache.delete("k").await));
        assert!(is_circuit_open(cache.ping().await));
        assert_eq!(cache.inner().calls(), calls);
    }

    #[tokio::test]
    async fn a_successful_probe_after_the_cooldown_closes_it() {
        let (cache, advance) = guarded();
        open(&cache).await;
        cache.inner().failing.store(false, Ordering::SeqCst);
        advance(COOLDOWN);
        assert_eq!(cache.get("k").await.unwrap(), None);
        assert_eq!(cache.state(), BreakerState::Closed);
        assert!(cache.ping().await.is_ok());
    }

    #[tokio::test]
    async fn a_failed_probe_reopens_it_for_another_cooldown() {
        let (cache, advance) = guarded();
        open(&cache).await;
        advance(COOLDOWN);
        let calls = cache.inner().calls();
        assert!(
            !is_circuit_open(cache.get("k").await),
            "the probe reaches the cache"
        );
        assert_eq!(cache.inner().calls(), calls + 1);
        assert_eq!(cache.state(), BreakerState::Open);
        advance(COOLDOWN - Duration::from_millis(1));
        assert!(is_circuit_open(cache.get("k").await));
        assert_eq!(cache.inner().calls(), calls + 1);
    }

    #[tokio::test]
    async fn only_one_probe_at_a_time() {
        let (cache, advance) = guarded();
        open(&cache).await;
        advance(COOLDOWN);
        cache.inner().hanging.store(true, Ordering::SeqCst);
        let mut probe = Box::pin(cache.get("k"));
        assert!(
            (&mut probe).now_or_never().is_none(),
            "the probe is in flight"
        );
        assert_eq!(cache.state(), BreakerState::HalfOpen);
        assert!(is_circuit_open(cache.get("k").await));
    }

    #[tokio::test]
    async fn a_cancelled_probe_counts_as_a_failure_instead_of_wedging_the_breaker() {
        let (cache, advance) = guarded();
        open(&cache).await;
        advance(COOLDOWN);
        cache.inner().hanging.store(true, Ordering::SeqCst);
        assert!(
            cache.get("k").now_or_never().is_none(),
            "dropped while in flight"
        );
        assert_eq!(cache.state(), BreakerState::Open);
        cache.inner().hanging.store(false, Ordering::SeqCst);
        cache.inner().failing.store(false, Ordering::SeqCst);
        advance(COOLDOWN);
        assert!(cache.get("k").await.is_ok());
        assert_eq!(cache.state(), BreakerState::Closed);
    }

    #[test]
    fn passes_the_inner_layer_through() {
        let (cache, _) = guarded();
        assert_eq!(cache.layer(), "flaky");
    }
}
