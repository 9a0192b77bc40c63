//! The store port: projects, messages with their history, inbound messages, quarantine.

use async_trait::async_trait;

use crate::domain::apply::Plan;
use crate::domain::endpoint::WebhookDeliveryId;
use crate::domain::event::EventError;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{ApiKeyHash, BusinessNumber, NewProject, Project, ProjectId};
use crate::domain::status::{Reported, Status};
use crate::domain::time::Timestamp;

/// Why a store call failed, sorted by what the caller should do about it.
///
/// Only `Rejected` and `Conflict` blame the input. Everything the adapters do not recognise as
/// a data or constraint error is an outage: a missing table, a revoked permission or a
/// read-only database is fixed by an operator, after which the same input goes in, so the
/// processor must hold such a batch, never quarantine it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, timed out, or cannot serve this now (permissions,
    /// schema, disk, read-only): worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Two transactions collided (deadlock, serialization failure): retrying at once succeeds.
    #[error("store contention: {0}")]
    Contention(String),
    /// A unique key is taken (a project id or business number that already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database refused this data (a data exception or a constraint): retrying the same
    /// input fails again.
    #[error("store rejected the data: {0}")]
    Rejected(String),
}

impl StoreError {
    /// True when waiting and retrying the same call can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Contention(_))
    }
}

/// What one `apply` changed. Duplicates are events the store already had.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub new_history: u64,
    pub duplicate_history: u64,
    pub new_inbound: u64,
    pub duplicate_inbound: u64,
    /// Status events refused because another project owns their message: (wamid, the project
    /// the events were resolved to). Nothing of theirs was written.
    pub mismatched: Vec<(String, ProjectId)>,
    /// Outbox rows written for the new events (one per event and subscribed endpoint), for
    /// the processor to queue after the commit.
    pub deliveries: Vec<WebhookDeliveryId>,
}

impl Applied {
    pub fn add(&mut self, other: Applied) {
        self.new_history += other.new_history;
        self.duplicate_history += other.duplicate_history;
        self.new_inbound += other.new_inbound;
        self.duplicate_inbound += other.duplicate_inbound;
        self.mismatched.extend(other.mismatched);
        self.deliveries.extend(other.deliveries);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryView {
    /// What this event reported (`played`, `deleted`, an unknown word, ...), not the status
    /// it left the message in.
    pub status: Reported,
    pub occurred_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub error: Option<EventError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    pub wamid: String,
    pub project_id: ProjectId,
    pub phone: Option<String>,
    pub business_number: Option<String>,
    pub campaign_id: Option<String>,
    pub provider: Option<String>,
    pub status: Status,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Oldest first.
    pub events: Vec<HistoryView>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub campaign_id: Option<String>,
    pub status: Option<Status>,
    /// Cursor: return messages whose wamid sorts after this one.
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundView {
    /// Position in the project's inbound stream; the pagination cursor.
    pub seq: i64,
    pub message_id: String,
    pub provider: String,
    pub business_number: String,
    pub from: String,
    pub profile_name: Option<String>,
    pub kind: String,
    pub text: Option<String>,
    pub occurred_at: Option<Timestamp>,
    pub received_at: Timestamp,
}

/// Counts for one project: how many messages per status, history rows and inbound messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectStats {
    pub messages_by_status: Vec<(Status, u64)>,
    pub history_events: u64,
    pub inbound_messages: u64,
}

/// A body, or part of one, that wagate could not interpret or apply. `dedupe_key`, when set,
/// makes recording it again (a redelivered queue message, a BSP's retry) a no-op.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub provider: String,
    pub reason: String,
    pub body: String,
    pub dedupe_key: Option<String>,
    /// The business number the event named, when it was read (what replay filters on).
    pub business_number: Option<String>,
    /// The normalized event as JSON, when there was one: replay re-queues it as it was.
    pub event: Option<String>,
    pub received_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineView {
    pub id: i64,
    pub provider: String,
    pub reason: String,
    pub body: String,
    pub business_number: Option<String>,
    /// The normalized event as JSON (see [`Quarantined::event`]).
    pub event: Option<String>,
    pub received_at: Timestamp,
}

/// Which quarantined items to replay; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct QuarantineFilter {
    pub reason: Option<String>,
    pub business_numbers: Vec<String>,
    /// Received at or after.
    pub from: Option<Timestamp>,
    /// Received before.
    pub to: Option<Timestamp>,
    /// Only items with a larger id: the cursor of a replay that goes through them in turns.
    pub after_id: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> &'static str;

    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates the project, its business numbers and its key hash in one transaction.
    async fn create_project(
        &self,
        project: &NewProject,
        key: &ApiKeyHash,
        now: Timestamp,
    ) -> Result<Project, StoreError>;

    async fn project_by_key(&self, key: &ApiKeyHash) -> Result<Option<ProjectId>, StoreError>;

    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError>;

    /// Ordered by id; `after` is the last id seen.
    async fn projects(
        &self,
        after: Option<&ProjectId>,
        limit: u32,
    ) -> Result<Vec<Project>, StoreError>;

    /// Adds the number to the project, or updates its Meta id if the project has it already.
    /// `Ok(false)`: no such project. `Conflict`: another project has the number.
    async fn add_number(&self, id: &ProjectId, number: &BusinessNumber)
    -> Result<bool, StoreError>;

    /// `Ok(false)`: the project does not have this number.
    async fn remove_number(&self, id: &ProjectId, number: &PhoneNumber)
    -> Result<bool, StoreError>;

    /// Replaces the project's key hash; returns the old one (`None`: no such project).
    async fn rotate_key(
        &self,
        id: &ProjectId,
        new: &ApiKeyHash,
    ) -> Result<Option<ApiKeyHash>, StoreError>;

    async fn project_by_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Option<ProjectId>, StoreError>;

    /// The number that registered `id` as its `meta_phone_number_id`, with its project; `None`
    /// when no number did, or more than one (then the id decides nothing).
    async fn number_by_meta_id(
        &self,
        id: &str,
    ) -> Result<Option<(ProjectId, PhoneNumber)>, StoreError>;

    /// Applies a batch: history rows inserted unless present, messages created or merged with
    /// their new events (status = max, counts summed), inbound messages inserted unless
    /// present. A message belongs to the project that first recorded it: status events that
    /// resolve to another project change nothing and come back in `Applied::mismatched`. In the
    /// same transaction, each new event (not a duplicate) gets one delivery row per enabled
    /// endpoint of its project subscribed to its type (the outbox, `domain::delivery::outbox`),
    /// returned in `Applied::deliveries`. Atomic per transaction; an adapter may use several (SQLite does, to keep its
    /// one writer free), which is safe because every effect is idempotent. On error, applying
    /// the same plan again completes it.
    async fn apply(&self, plan: &Plan<'_>) -> Result<Applied, StoreError>;

    async fn message(
        &self,
        project: &ProjectId,
        wamid: &str,
    ) -> Result<Option<MessageView>, StoreError>;

    /// Ordered by wamid; pass the last wamid as `after` for the next page.
    async fn messages(
        &self,
        project: &ProjectId,
        query: &MessageQuery,
    ) -> Result<Vec<MessageView>, StoreError>;

    /// In arrival order; `after` is the last `seq` seen.
    async fn inbound(
        &self,
        project: &ProjectId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboundView>, StoreError>;

    async fn stats(&self, project: &ProjectId) -> Result<ProjectStats, StoreError>;

    /// Empties the raw provider payload of up to `limit` history rows and up to `limit` inbound
    /// messages received before `before`; their normalized fields stay. Returns how many rows
    /// it emptied (less than `limit` in each table: nothing older is left).
    async fn prune_raw(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError>;

    /// Records items; one whose `dedupe_key` is already there is updated in place (and stays
    /// quarantined even if a replay had claimed it).
    async fn quarantine(&self, items: &[Quarantined]) -> Result<(), StoreError>;

    /// Marks up to `limit` items matching `filter` (oldest first) as claimed by the replay
    /// `token`, and returns them. Claimed items stay listed until `release`d.
    async fn claim_quarantined(
        &self,
        filter: &QuarantineFilter,
        token: &str,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError>;

    /// Deletes these items if they are still claimed by `token` (an item quarantined again in
    /// the meantime lost its claim and stays). Returns how many went.
    async fn release_quarantined(&self, ids: &[i64], token: &str) -> Result<u64, StoreError>;

    /// Newest first; `before` is the last id seen.
    async fn quarantined(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError>;
}
