//! The deliveries port: what the forwarder and its sweeper do to the outbox rows.
//!
//! A delivery row is the truth about a forwarded event; queue messages only say "look at
//! these". Every write here is conditional on the row still being where the caller saw it, so
//! a duplicate queue message, a second forwarder or a late sweeper changes nothing twice.

use async_trait::async_trait;

use super::StoreError;
use super::endpoints::DeliveryView;
use crate::domain::endpoint::{DeliveryStatus, Endpoint, EndpointId, WebhookDeliveryId};
use crate::domain::project::ProjectId;
use crate::domain::time::Timestamp;

/// A delivery as the forwarder needs it to make an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: WebhookDeliveryId,
    pub event_id: String,
    pub endpoint_id: EndpointId,
    pub project_id: ProjectId,
    pub event_type: String,
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts made so far, all time (the next one is `attempts + 1`).
    pub attempts: u32,
    /// Attempts made since the last manual retry or redrive: what the retry schedule counts.
    pub budget_used: u32,
    pub created_at: Timestamp,
}

impl Pending {
    /// Whether a manual retry or redrive made this delivery due (a fresh budget over earlier
    /// attempts), and nothing has been tried since.
    pub fn is_manual_restart(&self) -> bool {
        self.attempts > 0 && self.budget_used == 0
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    Succeeded,
    /// Stays pending, due again at this time.
    RetryAt(Timestamp),
    Dead,
}

/// One attempt and its follow-up, recorded together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivery: WebhookDeliveryId,
    /// This attempt's number: the row's `attempts + 1` when the forwarder read it. The record
    /// applies only if the row still has `attempts = attempt - 1` and is pending.
    pub attempt: u32,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    /// A short word or sentence (`timeout`, `connect: connection refused`), never a secret.
    pub error: Option<String>,
    /// At most 1 KB of the response body.
    pub response_snippet: Option<String>,
    pub attempted_at: Timestamp,
    pub follow_up: FollowUp,
}

/// Which stored events a replay looks at: those received in `[since, until)`, at most
/// `max_events` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    pub since: Timestamp,
    pub until: Timestamp,
    pub max_events: u32,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// Dead deliveries made pending again, and deliveries created.
    Done { revived: u64, created: u64 },
    /// More events than `max_events` in the window: nothing was changed.
    TooMany,
}

#[async_trait]
pub trait Deliveries: Send + Sync + 'static {
    /// The rows with these ids (any status; ids with no row are left out), in no set order.
    async fn load(&self, ids: &[WebhookDeliveryId]) -> Result<Vec<Pending>, StoreError>;

    /// Records attempts and their follow-ups in one transaction: inserts each attempt row and
    /// moves its delivery (attempts + 1, status, next_attempt_at, last code/error) only if the
    /// delivery is still pending with `attempts = attempt - 1`. Returns the ids that moved;
    /// the others were recorded by someone else first and are left as they are.
    async fn record(
        &self,
        attempts: &[AttemptRecord],
    ) -> Result<Vec<WebhookDeliveryId>, StoreError>;

    /// Moves pending deliveries' next attempt to `at` without counting an attempt (an open
    /// breaker, an endpoint at its in-flight cap): deferred, never dropped, never charged.
    async fn defer(&self, ids: &[WebhookDeliveryId], at: Timestamp) -> Result<(), StoreError>;

    /// Claims up to `limit` pending deliveries due at or before `now`, oldest due first, by
    /// moving their next attempt to `lease_until`, so no other sweeper claims them meanwhile;
    /// returns them for queueing. Safe with several sweepers at once.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookDeliveryId>, StoreError>;

    /// Makes one delivery of this project pending again and due at `now` with a fresh retry
    /// budget (whatever its status). `None`: not this project's.
    async fn retry(
        &self,
        project: &ProjectId,
        id: &WebhookDeliveryId,
        now: Timestamp,
    ) -> Result<Option<DeliveryView>, StoreError>;

    /// Makes every dead delivery of this project's endpoint pending and due at `now` with a
    /// fresh retry budget; returns how many. The sweeper queues them.
    async fn redrive(
        &self,
        project: &ProjectId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Replays `endpoint`'s window, in one transaction: its dead deliveries created in the
    /// window become pending, due at `now`, with a fresh retry budget; and every stored event
    /// received in the window (a status report or a user's message whose raw JSON is still
    /// kept) of the endpoint's project, whose topic it takes and for which it has no delivery,
    /// gets one, due at `now`, with the event id the outbox gave it (so replaying twice creates
    /// nothing the second time). The sweeper queues them.
    async fn replay(
        &self,
        endpoint: &Endpoint,
        window: &ReplayWindow,
        now: Timestamp,
    ) -> Result<Replayed, StoreError>;

    /// Makes every pending delivery of the endpoint that is due later than `now` due at `now`
    /// (its breaker was closed: what it held, and retries waiting out a backoff, go now);
    /// returns how many. The sweeper queues them.
    async fn hasten(&self, endpoint: &EndpointId, now: Timestamp) -> Result<u64, StoreError>;

    /// Dead deliveries over all endpoints (the dead-letter depth metric).
    async fn dead_count(&self) -> Result<u64, StoreError>;

    /// Deliveries still `pending` over all endpoints: due now, waiting for a retry, or deferred
    /// (the `deliveries_pending` metric).
    async fn pending_count(&self) -> Result<u64, StoreError>;

    /// Deletes up to `limit` settled deliveries (succeeded or dead) created before `before`,
    /// with their attempts, oldest first; returns how many deliveries went. Pending ones stay
    /// whatever their age.
    async fn prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError>;
}
