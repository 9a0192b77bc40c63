//! Template campaigns: ids, the campaign state machine, parameter mapping, recipients and
//! their send states. Parsed once at the edge, valid after; no IO.
//!
//! The rules around them, one file each: [`new`] (the create request), [`csv_import`] (the
//! streaming recipients CSV), [`params`] (template parameters per recipient), [`bucket`] (the
//! per-number send pacing), [`opt_out`] (STOP/START keywords) and [`reported`] (what counts,
//! exports and the recipients list call a recipient's status).

pub mod bucket;
pub mod csv_import;
pub mod new;
pub mod opt_out;
pub mod params;
pub mod reported;

pub use reported::{CampaignCounts, ReportedStatus};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event::EventError;
use super::ids::prefixed_id;
use super::phone::PhoneNumber;
use super::project::ProjectId;
use super::providers::send::SendProvider;
use super::time::Timestamp;

/// Why a campaign request or id was refused. Each variant has a snake_case [`code`] for the
/// API's error body; the message is a sentence for people.
///
/// [`code`]: CampaignError::code
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error("`{0}` is not an id of this kind")]
    InvalidId(String),
    #[error("{0}")]
    Invalid(String),
    #[error("`{0}` is required")]
    Missing(&'static str),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidTemplateId(String),
    #[error("{0}")]
    InvalidLanguage(String),
    /// Holds the start of the value as sent.
    #[error("`{0}` is not a provider (aisensy, datagen, aisensy_direct or meta)")]
    UnknownProvider(String),
    #[error("{0}")]
    InvalidSender(String),
    #[error("{0}")]
    InvalidParams(String),
    #[error("{0}")]
    InvalidMedia(String),
    #[error("{0}")]
    InvalidScheduleTime(String),
    #[error("{0}")]
    InvalidRateLimit(String),
    #[error("{0}")]
    InvalidUnknownPolicy(String),
}

impl CampaignError {
    pub fn code(&self) -> &'static str {
        match self {
            CampaignError::InvalidId(_) => "invalid_id",
            CampaignError::Invalid(_) => "invalid_campaign",
            CampaignError::Missing(_) => "missing_field",
            CampaignError::InvalidName(_) => "invalid_name",
            CampaignError::InvalidTemplateId(_) => "invalid_template_id",
            CampaignError::InvalidLanguage(_) => "invalid_language",
            CampaignError::UnknownProvider(_) => "unknown_provider",
            CampaignError::InvalidSender(_) => "invalid_sender",
            CampaignError::InvalidParams(_) => "invalid_params",
            CampaignError::InvalidMedia(_) => "invalid_media",
            CampaignError::InvalidScheduleTime(_) => "invalid_schedule_time",
            CampaignError::InvalidRateLimit(_) => "invalid_rate_limit",
            CampaignError::InvalidUnknownPolicy(_) => "invalid_unknown_policy",
        }
    }
}

prefixed_id!(
    /// A campaign's id: `cmp_` + UUID v7.
    CampaignId,
    "cmp_",
    CampaignError::InvalidId
);
prefixed_id!(
    /// One recipient of one campaign: `rcp_` + UUID v7. It is also the per-recipient reference
    /// a send carries (Meta `biz_opaque_callback_data`, Karix `recipient.reference.cust_ref`),
    /// which the BSP echoes in its status webhooks: a send whose response was lost is repaired
    /// from it, never sent again.
    RecipientId,
    "rcp_",
    CampaignError::InvalidId
);

/// Where a campaign is in its life. `Finished` and `Cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Scheduled,
    Running,
    Paused,
    Finished,
    Cancelled,
}

/// What moves a campaign from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `draft → scheduled` (a future start time) or `draft → running` (none, or one past).
    Start {
        scheduled_for_future: bool,
    },
    /// `scheduled → running`, when the start time comes.
    Launch,
    Pause,
    Resume,
    Cancel,
    /// `running → finished`, when no recipient is left queued or sending.
    Finish,
    /// `finished → running`: an explicit retry of its `unknown` recipients queued some again.
    Reopen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} campaign cannot {action}")]
pub struct InvalidTransition {
    pub from: &'static str,
    pub action: &'static str,
}

impl CampaignState {
    pub const ALL: [CampaignState; 6] = [
        CampaignState::Draft,
        CampaignState::Scheduled,
        CampaignState::Running,
        CampaignState::Paused,
        CampaignState::Finished,
        CampaignState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Scheduled => "scheduled",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Finished => "finished",
            CampaignState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<CampaignState> {
        CampaignState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, CampaignState::Finished | CampaignState::Cancelled)
    }

    /// The state `t` leads to from this one, or why it cannot happen.
    pub fn after(self, t: Transition) -> Result<CampaignState, InvalidTransition> {
        use CampaignState::*;
        let next = match (self, t) {
            (
                Draft,
                Transition::Start {
                    scheduled_for_future,
                },
            ) => {
                if scheduled_for_future {
                    Scheduled
                } else {
                    Running
                }
            }
            (Scheduled, Transition::Launch) => Running,
            (Running, Transition::Pause) => Paused,
            (Paused, Transition::Resume) => Running,
            (Running, Transition::Finish) => Finished,
            (Finished, Transition::Reopen) => Running,
            (s, Transition::Cancel) if !s.is_final() => Cancelled,
            _ => {
                return Err(InvalidTransition {
                    from: self.as_str(),
                    action: t.verb(),
                });
            }
        };
        Ok(next)
    }
}

impl Transition {
    fn verb(self) -> &'static str {
        match self {
            Transition::Start { .. } => "start",
            Transition::Launch => "launch",
            Transition::Pause => "pause",
            Transition::Resume => "resume",
            Transition::Cancel => "cancel",
            Transition::Finish => "finish",
            Transition::Reopen => "reopen",
        }
    }
}

/// What becomes of a recipient whose send got no answer and no webhook within the unknown
/// timeout (it may or may not have reached the user).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownPolicy {
    /// It stays `unknown` until the customer asks (`retry-unknown`): never sent twice.
    #[default]
    Hold,
    /// It is queued and sent again automatically, up to the send attempts: the customer's
    /// explicit choice to risk a duplicate rather than a missing message.
    Resend,
}

impl UnknownPolicy {
    pub const ALL: [UnknownPolicy; 2] = [UnknownPolicy::Hold, UnknownPolicy::Resend];

    pub fn as_str(self) -> &'static str {
        match self {
            UnknownPolicy::Hold => "hold",
            UnknownPolicy::Resend => "resend",
        }
    }

    pub fn parse(s: &str) -> Option<UnknownPolicy> {
        UnknownPolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Template parameter `i` (in order) takes the recipient's value of `column`, or `fallback` when
/// the recipient has none (or an empty one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// A header attachment the template takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// `image`, `video` or `document`.
    #[serde(rename = "type", default = "Media::default_kind")]
    pub kind: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl Media {
    fn default_kind() -> String {
        "image".to_owned()
    }
}

/// A validated request to create a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCampaign {
    pub id: CampaignId,
    pub project_id: ProjectId,
    pub name: String,
    pub template_id: String,
    pub language: String,
    pub provider: SendProvider,
    pub sender: PhoneNumber,
    pub params: Vec<ParamSpec>,
    pub media: Option<Media>,
    pub schedule_time: Option<Timestamp>,
    pub rate_limit_per_second: Option<u32>,
    pub unknown_policy: UnknownPolicy,
    pub created_at: Timestamp,
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: CampaignId,
    pub project_id: ProjectId,
    pub name: String,
    pub template_id: String,
    pub language: String,
    pub provider: SendProvider,
    pub sender: PhoneNumber,
    pub params: Vec<ParamSpec>,
    pub media: Option<Media>,
    pub schedule_time: Option<Timestamp>,
    pub rate_limit_per_second: Option<u32>,
    pub unknown_policy: UnknownPolicy,
    pub state: CampaignState,
    /// Why the last recipients load failed (a CSV URL that could not be fetched), if it did.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// Where one recipient's send is. `Sent` recipients report their message's merged status
/// (sent, delivered, read or failed) in counts and exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientStatus {
    /// Waiting for its turn; may be claimed by a sender.
    Queued,
    /// Claimed by a sender: the request to the BSP may be in flight. Only a stored answer, a
    /// BSP webhook carrying its reference, or the unknown timeout moves it on.
    Sending,
    /// The BSP accepted it.
    Sent,
    /// The BSP refused it (with the provider's code and title).
    Failed,
    /// Never sent, by rule (a campaign parameter without a value and without a fallback).
    Skipped,
    /// The phone opted out of this project's messages.
    OptedOut,
    /// Still queued when its campaign was cancelled.
    Cancelled,
    /// Left `sending` past the unknown timeout with no answer and no webhook: it may or may not
    /// have reached the user, so only an explicit retry-unknown sends it again (or, under
    /// [`UnknownPolicy::Resend`], the runner).
    Unknown,
}

impl RecipientStatus {
    pub const ALL: [RecipientStatus; 8] = [
        RecipientStatus::Queued,
        RecipientStatus::Sending,
        RecipientStatus::Sent,
        RecipientStatus::Failed,
        RecipientStatus::Skipped,
        RecipientStatus::OptedOut,
        RecipientStatus::Cancelled,
        RecipientStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Queued => "queued",
            RecipientStatus::Sending => "sending",
            RecipientStatus::Sent => "sent",
            RecipientStatus::Failed => "failed",
            RecipientStatus::Skipped => "skipped",
            RecipientStatus::OptedOut => "opted_out",
            RecipientStatus::Cancelled => "cancelled",
            RecipientStatus::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<RecipientStatus> {
        RecipientStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Template variables of one recipient: CSV column name → value (`name` included when given).
pub type Variables = BTreeMap<String, String>;

/// One CSV row, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    pub id: RecipientId,
    /// 1-based data row number in the file (the header is row 0), for error reports.
    pub row: u64,
    pub phone: PhoneNumber,
    pub variables: Variables,
}

/// How a recipients load went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    pub accepted: u64,
    /// Phones already in the campaign (from this file or an earlier load).
    pub duplicates: u64,
    /// Phones that opted out of the project: stored as `opted_out`, never sent.
    pub opted_out: u64,
}

/// Failure codes wagate records itself, for a send the BSP never took: it refused it only for
/// now, every time (`retries_exhausted`), or no credential let the request be built
/// (`provider_not_configured`). `retry-failed` queues these again; a BSP's own refusal (a bad
/// number, a rejected template) would get the same answer, so it is left alone.
pub const RETRYABLE_FAILURES: [&str; 2] = ["retries_exhausted", "provider_not_configured"];

/// A recipient a sender claimed (`queued → sending`), with what its send needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendJob {
    pub recipient: RecipientId,
    pub campaign: CampaignId,
    pub project_id: ProjectId,
    pub phone: PhoneNumber,
    pub variables: Variables,
    pub provider: SendProvider,
    pub sender: PhoneNumber,
    pub template_id: String,
    pub language: String,
    pub params: Vec<ParamSpec>,
    pub media: Option<Media>,
    pub rate_limit_per_second: Option<u32>,
    /// Claims so far, this one included.
    pub attempts: u32,
}

/// What a sender learned from one send, recorded by [`crate::ports::Campaigns::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// `sending → sent`. The id is the BSP's (`wamid.…` or Karix's `mid`); `None` when the BSP
    /// did not return one (AiSensy may not): a later webhook with the reference attaches it.
    Sent { provider_message_id: Option<String> },
    /// `sending → failed`: the BSP refused it, for good.
    Failed { error: EventError },
    /// `sending → queued`, due again at this time: the BSP said so before accepting it
    /// (throttled, 5xx) or the request never left (connect error).
    Retry { at: Timestamp },
    /// `sending → queued`, due at this time, without counting the claim as an attempt: no
    /// request went out because its campaign was paused or the sender was shutting down.
    Released { at: Timestamp },
    /// `sending → skipped`: a rule stopped it before any request (a missing parameter).
    Skipped { reason: String },
    /// `sending → cancelled`: its campaign was cancelled before the request went out.
    Cancelled,
}

/// One send's outcome for one recipient; applies only while the recipient is `sending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    pub recipient: RecipientId,
    pub result: SendResult,
    pub at: Timestamp,
}

/// One line of a campaign's results export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub recipient: RecipientId,
    pub phone: PhoneNumber,
    pub provider_message_id: Option<String>,
    /// As in [`CampaignCounts`]: the recipient's state, or its message's merged status.
    pub status: String,
    pub updated_at: Timestamp,
    pub error: Option<EventError>,
}

/// A phone opting out of (or back into) a project's campaigns, from an inbound keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutChange {
    pub project_id: ProjectId,
    pub phone: PhoneNumber,
    pub opted_out: bool,
    /// When the user sent the keyword; a later change wins, so replays cannot undo a newer one.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use CampaignState::*;

    #[test]
    fn the_state_machine_allows_exactly_the_documented_moves() {
        let all_transitions = [
            Transition::Start {
                scheduled_for_future: true,
            },
            Transition::Start {
                scheduled_for_future: false,
            },
            Transition::Launch,
            Transition::Pause,
            Transition::Resume,
            Transition::Cancel,
            Transition::Finish,
            Transition::Reopen,
        ];
        let mut allowed = Vec::new();
        for from in CampaignState::ALL {
            for t in all_transitions {
                if let Ok(to) = from.after(t) {
                    allowed.push((from, t, to));
                }
            }
        }
        let expected = vec![
            (
                Draft,
                Transition::Start {
                    scheduled_for_future: true,
                },
                Scheduled,
            ),
            (
                Draft,
                Transition::Start {
                    scheduled_for_future: false,
                },
                Running,
            ),
            (Draft, Transition::Cancel, Cancelled),
            (Scheduled, Transition::Launch, Running),
            (Scheduled, Transition::Cancel, Cancelled),
            (Running, Transition::Pause, Paused),
            (Running, Transition::Cancel, Cancelled),
            (Running, Transition::Finish, Finished),
            (Paused, Transition::Resume, Running),
            (Paused, Transition::Cancel, Cancelled),
            (Finished, Transition::Reopen, Running),
        ];
        assert_eq!(allowed, expected);
    }

    #[test]
    fn an_invalid_move_names_the_state_and_the_action() {
        let e = Finished.after(Transition::Pause).unwrap_err();
        assert_eq!(e.to_string(), "a finished campaign cannot pause");
    }

    #[test]
    fn recipient_ids_round_trip_and_reject_other_kinds() {
        let id = RecipientId::generate();
        assert_eq!(RecipientId::parse(id.as_str()).unwrap(), id);
        assert!(RecipientId::parse(CampaignId::generate().as_str()).is_err());
    }
}
