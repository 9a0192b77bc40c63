//! The campaign SQL both stores share: row decoding, the statements that read the same on
//! both databases (`campaign_shared!`), and the pieces of the batch writes that differ only in
//! where their rows come from (`unnest` arrays against a JSON array).

use std::collections::{BTreeMap, HashMap};

use sqlx::{Decode, Type};

use super::Columns;
use crate::domain::campaign::{
    Campaign, CampaignCounts, CampaignId, CampaignState, ExportRow, OptOutChange, RecipientId,
    RecipientStatus, ReportedStatus, SendJob, SendRecord, SendResult, UnknownPolicy,
};
use crate::domain::event::EventError;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::ProjectId;
use crate::domain::providers::send::SendProvider;
use crate::domain::status::Status;
use crate::domain::time::Timestamp;

mod shared;

/// The shared statements on PostgreSQL.
pub mod pg {
    super::shared::campaign_shared!(sqlx::Postgres, sqlx::PgConnection);
}

/// The shared statements on SQLite.
pub mod lite {
    super::shared::campaign_shared!(sqlx::Sqlite, sqlx::SqliteConnection);
}

/// The columns `campaign_from` reads.
pub const CAMPAIGN_COLUMNS: &str = "id, project_id, name, template_id, language, provider, \
     sender, params, media, schedule_time, rate_limit_per_second, unknown_policy, state, last_error, \
     created_at, started_at, finished_at, updated_at";

/// Recipient columns an export row needs, with the merged status of its message (if any):
/// only a `sent` recipient's message counts, and only while it is the recipient's project's.
/// The error is the send's (a BSP that refused the request), or else, while the message's
/// merged status is `failed` (rank 1), the error its BSP reported with the `failed` event
/// (history kind 1; one row per message, the history key being its kind): Meta's 131026 in a
/// status webhook is known only there.
pub const EXPORT_SELECT: &str = "SELECT r.id, r.phone, r.provider_message_id, r.status, \
     r.updated_at, m.status_rank, m.updated_at AS message_updated_at, \
     COALESCE(r.error_code, CASE WHEN m.status_rank = 1 THEN (SELECT e.error_code \
       FROM message_events e WHERE e.wamid = m.wamid AND e.status_rank = 1 \
       AND e.project_id = m.project_id LIMIT 1) END) AS error_code, \
     COALESCE(r.error_title, CASE WHEN m.status_rank = 1 THEN (SELECT e.error_message \
       FROM message_events e WHERE e.wamid = m.wamid AND e.status_rank = 1 \
       AND e.project_id = m.project_id LIMIT 1) END) AS error_title \
     FROM campaign_recipients r LEFT JOIN messages m ON r.status = 'sent' \
     AND m.wamid = r.provider_message_id AND m.project_id = r.project_id";

/// A decode failure: the database holds something wagate never writes.
pub fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

fn json<T: serde::de::DeserializeOwned>(column: &str, s: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(s).map_err(|e| corrupt(format!("campaign {column}: {e}")))
}

pub fn campaign_from<R: Columns>(r: &R) -> Result<Campaign, sqlx::Error>
where
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let provider: String = r.col("provider")?;
    let state: String = r.col("state")?;
    let params: String = r.col("params")?;
    let media: Option<String> = r.col("media")?;
    let rate: Option<i64> = r.col("rate_limit_per_second")?;
    let policy: String = r.col("unknown_policy")?;
    Ok(Campaign {
        id: CampaignId::from_trusted(r.col("id")?),
        project_id: ProjectId::from_trusted(r.col("project_id")?),
        name: r.col("name")?,
        template_id: r.col("template_id")?,
        language: r.col("language")?,
        provider: SendProvider::parse(&provider)
            .ok_or_else(|| corrupt(format!("unknown send provider `{provider}`")))?,
        sender: PhoneNumber::from_trusted(r.col("sender")?),
        params: json("params", &params)?,
        media: media.map(|m| json("media", &m)).transpose()?,
        schedule_time: r
            .col::<Option<i64>>("schedule_time")?
            .map(Timestamp::from_millis),
        rate_limit_per_second: rate.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        unknown_policy: UnknownPolicy::parse(&policy)
            .ok_or_else(|| corrupt(format!("unknown unknown_policy `{policy}`")))?,
        state: CampaignState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown campaign state `{state}`")))?,
        last_error: r.col("last_error")?,
        created_at: Timestamp::from_millis(r.col("created_at")?),
        started_at: r
            .col::<Option<i64>>("started_at")?
            .map(Timestamp::from_millis),
        finished_at: r
            .col::<Option<i64>>("finished_at")?
            .map(Timestamp::from_millis),
        updated_at: Timestamp::from_millis(r.col("updated_at")?),
    })
}

pub fn recipient_status(s: &str) -> Result<RecipientStatus, sqlx::Error> {
    RecipientStatus::parse(s).ok_or_else(|| corrupt(format!("unknown recipient status `{s}`")))
}

fn message_status(rank: Option<i32>) -> Option<Status> {
    Status::from_rank(i16::try_from(rank?).ok()?)
}

/// `(status, message rank, count)` groups into counts.
pub fn counts_from(rows: Vec<(String, Option<i32>, i64)>) -> Result<CampaignCounts, sqlx::Error> {
    let mut counts = CampaignCounts::default();
    for (status, rank, n) in rows {
        counts.add(
            recipient_status(&status)?,
            message_status(rank),
            u64::try_from(n).unwrap_or(0),
        );
    }
    Ok(counts)
}

pub fn export_from<R: Columns>(r: &R) -> Result<ExportRow, sqlx::Error>
where
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i32>: Decode<'r, R::Database> + Type<R::Database>,
{
    let status = recipient_status(&r.col::<String>("status")?)?;
    let message = message_status(r.col("status_rank")?);
    let reported = ReportedStatus::of(status, message).as_str();
    let updated_at: i64 = r.col("updated_at")?;
    let message_updated_at: Option<i64> = r.col("message_updated_at")?;
    let code: Option<String> = r.col("error_code")?;
    let title: Option<String> = r.col("error_title")?;
    Ok(ExportRow {
        recipient: RecipientId::from_trusted(r.col("id")?),
        phone: PhoneNumber::from_trusted(r.col("phone")?),
        provider_message_id: r.col("provider_message_id")?,
        status: reported.to_owned(),
        updated_at: Timestamp::from_millis(updated_at.max(message_updated_at.unwrap_or(0))),
        error: (code.is_some() || title.is_some()).then_some(EventError {
            code,
            message: title,
        }),
    })
}

/// A recipient a claim moved to `sending`: (id, campaign, project, phone, variables, attempts).
pub type ClaimedRow = (String, String, String, String, String, i32);

/// Joins claimed recipients with their campaigns into jobs, in recipient id order.
pub fn jobs(
    mut claimed: Vec<ClaimedRow>,
    campaigns: &HashMap<String, Campaign>,
) -> Result<Vec<SendJob>, sqlx::Error> {
    claimed.sort();
    claimed
        .into_iter()
        .map(|(id, campaign, project, phone, variables, attempts)| {
            let c = campaigns
                .get(&campaign)
                .ok_or_else(|| corrupt(format!("recipient {id} of a missing campaign")))?;
            Ok(SendJob {
                recipient: RecipientId::from_trusted(id),
                campaign: c.id.clone(),
                project_id: ProjectId::from_trusted(project),
                phone: PhoneNumber::from_trusted(phone),
                variables: json("recipient variables", &variables)?,
                provider: c.provider,
                sender: c.sender.clone(),
                template_id: c.template_id.clone(),
                language: c.language.clone(),
                params: c.params.clone(),
                media: c.media.clone(),
                rate_limit_per_second: c.rate_limit_per_second,
                attempts: u32::try_from(attempts).unwrap_or(0),
            })
        })
        .collect()
}

/// One send result as the columns the conditional update writes.
pub struct RecordColumns<'a> {
    pub id: &'a str,
    pub status: &'static str,
    /// A new due time (retries); `None` keeps the row's.
    pub due_at: Option<i64>,
    /// The BSP's id; `None` keeps the row's.
    pub provider_message_id: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub error_title: Option<&'a str>,
    /// 1 when the claim did not lead to a request, so it is not counted as an attempt.
    pub undo_attempt: i64,
    pub at: i64,
}

impl<'a> RecordColumns<'a> {
    pub fn of(r: &'a SendRecord) -> RecordColumns<'a> {
        let mut c = RecordColumns {
            id: r.recipient.as_str(),
            status: RecipientStatus::Sent.as_str(),
            due_at: None,
            provider_message_id: None,
            error_code: None,
            error_title: None,
            undo_attempt: 0,
            at: r.at.millis(),
        };
        match &r.result {
            SendResult::Sent {
                provider_message_id,
            } => c.provider_message_id = provider_message_id.as_deref(),
            SendResult::Failed { error } => {
                c.status = RecipientStatus::Failed.as_str();
                c.error_code = error.code.as_deref();
                c.error_title = error.message.as_deref();
            }
            SendResult::Retry { at } => {
                c.status = RecipientStatus::Queued.as_str();
                c.due_at = Some(at.millis());
            }
            SendResult::Released { at } => {
                c.status = RecipientStatus::Queued.as_str();
                c.due_at = Some(at.millis());
                c.undo_attempt = 1;
            }
            SendResult::Skipped { reason } => {
                c.status = RecipientStatus::Skipped.as_str();
                c.error_title = Some(reason.as_str());
            }
            SendResult::Cancelled => c.status = RecipientStatus::Cancelled.as_str(),
        }
        c
    }

    /// The row as a JSON array, for SQLite's `json_each` (see `sqlite_rows`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!([
            self.id,
            self.status,
            self.due_at,
            self.provider_message_id,
            self.error_code,
            self.error_title,
            self.undo_attempt,
            self.at
        ])
    }
}

/// SQLite's row source for the record update: one JSON array per row, bound as `$1`.
pub const RECORD_ROWS_SQLITE: &str = "(SELECT json_extract(value, '$[0]') AS rid, \
     json_extract(value, '$[1]') AS st, json_extract(value, '$[2]') AS due, \
     json_extract(value, '$[3]') AS pmid, json_extract(value, '$[4]') AS code, \
     json_extract(value, '$[5]') AS title, json_extract(value, '$[6]') AS undo, \
     json_extract(value, '$[7]') AS t FROM json_each($1)) AS u";

/// PostgreSQL's row source for the record update: eight arrays, `$1`..`$8`.
pub const RECORD_ROWS_PG: &str = "unnest($1::text[], $2::text[], $3::int8[], $4::text[], \
     $5::text[], $6::text[], $7::int8[], $8::int8[]) AS u(rid, st, due, pmid, code, title, undo, t)";

/// Applies send results from `source` (rows `u(rid, st, due, pmid, code, title, undo, t)`) to
/// the recipients still `sending`; returns what changed as [`ChangedRow`]s.
pub fn record_sql(source: &str) -> String {
    format!(
        "UPDATE campaign_recipients AS r SET status = u.st, due_at = COALESCE(u.due, r.due_at), \
         provider_message_id = COALESCE(u.pmid, r.provider_message_id), error_code = u.code, \
         error_title = u.title, sending_since = NULL, updated_at = u.t, \
         attempts = r.attempts - u.undo \
         FROM {source} WHERE r.id = u.rid AND r.status = 'sending' \
         RETURNING id, campaign_id, project_id, phone, status, provider_message_id, updated_at"
    )
}

/// SQLite's row source for repairs: `[recipient, project, provider id, at]` per row.
pub const REPAIR_ROWS_SQLITE: &str = "(SELECT json_extract(value, '$[0]') AS rid, \
     json_extract(value, '$[1]') AS proj, json_extract(value, '$[2]') AS pmid, \
     json_extract(value, '$[3]') AS t FROM json_each($1)) AS u";

pub const REPAIR_ROWS_PG: &str =
    "unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(rid, proj, pmid, t)";

/// A `sending` or `unknown` recipient of the echo's project becomes `sent` with the echoed id;
/// a `sent` one without an id gets it (keeping its time: it was sent then, not now).
pub fn repair_sql(source: &str) -> String {
    format!(
        "UPDATE campaign_recipients AS r SET \
         updated_at = CASE WHEN r.status = 'sent' THEN r.updated_at ELSE u.t END, \
         status = 'sent', provider_message_id = u.pmid, sending_since = NULL, \
         error_code = NULL, error_title = NULL \
         FROM {source} WHERE r.id = u.rid AND r.project_id = u.proj \
         AND (r.status IN ('sending', 'unknown') \
              OR (r.status = 'sent' AND r.provider_message_id IS NULL)) \
         RETURNING id, campaign_id, project_id, phone, status, provider_message_id, updated_at"
    )
}

/// A recipient a record or repair changed: (id, campaign, project, phone, status, provider
/// message id, updated_at).
pub type ChangedRow = (String, String, String, String, String, Option<String>, i64);

/// The `messages` row a recipient's accepted send stores.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub wamid: String,
    pub project_id: String,
    pub provider: &'static str,
    pub business_number: String,
    pub phone: String,
    pub campaign_id: String,
    pub at: i64,
}

/// The messages to store for changed recipients that are `sent` with an id, one per wamid (a
/// wamid twice in one upsert is an error on PostgreSQL; two recipients with one id is a BSP
/// fault, and the first keeps it).
pub fn sent_messages(
    changed: &[ChangedRow],
    campaigns: &HashMap<String, Campaign>,
) -> Vec<SentMessage> {
    let mut by_wamid: BTreeMap<&str, SentMessage> = BTreeMap::new();
    for (_, campaign, project, phone, status, pmid, at) in changed {
        let (Some(wamid), Some(c)) = (pmid, campaigns.get(campaign)) else {
            continue;
        };
        if status != RecipientStatus::Sent.as_str() || by_wamid.contains_key(wamid.as_str()) {
            continue;
        }
        by_wamid.insert(
            wamid.as_str(),
            SentMessage {
                wamid: wamid.clone(),
                project_id: project.clone(),
                provider: c.provider.as_str(),
                business_number: c.sender.as_str().to_owned(),
                phone: phone.clone(),
                campaign_id: campaign.clone(),
                at: *at,
            },
        );
    }
    by_wamid.into_values().collect()
}

/// What the message upsert does on a known wamid: fills what it lacks, never lowers the status,
/// and only for the project that owns it (DESIGN principle 6). `GREATEST` on PostgreSQL, `MAX`
/// on SQLite.
pub fn message_merge(greatest: &str) -> String {
    format!(
        " ON CONFLICT (wamid) DO UPDATE SET \
         status_rank = {greatest}(messages.status_rank, excluded.status_rank), \
         updated_at = {greatest}(messages.updated_at, excluded.updated_at), \
         provider = COALESCE(messages.provider, excluded.provider), \
         business_number = COALESCE(messages.business_number, excluded.business_number), \
         phone = COALESCE(messages.phone, excluded.phone), \
         campaign_id = COALESCE(messages.campaign_id, excluded.campaign_id) \
         WHERE messages.project_id = excluded.project_id"
    )
}

/// Per (project, phone), the latest change only: a key twice in one upsert is an error on
/// PostgreSQL, and the latest would win anyway.
pub fn latest_opt_outs(changes: &[OptOutChange]) -> Vec<&OptOutChange> {
    let mut latest: BTreeMap<(&str, &str), &OptOutChange> = BTreeMap::new();
    for c in changes {
        let key = (c.project_id.as_str(), c.phone.as_str());
        if latest.get(&key).is_none_or(|l| c.at > l.at) {
            latest.insert(key, c);
        }
    }
    latest.into_values().collect()
}

/// The campaign ids of some rows, once each.
pub fn campaign_ids<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    let mut v: Vec<&str> = ids.into_iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use crate::domain::status::{Reported, Status};

    /// `EXPORT_SELECT` names a failed message and its failed history row by these numbers.
    #[test]
    fn the_export_reads_failures_by_their_stored_numbers() {
        assert_eq!(Status::Failed.rank(), 1);
        assert_eq!(Reported::Failed.code(), 1);
    }
}
