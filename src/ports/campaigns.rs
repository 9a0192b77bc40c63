//! The campaigns port: campaigns, their recipients' send states, opt-outs and per-project
//! provider settings.
//!
//! A recipient row is the truth about a send; queue messages only say "look at these". Every
//! move of a recipient is conditional on where the caller saw it (`queued → sending` only for a
//! running campaign, `sending → …` only once), so a redelivered job, a second sender or a late
//! sweeper can never send a recipient twice.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::campaign::{
    Campaign, CampaignCounts, CampaignId, CampaignState, ExportRow, ImportCounts, NewCampaign,
    NewRecipient, OptOutChange, RecipientId, ReportedStatus, SendJob, SendRecord,
};
use crate::domain::phone::PhoneNumber;
use crate::domain::project::ProjectId;
use crate::domain::providers::send::{ProviderSettings, SendProvider};
use crate::domain::time::Timestamp;

/// What the unknown timeout did to long-silent sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Became `unknown` (policy `hold`, or `resend` with no attempt left).
    pub unknown: u64,
    /// Queued again, due now (policy `resend`).
    pub resent: u64,
}

/// A status webhook that named one of our references: the recipient it names was accepted by
/// the BSP under `provider_message_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoedReference {
    pub recipient: RecipientId,
    pub project_id: ProjectId,
    pub provider_message_id: String,
    pub at: Timestamp,
}

#[async_trait]
pub trait Campaigns: Send + Sync + 'static {
    /// Stores a new campaign in `draft`. A taken id is `Conflict`.
    async fn create(&self, c: &NewCampaign) -> Result<(), StoreError>;

    /// The campaign, if it exists and belongs to `project`.
    async fn get(
        &self,
        project: &ProjectId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError>;

    /// A project's campaigns, newest first, after the cursor (ids sort by creation time).
    async fn list(
        &self,
        project: &ProjectId,
        before: Option<&CampaignId>,
        limit: u32,
    ) -> Result<Vec<Campaign>, StoreError>;

    /// Moves the campaign to `to` if it is in one of `from`; false if it was not (someone
    /// else moved it first). Sets `started_at` on the first move to `running`, `finished_at`
    /// on a move to a final state, and clears `last_error` on any move.
    async fn transition(
        &self,
        id: &CampaignId,
        from: &[CampaignState],
        to: CampaignState,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Sets (or clears) when a draft campaign is to start.
    async fn set_schedule(&self, id: &CampaignId, at: Option<Timestamp>) -> Result<(), StoreError>;

    /// Records (or, with `None`, clears) why the last recipients load failed.
    async fn set_last_error(&self, id: &CampaignId, error: Option<&str>) -> Result<(), StoreError>;

    /// Adds recipients, in one transaction per call, unique on (campaign, phone): a phone
    /// already there counts as a duplicate and changes nothing. A phone that opted out of the
    /// project is stored as `opted_out`. New rows are `queued`, due at once.
    async fn add_recipients(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
        rows: &[NewRecipient],
    ) -> Result<ImportCounts, StoreError>;

    /// Queued recipients of running campaigns that are due (`due_at <= now`), oldest due first,
    /// at most `limit`; each has its `due_at` pushed to `now + lease` so the next sweep skips it
    /// while its queue message is being handled. A holder that cannot use the lease hands it
    /// back with [`release`](Self::release); one that dies lets it run out.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<RecipientId>, StoreError>;

    /// Makes these recipients due at `now` if they are still `queued` and due later: a lease
    /// handed back (shutdown, a failed publish), so any sender takes them at once. Never
    /// touches a recipient that is not `queued`. Returns how many moved.
    async fn release(&self, ids: &[RecipientId], now: Timestamp) -> Result<u64, StoreError>;

    /// Moves these recipients `queued → sending` (attempts + 1), only those still queued and
    /// whose campaign is `running`, and returns what their sends need. A queued one whose
    /// phone has opted out of the project since it was loaded becomes `opted_out` instead.
    /// The rest are left alone.
    async fn claim(&self, ids: &[RecipientId], now: Timestamp) -> Result<Vec<SendJob>, StoreError>;

    /// Applies send results, in one transaction, each only if its recipient is still
    /// `sending`. A `Sent` with an id also stores the message (wamid, project, campaign,
    /// phone, sender, provider, status `sent`), merged with any status events that arrived
    /// first: the message keeps the higher status and its owner. Returns how many applied.
    async fn record(&self, results: &[SendRecord]) -> Result<u64, StoreError>;

    /// Recipients `sending` since before `before` become `unknown`, or, when their campaign's
    /// `unknown_policy` is `resend` and they have had fewer than `max_attempts` claims, are
    /// queued again (due now).
    async fn expire_sending(
        &self,
        before: Timestamp,
        limit: u32,
        max_attempts: u32,
    ) -> Result<Expired, StoreError>;

    /// A status webhook echoed our reference: a `sending` or `unknown` recipient becomes `sent`
    /// with that id (and its message row is stored as by `record`), and a `sent` recipient
    /// without an id gets it. Conditional and idempotent; returns how many changed.
    async fn repair(&self, echoes: &[EchoedReference]) -> Result<u64, StoreError>;

    /// `unknown → queued` (due now) for one campaign of the project; returns how many.
    async fn retry_unknown(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
    ) -> Result<u64, StoreError>;

    /// `failed → queued` (due now, attempts reset) for one campaign of the project, for the
    /// recipients whose failure wagate recorded itself and may go otherwise next time
    /// ([`crate::domain::campaign::RETRYABLE_FAILURES`]); returns how many.
    async fn retry_failed(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
    ) -> Result<u64, StoreError>;

    /// `queued → cancelled` for one campaign; returns how many.
    async fn cancel_queued(&self, campaign: &CampaignId) -> Result<u64, StoreError>;

    /// Makes every queued recipient of the campaign due now (after a resume or a launch).
    async fn make_due(&self, campaign: &CampaignId, now: Timestamp) -> Result<u64, StoreError>;

    /// Counts per status (see [`CampaignCounts`]).
    async fn counts(&self, campaign: &CampaignId) -> Result<CampaignCounts, StoreError>;

    /// The sender number and the campaign's own rate limit of each recipient's campaign (those
    /// found): what a sender needs to take tokens before it claims. A read, no write.
    async fn lanes(
        &self,
        recipients: &[RecipientId],
    ) -> Result<Vec<(RecipientId, PhoneNumber, Option<u32>)>, StoreError>;

    /// Whether any recipient is still `queued` or `sending`: one indexed look, where
    /// [`counts`](Self::counts) reads every recipient and its message.
    async fn has_outstanding(&self, campaign: &CampaignId) -> Result<bool, StoreError>;

    /// Recipients that moved out of `sending` into `sent` or `failed` at or after `since`.
    async fn sent_since(&self, campaign: &CampaignId, since: Timestamp) -> Result<u64, StoreError>;

    /// How many campaigns are in each state, over all projects (the `campaigns` metric); a
    /// state no campaign is in is absent.
    async fn count_by_state(&self) -> Result<Vec<(CampaignState, u64)>, StoreError>;

    /// Campaigns in `state`, at most `limit`, in id order.
    async fn in_state(&self, state: CampaignState, limit: u32)
    -> Result<Vec<Campaign>, StoreError>;

    /// Scheduled campaigns whose start time is at or before `now`, earliest first, at most
    /// `limit`: an indexed look, however many are scheduled for later.
    async fn due_scheduled(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<CampaignId>, StoreError>;

    /// Moves running campaigns with no recipient `queued` or `sending` to `finished`, at most
    /// `limit`, each conditionally in the same statement that looks; returns those moved.
    async fn finish_done(&self, now: Timestamp, limit: u32) -> Result<Vec<CampaignId>, StoreError>;

    /// One page of the results export, in recipient id order, after the cursor.
    async fn export_page(
        &self,
        campaign: &CampaignId,
        after: Option<&RecipientId>,
        limit: u32,
    ) -> Result<Vec<ExportRow>, StoreError>;

    /// The recipients of one campaign that its counts put under `status` (a `sent` recipient
    /// under its message's merged status), after the cursor.
    async fn recipients_in(
        &self,
        campaign: &CampaignId,
        status: ReportedStatus,
        after: Option<&RecipientId>,
        limit: u32,
    ) -> Result<Vec<ExportRow>, StoreError>;

    /// Applies opt-out keywords; per (project, phone) the latest `at` wins, so a replayed old
    /// keyword never undoes a newer one.
    async fn set_opt_outs(&self, changes: &[OptOutChange]) -> Result<(), StoreError>;

    /// Whether the phone is opted out of the project's campaigns.
    async fn is_opted_out(
        &self,
        project: &ProjectId,
        phone: &crate::domain::phone::PhoneNumber,
    ) -> Result<bool, StoreError>;

    /// The project's own settings for one provider (secrets included: for the sender only).
    async fn provider_settings(
        &self,
        project: &ProjectId,
        provider: SendProvider,
    ) -> Result<Option<ProviderSettings>, StoreError>;

    async fn put_provider_settings(
        &self,
        project: &ProjectId,
        provider: SendProvider,
        settings: &ProviderSettings,
    ) -> Result<(), StoreError>;
}
