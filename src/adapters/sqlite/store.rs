//! `Store` on SQLite.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteDb;
use crate::adapters::sql::deliveries::{
    self as outbox_sql, Merged, NewEvent, RecipientCampaigns, SubscriberRow, campaign_of,
    new_events, outbox_rows, projects as outbox_projects,
};
use crate::adapters::sql::store::lite as q;
use crate::adapters::sql::{MessageRow, assemble, classify, history_row};
use crate::domain::apply::{MessageUpsert, Plan};
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

/// History and inbound rows per write transaction: a few milliseconds of writer time here.
const ROWS_PER_TRANSACTION: usize = 64;

/// Most rows per multi-row statement (SQLite allows 32766 bound variables per statement).
const CHUNK: usize = 256;

/// Cuts `rows` into statements of 1, 4, 16, 64 or 256 rows, padding the last one with `pad`
/// copies of its final row, so SQLite's prepared-statement cache sees five shapes per table
/// instead of one per batch size. Returns each chunk with how many of its rows are real.
/// Padding must be harmless to repeat: inserts that ignore conflicts, upserts that add nothing.
pub(super) fn padded<T: Clone>(rows: &[T], pad: impl Fn(&T) -> T) -> Vec<(Vec<T>, usize)> {
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

/// In the applying transaction: one delivery row per new event and subscribed endpoint.
/// A batch whose projects have no enabled endpoint costs one indexed read.
/// The campaigns of the recipients the plan's events name, within the transaction.
async fn recipient_campaigns(
    tx: &mut SqliteConnection,
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
    tx: &mut SqliteConnection,
    events: &[NewEvent<'_>],
) -> Result<Vec<WebhookDeliveryId>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let subscribers: Vec<SubscriberRow> = sqlx::query_as(
        "SELECT id, project_id, topics FROM endpoints \
         WHERE enabled AND project_id IN (SELECT value FROM json_each($1))",
    )
    .bind(serde_json::to_string(&outbox_projects(events)).expect("strings serialize"))
    .fetch_all(&mut *tx)
    .await?;
    let rows = outbox_rows(events, subscribers, Timestamp::now());
    insert_deliveries(tx, &rows).await
}

/// Inserts outbox rows, leaving out those whose (event, endpoint) has a delivery already;
/// returns the ids inserted.
pub(crate) async fn insert_deliveries(
    tx: &mut SqliteConnection,
    rows: &[NewDelivery],
) -> Result<Vec<WebhookDeliveryId>, sqlx::Error> {
    let refs: Vec<&NewDelivery> = rows.iter().collect();
    let mut ids = Vec::with_capacity(rows.len());
    for (chunk, _) in padded(&refs, |d| *d) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO deliveries (id, event_id, endpoint_id, project_id, event_type, payload, \
             next_attempt_at, created_at, updated_at) ",
        );
        q.push_values(&chunk, |mut b, d| {
            b.push_bind(d.id.as_str())
                .push_bind(d.event_id.as_str())
                .push_bind(d.endpoint_id.as_str())
                .push_bind(d.project_id.as_str())
                .push_bind(d.event_type)
                .push_bind(d.payload.as_str())
                .push_bind(d.next_attempt_at.millis())
                .push_bind(d.created_at.millis())
                .push_bind(d.created_at.millis());
        });
        // No conflict target: besides (event_id, endpoint_id), padding repeats a row's id.
        q.push(" ON CONFLICT DO NOTHING RETURNING id");
        let inserted: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await?;
        ids.extend(inserted.into_iter().map(WebhookDeliveryId::from_trusted));
    }
    Ok(ids)
}

#[derive(Clone)]
pub struct SqliteStore {
    pub(super) db: SqliteDb,
    /// Seals and opens the secret columns (see `sql::secrets`).
    pub(super) sealer: Arc<Sealer>,
}

impl SqliteStore {
    /// A store keeping secrets in clear; [`with_sealer`](Self::with_sealer) gives it a key.
    pub fn new(db: SqliteDb) -> SqliteStore {
        SqliteStore {
            db,
            sealer: Arc::new(Sealer::clear()),
        }
    }

    pub fn with_sealer(self, sealer: Arc<Sealer>) -> SqliteStore {
        SqliteStore { sealer, ..self }
    }
}

impl SqliteStore {
    async fn begin(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.db.begin_write().await.map_err(classify)
    }

    /// One transaction: history rows (learning which are new), then the messages they change,
    /// then inbound messages.
    async fn apply_part(&self, plan: &Plan<'_>) -> Result<Applied, StoreError> {
        // Relaxed: the batch is acked after this commit and its deliveries published, and
        // a publish is a durable commit, so none of it is an effect without its cause.
        let mut tx = self.db.begin_relaxed().await.map_err(classify)?;
        let mut applied = Applied::default();
        // One writer holds the database, so the owners read here cannot change before commit.
        let wamids = plan.wamids();
        let owners: HashMap<String, String> = if wamids.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as(
                "SELECT wamid, project_id FROM messages \
                 WHERE wamid IN (SELECT value FROM json_each($1))",
            )
            .bind(serde_json::to_string(&wamids).expect("strings serialize"))
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?
            .into_iter()
            .collect()
        };
        let (plan, refused) = plan.owned(|w| owners.get(w).map(String::as_str));
        applied.mismatched = refused;
        let plan = &plan;
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
        let is_new = |w: &str, s: &Reported| {
            new.contains(&(w.to_owned(), i64::from(s.code()), s.key_word().to_owned()))
        };
        let campaigns = recipient_campaigns(&mut tx, plan).await.map_err(classify)?;
        let mut upserts = plan.messages(is_new);
        for u in &mut upserts {
            u.with_recipient_campaign(|r, p| campaign_of(&campaigns, r, p));
        }
        // Each changed message's status and campaign after the merge: what its deliveries say.
        let mut merged: HashMap<String, Merged> = HashMap::with_capacity(upserts.len());
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
                 campaign_id = COALESCE(messages.campaign_id, excluded.campaign_id) \
                 WHERE messages.project_id = excluded.project_id \
                 RETURNING wamid, status_rank, campaign_id",
            );
            let rows: Vec<(String, i64, Option<String>)> = q
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
            merged.extend(rows.into_iter().map(|(w, rank, c)| (w, (rank, c))));
        }
        let mut fresh_inbound: HashSet<String> = HashSet::new();
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
            // Padding conflicts with its original, so only real new rows come back.
            q.push(" ON CONFLICT DO NOTHING RETURNING message_id");
            let inserted: Vec<String> = q
                .build_query_scalar()
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
            applied.new_inbound += inserted.len() as u64;
            applied.duplicate_inbound += (real - inserted.len()) as u64;
            fresh_inbound.extend(inserted);
        }
        let events = new_events(
            plan,
            is_new,
            |w| merged.get(w).cloned(),
            |id| fresh_inbound.contains(id),
        );
        applied.deliveries = outbox(&mut tx, &events).await.map_err(classify)?;
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
        let mut tx = self.begin().await?;
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
        q::project_by_key(&self.db.read, key)
            .await
            .map_err(classify)
    }

    async fn number_by_meta_id(
        &self,
        id: &str,
    ) -> Result<Option<(ProjectId, PhoneNumber)>, StoreError> {
        q::number_by_meta_id(&self.db.read, id)
            .await
            .map_err(classify)
    }

    async fn project_by_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Option<ProjectId>, StoreError> {
        q::project_by_number(&self.db.read, number)
            .await
            .map_err(classify)
    }

    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        let found = q::projects(&self.db.read, Some(id), None, 1).await;
        Ok(found.map_err(classify)?.into_iter().next())
    }

    async fn projects(
        &self,
        after: Option<&ProjectId>,
        limit: u32,
    ) -> Result<Vec<Project>, StoreError> {
        q::projects(&self.db.read, None, after, limit)
            .await
            .map_err(classify)
    }

    async fn add_number(&self, id: &ProjectId, n: &BusinessNumber) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let added = q::add_number(&mut tx, id, n).await?;
        tx.commit().await.map_err(classify)?;
        Ok(added)
    }

    async fn remove_number(&self, id: &ProjectId, n: &PhoneNumber) -> Result<bool, StoreError> {
        q::remove_number(&self.db.write, id, n)
            .await
            .map_err(classify)
    }

    async fn rotate_key(
        &self,
        id: &ProjectId,
        new: &ApiKeyHash,
    ) -> Result<Option<ApiKeyHash>, StoreError> {
        let mut tx = self.begin().await?;
        let old = q::rotate_key(&mut tx, id, new).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(old)
    }

    /// Applies in transactions of at most `ROWS_PER_TRANSACTION` rows: SQLite has one writer,
    /// and a long transaction here would hold every webhook commit behind it. The parts are
    /// independent (see `Plan::split`), so a crash between them leaves a state that the
    /// redelivered batch completes.
    async fn apply(&self, plan: &Plan<'_>) -> Result<Applied, StoreError> {
        let mut total = Applied::default();
        for part in plan.split(ROWS_PER_TRANSACTION) {
            total.add(self.apply_part(&part).await?);
        }
        Ok(total)
    }
    async fn message(
        &self,
        project: &ProjectId,
        wamid: &str,
    ) -> Result<Option<MessageView>, StoreError> {
        let Some(row) = q::message_one(&self.db.read, project, wamid)
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
        let rows = q::message_page(&self.db.read, project, query)
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
        q::inbound(&self.db.read, project, after, limit)
            .await
            .map_err(classify)
    }

    async fn stats(&self, project: &ProjectId) -> Result<ProjectStats, StoreError> {
        q::stats(&self.db.read, project).await.map_err(classify)
    }

    async fn quarantine(&self, items: &[Quarantined]) -> Result<(), StoreError> {
        q::quarantine(&self.db.write, items).await.map_err(classify)
    }

    async fn quarantined(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError> {
        q::quarantined(&self.db.read, before, limit)
            .await
            .map_err(classify)
    }

    async fn claim_quarantined(
        &self,
        filter: &QuarantineFilter,
        token: &str,
        limit: u32,
    ) -> Result<Vec<QuarantineView>, StoreError> {
        q::claim_quarantined(&self.db.write, filter, token, limit)
            .await
            .map_err(classify)
    }

    async fn prune_raw(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        q::prune_raw(&self.db.write, before, limit)
            .await
            .map_err(classify)
    }

    async fn release_quarantined(&self, ids: &[i64], token: &str) -> Result<u64, StoreError> {
        q::release_quarantined(&self.db.write, ids, token)
            .await
            .map_err(classify)
    }
}
