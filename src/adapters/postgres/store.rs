//! `Store` on PostgreSQL: batches go in as arrays through `unnest`, one statement per table.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

use crate::adapters::sql::deliveries::{
    self as outbox_sql, NewEvent, RecipientCampaigns, SubscriberRow, campaign_of, new_events,
    outbox_rows, projects as outbox_projects,
};
use crate::adapters::sql::store::pg as q;
use crate::adapters::sql::{self, assemble, classify, history_row, migrator};
use crate::domain::apply::Plan;
use crate::domain::delivery::outbox::NewDelivery;
use crate::domain::endpoint::WebhookDeliveryId;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{ApiKeyHash, BusinessNumber, NewProject, Project, ProjectId};
use crate::domain::status::Reported;
use crate::domain::time::Timestamp;
use crate::ports::store::{
    Applied, InboundView, MessageQuery, MessageView, ProjectStats, QuarantineFilter,
    QuarantineView, Quarantined,
};
use crate::ports::{Store, StoreError};
use crate::services::Sealer;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "ownership_and_replay",
        include_str!("../../../migrations/postgres/0002_ownership_and_replay.sql"),
    ),
    (
        3,
        "reported_statuses",
        include_str!("../../../migrations/postgres/0003_reported_statuses.sql"),
    ),
    (
        4,
        "endpoints",
        include_str!("../../../migrations/postgres/0004_endpoints.sql"),
    ),
    (
        5,
        "raw_retention",
        include_str!("../../../migrations/postgres/0005_raw_retention.sql"),
    ),
    (
        6,
        "delivery_budget",
        include_str!("../../../migrations/postgres/0006_delivery_budget.sql"),
    ),
    (
        7,
        "campaigns",
        include_str!("../../../migrations/postgres/0007_campaigns.sql"),
    ),
    (
        9,
        "campaign_recovery",
        include_str!("../../../migrations/postgres/0009_campaign_recovery.sql"),
    ),
    (
        11,
        "meta_phone_number_ids",
        include_str!("../../../migrations/postgres/0011_meta_phone_number_ids.sql"),
    ),
];

/// Deadlocks and serialization failures are retried this many times inside `apply`.
const APPLY_TRIES: u32 = 3;

#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// Seals and opens the secret columns (see `sql::secrets`).
    pub(super) sealer: Arc<Sealer>,
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
        Ok(PgStore {
            pool,
            sealer: Arc::new(Sealer::clear()),
        })
    }

    /// This store with a key for the secret columns (a connected store keeps them in clear).
    pub fn with_sealer(self, sealer: Arc<Sealer>) -> PgStore {
        PgStore { sealer, ..self }
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
        let wamids = plan.wamids();
        let owners: HashMap<String, String> = if wamids.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as("SELECT wamid, project_id FROM messages WHERE wamid = ANY($1)")
                .bind(&wamids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect()
        };
        let (plan, refused) = plan.owned(|w| owners.get(w).map(String::as_str));
        applied.mismatched = refused;
        let plan = &plan;
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
        let is_new = |w: &str, s: &Reported| {
            new.contains(&(w.to_owned(), i32::from(s.code()), s.key_word().to_owned()))
        };
        let campaigns = recipient_campaigns(&mut tx, plan).await?;
        let mut upserts = plan.messages(is_new);
        for u in &mut upserts {
            u.with_recipient_campaign(|r, p| campaign_of(&campaigns, r, p));
        }
        // Each changed message's status and campaign after the merge (what its deliveries
        // say); a wamid missing here lost the race for its ownership.
        let mut merged: HashMap<String, (i32, Option<String>)> = HashMap::new();
        if !upserts.is_empty() {
            let m = &upserts;
            // The merge rule, in SQL: status is the max rank; known fields are never erased.
            // A message another project created since the ownership check above is left as
            // it is (the WHERE) and does not come back from RETURNING.
            merged = sqlx::query_as(
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
                 campaign_id = COALESCE(messages.campaign_id, EXCLUDED.campaign_id) \
                 WHERE messages.project_id = EXCLUDED.project_id \
                 RETURNING wamid, status_rank, campaign_id",
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
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(w, rank, c): (String, i32, Option<String>)| (w, (rank, c)))
            .collect();
            let lost: Vec<_> = m.iter().filter(|u| !merged.contains_key(u.wamid)).collect();
            if !lost.is_empty() {
                // Lost the race to own these messages: take back the history rows this
                // transaction added for them.
                let removed = sqlx::query(
                    "DELETE FROM message_events e USING unnest($1::text[], $2::text[]) AS u(w, p) \
                     WHERE e.wamid = u.w AND e.project_id = u.p",
                )
                .bind(lost.iter().map(|u| u.wamid).collect::<Vec<_>>())
                .bind(
                    lost.iter()
                        .map(|u| u.project_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .execute(&mut *tx)
                .await?
                .rows_affected();
                applied.new_history -= removed;
                applied.mismatched.extend(
                    lost.iter()
                        .map(|u| (u.wamid.to_owned(), u.project_id.clone())),
                );
            }
        }
        let mut fresh_inbound: HashSet<String> = HashSet::new();
        if !plan.inbound.is_empty() {
            let i = &plan.inbound;
            fresh_inbound = sqlx::query_scalar(
                "INSERT INTO inbound_messages (message_id, project_id, provider, business_number, \
                 from_phone, profile_name, kind, body, occurred_at, received_at, raw) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[]) \
                 ON CONFLICT DO NOTHING RETURNING message_id",
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
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            applied.new_inbound = fresh_inbound.len() as u64;
            applied.duplicate_inbound = i.len() as u64 - applied.new_inbound;
        }
        let events = new_events(
            plan,
            is_new,
            |w| merged.get(w).map(|(r, c)| (i64::from(*r), c.clone())),
            |id| fresh_inbound.contains(id),
        );
        applied.deliveries = outbox(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(applied)
    }
}

/// In the applying transaction: one delivery row per new event and subscribed endpoint.
/// A batch whose projects have no enabled endpoint costs one indexed read.
/// The campaigns of the recipients the plan's events name, within the transaction.
async fn recipient_campaigns(
    tx: &mut PgConnection,
    plan: &Plan<'_>,
) -> Result<RecipientCampaigns, sqlx::Error> {
    let ids = plan.recipients();
    if ids.is_empty() {
        return Ok(RecipientCampaigns::new());
    }
    let rows = q::recipient_campaigns(tx, &ids).await?;
    Ok(outbox_sql::recipient_campaigns(rows))
}

async fn outbox(
    tx: &mut PgConnection,
    events: &[NewEvent<'_>],
) -> Result<Vec<WebhookDeliveryId>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let subscribers: Vec<SubscriberRow> = sqlx::query_as(
        "SELECT id, project_id, topics FROM endpoints WHERE enabled AND project_id = ANY($1)",
    )
    .bind(outbox_projects(events))
    .fetch_all(&mut *tx)
    .await?;
    let rows = outbox_rows(events, subscribers, Timestamp::now());
    insert_deliveries(tx, &rows).await
}

/// Inserts outbox rows, leaving out those whose (event, endpoint) has a delivery already;
/// returns the ids inserted.
pub(crate) async fn insert_deliveries(
    tx: &mut PgConnection,
    rows: &[NewDelivery],
) -> Result<Vec<WebhookDeliveryId>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "INSERT INTO deliveries (id, event_id, endpoint_id, project_id, event_type, payload, \
         next_attempt_at, created_at, updated_at) \
         SELECT i, e, ep, p, t, b, n, c, c FROM unnest($1::text[], $2::text[], $3::text[], \
         $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[]) AS u(i, e, ep, p, t, b, n, c) \
         ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING id",
    )
    .bind(rows.iter().map(|d| d.id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|d| d.endpoint_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|d| d.project_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|d| d.event_type).collect::<Vec<_>>())
    .bind(rows.iter().map(|d| d.payload.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|d| d.next_attempt_at.millis())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|d| d.created_at.millis())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(ids
        .into_iter()
        .map(WebhookDeliveryId::from_trusted)
        .collect())
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
        q::insert_project(&mut tx, p, key, now).await?;
        tx.commit().await.map_err(classify)?;
        Ok(Project {
            id: p.id.clone(),
            name: p.name.clone(),
            numbers: p.numbers.clone(),
            created_at: now,
        })
    }

    async fn project_by_key(&self, key: &ApiKeyHash) -> Result<Option<ProjectId>, StoreError> {
        q::project_by_key(&self.pool, key).await.map_err(classify)
    }

    async fn number_by_meta_id(
        &self,
        id: &str,
    ) -> Result<Option<(ProjectId, PhoneNumber)>, StoreError> {
        q::number_by_meta_id(&self.pool, id).await.map_err(classify)
    }

    async fn project_by_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Option<ProjectId>, StoreError> {
        q::project_by_number(&self.pool, number)
            .await
            .map_err(classify)
    }

    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        let found = q::projects(&self.pool, Some(id), None, 1).await;
        Ok(found.map_err(classify)?.into_iter().next())
    }

    async fn projects(
        &self,
        after: Option<&ProjectId>,
        limit: u32,
    ) -> Result<Vec<Project>, StoreError> {
        q::projects(&self.pool, None, after, limit)
            .await
            .map_err(classify)
    }

    async fn add_number(&self, id: &ProjectId, n: &BusinessNumber) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let added = q::add_number(&mut tx, id, n).await?;
        tx.commit().await.map_err(classify)?;
        Ok(added)
    }

    async fn remove_number(&self, id: &ProjectId, n: &PhoneNumber) -> Result<bool, StoreError> {
        q::remove_number(&self.pool, id, n).await.map_err(classify)
    }

    async fn rotate_key(
        &self,
        id: &ProjectId,
        new: &ApiKeyHash,
    ) -> Result<Option<ApiKeyHash>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let old = q::rotate_key(&mut tx, id, new).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(old)
    }

    async fn apply(&self, plan: &Plan<'_>) -> Result<Applied, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.apply_once(plan).await.map_err(classify) {
                // Rows are sorted, so deadlocks should not happen; if two processors still
                // collide, the loser's transaction is rolled back whole and simply runs again.
                Err(StoreError::Contention(_)) if tries < APPLY_TRIES => continue,
                other => return other,
            }
        }
    }

    async fn message(
        &self,
        project: &ProjectId,
        wamid: &str,
    ) -> Result<Option<MessageView>, StoreError> {
        let Some(row) = q::message_one(&self.pool, project, wamid)
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let views = self.with_history(vec![row]).await.map_err(classify)?;
        Ok(views.into_iter().next())
    }

    async fn messages(
        &self,
        project: &ProjectId,
        query: &MessageQuery,
    ) -> Result<Vec<MessageView>, StoreError> {
        let rows = q::message_page(&self.pool, project, query)
            .await
            .map_err(classify)?;
        self.with_history(rows).await.map_err(classify)
    }

    async fn inbound(
        &self,
        project: &ProjectId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboundView>, StoreError> {
        q::inbound(&self.pool, project, after, limit)
            .await
            .map_err(classify)
    }

    async fn stats(&self, project: &ProjectId) -> Result<ProjectStats, StoreError> {
        q::stats(&self.pool, project).await.map_err(classify)
    }

    async fn quarantine(&self, items: &[Quarantined]) -> Result<(), StoreError> {
        q::quarantine(&self.pool, items).await.map_err(classify)
    }

    async fn quarantined(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError> {
        q::quarantined(&self.pool, before, limit)
            .await
            .map_err(classify)
    }

    async fn claim_quarantined(
        &self,
        filter: &QuarantineFilter,
        token: &str,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError> {
        q::claim_quarantined(&self.pool, filter, token, limit)
            .await
            .map_err(classify)
    }

    async fn prune_raw(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        q::prune_raw(&self.pool, before, limit)
            .await
            .map_err(classify)
    }

    async fn release_quarantined(&self, ids: &[i64], token: &str) -> Result<u64, StoreError> {
        q::release_quarantined(&self.pool, ids, token)
            .await
            .map_err(classify)
    }
}
