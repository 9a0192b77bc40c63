//! The forwarder: queued delivery ids → signed webhook requests → attempts recorded → ack.
//!
//! A queue message names up to 64 outbox rows; the row is the truth. Each message is handled
//! in its own task, so a slow endpoint holds only the messages that name it, and each
//! delivery inside it runs on its own: past the endpoint's circuit breaker, within the
//! endpoint's in-flight cap, then its host's, then the process's global cap (the excess at
//! each is deferred in the store after a short wait, not held in a slot; see `workers::lanes`).
//! The attempt and its follow-up (delivered, retry at, dead) are committed through the
//! [`Recorder`] before the message is acked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::lanes::{Lanes, MIN_BUSY_DEFER, busy_defer};
use super::recorder::Recorder;
use crate::domain::delivery::{DeadLetterReason, Decision, Outcome, RetrySchedule, headers};
use crate::domain::endpoint::{DeliveryStatus, EndpointId, WebhookDeliveryId};
use crate::domain::signing::SigningSecret;
use crate::domain::task::{Task, queues};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ports::Outbound;
use crate::ports::deliveries::{AttemptRecord, FollowUp, Pending};
use crate::ports::{Deliveries, Delivery, Endpoints, Queue, StoreError};
use crate::services::breakers::Admitted;
use crate::services::{Breakers, EndpointCache};

/// How long a delivery waits for a place among its endpoint's requests in flight before it is
/// deferred. Short: the delivery's queue message (and every other delivery in it) waits too,
/// and a healthy endpoint frees places within milliseconds. Measured with one of ten endpoints
/// hanging at 5,000 events/s: a 1 s wait held messages long enough to starve the healthy
/// endpoints (their p50 went from ~0.15 s to ~3 s).
const LANE_WAIT: Duration = Duration::from_millis(100);
/// How long a delivery waits for one of the process's places once its endpoint and host have
/// room. Bounded for the same reason: places held by slow receivers (within their caps) must
/// not hold every other project's queue messages behind them; the delivery is deferred
/// instead, briefly, since global places free as soon as any request ends.
const SLOT_WAIT: Duration = Duration::from_millis(100);
/// A message whose rows could not be read or recorded comes back after this.
const STORE_RETRY: Duration = Duration::from_secs(2);
/// Recorded with the attempt when the endpoint was disabled before the delivery went out.
const DISABLED: &str = "endpoint disabled";
/// The error of a delivery whose endpoint no longer exists.
pub const ENDPOINT_DELETED: &str = "endpoint_deleted";
/// Why the forwarder disables an endpoint.
pub const GONE: &str = "the receiver answered 410 Gone";

#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// Requests in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Requests in flight at once to one endpoint.
    pub endpoint_inflight: usize,
    /// Requests in flight at once to one host and port, over all its endpoints.
    pub host_inflight: usize,
    /// The longest a delivery that found its endpoint full is deferred (see `busy_defer`).
    pub busy_defer: Duration,
    /// Queue messages held at once.
    pub prefetch: u16,
    /// Most attempts per recording transaction, and how long the first waits for others.
    pub record_batch: usize,
    pub record_window: Duration,
}

pub struct Forwarder {
    deliveries: Arc<dyn Deliveries>,
    endpoints: Arc<dyn Endpoints>,
    cache: Arc<EndpointCache>,
    breakers: Arc<Breakers>,
    client: Arc<dyn Outbound>,
    queue: Arc<dyn Queue>,
    schedule: RetrySchedule,
    metrics: Metrics,
    config: ForwarderConfig,
    shutdown: CancellationToken,
    recorder: Recorder,
    slots: Arc<Semaphore>,
    /// Requests in flight per endpoint.
    lanes: Lanes<EndpointId>,
    /// Requests in flight per host and port (`host:port`).
    hosts: Lanes<String>,
    /// Deliveries being attempted in this process: a second queue message naming one (the
    /// sweeper's, after a lease ran out) must not send it twice at once.
    attempting: Mutex<HashSet<WebhookDeliveryId>>,
}

/// The forwarder's collaborators.
pub struct ForwarderParts {
    pub deliveries: Arc<dyn Deliveries>,
    pub endpoints: Arc<dyn Endpoints>,
    pub cache: Arc<EndpointCache>,
    pub breakers: Arc<Breakers>,
    pub client: Arc<dyn Outbound>,
    pub queue: Arc<dyn Queue>,
    pub schedule: RetrySchedule,
    pub metrics: Metrics,
}

/// What became of one delivery named by a queue message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Attempted; the outcome's follow-up is committed.
    Attempted(FollowUp),
    /// Not attempted now; due again at this time (breaker open, endpoint busy).
    Deferred(Timestamp),
    /// Nothing to do: already done, being attempted here, or its endpoint is gone.
    Skipped,
}

impl Forwarder {
    pub fn new(
        parts: ForwarderParts,
        config: ForwarderConfig,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Forwarder {
        let recorder = Recorder::spawn(
            parts.deliveries.clone(),
            tracker,
            config.record_batch,
            config.record_window,
        );
        Forwarder {
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            lanes: Lanes::new(config.endpoint_inflight),
            hosts: Lanes::new(config.host_inflight),
            deliveries: parts.deliveries,
            endpoints: parts.endpoints,
            cache: parts.cache,
            breakers: parts.breakers,
            client: parts.client,
            queue: parts.queue,
            schedule: parts.schedule,
            metrics: parts.metrics,
            config,
            shutdown,
            recorder,
            attempting: Mutex::default(),
        }
    }

    /// Consumes the forward queue until shutdown, then lets its messages finish (see
    /// `workers::consume::serve`).
    pub fn spawn(self: Arc<Self>, tracker: &TaskTracker) {
        let inner = tracker.clone();
        tracker.spawn(async move {
            super::consume::serve(
                self.queue.as_ref(),
                queues::FORWARD,
                self.config.prefetch,
                STORE_RETRY,
                &self.shutdown,
                &inner,
                "forwarder",
                self.clone(),
            )
            .await
        });
    }
}

#[async_trait::async_trait]
impl super::consume::Handler for Forwarder {
    /// `false` when the store failed and the message must come back.
    async fn handle_message(&self, d: &Delivery) -> bool {
        let ids = match Task::decode(&d.payload) {
            Ok(Task::ForwardV1 { deliveries }) => deliveries
                .into_iter()
                .filter_map(|id| WebhookDeliveryId::parse(&id).ok())
                .collect::<Vec<_>>(),
            // Nothing in it can be delivered, and nothing is lost by dropping it: the rows it
            // might have meant are still in the store, where the sweeper finds them.
            Ok(_) | Err(_) => {
                super::consume::drop_undecodable(&self.metrics, queues::FORWARD);
                return true;
            }
        };
        match self.handle(&ids).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, deliveries = ids.len(), "store failed while forwarding; the message comes back");
                false
            }
        }
    }
}

impl Forwarder {
    /// Attempts these deliveries (each at once, concurrently) and commits every outcome.
    pub async fn handle(&self, ids: &[WebhookDeliveryId]) -> Result<Vec<Handled>, StoreError> {
        let rows = self.deliveries.load(ids).await?;
        let results =
            futures_util::future::join_all(rows.into_iter().map(|p| self.deliver(p))).await;
        let mut handled = Vec::with_capacity(results.len());
        let mut deferred: HashMap<Timestamp, Vec<WebhookDeliveryId>> = HashMap::new();
        let mut first_error = None;
        for r in results {
            match r {
                Ok((id, h)) => {
                    if let Handled::Deferred(at) = h {
                        deferred.entry(at).or_default().push(id);
                    }
                    handled.push(h);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for (at, ids) in deferred {
            self.deliveries.defer(&ids, at).await?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(handled),
        }
    }

    async fn deliver(&self, p: Pending) -> Result<(WebhookDeliveryId, Handled), StoreError> {
        let id = p.id.clone();
        if p.status != DeliveryStatus::Pending {
            self.metrics.forward.count("skipped");
            return Ok((id, Handled::Skipped));
        }
        if !self
            .attempting
            .lock()
            .expect("not poisoned")
            .insert(id.clone())
        {
            self.metrics.forward.count("skipped");
            return Ok((id, Handled::Skipped));
        }
        let result = self.attempt(p).await;
        self.attempting.lock().expect("not poisoned").remove(&id);
        result.map(|h| (id, h))
    }

    async fn attempt(&self, p: Pending) -> Result<Handled, StoreError> {
        let endpoint = match self.cache.get(&p.endpoint_id).await? {
            Some(e) if e.enabled && !p.is_manual_restart() => Some(e),
            // What ends a delivery (its endpoint disabled or gone) and a manual retry or
            // redrive (which follows the owner's change of a moment ago) are read from the
            // store: another process's cache can be a second behind.
            _ => self.cache.get_fresh(&p.endpoint_id).await?,
        };
        let now = Timestamp::now();
        let Some(endpoint) = endpoint else {
            // Deleting an endpoint deletes its deliveries; a row still here was written by an
            // apply that read the endpoint before the delete committed. Dead, not pending for
            // ever (if the delete took the row meanwhile, this record moves nothing).
            let record = AttemptRecord {
                delivery: p.id.clone(),
                attempt: p.attempts + 1,
                status_code: None,
                latency_ms: None,
                error: Some(ENDPOINT_DELETED.to_owned()),
                response_snippet: None,
                attempted_at: now,
                follow_up: FollowUp::Dead,
            };
            self.recorder.record(record).await?;
            self.metrics.forward.count("dead");
            return Ok(Handled::Attempted(FollowUp::Dead));
        };
        if !endpoint.enabled {
            let reason = endpoint.disabled_reason.as_deref().unwrap_or("by request");
            let record = AttemptRecord {
                delivery: p.id.clone(),
                attempt: p.attempts + 1,
                status_code: None,
                latency_ms: None,
                error: Some(format!("{DISABLED}: {reason}")),
                response_snippet: None,
                attempted_at: now,
                follow_up: FollowUp::Dead,
            };
            self.recorder.record(record).await?;
            self.metrics.forward.count("dead");
            return Ok(Handled::Attempted(FollowUp::Dead));
        }
        let url = endpoint.url.as_str();
        let admitted = match self.breakers.enter(url).await {
            Ok(admitted) => admitted,
            Err(until) => {
                self.metrics.forward.count("deferred_breaker");
                return Ok(Handled::Deferred(until));
            }
        };
        // A probe that does not go out gives its turn back: otherwise the breaker would stay
        // half-open, refusing everyone, until the probe timed out.
        let busy = |since_freed: Duration| async move {
            if admitted == Admitted::Probe {
                self.breakers.release(url).await;
            }
            self.metrics.forward.count("deferred_busy");
            Ok(Handled::Deferred(
                Timestamp::now().plus(busy_defer(since_freed, self.config.busy_defer)),
            ))
        };
        let lane = match self.lanes.take(&p.endpoint_id, LANE_WAIT).await {
            Ok(lane) => lane,
            Err(since_freed) => return busy(since_freed).await,
        };
        let host = endpoint
            .url
            .host_and_port()
            .map_or_else(String::new, |(h, port)| format!("{h}:{port}"));
        let host_lane = match self.hosts.take(&host, LANE_WAIT).await {
            Ok(lane) => lane,
            Err(since_freed) => return busy(since_freed).await,
        };
        let Ok(permit) = tokio::time::timeout(SLOT_WAIT, self.slots.acquire()).await else {
            if admitted == Admitted::Probe {
                self.breakers.release(url).await;
            }
            self.metrics.forward.count("deferred_slots");
            return Ok(Handled::Deferred(Timestamp::now().plus(MIN_BUSY_DEFER)));
        };
        let permit = permit.expect("the semaphore is never closed");
        let now = Timestamp::now();
        let attempt = p.attempts + 1;
        let secrets: Vec<SigningSecret> = endpoint
            .signing_secrets(now)
            .into_iter()
            .map(|s| s.signing())
            .collect();
        let body = Bytes::from(p.payload.into_bytes());
        let headers = headers(&p.event_type, &p.event_id, attempt, &body, &secrets, now);
        self.metrics.forward.in_flight.inc();
        let sent = self.client.post(url, &headers, body).await;
        // The places are for requests: waiting for the attempt's record to commit must not
        // hold them (measured: holding them capped forwarding at what 100 slots could do in
        // a request plus a commit, ~3.5k/s on PostgreSQL, with deliveries deferred as busy).
        drop(permit);
        drop(host_lane);
        drop(lane);
        self.metrics.forward.in_flight.dec();
        self.metrics
            .forward
            .attempt_seconds
            .observe(sent.latency.as_secs_f64());
        let outcome = match (&sent.error, sent.status) {
            (Some((e, _)), _) => Outcome::of_transport(*e),
            (None, Some(code)) => Outcome::of_response(code, sent.retry_after.as_deref(), now),
            (None, None) => Outcome::of_transport(crate::domain::delivery::TransportError::Other),
        };
        self.breakers
            .record(url, outcome.is_endpoint_failure())
            .await;
        let decision = self
            .schedule
            .decide(outcome, p.budget_used + 1, rand::random::<f64>());
        let follow_up = match decision {
            Decision::Delivered => FollowUp::Succeeded,
            Decision::RetryIn(d) => FollowUp::RetryAt(Timestamp::now().plus(d)),
            Decision::Disable | Decision::DeadLetter(_) => FollowUp::Dead,
        };
        if decision == Decision::Disable {
            self.endpoints.disable(&p.endpoint_id, GONE, now).await?;
            self.cache.invalidate(&p.endpoint_id).await;
            tracing::warn!(endpoint = %p.endpoint_id.as_str(), "endpoint answered 410 Gone; disabled it");
        }
        let record = AttemptRecord {
            delivery: p.id.clone(),
            attempt,
            status_code: sent.status,
            latency_ms: Some(u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX)),
            error: sent.error.as_ref().map(|(_, text)| text.clone()),
            response_snippet: sent.snippet,
            attempted_at: now,
            follow_up,
        };
        self.recorder.record(record).await?;
        let label = match decision {
            Decision::Delivered => "delivered",
            Decision::RetryIn(_) => {
                self.metrics.forward.retries_scheduled.inc();
                "retry"
            }
            Decision::Disable => "disabled",
            Decision::DeadLetter(DeadLetterReason::Permanent | DeadLetterReason::Exhausted) => {
                "dead"
            }
        };
        self.metrics.forward.count(label);
        Ok(Handled::Attempted(follow_up))
    }
}
