//! The forwarder's circuit breakers, one per endpoint URL, shared by every forwarder process
//! through the shared cache when there is one.
//!
//! Each process counts consecutive failures itself (a local [`Breaker`]). When one opens, it
//! publishes `breaker:open:<url hash>` = `<wall-clock millisecond it half-opens>:<re-opens>`,
//! and while the shared cache answers, that key is what every process goes by: open until
//! then, then one probe across all processes (whoever wins `set_nx` on
//! `breaker:probe:<url hash>`), whose success deletes the key everywhere and whose failure
//! publishes a new one open twice as long (the re-open count in the key is what escalates the
//! cooldown across processes). When the shared cache fails, each process falls back to its own
//! breaker, which escalates alike: sending never waits on Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::domain::breaker::{Breaker, BreakerState, escalated_cooldown};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ports::Cache;
use keys::{OpenKey, open_key, probe_key};

/// How long a read of the shared open key is reused: admitting stays a memory operation, and
/// another process's open or close is seen within this.
const MEMO: Duration = Duration::from_secs(1);
/// How long an "open" read is reused before a delivery is deferred on it: a reset elsewhere
/// makes the held deliveries due at once, and a stale "open" would put them off again for the
/// rest of the cooldown. At most ten reads a second per open URL and process.
const OPEN_MEMO: Duration = Duration::from_millis(100);

/// Breakers kept at most; beyond that the least used are forgotten (their URLs start closed
/// again, or read the shared key).
const MAX_BREAKERS: u64 = 100_000;
/// While a half-open probe is out, other deliveries look again this soon: a probe usually
/// answers in milliseconds, and waiting for its deadline (a request timeout and more) would
/// hold every delivery that long after the endpoint came back.
pub const PROBE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failures that open a breaker (the seed: 10).
    pub threshold: u32,
    /// How long it stays open the first time before one probe; each failed probe doubles it.
    pub first_cooldown: Duration,
    /// The longest it stays open before a probe (the seed: 5 minutes, every time).
    pub cooldown: Duration,
    /// How long a probe may stay out before another caller may probe: a little above the
    /// request timeout.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            threshold: 10,
            first_cooldown: Duration::from_secs(5),
            cooldown: Duration::from_secs(300),
            probe_timeout: Duration::from_secs(20),
        }
    }
}

/// A breaker as the endpoint's GET response and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerView {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// When an open breaker half-opens.
    pub open_until: Option<Timestamp>,
}

pub struct Breakers {
    cfg: BreakerConfig,
    shared: Option<Arc<dyn Cache>>,
    metrics: Metrics,
    slots: moka::future::Cache<String, Arc<Slot>>,
    /// Wall-clock time is read off tokio's clock from this origin, so paused-time tests move
    /// it too and every time here comes from one clock.
    origin: (Instant, Timestamp),
}

/// One URL's breaker. `label` mirrors the state last counted in the gauge, readable without
/// the lock when moka forgets the slot.
struct Slot {
    label: AtomicU8,
    entry: Mutex<Entry>,
}

struct Entry {
    local: Breaker,
    failures: u32,
    /// This process wrote the shared open key, and has not seen it cleared since.
    published: bool,
    /// This process holds the shared probe.
    probing: bool,
    /// The shared open key as last read: when, and its value (`None`: absent).
    memo: Option<(Instant, Option<OpenKey>)>,
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// The breaker is closed.
    Closed,
    /// This call is the one half-open probe: if it never goes out, [`Breakers::release`] it.
    Probe,
}

/// What the shared key says at a moment, after the memo.
enum Shared {
    Open(i64),
    HalfOpen,
    Closed,
    Unknown,
}

const LABELS: [BreakerState; 3] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
];

fn label_index(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::Open => 1,
        BreakerState::HalfOpen => 2,
    }
}

impl Breakers {
    pub fn new(cfg: BreakerConfig, shared: Option<Arc<dyn Cache>>, metrics: Metrics) -> Breakers {
        let gauge = metrics.clone();
        // An idle breaker is forgotten once no deferred delivery can still be waiting on it.
        let idle = (cfg.cooldown * 2 + cfg.probe_timeout).max(Duration::from_secs(60));
        let slots = moka::future::Cache::builder()
            .max_capacity(MAX_BREAKERS)
            .time_to_idle(idle)
            .eviction_listener(move |_url, slot: Arc<Slot>, _cause| {
                let state = LABELS[usize::from(slot.label.load(Ordering::Relaxed))];
                gauge.forward_breaker(state).dec();
            })
            .build();
        Breakers {
            cfg,
            shared,
            metrics,
            slots,
            origin: (Instant::now(), Timestamp::now()),
        }
    }

    /// Ok: send now. Err(t): open, or a half-open probe is out: defer to t (while a probe is
    /// out, at most [`PROBE_WAIT`] ahead).
    pub async fn admit(&self, url: &str) -> Result<(), Timestamp> {
        self.enter(url).await.map(|_| ())
    }

    /// [`Breakers::admit`], saying whether the call is the half-open probe.
    pub async fn enter(&self, url: &str) -> Result<Admitted, Timestamp> {
        let slot = self.slot(url).await;
        let mut e = slot.entry.lock().await;
        let result = self.admit_locked(url, &mut e).await;
        self.relabel(&slot, &e);
        result
    }

    /// A probe that was let through but did not go out (its endpoint had no room): the next
    /// caller may probe at once, here and in every process.
    pub async fn release(&self, url: &str) {
        let slot = self.slot(url).await;
        let mut e = slot.entry.lock().await;
        if std::mem::take(&mut e.probing)
            && let Some(shared) = &self.shared
        {
            let _ = shared.delete(&probe_key(url)).await;
        }
        e.local.release_probe(Instant::now().into_std());
        self.relabel(&slot, &e);
    }

    /// Closes the breaker everywhere, as a successful probe would (an operator's reset, or a
    /// test ping the endpoint answered). Returns the closed view.
    pub async fn reset(&self, url: &str) -> BreakerView {
        let slot = self.slot(url).await;
        let mut e = slot.entry.lock().await;
        let now = Instant::now();
        let shared = self.shared_state(url, &mut e, now).await;
        let was = self.view_of(&e, shared, now);
        e.local.success();
        e.failures = 0;
        e.probing = false;
        self.publish_closed(url, &mut e, now).await;
        if was.state != BreakerState::Closed {
            self.transition(url, BreakerState::Closed, None);
        }
        self.relabel(&slot, &e);
        self.view_of(&e, Shared::Closed, now)
    }

    async fn admit_locked(&self, url: &str, e: &mut Entry) -> Result<Admitted, Timestamp> {
        let now = Instant::now();
        let mut state = self.shared_state(url, e, now).await;
        if let Shared::Open(_) = state
            && e.memo
                .is_some_and(|(at, _)| now.duration_since(at) >= OPEN_MEMO)
        {
            e.memo = None;
            state = self.shared_state(url, e, now).await;
        }
        match state {
            Shared::Open(until) => return Err(Timestamp::from_millis(until)),
            Shared::HalfOpen => {
                if let Some(shared) = &self.shared {
                    let deadline = self.wall(now).plus(self.cfg.probe_timeout);
                    let won = shared
                        .set_nx(
                            &probe_key(url),
                            &deadline.millis().to_string(),
                            self.cfg.probe_timeout,
                        )
                        .await;
                    match won {
                        Ok(true) => {
                            e.probing = true;
                            return Ok(Admitted::Probe);
                        }
                        // Another process's probe is out: look again soon rather than at its
                        // deadline, so deliveries follow a quick answer quickly.
                        Ok(false) => {
                            return Err(self
                                .wall(now)
                                .plus(PROBE_WAIT.min(self.cfg.probe_timeout)));
                        }
                        Err(_) => {}
                    }
                }
            }
            Shared::Closed if e.published => {
                // Another process's probe closed it (or the key ran out).
                e.local.success();
                e.failures = 0;
                e.published = false;
            }
            Shared::Closed | Shared::Unknown => {}
        }
        let before = e.local.state();
        let half_open = before == BreakerState::HalfOpen;
        e.local
            .admit(now.into_std())
            .map(|()| match before {
                BreakerState::Closed => Admitted::Closed,
                BreakerState::Open | BreakerState::HalfOpen => Admitted::Probe,
            })
            .map_err(|at| {
                let at = self.wall_at(at);
                if half_open {
                    // This process's probe is out: the same as another's.
                    at.min(self.wall(now).plus(PROBE_WAIT))
                } else {
                    at
                }
            })
    }

    /// outcome of an admitted request; `endpoint_failure` = Outcome::is_endpoint_failure()
    pub async fn record(&self, url: &str, endpoint_failure: bool) {
        let slot = self.slot(url).await;
        let mut e = slot.entry.lock().await;
        let now = Instant::now();
        let was_probe = std::mem::take(&mut e.probing);
        let before = e.local.state();
        if endpoint_failure {
            e.local.failure(now.into_std());
            e.failures = e.failures.saturating_add(1);
            let opened = before != BreakerState::Open && e.local.state() == BreakerState::Open;
            if opened || was_probe {
                let cooldown = match self.shared {
                    Some(_) => self.publish_open(url, &mut e, now, was_probe).await,
                    None => e.local.current_cooldown(),
                };
                self.transition(url, BreakerState::Open, Some(cooldown));
            }
        } else {
            e.local.success();
            e.failures = 0;
            let shared_open = matches!(e.memo, Some((_, Some(_))));
            if was_probe || e.published || shared_open {
                self.publish_closed(url, &mut e, now).await;
            }
            if was_probe || shared_open || before != BreakerState::Closed {
                self.transition(url, BreakerState::Closed, None);
            }
        }
        self.relabel(&slot, &e);
    }

    /// Logs an open or a close, with the URL's host (never its path or query, which may hold
    /// a customer's token), and counts it.
    fn transition(&self, url: &str, to: BreakerState, cooldown: Option<Duration>) {
        self.metrics.breaker_transition(to);
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        match cooldown {
            Some(c) => {
                tracing::info!(host = %host, cooldown_secs = c.as_secs_f64(), "webhook breaker opened: deliveries to this URL are deferred")
            }
            None => {
                tracing::info!(host = %host, "webhook breaker closed: deliveries to this URL resume")
            }
        }
    }

    pub async fn view(&self, url: &str) -> BreakerView {
        let slot = self.slot(url).await;
        let mut e = slot.entry.lock().await;
        let now = Instant::now();
        let shared = self.shared_state(url, &mut e, now).await;
        self.view_of(&e, shared, now)
    }

    fn view_of(&self, e: &Entry, shared: Shared, now: Instant) -> BreakerView {
        let (state, open_until) = match shared {
            Shared::Open(until) => (BreakerState::Open, Some(Timestamp::from_millis(until))),
            Shared::HalfOpen => (BreakerState::HalfOpen, None),
            Shared::Closed | Shared::Unknown => {
                let state = e.local.state_at(now.into_std());
                let until = (state == BreakerState::Open)
                    .then(|| e.local.next_try_at(now.into_std()))
                    .flatten()
                    .map(|at| self.wall_at(at));
                (state, until)
            }
        };
        BreakerView {
            state,
            consecutive_failures: e.failures,
            open_until,
        }
    }

    async fn slot(&self, url: &str) -> Arc<Slot> {
        let new = async {
            self.metrics.forward_breaker(BreakerState::Closed).inc();
            Arc::new(Slot {
                label: AtomicU8::new(label_index(BreakerState::Closed)),
                entry: Mutex::new(Entry {
                    local: Breaker::new(self.cfg.threshold, self.cfg.cooldown)
                        .with_first_cooldown(self.cfg.first_cooldown)
                        .with_probe_timeout(self.cfg.probe_timeout),
                    failures: 0,
                    published: false,
                    probing: false,
                    memo: None,
                }),
            })
        };
        self.slots.get_with_by_ref(url, new).await
    }

    /// Moves this slot's count in the gauge to its current state.
    fn relabel(&self, slot: &Slot, e: &Entry) {
        let now = Instant::now();
        let shared = match e.memo {
            Some((_, Some(k))) if self.wall(now).millis() < k.until => Shared::Open(k.until),
            Some((_, Some(_))) => Shared::HalfOpen,
            _ => Shared::Unknown,
        };
        let state = self.view_of(e, shared, now).state;
        let new = label_index(state);
        let old = slot.label.swap(new, Ordering::Relaxed);
        if old != new {
            self.metrics.forward_breaker(LABELS[usize::from(old)]).dec();
            self.metrics.forward_breaker(state).inc();
        }
    }

    /// The shared open key, read at most once per [`MEMO`].
    async fn shared_state(&self, url: &str, e: &mut Entry, now: Instant) -> Shared {
        let Some(shared) = &self.shared else {
            return Shared::Unknown;
        };
        let fresh = e.memo.filter(|(at, _)| now.duration_since(*at) < MEMO);
        let value = match fresh {
            Some((_, v)) => v,
            None => match shared.get(&open_key(url)).await {
                Ok(v) => {
                    let v = v.and_then(|s| OpenKey::parse(&s));
                    e.memo = Some((now, v));
                    v
                }
                Err(_) => {
                    e.memo = None;
                    return Shared::Unknown;
                }
            },
        };
        match value {
            Some(k) if self.wall(now).millis() < k.until => Shared::Open(k.until),
            Some(_) => Shared::HalfOpen,
            None => Shared::Closed,
        }
    }

    /// Writes the open key; returns the cooldown it opened for. A failed probe (`escalate`)
    /// doubles the last cooldown; an open from closed keeps the key's count and never shortens
    /// what another process published.
    async fn publish_open(
        &self,
        url: &str,
        e: &mut Entry,
        now: Instant,
        escalate: bool,
    ) -> Duration {
        let Some(shared) = &self.shared else {
            return e.local.current_cooldown();
        };
        let known = match e.memo {
            Some((_, Some(k))) => Some(k),
            _ => None,
        };
        let last = known.map_or(e.local.reopens(), |k| k.reopens);
        let reopens = if escalate {
            last.saturating_add(1)
        } else {
            last
        };
        let cooldown = escalated_cooldown(self.cfg.first_cooldown, self.cfg.cooldown, reopens);
        let mut until = self.wall(now).plus(cooldown).millis();
        if !escalate && let Some(k) = known {
            until = until.max(k.until);
        }
        let key = OpenKey { until, reopens };
        // The key outlives its half-open time, so processes still see "half-open, one probe"
        // after it, and the next failed probe knows how often it re-opened; a key nobody
        // probes for a whole further cooldown is let go.
        let ttl = cooldown * 2 + self.cfg.probe_timeout;
        let written = shared.set(&open_key(url), &key.render(), ttl).await;
        e.published = written.is_ok();
        e.memo = written.is_ok().then_some((now, Some(key)));
        let _ = shared.delete(&probe_key(url)).await;
        cooldown
    }

    async fn publish_closed(&self, url: &str, e: &mut Entry, now: Instant) {
        let Some(shared) = &self.shared else {
            return;
        };
        let deleted = shared.delete(&open_key(url)).await;
        let _ = shared.delete(&probe_key(url)).await;
        e.published = false;
        e.memo = deleted.is_ok().then_some((now, None));
    }

    fn wall(&self, now: Instant) -> Timestamp {
        let (origin, wall) = self.origin;
        wall.plus(now.saturating_duration_since(origin))
    }

    fn wall_at(&self, at: std::time::Instant) -> Timestamp {
        self.wall(Instant::from_std(at))
    }
}

mod keys;
#[cfg(test)]
mod tests;
