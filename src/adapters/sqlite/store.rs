//! `Store` on SQLite.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteDb;
use crate::adapters::sql::{
    self, MessageRow, assemble, classify, history_row, message_row, or_conflict,
};
use crate::domain::apply::{MessageUpsert, Plan};
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{ApiKeyHash, NewProject, Project, ProjectId};
use crate::domain::time::Timestamp;
use crate::ports::store::{
    Applied, InboundView, MessageQuery, MessageView, ProjectStats, QuarantineView, Quarantined,
};
use crate::ports::{Store, StoreError};

/// History and inbound rows per write transaction: a few milliseconds of writer time here.
const ROWS_PER_TRANSACTION: usize = 64;

/// Most rows per multi-row statement (SQLite allows 32766 bound variables per statement).
const CHUNK: usize = 256;

/// Cuts `rows` into statements of 1, 4, 16, 64 or 256 rows, padding the last one with `pad`
/// copies of its final row, so SQLite's prepared-statement cache sees five shapes per table
/// instead of one per batch size. Returns each chunk with how many of its rows are real.
/// Padding must be harmless to repeat: inserts that ignore conflicts, upserts that add nothing.
fn padded<T: Clone>(rows: &[T], pad: impl Fn(&T) -> T) -> Vec<(Vec<T>, usize)> {
    rows.chunks(CHUNK)
        .map(|chunk| {
            let shape = (0..5)
                .map(|k| 4usize.pow(k))
                .find(|&n| n >= chunk.len())
                .unwrap_or(CHUNK);
            let mut v = chunk.to_vec();
            let last = pad(v.last().expect("chunks are never empty"));
            v.resize(shape, last);
            (v, chunk.len())
        })
        .collect()
}

#[derive(Clone)]
pub struct SqliteStore {
    db: SqliteDb,
}

impl SqliteStore {
    pub fn new(db: SqliteDb) -> SqliteStore {
        SqliteStore { db }
    }
}

impl SqliteStore {
    /// One transaction: history rows (learning which are new), then the messages they change,
    /// then inbound messages.
    async fn apply_part(&self, plan: &Plan<'_>) -> Result<Applied, StoreError> {
        let mut tx = self
            .db
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        let mut applied = Applied::default();
        let mut new: HashSet<(String, i64, String)> = HashSet::with_capacity(plan.history.len());
        for (chunk, _) in padded(&plan.history, |h| *h) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO message_events (wamid, status_rank, project_id, provider, occurred_at, \
                 received_at, error_code, error_message, raw, status_word) ",
            );
            q.push_values(&chunk, |mut b, h| {
                let e = h.event;
                b.push_bind(e.wamid.as_str())
                    .push_bind(e.status.code())
                    .push_bind(h.project_id.as_str())
                    .push_bind(e.provider.as_str())
                    .push_bind(e.occurred_at.map(Timestamp::millis))
                    .push_bind(h.received_at.millis())
                    .push_bind(e.error.as_ref().and_then(|x| x.code.as_deref()))
                    .push_bind(e.error.as_ref().and_then(|x| x.message.as_deref()))
                    .push_bind(e.raw.get())
                    .push_bind(e.status.key_word());
            });
            q.push(" ON CONFLICT DO NOTHING RETURNING wamid, status_rank, status_word");
            let rows: Vec<(String, i64, String)> = q
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
            new.extend(rows);
        }
        applied.new_history = new.len() as u64;
        applied.duplicate_history = plan.history.len() as u64 - applied.new_history;
        let upserts = plan.messages(|w, s| {
            new.contains(&(w.to_owned(), i64::from(s.code()), s.key_word().to_owned()))
        });
        // Padding repeats the last upsert with no new events: the max and the sum ignore it.
        for (chunk, _) in padded(&upserts, |m| MessageUpsert {
            new_events: 0,
            ..m.clone()
        }) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO messages (wamid, project_id, provider, status_rank, business_number, \
                 phone, campaign_id, event_count, created_at, updated_at) ",
            );
            q.push_values(&chunk, |mut b, m| {
                b.push_bind(m.wamid)
                    .push_bind(m.project_id.as_str())
                    .push_bind(m.provider.as_str())
                    .push_bind(m.status.rank())
                    .push_bind(m.business_number.as_str())
                    .push_bind(m.phone.map(PhoneNumber::as_str))
                    .push_bind(m.campaign_id)
                    .push_bind(m.new_events)
                    .push_bind(m.updated_at.millis())
                    .push_bind(m.updated_at.millis());
            });
            // The merge rule, in SQL: status is the max rank; known fields are never erased.
            q.push(
                " ON CONFLICT (wamid) DO UPDATE SET \
                 status_rank = MAX(messages.status_rank, excluded.status_rank), \
                 event_count = messages.event_count + excluded.event_count, \
                 updated_at = MAX(messages.updated_at, excluded.updated_at), \
                 provider = COALESCE(messages.provider, excluded.provider), \
                 business_number = COALESCE(messages.business_number, excluded.business_number), \
                 phone = COALESCE(messages.phone, excluded.phone), \
                 campaign_id = COALESCE(messages.campaign_id, excluded.campaign_id)",
            );
            q.build().execute(&mut *tx).await.map_err(classify)?;
        }
        for (chunk, real) in padded(&plan.inbound, |i| *i) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO inbound_messages (message_id, project_id, provider, business_number, \
                 from_phone, profile_name, kind, body, occurred_at, received_at, raw) ",
            );
            q.push_values(&chunk, |mut b, i| {
                let m = i.message;
                b.push_bind(m.message_id.as_str())
                    .push_bind(i.project_id.as_str())
                    .push_bind(m.provider.as_str())
                    .push_bind(m.business_number.as_str())
                    .push_bind(m.from.as_str())
                    .push_bind(m.profile_name.as_deref())
                    .push_bind(m.kind.as_str())
                    .push_bind(m.text.as_deref())
                    .push_bind(m.occurred_at.map(Timestamp::millis))
                    .push_bind(i.received_at.millis())
                    .push_bind(m.raw.get());
            });
            q.push(" ON CONFLICT DO NOTHING");
            let inserted = q
                .build()
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
            applied.new_inbound += inserted;
            applied.duplicate_inbound += real as u64 - inserted;
        }
        tx.commit().await.map_err(classify)?;
        Ok(applied)
    }

    async fn with_history(&self, rows: Vec<MessageRow>) -> Result<Vec<MessageView>, sqlx::Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT wamid, status_rank, status_word, occurred_at, received_at, error_code, \
             error_message FROM message_events WHERE wamid IN (",
        );
        let mut sep = q.separated(",");
        for m in &rows {
            sep.push_bind(m.wamid.as_str());
        }
        q.push(")");
        let history = q
            .build()
            .fetch_all(&self.db.read)
            .await?
            .iter()
            .map(history_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(assemble(rows, history))
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.db.read)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn create_project(
        &self,
        p: &NewProject,
        key: &ApiKeyHash,
        now: Timestamp,
    ) -> Result<Project, StoreError> {
        let mut tx = self
            .db
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        sqlx::query(
            "INSERT INTO projects (id, name, api_key_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(p.id.as_str())
        .bind(&p.name)
        .bind(key.as_str())
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(or_conflict(|| format!("project `{}` already exists", p.id)))?;
        for n in &p.phone_numbers {
            sqlx::query("INSERT INTO business_numbers (number, project_id) VALUES (?, ?)")
                .bind(n.as_str())
                .bind(p.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(or_conflict(|| {
                    format!("business number {n} belongs to another project")
                }))?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(Project {
            id: p.id.clone(),
            name: p.name.clone(),
            phone_numbers: p.phone_numbers.clone(),
            created_at: now,
        })
    }

    async fn project_by_key(&self, key: &ApiKeyHash) -> Result<Option<ProjectId>, StoreError> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM projects WHERE api_key_hash = ?")
                .bind(key.as_str())
                .fetch_optional(&self.db.read)
                .await
                .map_err(classify)?;
        Ok(id.map(ProjectId::from_trusted))
    }

    async fn project_by_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Option<ProjectId>, StoreError> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT project_id FROM business_numbers WHERE number = ?")
                .bind(number.as_str())
                .fetch_optional(&self.db.read)
                .await
                .map_err(classify)?;
        Ok(id.map(ProjectId::from_trusted))
    }

    /// Applies in transactions of at most `ROWS_PER_TRANSACTION` rows: SQLite has one writer,
    /// and a long transaction here would hold every webhook commit behind it. The parts are
    /// independent (see `Plan::split`), so a crash between them leaves a state that the
    /// redelivered batch completes.
    async fn apply(&self, plan: &Plan<'_>) -> Result<Applied, StoreError> {
        let mut total = Applied::default();
        for part in plan.split(ROWS_PER_TRANSACTION) {
            let a = self.apply_part(&part).await?;
            total.new_history += a.new_history;
            total.duplicate_history += a.duplicate_history;
            total.new_inbound += a.new_inbound;
            total.duplicate_inbound += a.duplicate_inbound;
        }
        Ok(total)
    }
    async fn message(
        &self,
        project: &ProjectId,
        wamid: &str,
    ) -> Result<Option<MessageView>, StoreError> {
        let row = sqlx::query("SELECT * FROM messages WHERE wamid = ? AND project_id = ?")
            .bind(wamid)
            .bind(project.as_str())
            .fetch_optional(&self.db.read)
            .await
            .map_err(classify)?;
        let Some(row) = row else { return Ok(None) };
        let views = self
            .with_history(vec![message_row(&row).map_err(classify)?])
            .await
            .map_err(classify)?;
        Ok(views.into_iter().next())
    }

    async fn messages(
        &self,
        project: &ProjectId,
        query: &MessageQuery,
    ) -> Result<Vec<MessageView>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM messages WHERE project_id = ");
        q.push_bind(project.as_str());
        if let Some(c) = &query.campaign_id {
            q.push(" AND campaign_id = ").push_bind(c.as_str());
        }
        if let Some(s) = query.status {
            q.push(" AND status_rank = ").push_bind(s.rank());
        }
        if let Some(after) = &query.after {
            q.push(" AND wamid > ").push_bind(after.as_str());
        }
        q.push(" ORDER BY wamid LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = q
            .build()
            .fetch_all(&self.db.read)
            .await
            .map_err(classify)?
            .iter()
            .map(message_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        self.with_history(rows).await.map_err(classify)
    }

    async fn inbound(
        &self,
        project: &ProjectId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboundView>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM inbound_messages WHERE project_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(project.as_str())
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.db.read)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(sql::inbound_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn stats(&self, project: &ProjectId) -> Result<ProjectStats, StoreError> {
        let by_status: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT status_rank, COUNT(*) FROM messages WHERE project_id = ? GROUP BY status_rank",
        )
        .bind(project.as_str())
        .fetch_all(&self.db.read)
        .await
        .map_err(classify)?;
        let history: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(event_count), 0) FROM messages WHERE project_id = ?",
        )
        .bind(project.as_str())
        .fetch_one(&self.db.read)
        .await
        .map_err(classify)?;
        let inbound: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM inbound_messages WHERE project_id = ?")
                .bind(project.as_str())
                .fetch_one(&self.db.read)
                .await
                .map_err(classify)?;
        Ok(sql::stats(by_status, history, inbound))
    }

    async fn quarantine(&self, items: &[Quarantined]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO quarantine (provider, reason, body, dedupe_key, received_at) ",
        );
        q.push_values(items, |mut b, i| {
            b.push_bind(i.provider.as_str())
                .push_bind(i.reason.as_str())
                .push_bind(i.body.as_str())
                .push_bind(i.dedupe_key.as_deref())
                .push_bind(i.received_at.millis());
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&self.db.write).await.map_err(classify)?;
        Ok(())
    }

    async fn quarantined(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, provider, reason, body, received_at FROM quarantine WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.db.read)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(sql::quarantine_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }
}
