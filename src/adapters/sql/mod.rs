//! What both SQL stores share: error classification, migrations, row-to-view assembly, and
//! the SQL text they run word for word, one file per port.

pub mod campaigns;
pub mod deliveries;
pub mod endpoints;
pub mod replay;
pub mod secrets;
pub mod store;

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::domain::event::EventError;
use crate::domain::project::ProjectId;
use crate::domain::status::{Reported, Status};
use crate::domain::time::Timestamp;
use crate::ports::StoreError;
use crate::ports::store::{HistoryView, InboundView, MessageView, ProjectStats, QuarantineView};

/// Sorts a database error by what the caller should do (see [`StoreError`]): only data and
/// constraint errors blame the input; anything else is an outage to wait out. The split decides
/// whether the processor holds a batch and retries it, or bisects it to find a poison event.
pub fn classify(e: sqlx::Error) -> StoreError {
    let message = e.to_string();
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let kind = if db.is_unique_violation() {
                Kind::Conflict
            } else if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                pg_kind(&code)
            } else {
                code.parse::<u32>().map_or(Kind::Outage, sqlite_kind)
            };
            match kind {
                Kind::Conflict => StoreError::Conflict(db.message().to_owned()),
                Kind::Data => StoreError::Rejected(format!("{} ({code})", db.message())),
                Kind::Contention => StoreError::Contention(db.message().to_owned()),
                Kind::Outage => StoreError::Unavailable(format!("{} ({code})", db.message())),
            }
        }
        // A value sqlx cannot encode is this input's fault; every other client-side error
        // (IO, TLS, pool, protocol, decoding what the database holds) is not.
        sqlx::Error::Encode(_) => StoreError::Rejected(message),
        _ => StoreError::Unavailable(message),
    }
}

enum Kind {
    Conflict,
    Data,
    Contention,
    Outage,
}

/// PostgreSQL SQLSTATE: class 22 (data exception: bad encoding, a NUL, out of range), 23
/// (integrity constraints) and 54 (program limits: an index row too large) refuse the data;
/// 40001/40P01 are serialization failures and deadlocks; the rest (connection, permission,
/// undefined table, read-only transaction, disk full, shutdown) are outages.
fn pg_kind(code: &str) -> Kind {
    match code {
        "40001" | "40P01" => Kind::Contention,
        c if ["22", "23", "54"].iter().any(|class| c.starts_with(class)) => Kind::Data,
        _ => Kind::Outage,
    }
}

/// SQLite primary result codes (the low byte of an extended code): CONSTRAINT (19), TOOBIG
/// (18), MISMATCH (20) and RANGE (25) refuse the data; BUSY (5) and LOCKED (6) are contention
/// that outlasted the busy timeout; the rest (READONLY, PERM, IOERR, FULL, a missing table's
/// generic ERROR, CORRUPT) are outages.
fn sqlite_kind(code: u32) -> Kind {
    match code & 0xff {
        18 | 19 | 20 | 25 => Kind::Data,
        5 | 6 => Kind::Outage,
        _ => Kind::Outage,
    }
}

/// `classify`, with a unique violation reported as `taken()` says (which key, in words).
pub fn or_conflict(taken: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match classify(e) {
        StoreError::Conflict(_) => StoreError::Conflict(taken()),
        other => other,
    }
}

/// Builds a migrator from SQL files compiled into the binary, so `wagate migrate` needs no
/// files on disk.
pub fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(*sql),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Decodes columns the same way from SQLite and PostgreSQL rows.
pub trait Columns: Row + Sized {
    fn col<'r, T>(&'r self, column: &'static str) -> Result<T, sqlx::Error>
    where
        T: Decode<'r, Self::Database> + Type<Self::Database>;
}

impl<R> Columns for R
where
    R: Row,
    &'static str: ColumnIndex<R>,
{
    fn col<'r, T>(&'r self, column: &'static str) -> Result<T, sqlx::Error>
    where
        T: Decode<'r, Self::Database> + Type<Self::Database>,
    {
        self.try_get(column)
    }
}

pub fn message_row<R: Columns>(r: &R) -> Result<MessageRow, sqlx::Error>
where
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(MessageRow {
        wamid: r.col("wamid")?,
        project_id: r.col("project_id")?,
        provider: r.col("provider")?,
        status_rank: r.col("status_rank")?,
        business_number: r.col("business_number")?,
        phone: r.col("phone")?,
        campaign_id: r.col("campaign_id")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
    })
}

pub fn history_row<R: Columns>(r: &R) -> Result<HistoryRow, sqlx::Error>
where
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(HistoryRow {
        wamid: r.col("wamid")?,
        status_rank: r.col("status_rank")?,
        status_word: r.col("status_word")?,
        occurred_at: r.col("occurred_at")?,
        received_at: r.col("received_at")?,
        error_code: r.col("error_code")?,
        error_message: r.col("error_message")?,
    })
}

pub fn inbound_row<R: Columns>(r: &R) -> Result<InboundView, sqlx::Error>
where
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(InboundView {
        seq: r.col("seq")?,
        message_id: r.col("message_id")?,
        provider: r.col("provider")?,
        business_number: r.col("business_number")?,
        from: r.col("from_phone")?,
        profile_name: r.col("profile_name")?,
        kind: r.col("kind")?,
        text: r.col("body")?,
        occurred_at: r
            .col::<Option<i64>>("occurred_at")?
            .map(Timestamp::from_millis),
        received_at: Timestamp::from_millis(r.col("received_at")?),
    })
}

pub fn quarantine_row<R: Columns>(r: &R) -> Result<QuarantineView, sqlx::Error>
where
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(QuarantineView {
        id: r.col("id")?,
        provider: r.col("provider")?,
        reason: r.col("reason")?,
        body: r.col("body")?,
        business_number: r.col("business_number")?,
        event: r.col("event")?,
        received_at: Timestamp::from_millis(r.col("received_at")?),
    })
}

/// The columns `quarantine_row` reads.
pub const QUARANTINE_COLUMNS: &str =
    "id, provider, reason, body, business_number, event, received_at";

/// Per-status message counts, as `(rank, count)` rows, into the port's shape.
pub fn stats(by_status: Vec<(i32, i64)>, history: i64, inbound: i64) -> ProjectStats {
    ProjectStats {
        messages_by_status: by_status
            .into_iter()
            .filter_map(|(r, n)| Some((rank(r)?, n as u64)))
            .collect(),
        history_events: history as u64,
        inbound_messages: inbound as u64,
    }
}

/// A `messages` row before its history is attached.
pub struct MessageRow {
    pub wamid: String,
    pub project_id: String,
    pub provider: Option<String>,
    pub status_rank: i32,
    pub business_number: Option<String>,
    pub phone: Option<String>,
    pub campaign_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A `message_events` row as the API shows it.
pub struct HistoryRow {
    pub wamid: String,
    /// The reported kind's code ([`Reported::code`]), with the word of an unknown one.
    pub status_rank: i32,
    pub status_word: String,
    pub occurred_at: Option<i64>,
    pub received_at: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Joins messages with their history (rows for any of the messages, in any order), sorting each
/// history oldest first by provider time, then receive time, then status.
pub fn assemble(messages: Vec<MessageRow>, history: Vec<HistoryRow>) -> Vec<MessageView> {
    let mut by_wamid: std::collections::HashMap<String, Vec<HistoryRow>> = Default::default();
    for h in history {
        by_wamid.entry(h.wamid.clone()).or_default().push(h);
    }
    messages
        .into_iter()
        .map(|m| {
            let mut rows = by_wamid.remove(&m.wamid).unwrap_or_default();
            rows.sort_by(|a, b| {
                let key = |h: &HistoryRow| {
                    (
                        h.occurred_at.unwrap_or(h.received_at),
                        h.received_at,
                        h.status_rank,
                    )
                };
                key(a)
                    .cmp(&key(b))
                    .then_with(|| a.status_word.cmp(&b.status_word))
            });
            MessageView {
                events: rows
                    .into_iter()
                    .filter_map(|h| {
                        Some(HistoryView {
                            status: Reported::from_stored(
                                i16::try_from(h.status_rank).ok()?,
                                &h.status_word,
                            )?,
                            occurred_at: h.occurred_at.map(Timestamp::from_millis),
                            received_at: Timestamp::from_millis(h.received_at),
                            error: (h.error_code.is_some() || h.error_message.is_some()).then_some(
                                EventError {
                                    code: h.error_code,
                                    message: h.error_message,
                                },
                            ),
                        })
                    })
                    .collect(),
                status: rank(m.status_rank).unwrap_or(Status::Sent),
                wamid: m.wamid,
                project_id: ProjectId::from_trusted(m.project_id),
                phone: m.phone,
                business_number: m.business_number,
                campaign_id: m.campaign_id,
                provider: m.provider,
                created_at: Timestamp::from_millis(m.created_at),
                updated_at: Timestamp::from_millis(m.updated_at),
            }
        })
        .collect()
}

fn rank(r: i32) -> Option<Status> {
    Status::from_rank(i16::try_from(r).ok()?)
}
