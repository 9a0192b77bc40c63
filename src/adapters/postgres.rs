//! `Store` on PostgreSQL: batches go in as arrays through `unnest`, one statement per table.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::sql::{self, assemble, classify, history_row, message_row, migrator, or_conflict};
use crate::domain::apply::Plan;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{ApiKeyHash, NewProject, Project, ProjectId};
use crate::domain::time::Timestamp;
use crate::ports::store::{
    Applied, InboundView, MessageQuery, MessageView, ProjectStats, QuarantineView, Quarantined,
};
use crate::ports::{Store, StoreError};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        3,
        "reported_statuses",
        include_str!("../../migrations/postgres/0003_reported_statuses.sql"),
    ),
];

/// Deadlocks and serialization failures are retried this many times inside `apply`.
const APPLY_TRIES: u32 = 3;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects and migrates (migrations take an advisory lock, so processes starting together
    /// apply them once).
    pub async fn connect(url: &str, pool_size: u32) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad postgres url: {e}")))?
            .application_name("wagate");
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(classify)?;
        migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(PgStore { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn with_history(
        &self,
        rows: Vec<sql::MessageRow>,
    ) -> Result<Vec<MessageView>, sqlx::Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let wamids: Vec<&str> = rows.iter().map(|m| m.wamid.as_str()).collect();
        let history = sqlx::query(
            "SELECT wamid, status_rank, status_word, occurred_at, received_at, error_code, \
             error_message FROM message_events WHERE wamid = ANY($1)",
        )
        .bind(&wamids)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(history_row)
        .collect::<Result<Vec<_>, _>>()?;
        Ok(assemble(rows, history))
    }

    async fn apply_once(&self, plan: &Plan<'_>) -> Result<Applied, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut applied = Applied::default();
        let mut new: HashSet<(String, i32, String)> = HashSet::with_capacity(plan.history.len());
        if !plan.history.is_empty() {
            let h = &plan.history;
            let rows: Vec<(String, i32, String)> = sqlx::query_as(
                "INSERT INTO message_events (wamid, status_rank, project_id, provider, occurred_at, \
                 received_at, error_code, error_message, raw, status_word) \
                 SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::int8[], \
                 $6::int8[], $7::text[], $8::text[], $9::text[], $10::text[]) \
                 ON CONFLICT DO NOTHING RETURNING wamid, status_rank, status_word",
            )
            .bind(h.iter().map(|r| r.event.wamid.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|r| i32::from(r.event.status.code())).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.project_id.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.event.provider.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.event.occurred_at.map(Timestamp::millis)).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.received_at.millis()).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.event.error.as_ref().and_then(|e| e.code.as_deref())).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.event.error.as_ref().and_then(|e| e.message.as_deref())).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.event.raw.get()).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.event.status.key_word()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            new.extend(rows);
            applied.new_history = new.len() as u64;
            applied.duplicate_history = h.len() as u64 - applied.new_history;
        }
        let upserts = plan.messages(|w, s| {
            new.contains(&(w.to_owned(), i32::from(s.code()), s.key_word().to_owned()))
        });
        if !upserts.is_empty() {
            let m = &upserts;
            // The merge rule, in SQL: status is the max rank; known fields are never erased.
            sqlx::query(
                "INSERT INTO messages (wamid, project_id, provider, status_rank, business_number, \
                 phone, campaign_id, event_count, created_at, updated_at) \
                 SELECT w, p, pr, s, b, ph, c, n, t, t FROM unnest($1::text[], $2::text[], $3::text[], \
                 $4::int[], $5::text[], $6::text[], $7::text[], $8::int8[], $9::int8[]) \
                 AS u(w, p, pr, s, b, ph, c, t, n) \
                 ON CONFLICT (wamid) DO UPDATE SET \
                 status_rank = GREATEST(messages.status_rank, EXCLUDED.status_rank), \
                 event_count = messages.event_count + EXCLUDED.event_count, \
                 updated_at = GREATEST(messages.updated_at, EXCLUDED.updated_at), \
                 provider = COALESCE(messages.provider, EXCLUDED.provider), \
                 business_number = COALESCE(messages.business_number, EXCLUDED.business_number), \
                 phone = COALESCE(messages.phone, EXCLUDED.phone), \
                 campaign_id = COALESCE(messages.campaign_id, EXCLUDED.campaign_id)",
            )
            .bind(m.iter().map(|r| r.wamid).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.project_id.as_str()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.provider.as_str()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| i32::from(r.status.rank())).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.business_number.as_str()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.phone.map(PhoneNumber::as_str)).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.campaign_id).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.updated_at.millis()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.new_events).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !plan.inbound.is_empty() {
            let i = &plan.inbound;
            let inserted = sqlx::query(
                "INSERT INTO inbound_messages (message_id, project_id, provider, business_number, \
                 from_phone, profile_name, kind, body, occurred_at, received_at, raw) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(
                i.iter()
                    .map(|r| r.message.message_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(i.iter().map(|r| r.project_id.as_str()).collect::<Vec<_>>())
            .bind(
                i.iter()
                    .map(|r| r.message.provider.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                i.iter()
                    .map(|r| r.message.business_number.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                i.iter()
                    .map(|r| r.message.from.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                i.iter()
                    .map(|r| r.message.profile_name.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                i.iter()
                    .map(|r| r.message.kind.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                i.iter()
                    .map(|r| r.message.text.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                i.iter()
                    .map(|r| r.message.occurred_at.map(Timestamp::millis))
                    .collect::<Vec<_>>(),
            )
            .bind(i.iter().map(|r| r.received_at.millis()).collect::<Vec<_>>())
            .bind(i.iter().map(|r| r.message.raw.get()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            applied.new_inbound = inserted;
            applied.duplicate_inbound = i.len() as u64 - inserted;
        }
        tx.commit().await?;
        Ok(applied)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query(
            "INSERT INTO projects (id, name, api_key_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(p.id.as_str())
        .bind(&p.name)
        .bind(key.as_str())
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(or_conflict(|| format!("project `{}` already exists", p.id)))?;
        for n in &p.phone_numbers {
            sqlx::query("INSERT INTO business_numbers (number, project_id) VALUES ($1, $2)")
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
            sqlx::query_scalar("SELECT id FROM projects WHERE api_key_hash = $1")
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
        Ok(id.map(ProjectId::from_trusted))
    }

    async fn project_by_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Option<ProjectId>, StoreError> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT project_id FROM business_numbers WHERE number = $1")
                .bind(number.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
        Ok(id.map(ProjectId::from_trusted))
    }

    async fn apply(&self, plan: &Plan<'_>) -> Result<Applied, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.apply_once(plan).await.map_err(classify) {
                // Rows are sorted, so deadlocks should not happen; if two processors still
                // collide, the loser's transaction is rolled back whole and simply runs again.
                Err(StoreError::Unavailable(msg))
                    if tries < APPLY_TRIES
                        && (msg.contains("deadlock") || msg.contains("serializ")) =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    async fn message(
        &self,
        project: &ProjectId,
        wamid: &str,
    ) -> Result<Option<MessageView>, StoreError> {
        let row = sqlx::query("SELECT * FROM messages WHERE wamid = $1 AND project_id = $2")
            .bind(wamid)
            .bind(project.as_str())
            .fetch_optional(&self.pool)
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
        let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM messages WHERE project_id = ");
        q.push_bind(project.as_str());
        if let Some(c) = &query.campaign_id {
            q.push(" AND campaign_id = ").push_bind(c.as_str());
        }
        if let Some(s) = query.status {
            q.push(" AND status_rank = ").push_bind(i32::from(s.rank()));
        }
        if let Some(after) = &query.after {
            q.push(" AND wamid > ").push_bind(after.as_str());
        }
        q.push(" ORDER BY wamid LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = q
            .build()
            .fetch_all(&self.pool)
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
            "SELECT * FROM inbound_messages WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(project.as_str())
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(sql::inbound_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn stats(&self, project: &ProjectId) -> Result<ProjectStats, StoreError> {
        let by_status: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT status_rank, COUNT(*) FROM messages WHERE project_id = $1 GROUP BY status_rank",
        )
        .bind(project.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let (history, inbound): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(SUM(event_count), 0)::int8 FROM messages WHERE project_id = $1), \
                    (SELECT COUNT(*) FROM inbound_messages WHERE project_id = $1)",
        )
        .bind(project.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(sql::stats(by_status, history, inbound))
    }

    async fn quarantine(&self, items: &[Quarantined]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO quarantine (provider, reason, body, dedupe_key, received_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(
            items
                .iter()
                .map(|i| i.provider.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(items.iter().map(|i| i.reason.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.body.as_str()).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|i| i.dedupe_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            items
                .iter()
                .map(|i| i.received_at.millis())
                .collect::<Vec<_>>(),
        )
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn quarantined(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, provider, reason, body, received_at FROM quarantine WHERE id < $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(sql::quarantine_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }
}
