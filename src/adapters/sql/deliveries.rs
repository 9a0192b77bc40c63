//! The outbox and the deliveries port's SQL and row handling, written once for both stores
//! where the text is the same (see `store.rs` for why a macro). Batch statements differ
//! (`unnest` arrays against multi-row `VALUES`) and stay in the adapters.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::domain::apply::Plan;
use crate::domain::delivery::EventRef;
use crate::domain::delivery::outbox::{self, NewDelivery, Subscriber};
use crate::domain::endpoint::{DeliveryStatus, EndpointId, Topics, WebhookDeliveryId};
use crate::domain::project::ProjectId;
use crate::domain::status::{Reported, Status};
use crate::domain::text;
use crate::domain::time::Timestamp;
use crate::ports::deliveries::{AttemptRecord, FollowUp, Pending};

/// A new event of an applied plan (not a duplicate, not refused), with what its message holds
/// after the transaction: its merged status and its campaign.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub event: EventRef<'a>,
    pub project_id: &'a ProjectId,
    pub current_status: Option<Status>,
    pub campaign_id: Option<String>,
}

/// A message as the upsert returned it: its merged rank and campaign id.
pub type Merged = (i64, Option<String>);

/// The plan's new events, in plan order: the history rows `is_new` accepts whose message came
/// back from the upsert (`merged`: a wamid missing there lost the race for its ownership),
/// then the inbound rows `fresh_inbound` says were inserted.
pub fn new_events<'a>(
    plan: &Plan<'a>,
    is_new: impl Fn(&str, &Reported) -> bool,
    merged: impl Fn(&str) -> Option<Merged>,
    fresh_inbound: impl Fn(&str) -> bool,
) -> Vec<NewEvent<'a>> {
    let reports = plan
        .history
        .iter()
        .filter(|h| is_new(&h.event.wamid, &h.event.status))
        .filter_map(|h| {
            let (rank, campaign_id) = merged(&h.event.wamid)?;
            Some(NewEvent {
                event: EventRef::Status(h.event),
                project_id: h.project_id,
                current_status: i16::try_from(rank).ok().and_then(Status::from_rank),
                campaign_id,
            })
        });
    let messages = plan
        .inbound
        .iter()
        .filter(|i| fresh_inbound(&i.message.message_id))
        .map(|i| NewEvent {
            event: EventRef::Inbound(i.message),
            project_id: i.project_id,
            current_status: None,
            campaign_id: None,
        });
    reports.chain(messages).collect()
}

/// Recipient id → (project, campaign): the campaigns of the recipients a plan's events name.
pub type RecipientCampaigns = HashMap<String, (String, String)>;

/// The recipients' campaigns as `(recipient, project, campaign)` rows.
pub fn recipient_campaigns(rows: Vec<(String, String, String)>) -> RecipientCampaigns {
    rows.into_iter()
        .map(|(recipient, project, campaign)| (recipient, (project, campaign)))
        .collect()
}

/// The campaign of `recipient`, if it is one of `project`'s (another project's reference
/// says nothing about this message).
pub fn campaign_of<'c>(
    campaigns: &'c RecipientCampaigns,
    recipient: &str,
    project: &ProjectId,
) -> Option<&'c str> {
    campaigns
        .get(recipient)
        .filter(|(owner, _)| owner == project.as_str())
        .map(|(_, campaign)| campaign.as_str())
}

/// The distinct projects of `events`, sorted: whose subscribers the outbox reads.
pub fn projects<'a>(events: &[NewEvent<'a>]) -> Vec<&'a str> {
    let mut ids: Vec<&str> = events.iter().map(|e| e.project_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `(id, project_id, topics)` as the outbox's subscriber query returns them.
pub type SubscriberRow = (String, String, String);

/// The outbox rows for `events`, built only when some endpoint subscribes (no body otherwise).
pub fn outbox_rows(
    events: &[NewEvent<'_>],
    subscribers: Vec<SubscriberRow>,
    now: Timestamp,
) -> Vec<NewDelivery> {
    if subscribers.is_empty() {
        return Vec::new();
    }
    let subscribers: Vec<Subscriber> = subscribers
        .into_iter()
        .map(|(id, project, topics)| Subscriber {
            id: EndpointId::from_trusted(id),
            project_id: ProjectId::from_trusted(project),
            topics: Topics::from_stored(&topics),
        })
        .collect();
    let keys: Vec<String> = events
        .iter()
        .map(|e| match e.event {
            EventRef::Status(s) => s.dedupe_key(),
            EventRef::Inbound(m) => m.dedupe_key(),
        })
        .collect();
    let applied = events.iter().zip(&keys).map(|(e, key)| outbox::Applied {
        event: e.event,
        dedupe_key: key,
        project_id: e.project_id,
        current_status: e.current_status,
        campaign_id: e.campaign_id.as_deref(),
    });
    outbox::deliveries(applied, &subscribers, now)
}

/// Longest attempt error kept, in characters (a transport error's text is a sentence).
pub const ERROR_CHARS: usize = 512;

/// Longest response snippet kept, in characters (the forwarder reads at most 1 KB of it).
pub const SNIPPET_CHARS: usize = 1024;

/// `records` as the store keeps them: the receiver's words (its body, and the error texts
/// made from what it did) cleaned by [`text::clean`] and bounded, so a NUL or a control
/// character from outside never reaches a `text` column (PostgreSQL refuses a NUL, failing
/// every record batched with it). Borrowed when every record is clean already, as nearly all
/// are.
pub fn storable(records: &[AttemptRecord]) -> Cow<'_, [AttemptRecord]> {
    let fits = |s: &Option<String>, max: usize| {
        s.as_deref()
            .is_none_or(|s| text::is_clean(s) && s.chars().nth(max).is_none())
    };
    if records
        .iter()
        .all(|r| fits(&r.error, ERROR_CHARS) && fits(&r.response_snippet, SNIPPET_CHARS))
    {
        return Cow::Borrowed(records);
    }
    let clean = |s: &Option<String>, max: usize| s.as_deref().map(|s| text::clean(s, max));
    Cow::Owned(
        records
            .iter()
            .map(|r| AttemptRecord {
                error: clean(&r.error, ERROR_CHARS),
                response_snippet: clean(&r.response_snippet, SNIPPET_CHARS),
                ..r.clone()
            })
            .collect(),
    )
}

/// Splits attempt records into rounds with one record per delivery each, keeping their order:
/// a batched conditional update sees every delivery once, and a second record for the same
/// delivery (its next attempt) is judged against the row the first one left.
pub fn rounds(records: &[AttemptRecord]) -> Vec<Vec<&AttemptRecord>> {
    let mut rounds: Vec<Vec<&AttemptRecord>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in records {
        let k = seen.entry(r.delivery.as_str()).or_insert(0);
        if *k == rounds.len() {
            rounds.push(Vec::new());
        }
        rounds[*k].push(r);
        *k += 1;
    }
    rounds
}

/// The columns an attempt's follow-up writes: status and, when it sets one, the next time.
pub fn follow_up_columns(f: FollowUp) -> (&'static str, Option<i64>) {
    match f {
        FollowUp::Succeeded => (DeliveryStatus::Succeeded.as_str(), None),
        FollowUp::RetryAt(at) => (DeliveryStatus::Pending.as_str(), Some(at.millis())),
        FollowUp::Dead => (DeliveryStatus::Dead.as_str(), None),
    }
}

/// The columns `PendingRow` holds, in order.
macro_rules! pending_columns {
    () => {
        "id, event_id, endpoint_id, project_id, event_type, payload, status, attempts, \
         attempts_before_retry, created_at"
    };
}
pub(crate) use pending_columns;

pub type PendingRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i32,
    i32,
    i64,
);

pub fn pending_from(r: PendingRow) -> Result<Pending, sqlx::Error> {
    let status = DeliveryStatus::parse(&r.6)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown delivery status `{}`", r.6).into()))?;
    let attempts = u32::try_from(r.7).unwrap_or(0);
    let before = u32::try_from(r.8).unwrap_or(0);
    Ok(Pending {
        id: WebhookDeliveryId::from_trusted(r.0),
        event_id: r.1,
        endpoint_id: EndpointId::from_trusted(r.2),
        project_id: ProjectId::from_trusted(r.3),
        event_type: r.4,
        payload: r.5,
        status,
        attempts,
        budget_used: attempts.saturating_sub(before),
        created_at: Timestamp::from_millis(r.9),
    })
}

/// An attempt number as the `INTEGER` columns hold it.
pub fn attempt_number(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

macro_rules! delivery_queries {
    ($db:ty, $conn:ty) => {
        use sqlx::Pool;

        use crate::adapters::sql::endpoints::{DeliveryRow, delivery_from};
        use crate::domain::endpoint::{EndpointId, WebhookDeliveryId};
        use crate::domain::project::ProjectId;
        use crate::domain::time::Timestamp;
        use crate::ports::endpoints::DeliveryView;

        /// A manual retry: pending, due now, with the attempts so far no longer charged to the
        /// schedule; the last error stays for the log.
        pub async fn retry(
            conn: &mut $conn,
            project: &ProjectId,
            id: &WebhookDeliveryId,
            now: Timestamp,
        ) -> Result<Option<DeliveryView>, sqlx::Error> {
            let row: Option<DeliveryRow> = sqlx::query_as(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, \
                 attempts_before_retry = attempts, updated_at = $3 \
                 WHERE id = $1 AND project_id = $2 \
                 RETURNING id, event_id, endpoint_id, event_type, status, attempts, \
                 next_attempt_at, last_status_code, last_error, created_at, updated_at",
            )
            .bind(id.as_str())
            .bind(project.as_str())
            .bind(now.millis())
            .fetch_optional(&mut *conn)
            .await?;
            row.map(delivery_from).transpose()
        }

        pub async fn redrive(
            conn: &mut $conn,
            project: &ProjectId,
            endpoint: &EndpointId,
            now: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, \
                 attempts_before_retry = attempts, updated_at = $3 \
                 WHERE endpoint_id = $1 AND project_id = $2 AND status = 'dead'",
            )
            .bind(endpoint.as_str())
            .bind(project.as_str())
            .bind(now.millis())
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected())
        }

        /// Pending deliveries of the endpoint due later than `now` (deferred by its breaker,
        /// or waiting for a retry) become due now.
        pub async fn hasten(
            conn: &mut $conn,
            endpoint: &EndpointId,
            now: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $2 \
                 WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at > $2",
            )
            .bind(endpoint.as_str())
            .bind(now.millis())
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected())
        }

        /// Reads the partial index on pending rows, not the table.
        pub async fn pending_count(pool: &Pool<$db>) -> Result<u64, sqlx::Error> {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
                    .fetch_one(pool)
                    .await?;
            Ok(u64::try_from(n).unwrap_or(0))
        }

        pub async fn dead_count(pool: &Pool<$db>) -> Result<u64, sqlx::Error> {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'")
                    .fetch_one(pool)
                    .await?;
            Ok(u64::try_from(n).unwrap_or(0))
        }
    };
}

/// The delivery queries on PostgreSQL.
pub mod pg {
    delivery_queries!(sqlx::Postgres, sqlx::PgConnection);
}

/// The delivery queries on SQLite.
pub mod lite {
    delivery_queries!(sqlx::Sqlite, sqlx::SqliteConnection);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &WebhookDeliveryId, attempt: u32) -> AttemptRecord {
        AttemptRecord {
            delivery: id.clone(),
            attempt,
            status_code: None,
            latency_ms: None,
            error: None,
            response_snippet: None,
            attempted_at: Timestamp::from_millis(0),
            follow_up: FollowUp::Dead,
        }
    }

    #[test]
    fn storable_cleans_and_bounds_the_receivers_words_only_when_needed() {
        let id = WebhookDeliveryId::generate();
        let fine = AttemptRecord {
            error: Some("HTTP 500".into()),
            response_snippet: Some("line 1\nline 2".into()),
            ..record(&id, 1)
        };
        assert!(matches!(
            storable(std::slice::from_ref(&fine)),
            Cow::Borrowed(_)
        ));
        let dirty = AttemptRecord {
            error: Some("e\u{1b}[31m".repeat(200)),
            response_snippet: Some("200 ok\0".into()),
            ..record(&id, 2)
        };
        let both = [fine.clone(), dirty];
        let out = storable(&both);
        assert_eq!(out[0], fine);
        assert_eq!(out[1].response_snippet.as_deref(), Some("200 ok\u{FFFD}"));
        let error = out[1].error.as_deref().unwrap();
        assert_eq!(error.chars().count(), ERROR_CHARS);
        assert!(text::is_clean(error));
        let long = AttemptRecord {
            response_snippet: Some("x".repeat(SNIPPET_CHARS + 1)),
            ..record(&id, 3)
        };
        let long = [long];
        assert_eq!(
            storable(&long)[0]
                .response_snippet
                .as_deref()
                .map(|s| s.chars().count()),
            Some(SNIPPET_CHARS)
        );
    }

    #[test]
    fn rounds_hold_each_delivery_once_in_order() {
        let a = WebhookDeliveryId::generate();
        let b = WebhookDeliveryId::generate();
        let records = [record(&a, 1), record(&b, 1), record(&a, 2), record(&a, 3)];
        let shape: Vec<Vec<(String, u32)>> = rounds(&records)
            .iter()
            .map(|r| {
                r.iter()
                    .map(|x| (x.delivery.to_string(), x.attempt))
                    .collect()
            })
            .collect();
        assert_eq!(
            shape,
            [
                vec![(a.to_string(), 1), (b.to_string(), 1)],
                vec![(a.to_string(), 2)],
                vec![(a.to_string(), 3)],
            ]
        );
    }
}
