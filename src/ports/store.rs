//! The store port: projects, messages with their history, inbound messages, quarantine.

use async_trait::async_trait;

use crate::domain::apply::Plan;
use crate::domain::event::EventError;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{ApiKeyHash, NewProject, Project, ProjectId};
use crate::domain::status::{Reported, Status};
use crate::domain::time::Timestamp;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out: worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique key is taken (a project id or business number that already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database refused this data: retrying the same input fails again.
    #[error("store rejected the data: {0}")]
    Rejected(String),
}

/// What one `apply` changed. Duplicates are events the store already had.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub new_history: u64,
    pub duplicate_history: u64,
    pub new_inbound: u64,
    pub duplicate_inbound: u64,
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

/// A body, or part of one, that wagate could not interpret. `dedupe_key`, when set, makes
/// recording it again (a redelivered queue message) a no-op.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub provider: String,
    pub reason: String,
    pub body: String,
    pub dedupe_key: Option<String>,
    pub received_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineView {
    pub id: i64,
    pub provider: String,
    pub reason: String,
    pub body: String,
    pub received_at: Timestamp,
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

    async fn project_by_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Option<ProjectId>, StoreError>;

    /// Applies a batch: history rows inserted unless present, messages created or merged with
    /// their new events (status = max, counts summed), inbound messages inserted unless
    /// present. Atomic per transaction; an adapter may use several (SQLite does, to keep its
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

    async fn quarantine(&self, items: &[Quarantined]) -> Result<(), StoreError>;

    /// Newest first; `before` is the last id seen.
    async fn quarantined(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError>;
}
