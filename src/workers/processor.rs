//! The processor: queued events → one store transaction per batch → ack.
//!
//! Each worker collects deliveries until it holds `batch_size` events or `flush` has passed
//! since the first, then in one pass: resolves each event's project (cached), skips events the
//! dedupe cache knows are applied, applies the rest in one transaction, and acks only after the
//! commit. A store outage holds the batch and retries it; data the store refuses is narrowed
//! down to the single event at fault, which is quarantined so the rest of the batch goes in.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::apply::{Incoming, plan};
use crate::domain::endpoint::WebhookDeliveryId;
use crate::domain::event::Event;
use crate::domain::project::ProjectId;
use crate::domain::task::{Task, queues};
use crate::domain::time::Timestamp;
use crate::metrics::{AppliedLabel, LayerLabel, Metrics, QueueLabel, ReasonLabel};
use crate::ports::store::{Applied, Quarantined};
use crate::ports::{Campaigns, Consumer, Delivery, Outgoing, Queue, QueueError, Store, StoreError};
use crate::services::{Dedupe, ProjectLookup};

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Events per store transaction (at most; a batch closes early when `flush` passes).
    pub batch_size: usize,
    pub flush: Duration,
    /// Worker loops, each with its own consumer; two let one commit while the other reads.
    pub concurrency: usize,
    pub prefetch: u16,
}

pub struct Processor {
    pub store: Arc<dyn Store>,
    /// For the campaign follow-ups of applied events (see `campaign_follow`).
    pub campaigns: Arc<dyn Campaigns>,
    /// Inbound texts that opt a phone out of the project's campaigns, and back in.
    pub opt_keywords: (Vec<String>, Vec<String>),
    pub queue: Arc<dyn Queue>,
    pub lookup: Arc<ProjectLookup>,
    pub dedupe: Arc<Dedupe>,
    pub metrics: Metrics,
    pub config: ProcessorConfig,
    pub shutdown: CancellationToken,
}

/// What handling one batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub deliveries: usize,
    pub events: usize,
    pub applied: Applied,
    pub skipped_as_seen: usize,
    pub quarantined: usize,
    pub dead_lettered: usize,
    /// False when shutdown interrupted a retry: nothing was acked, all will be redelivered.
    pub acked: bool,
}

/// A decoded delivery.
struct Received {
    delivery: Delivery,
    received_at: Timestamp,
    events: Vec<Event>,
}

impl Processor {
    pub fn spawn(self: Arc<Self>, tracker: &TaskTracker) {
        for n in 0..self.config.concurrency {
            let me = self.clone();
            tracker.spawn(async move { me.worker(n).await });
        }
    }

    async fn worker(self: Arc<Self>, n: usize) {
        let mut backoff = Backoff::default();
        'connect: while !self.shutdown.is_cancelled() {
            let mut consumer = match self
                .queue
                .consumer(queues::EVENTS, self.config.prefetch)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(worker = n, error = %e, "processor cannot consume; retrying");
                    backoff.wait(&self.shutdown).await;
                    continue;
                }
            };
            loop {
                match self.step(&mut *consumer, None).await {
                    Ok(_) => backoff.reset(),
                    Err(QueueError::Closed) => break 'connect,
                    Err(e) => {
                        tracing::warn!(worker = n, error = %e, "processor receive failed; reconnecting");
                        backoff.wait(&self.shutdown).await;
                        continue 'connect;
                    }
                }
                if self.shutdown.is_cancelled() {
                    break 'connect;
                }
            }
        }
        tracing::debug!(worker = n, "processor worker stopped");
    }

    /// Receives one batch (waiting up to `wait` for its first delivery; `None` waits until
    /// shutdown) and handles it. `Ok(None)`: nothing arrived.
    pub async fn step(
        &self,
        consumer: &mut dyn Consumer,
        wait: Option<Duration>,
    ) -> Result<Option<BatchReport>, QueueError> {
        let prefetch = usize::from(self.config.prefetch);
        let first = tokio::select! {
            r = consumer.receive(prefetch, wait) => r?,
            _ = self.shutdown.cancelled() => return Ok(None),
        };
        if first.is_empty() {
            return Ok(None);
        }
        let deadline = Instant::now() + self.config.flush;
        let mut batch = Vec::with_capacity(first.len());
        let mut events = 0;
        let mut poison = Vec::new();
        for d in first {
            self.decode(d, &mut batch, &mut events, &mut poison);
        }
        while events < self.config.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let more = consumer.receive(prefetch, Some(left)).await?;
            if more.is_empty() {
                break;
            }
            for d in more {
                self.decode(d, &mut batch, &mut events, &mut poison);
            }
        }
        let mut report = BatchReport::default();
        for (d, reason) in poison {
            consumer.dead_letter(&d, &reason).await?;
            self.metrics
                .dead_lettered
                .get_or_create(&QueueLabel {
                    queue: queues::EVENTS,
                })
                .inc();
            report.dead_lettered += 1;
        }
        Ok(Some(self.handle(consumer, batch, report).await))
    }

    fn decode(
        &self,
        d: Delivery,
        batch: &mut Vec<Received>,
        events: &mut usize,
        poison: &mut Vec<(Delivery, String)>,
    ) {
        match Task::decode(&d.payload) {
            Ok(Task::EventsV1 {
                received_at,
                events: evs,
            }) => {
                *events += evs.len();
                batch.push(Received {
                    delivery: d,
                    received_at,
                    events: evs,
                });
            }
            Ok(other) => {
                tracing::error!(task = ?std::mem::discriminant(&other), "a task of another queue on the events queue; dead-lettering it");
                poison.push((d, "not an events task".to_owned()));
            }
            Err(e) => {
                tracing::error!(error = %e, "undecodable queue message; dead-lettering it");
                poison.push((d, format!("undecodable task: {e}")));
            }
        }
    }

    async fn handle(
        &self,
        consumer: &mut dyn Consumer,
        batch: Vec<Received>,
        mut report: BatchReport,
    ) -> BatchReport {
        report.deliveries = batch.len() + report.dead_lettered;
        report.events = batch.iter().map(|r| r.events.len()).sum();
        let mut backoff = Backoff::default();
        loop {
            match self.apply(&batch, &mut report).await {
                Ok(()) => break,
                Err(e) if e.is_transient() => {
                    self.metrics.processor_retries.inc();
                    tracing::warn!(error = %e, events = report.events, "store unavailable; holding the batch and retrying");
                    if !backoff.wait(&self.shutdown).await {
                        return report;
                    }
                }
                Err(e) => {
                    // Not an outage: retrying the same input would fail the same way forever.
                    // Park the messages (redrive brings them back once the cause is fixed).
                    tracing::error!(error = %e, "batch cannot be applied; dead-lettering its messages");
                    for r in &batch {
                        if consumer
                            .dead_letter(&r.delivery, &e.to_string())
                            .await
                            .is_ok()
                        {
                            self.metrics
                                .dead_lettered
                                .get_or_create(&QueueLabel {
                                    queue: queues::EVENTS,
                                })
                                .inc();
                            report.dead_lettered += 1;
                        }
                    }
                    return report;
                }
            }
        }
        self.queue_deliveries(&report.applied.deliveries).await;
        let ids: Vec<_> = batch.iter().map(|r| r.delivery.id).collect();
        if let Err(e) = consumer.ack(&ids).await {
            // Effects are committed and idempotent: a redelivery is harmless.
            tracing::warn!(error = %e, "ack failed after commit; the batch will be redelivered");
        }
        report.acked = true;
        let now = Timestamp::now().millis();
        for r in &batch {
            let lag = (now - r.received_at.millis()).max(0) as f64 / 1000.0;
            for _ in 0..r.events.len() {
                self.metrics.processing_lag_seconds.observe(lag);
            }
        }
        self.metrics
            .processor_batch_events
            .observe(report.events as f64);
        report
    }

    /// Queues the outbox rows the batch created, for the forwarder. Best effort on purpose:
    /// the rows are committed and come due after their lease, so a publish lost here (a crash,
    /// a broker outage) is re-queued by the sweeper; holding the batch would gain nothing.
    async fn queue_deliveries(&self, ids: &[WebhookDeliveryId]) {
        if ids.is_empty() {
            return;
        }
        let tasks: Vec<Outgoing> = Task::forward(ids.iter().map(WebhookDeliveryId::as_str))
            .iter()
            .map(|t| Outgoing::new(t.encode(), 0))
            .collect();
        match self.queue.publish(queues::FORWARD, &tasks).await {
            Ok(()) => {
                self.metrics
                    .forward
                    .outbox_deliveries
                    .inc_by(ids.len() as u64);
            }
            Err(e) => {
                tracing::warn!(error = %e, deliveries = ids.len(), "cannot queue new deliveries; the sweeper will queue them when their lease ends");
            }
        }
    }

    /// Everything between decoding and acking; any error leaves the batch to be retried whole.
    async fn apply(&self, batch: &[Received], report: &mut BatchReport) -> Result<(), StoreError> {
        let all: Vec<(&crate::domain::event::Event, Timestamp)> = batch
            .iter()
            .flat_map(|r| r.events.iter().map(move |e| (e, r.received_at)))
            .collect();
        // A provider's id of the number (Meta's phone_number_id) decides before the number,
        // whose spelling varies; the event then names the number as it was registered.
        let meta_ids: BTreeSet<&str> = all
            .iter()
            .filter_map(|(e, _)| e.phone_number_id())
            .collect();
        let by_id = if meta_ids.is_empty() {
            HashMap::new()
        } else {
            self.lookup
                .by_meta_ids(&meta_ids.into_iter().collect::<Vec<_>>())
                .await?
        };
        let registered = |e: &Event| {
            e.phone_number_id()
                .and_then(|id| by_id.get(id).cloned().flatten())
        };
        let numbers: BTreeSet<_> = all
            .iter()
            .filter(|(e, _)| registered(e).is_none())
            .map(|(e, _)| e.business_number())
            .collect();
        let projects = if numbers.is_empty() {
            HashMap::new()
        } else {
            self.lookup
                .by_numbers(&numbers.into_iter().collect::<Vec<_>>())
                .await?
        };
        let mut known = Vec::with_capacity(all.len());
        let mut quarantine = Vec::new();
        for (event, received_at) in all {
            let resolved = match registered(event) {
                Some((project_id, number)) => {
                    Some((project_id, event.clone().with_business_number(number)))
                }
                None => projects
                    .get(event.business_number())
                    .cloned()
                    .flatten()
                    .map(|p| (p, event.clone())),
            };
            match resolved {
                Some((project_id, event)) => known.push(Incoming {
                    project_id,
                    event,
                    received_at,
                }),
                None => quarantine.push(quarantined(
                    event,
                    UNKNOWN_NUMBER,
                    event.dedupe_key(),
                    received_at,
                )),
            }
        }
        let follow =
            super::campaign_follow::follow_ups(&known, &self.opt_keywords.0, &self.opt_keywords.1);
        let keys: Vec<String> = known.iter().map(|i| i.event.dedupe_key()).collect();
        let seen = self.dedupe.seen(&keys).await;
        let fresh: Vec<Incoming> = known
            .into_iter()
            .zip(&seen)
            .filter_map(|(i, &s)| (!s).then_some(i))
            .collect();
        let (applied, refused) = self.apply_isolating(&fresh).await?;
        quarantine.extend(refused);
        quarantine.extend(mismatched(&fresh, &applied.mismatched));
        self.keep(&quarantine).await?;
        if !follow.is_empty() {
            let repaired = self.campaigns.repair(&follow.echoes).await?;
            self.metrics.send.repaired.inc_by(repaired);
            self.campaigns.set_opt_outs(&follow.opt_outs).await?;
        }
        let fresh_keys: Vec<String> = fresh.iter().map(|i| i.event.dedupe_key()).collect();
        self.dedupe.remember(&fresh_keys).await;

        report.skipped_as_seen = seen.iter().filter(|s| **s).count();
        report.quarantined = quarantine.len();
        report.applied = applied.clone();
        self.count(&applied, &quarantine);
        Ok(())
    }

    /// Applies `items`; if the store refuses the data, halves the set until the refused events
    /// are isolated, and returns them for quarantine instead.
    async fn apply_isolating(
        &self,
        items: &[Incoming],
    ) -> Result<(Applied, Vec<Quarantined>), StoreError> {
        let mut total = Applied::default();
        let mut refused = Vec::new();
        let mut pending: Vec<&[Incoming]> = vec![items];
        while let Some(slice) = pending.pop() {
            if slice.is_empty() {
                continue;
            }
            match self.store.apply(&plan(slice)).await {
                Ok(a) => total.add(a),
                Err(StoreError::Rejected(reason) | StoreError::Conflict(reason))
                    if slice.len() == 1 =>
                {
                    let e = &slice[0].event;
                    tracing::error!(%reason, key = %e.dedupe_key(), "store refused an event; quarantining it");
                    // The key may hold what the store refused (a NUL): escape it.
                    let key = e.dedupe_key().escape_debug().to_string();
                    refused.push(quarantined(e, STORE_REJECTED, key, slice[0].received_at));
                }
                Err(StoreError::Rejected(_) | StoreError::Conflict(_)) => {
                    let (a, b) = slice.split_at(slice.len() / 2);
                    pending.push(a);
                    pending.push(b);
                }
                Err(other) => return Err(other),
            }
        }
        Ok((total, refused))
    }

    /// Records what goes to quarantine. The batch's events are applied by now, so a refusal
    /// here must not send the batch to the dead letters: items the store refuses as a group go
    /// one by one, and one it refuses alone is kept without its dedupe key and with its body
    /// escaped to ASCII (what a database refuses in text is a NUL or broken encoding). An
    /// outage still holds the batch.
    async fn keep(&self, items: &[Quarantined]) -> Result<(), StoreError> {
        match self.store.quarantine(items).await {
            Err(e) if !e.is_transient() && !items.is_empty() => {
                tracing::warn!(error = %e, "quarantine write refused; writing items one by one");
            }
            other => return other,
        }
        for item in items {
            match self.store.quarantine(std::slice::from_ref(item)).await {
                Err(e) if !e.is_transient() => {
                    let plain = Quarantined {
                        body: serde_json::to_string(&item.body.escape_default().to_string())
                            .expect("a string serializes"),
                        dedupe_key: None,
                        event: None,
                        ..item.clone()
                    };
                    if let Err(e) = self.store.quarantine(&[plain]).await {
                        tracing::error!(error = %e, reason = %item.reason, "cannot quarantine an event; it is applied or refused, but not kept");
                    }
                }
                other => other?,
            }
        }
        Ok(())
    }

    fn count(&self, a: &Applied, quarantine: &[Quarantined]) {
        let m = &self.metrics;
        let inc = |kind, result, n| {
            if n > 0 {
                m.processor_applied
                    .get_or_create(&AppliedLabel { kind, result })
                    .inc_by(n);
            }
        };
        inc("status", "new", a.new_history);
        inc("status", "duplicate", a.duplicate_history);
        inc("inbound", "new", a.new_inbound);
        inc("inbound", "duplicate", a.duplicate_inbound);
        let dups = a.duplicate_history + a.duplicate_inbound;
        if dups > 0 {
            m.dedupe_hits
                .get_or_create(&LayerLabel { layer: "store" })
                .inc_by(dups);
        }
        for q in quarantine {
            // A fixed label set: reasons are ours, but bounded labels are cheap insurance.
            let reason = [UNKNOWN_NUMBER, STORE_REJECTED, PROJECT_MISMATCH]
                .into_iter()
                .find(|r| *r == q.reason)
                .unwrap_or("other");
            let provider = crate::domain::event::Provider::parse(&q.provider)
                .map_or("unknown", |p| p.as_str());
            m.quarantined
                .get_or_create(&ReasonLabel { provider, reason })
                .inc();
        }
    }
}

const UNKNOWN_NUMBER: &str = "unknown_business_number";
const STORE_REJECTED: &str = "store_rejected";
const PROJECT_MISMATCH: &str = "project_mismatch";

/// A quarantine record for an event, keeping the normalized event so replay can queue it again.
/// Keys are bounded (a unique index refuses long ones): a long key is kept as its hash.
fn quarantined(event: &Event, reason: &str, key: String, received_at: Timestamp) -> Quarantined {
    use sha2::{Digest, Sha256};
    let key = if key.len() > 256 {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    } else {
        key
    };
    Quarantined {
        provider: event.provider().as_str().to_owned(),
        reason: reason.to_owned(),
        body: event.raw().get().to_owned(),
        dedupe_key: Some(key),
        business_number: Some(event.business_number().to_string()),
        event: serde_json::to_string(event).ok(),
        received_at,
    }
}

/// The status events the store refused because another project owns their message.
fn mismatched(items: &[Incoming], refused: &[(String, ProjectId)]) -> Vec<Quarantined> {
    items
        .iter()
        .filter_map(|i| match &i.event {
            Event::Status(e)
                if refused
                    .iter()
                    .any(|(w, p)| *w == e.wamid && *p == i.project_id) =>
            {
                let key = format!("mismatch:{}:{}", i.project_id, i.event.dedupe_key());
                Some(quarantined(&i.event, PROJECT_MISMATCH, key, i.received_at))
            }
            _ => None,
        })
        .collect()
}

/// Capped exponential backoff, interrupted by shutdown.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Sleeps; `false` if shutdown came first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        self.failures = (self.failures + 1).min(7);
        let delay = Duration::from_millis(50 << self.failures).min(Duration::from_secs(5));
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.cancelled() => false,
        }
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}
