//! Replaying an endpoint's window (`Deliveries::replay`): the stored events it has no delivery
//! for, rebuilt from their rows into the outbox's deliveries, and its dead deliveries revived.
//! The SQL text is written once for both stores; only the provider list's binding differs.

use serde_json::value::RawValue;

use super::deliveries::{NewEvent, outbox_rows};
use crate::domain::delivery::EventRef;
use crate::domain::delivery::outbox::NewDelivery;
use crate::domain::endpoint::{Endpoint, Topic};
use crate::domain::event::{EventError, InboundMessage, Provider, StatusEvent};
use crate::domain::phone::PhoneNumber;
use crate::domain::project::ProjectId;
use crate::domain::status::{Reported, Status};
use crate::domain::time::Timestamp;

/// The providers whose status reports (`delivery: true`) or user messages the endpoint's
/// topics take: what the event queries filter on.
pub fn providers(endpoint: &Endpoint, delivery: bool) -> Vec<&'static str> {
    [Provider::Datagen, Provider::Meta]
        .into_iter()
        .filter(|p| {
            let kind = if delivery { "delivery" } else { "user_message" };
            Topic::parse(&format!("{}.{kind}", p.as_str()))
                .is_ok_and(|topic| endpoint.topics.accepts(topic))
        })
        .map(Provider::as_str)
        .collect()
}

/// A status report's history row with its message's columns: wamid, kind code, unknown word,
/// provider, occurred_at, error code, error message, raw, then the message's business number,
/// phone, campaign and merged status.
pub type StatusRow = (
    String,
    i32,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i32,
);

/// A user's message row: message id, provider, business number, from, profile name, kind,
/// text, occurred_at, raw.
pub type InboundRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    String,
);

/// The events of `rows` as the processor first had them (a row whose provider, kind or raw
/// JSON cannot be read again is left out), with their messages' merged status and campaign.
pub fn status_events(rows: Vec<StatusRow>) -> Vec<(StatusEvent, Option<Status>, Option<String>)> {
    rows.into_iter()
        .filter_map(|r| {
            let event = StatusEvent {
                provider: Provider::parse(&r.3)?,
                wamid: r.0,
                status: Reported::from_stored(i16::try_from(r.1).ok()?, &r.2)?,
                business_number: PhoneNumber::from_trusted(r.8.unwrap_or_default()),
                phone_number_id: None,
                phone: r.9.map(PhoneNumber::from_trusted),
                campaign_id: None,
                reference: None,
                occurred_at: r.4.map(Timestamp::from_millis),
                error: (r.5.is_some() || r.6.is_some()).then_some(EventError {
                    code: r.5,
                    message: r.6,
                }),
                raw: RawValue::from_string(r.7).ok()?,
            };
            let current = i16::try_from(r.11).ok().and_then(Status::from_rank);
            Some((event, current, r.10))
        })
        .collect()
}

/// The user's messages of `rows`, as in [`status_events`].
pub fn inbound_messages(rows: Vec<InboundRow>) -> Vec<InboundMessage> {
    rows.into_iter()
        .filter_map(|r| {
            Some(InboundMessage {
                provider: Provider::parse(&r.1)?,
                message_id: r.0,
                business_number: PhoneNumber::from_trusted(r.2),
                phone_number_id: None,
                from: PhoneNumber::from_trusted(r.3),
                profile_name: r.4,
                kind: r.5,
                text: r.6,
                occurred_at: r.7.map(Timestamp::from_millis),
                raw: RawValue::from_string(r.8).ok()?,
            })
        })
        .collect()
}

/// The deliveries to `endpoint` for these events, due at `now`: the outbox's rows (same event
/// ids, same bodies), which the `(event_id, endpoint_id)` key keeps from being made twice.
pub fn deliveries(
    endpoint: &Endpoint,
    statuses: &[(StatusEvent, Option<Status>, Option<String>)],
    inbound: &[InboundMessage],
    now: Timestamp,
) -> Vec<NewDelivery> {
    let project: &ProjectId = &endpoint.project_id;
    let events: Vec<NewEvent<'_>> = statuses
        .iter()
        .map(|(e, current, campaign)| NewEvent {
            event: EventRef::Status(e),
            project_id: project,
            current_status: *current,
            campaign_id: campaign.clone(),
        })
        .chain(inbound.iter().map(|m| NewEvent {
            event: EventRef::Inbound(m),
            project_id: project,
            current_status: None,
            campaign_id: None,
        }))
        .collect();
    let subscriber = vec![(
        endpoint.id.as_str().to_owned(),
        project.as_str().to_owned(),
        endpoint.topics.to_stored(),
    )];
    let mut rows = outbox_rows(&events, subscriber, now);
    // No queue message carries these: the sweeper finds them due.
    for r in &mut rows {
        r.next_attempt_at = now;
    }
    rows
}

macro_rules! replay_queries {
    ($conn:ty, $in_providers:literal, $providers:path $(,)?) => {
        use crate::adapters::sql::replay::{self as rows, InboundRow, StatusRow};
        use crate::domain::delivery::outbox::NewDelivery;
        use crate::domain::endpoint::Endpoint;
        use crate::domain::time::Timestamp;
        use crate::ports::deliveries::ReplayWindow;

        /// The first part of a replay, in the caller's transaction: revives the window's dead
        /// deliveries and returns how many, with the deliveries to insert (the adapter's
        /// batch insert skips those that exist). `None`, having changed nothing, when the
        /// window holds more than `max_events` events.
        pub async fn revive_and_plan(
            conn: &mut $conn,
            endpoint: &Endpoint,
            w: &ReplayWindow,
            now: Timestamp,
        ) -> Result<Option<(u64, Vec<NewDelivery>)>, sqlx::Error> {
            // One more than allowed: finding it says "too many" without counting them all.
            let room = i64::from(w.max_events) + 1;
            let statuses = rows::providers(endpoint, true);
            let statuses = status_rows(conn, endpoint, &statuses, w, room).await?;
            let left = room - i64::try_from(statuses.len()).unwrap_or(room);
            let inbound = rows::providers(endpoint, false);
            let inbound = inbound_rows(conn, endpoint, &inbound, w, left).await?;
            if statuses.len() + inbound.len() > w.max_events as usize {
                return Ok(None);
            }
            let revived = revive(conn, endpoint, w, now).await?;
            let statuses = rows::status_events(statuses);
            let inbound = rows::inbound_messages(inbound);
            Ok(Some((
                revived,
                rows::deliveries(endpoint, &statuses, &inbound, now),
            )))
        }

        /// Up to `limit` status reports of the window whose raw JSON is still kept, oldest
        /// first, with their messages (the endpoint's project owning both).
        pub async fn status_rows(
            conn: &mut $conn,
            endpoint: &Endpoint,
            providers: &[&str],
            w: &ReplayWindow,
            limit: i64,
        ) -> Result<Vec<StatusRow>, sqlx::Error> {
            if providers.is_empty() || limit <= 0 {
                return Ok(Vec::new());
            }
            sqlx::query_as(concat!(
                "SELECT e.wamid, e.status_rank, e.status_word, e.provider, e.occurred_at, \
                 e.error_code, e.error_message, e.raw, m.business_number, m.phone, \
                 m.campaign_id, m.status_rank \
                 FROM message_events e JOIN messages m ON m.wamid = e.wamid \
                 WHERE e.received_at >= $2 AND e.received_at < $3 AND e.raw <> '' \
                 AND e.project_id = $1 AND m.project_id = $1 AND e.provider ",
                $in_providers,
                " ORDER BY e.received_at LIMIT $5"
            ))
            .bind(endpoint.project_id.as_str())
            .bind(w.since.millis())
            .bind(w.until.millis())
            .bind($providers(providers))
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
        }

        /// Up to `limit` user messages of the window whose raw JSON is still kept.
        pub async fn inbound_rows(
            conn: &mut $conn,
            endpoint: &Endpoint,
            providers: &[&str],
            w: &ReplayWindow,
            limit: i64,
        ) -> Result<Vec<InboundRow>, sqlx::Error> {
            if providers.is_empty() || limit <= 0 {
                return Ok(Vec::new());
            }
            sqlx::query_as(concat!(
                "SELECT message_id, provider, business_number, from_phone, profile_name, kind, \
                 body, occurred_at, raw FROM inbound_messages \
                 WHERE received_at >= $2 AND received_at < $3 AND raw <> '' \
                 AND project_id = $1 AND provider ",
                $in_providers,
                " ORDER BY received_at LIMIT $5"
            ))
            .bind(endpoint.project_id.as_str())
            .bind(w.since.millis())
            .bind(w.until.millis())
            .bind($providers(providers))
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
        }

        /// The endpoint's dead deliveries created in the window: pending, due at `now`, with
        /// a fresh retry budget (as a redrive does).
        pub async fn revive(
            conn: &mut $conn,
            endpoint: &Endpoint,
            w: &ReplayWindow,
            now: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $5, \
                 attempts_before_retry = attempts, updated_at = $5 \
                 WHERE endpoint_id = $1 AND project_id = $2 AND status = 'dead' \
                 AND created_at >= $3 AND created_at < $4",
            )
            .bind(endpoint.id.as_str())
            .bind(endpoint.project_id.as_str())
            .bind(w.since.millis())
            .bind(w.until.millis())
            .bind(now.millis())
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected())
        }
    };
}

/// The provider list as PostgreSQL takes it.
pub fn pg_providers(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| (*s).to_owned()).collect()
}

/// The provider list as SQLite's `json_each` takes it.
pub fn lite_providers(p: &[&str]) -> String {
    serde_json::to_string(p).expect("strings serialize")
}

/// The replay queries on PostgreSQL.
pub mod pg {
    replay_queries!(sqlx::PgConnection, "= ANY($4)", super::pg_providers,);
}

/// The replay queries on SQLite.
pub mod lite {
    replay_queries!(
        sqlx::SqliteConnection,
        "IN (SELECT value FROM json_each($4))",
        super::lite_providers,
    );
}
