//! `Campaigns` on PostgreSQL: batches go in as arrays through `unnest`, one statement each, and
//! every recipient move is a conditional `UPDATE`, so concurrent senders and sweepers on any
//! number of processes each get a recipient at most once.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::PgStore;
use crate::adapters::sql::campaigns::{
    self as cq, ChangedRow, ClaimedRow, RecordColumns, SentMessage, pg as q,
};
use crate::adapters::sql::classify;
use crate::domain::campaign::{
    Campaign, CampaignCounts, CampaignId, CampaignState, ExportRow, ImportCounts, NewCampaign,
    NewRecipient, OptOutChange, RecipientId, RecipientStatus, ReportedStatus, SendJob, SendRecord,
};
use crate::domain::phone::PhoneNumber;
use crate::domain::project::ProjectId;
use crate::domain::providers::send::{ProviderSettings, SendProvider};
use crate::domain::time::Timestamp;
use crate::ports::StoreError;
use crate::ports::campaigns::{Campaigns, EchoedReference, Expired};

/// Deadlocks and serialization failures are retried this many times.
const TRIES: u32 = 3;

/// Stores accepted sends' messages, merged with what status events stored first.
async fn upsert_messages(tx: &mut PgConnection, m: &[SentMessage]) -> Result<(), sqlx::Error> {
    if m.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO messages (wamid, project_id, provider, status_rank, business_number, \
         phone, campaign_id, event_count, created_at, updated_at) \
         SELECT w, p, pr, 0, b, ph, c, 0, t, t FROM unnest($1::text[], $2::text[], $3::text[], \
         $4::text[], $5::text[], $6::text[], $7::int8[]) AS u(w, p, pr, b, ph, c, t){}",
        cq::message_merge("GREATEST")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(m.iter().map(|r| r.wamid.as_str()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.project_id.as_str()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.provider).collect::<Vec<_>>())
        .bind(
            m.iter()
                .map(|r| r.business_number.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(m.iter().map(|r| r.phone.as_str()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.campaign_id.as_str()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// After a record or repair: the message rows of the recipients that became `sent` with an id.
async fn store_sent(tx: &mut PgConnection, changed: &[ChangedRow]) -> Result<(), sqlx::Error> {
    let ids = cq::campaign_ids(changed.iter().filter(|c| c.5.is_some()).map(|c| &c.1));
    let campaigns = q::by_ids(&mut *tx, &ids).await?;
    upsert_messages(tx, &cq::sent_messages(changed, &campaigns)).await
}

impl PgStore {
    /// Runs `once` again when it lost a deadlock or serialization race: its transaction was
    /// rolled back whole, so running it again is safe.
    async fn retrying<T, F, Fut>(&self, mut once: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match once().await.map_err(classify) {
                Err(StoreError::Contention(_)) if tries < TRIES => continue,
                other => return other,
            }
        }
    }

    async fn add_once(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
        rows: &[NewRecipient],
    ) -> Result<Option<ImportCounts>, sqlx::Error> {
        let now = Timestamp::now().millis();
        let mut tx = self.pool.begin().await?;
        let owned: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM campaigns WHERE id = $1 AND project_id = $2")
                .bind(campaign.as_str())
                .bind(project.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if owned.is_none() {
            return Ok(None);
        }
        let statuses: Vec<String> = sqlx::query_scalar(
            "INSERT INTO campaign_recipients (id, campaign_id, project_id, phone, variables, \
             status, attempts, due_at, updated_at) \
             SELECT u.id, $1, $2, u.phone, u.vars, \
             CASE WHEN EXISTS (SELECT 1 FROM opt_outs o WHERE o.project_id = $2 \
                               AND o.phone = u.phone AND o.opted_out) \
                  THEN 'opted_out' ELSE 'queued' END, 0, $3, $3 \
             FROM unnest($4::text[], $5::text[], $6::text[]) AS u(id, phone, vars) \
             ON CONFLICT (campaign_id, phone) DO NOTHING RETURNING status",
        )
        .bind(campaign.as_str())
        .bind(project.as_str())
        .bind(now)
        .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.phone.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| serde_json::to_string(&r.variables).expect("variables serialize"))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let opted_out = statuses
            .iter()
            .filter(|s| s.as_str() == RecipientStatus::OptedOut.as_str())
            .count() as u64;
        Ok(Some(ImportCounts {
            accepted: statuses.len() as u64 - opted_out,
            duplicates: (rows.len() - statuses.len()) as u64,
            opted_out,
        }))
    }

    async fn claim_once(&self, ids: &[&str], now: Timestamp) -> Result<Vec<SendJob>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // A STOP that arrived after the import (a campaign scheduled for tomorrow) wins over
        // the send: checked here, in the claim's transaction, not only when the row was loaded.
        sqlx::query(
            "UPDATE campaign_recipients AS r SET status = 'opted_out', updated_at = $2 \
             FROM unnest($1::text[]) AS u(rid), opt_outs o \
             WHERE r.id = u.rid AND r.status = 'queued' AND o.project_id = r.project_id \
             AND o.phone = r.phone AND o.opted_out",
        )
        .bind(ids)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        // Each id is looked up by key (the LATERAL probe, kept a probe by its LIMIT, which stops
        // the planner from flattening it into a join), and the update joins only on the key:
        // with stale statistics the planner believes a campaign has few queued rows and would
        // otherwise walk them all through another index for every claim. `r.status = p.status` re-checks the row the way a
        // constant would, without offering the queued-rows partial index. A concurrent claim of
        // the same row waits for this one, then re-reads it, finds it `sending` and leaves it.
        let claimed: Vec<ClaimedRow> = sqlx::query_as(
            "WITH picked AS MATERIALIZED (SELECT x.id, x.status FROM unnest($1::text[]) AS u(rid) \
               CROSS JOIN LATERAL (SELECT id, status, campaign_id FROM campaign_recipients \
                 WHERE id = u.rid AND status = 'queued' LIMIT 1) x \
               JOIN campaigns c ON c.id = x.campaign_id AND c.state = 'running') \
             UPDATE campaign_recipients AS r SET status = 'sending', attempts = r.attempts + 1, \
             sending_since = $2, updated_at = $2 FROM picked p \
             WHERE r.id = p.id AND r.status = p.status \
             RETURNING r.id, r.campaign_id, r.project_id, r.phone, r.variables, r.attempts",
        )
        .bind(ids)
        .bind(now.millis())
        .fetch_all(&mut *tx)
        .await?;
        let campaigns = q::by_ids(&mut tx, &cq::campaign_ids(claimed.iter().map(|c| &c.1))).await?;
        let jobs = cq::jobs(claimed, &campaigns)?;
        tx.commit().await?;
        Ok(jobs)
    }

    async fn record_once(&self, results: &[SendRecord]) -> Result<u64, sqlx::Error> {
        let cols: Vec<RecordColumns> = results.iter().map(RecordColumns::of).collect();
        let mut tx = self.pool.begin().await?;
        let changed: Vec<ChangedRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(cq::record_sql(cq::RECORD_ROWS_PG)))
                .bind(cols.iter().map(|c| c.id).collect::<Vec<_>>())
                .bind(cols.iter().map(|c| c.status).collect::<Vec<_>>())
                .bind(cols.iter().map(|c| c.due_at).collect::<Vec<_>>())
                .bind(
                    cols.iter()
                        .map(|c| c.provider_message_id)
                        .collect::<Vec<_>>(),
                )
                .bind(cols.iter().map(|c| c.error_code).collect::<Vec<_>>())
                .bind(cols.iter().map(|c| c.error_title).collect::<Vec<_>>())
                .bind(cols.iter().map(|c| c.undo_attempt).collect::<Vec<_>>())
                .bind(cols.iter().map(|c| c.at).collect::<Vec<_>>())
                .fetch_all(&mut *tx)
                .await?;
        store_sent(&mut tx, &changed).await?;
        tx.commit().await?;
        Ok(changed.len() as u64)
    }

    async fn repair_once(&self, echoes: &[EchoedReference]) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let changed: Vec<ChangedRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(cq::repair_sql(cq::REPAIR_ROWS_PG)))
                .bind(
                    echoes
                        .iter()
                        .map(|e| e.recipient.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    echoes
                        .iter()
                        .map(|e| e.project_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    echoes
                        .iter()
                        .map(|e| e.provider_message_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(echoes.iter().map(|e| e.at.millis()).collect::<Vec<_>>())
                .fetch_all(&mut *tx)
                .await?;
        store_sent(&mut tx, &changed).await?;
        tx.commit().await?;
        Ok(changed.len() as u64)
    }
}

#[async_trait]
impl Campaigns for PgStore {
    async fn create(&self, c: &NewCampaign) -> Result<(), StoreError> {
        q::create(&self.pool, c).await
    }

    async fn get(
        &self,
        project: &ProjectId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError> {
        q::get(&self.pool, project, id).await.map_err(classify)
    }

    async fn list(
        &self,
        project: &ProjectId,
        before: Option<&CampaignId>,
        limit: u32,
    ) -> Result<Vec<Campaign>, StoreError> {
        q::list(&self.pool, project, before, limit)
            .await
            .map_err(classify)
    }

    async fn transition(
        &self,
        id: &CampaignId,
        from: &[CampaignState],
        to: CampaignState,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        q::transition(&self.pool, id, from, to, at)
            .await
            .map_err(classify)
    }

    async fn set_schedule(&self, id: &CampaignId, at: Option<Timestamp>) -> Result<(), StoreError> {
        q::set_schedule(&self.pool, id, at).await.map_err(classify)
    }

    async fn set_last_error(&self, id: &CampaignId, error: Option<&str>) -> Result<(), StoreError> {
        q::set_last_error(&self.pool, id, error)
            .await
            .map_err(classify)
    }

    async fn add_recipients(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
        rows: &[NewRecipient],
    ) -> Result<ImportCounts, StoreError> {
        if rows.is_empty() {
            return Ok(ImportCounts::default());
        }
        self.add_once(project, campaign, rows)
            .await
            .map_err(classify)?
            .ok_or_else(|| {
                StoreError::Rejected(format!("project {project} has no campaign {campaign}"))
            })
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<RecipientId>, StoreError> {
        // Per running campaign, its oldest due rows through its own index range (the queued
        // rows of drafts and paused campaigns are never walked past); SKIP LOCKED lets a second
        // sweeper take the next rows instead of waiting for these.
        let ids: Vec<String> = sqlx::query_scalar(
            "WITH due AS (SELECT d.id, d.due_at FROM campaigns c CROSS JOIN LATERAL \
               (SELECT r.id, r.due_at FROM campaign_recipients r WHERE r.campaign_id = c.id \
                AND r.status = 'queued' AND r.due_at <= $1 ORDER BY r.due_at, r.id LIMIT $3 \
                FOR UPDATE SKIP LOCKED) d \
               WHERE c.state = 'running' ORDER BY d.due_at, d.id LIMIT $3), \
             claimed AS (UPDATE campaign_recipients r SET due_at = $2 FROM due \
               WHERE r.id = due.id RETURNING r.id, due.due_at AS was) \
             SELECT id FROM claimed ORDER BY was, id",
        )
        .bind(now.millis())
        .bind(now.plus(lease).millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(ids.into_iter().map(RecipientId::from_trusted).collect())
    }

    async fn claim(&self, ids: &[RecipientId], now: Timestamp) -> Result<Vec<SendJob>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Sorted, so concurrent claims lock overlapping rows in one order.
        let mut ids: Vec<&str> = ids.iter().map(RecipientId::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        self.retrying(|| self.claim_once(&ids, now)).await
    }

    async fn record(&self, results: &[SendRecord]) -> Result<u64, StoreError> {
        if results.is_empty() {
            return Ok(0);
        }
        let mut sorted: Vec<&SendRecord> = results.iter().collect();
        sorted.sort_by(|a, b| a.recipient.cmp(&b.recipient));
        let sorted: Vec<SendRecord> = sorted.into_iter().cloned().collect();
        self.retrying(|| self.record_once(&sorted)).await
    }

    async fn expire_sending(
        &self,
        before: Timestamp,
        limit: u32,
        max_attempts: u32,
    ) -> Result<Expired, StoreError> {
        let (unknown, resent) =
            q::expire_sending(&self.pool, before, limit, max_attempts, Timestamp::now())
                .await
                .map_err(classify)?;
        Ok(Expired { unknown, resent })
    }

    async fn release(&self, ids: &[RecipientId], now: Timestamp) -> Result<u64, StoreError> {
        q::release(&self.pool, ids, now).await.map_err(classify)
    }

    async fn retry_failed(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
    ) -> Result<u64, StoreError> {
        q::retry_failed(&self.pool, project, campaign, Timestamp::now())
            .await
            .map_err(classify)
    }

    async fn due_scheduled(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<CampaignId>, StoreError> {
        q::due_scheduled(&self.pool, now, limit)
            .await
            .map_err(classify)
    }

    async fn finish_done(&self, now: Timestamp, limit: u32) -> Result<Vec<CampaignId>, StoreError> {
        q::finish_done(&self.pool, now, limit)
            .await
            .map_err(classify)
    }

    async fn repair(&self, echoes: &[EchoedReference]) -> Result<u64, StoreError> {
        if echoes.is_empty() {
            return Ok(0);
        }
        let mut sorted = echoes.to_vec();
        sorted.sort_by(|a, b| a.recipient.cmp(&b.recipient));
        self.retrying(|| self.repair_once(&sorted)).await
    }

    async fn retry_unknown(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
    ) -> Result<u64, StoreError> {
        q::retry_unknown(&self.pool, project, campaign, Timestamp::now())
            .await
            .map_err(classify)
    }

    async fn cancel_queued(&self, campaign: &CampaignId) -> Result<u64, StoreError> {
        q::cancel_queued(&self.pool, campaign, Timestamp::now())
            .await
            .map_err(classify)
    }

    async fn make_due(&self, campaign: &CampaignId, now: Timestamp) -> Result<u64, StoreError> {
        q::make_due(&self.pool, campaign, now)
            .await
            .map_err(classify)
    }

    async fn counts(&self, campaign: &CampaignId) -> Result<CampaignCounts, StoreError> {
        q::counts(&self.pool, campaign).await.map_err(classify)
    }

    async fn lanes(
        &self,
        recipients: &[RecipientId],
    ) -> Result<Vec<(RecipientId, PhoneNumber, Option<u32>)>, StoreError> {
        q::lanes(&self.pool, recipients).await.map_err(classify)
    }

    async fn has_outstanding(&self, campaign: &CampaignId) -> Result<bool, StoreError> {
        q::has_outstanding(&self.pool, campaign)
            .await
            .map_err(classify)
    }

    async fn sent_since(&self, campaign: &CampaignId, since: Timestamp) -> Result<u64, StoreError> {
        q::sent_since(&self.pool, campaign, since)
            .await
            .map_err(classify)
    }

    async fn count_by_state(&self) -> Result<Vec<(CampaignState, u64)>, StoreError> {
        q::count_by_state(&self.pool).await.map_err(classify)
    }

    async fn in_state(
        &self,
        state: CampaignState,
        limit: u32,
    ) -> Result<Vec<Campaign>, StoreError> {
        q::in_state(&self.pool, state, limit)
            .await
            .map_err(classify)
    }

    async fn export_page(
        &self,
        campaign: &CampaignId,
        after: Option<&RecipientId>,
        limit: u32,
    ) -> Result<Vec<ExportRow>, StoreError> {
        q::export_page(&self.pool, campaign, None, after, limit)
            .await
            .map_err(classify)
    }

    async fn recipients_in(
        &self,
        campaign: &CampaignId,
        status: ReportedStatus,
        after: Option<&RecipientId>,
        limit: u32,
    ) -> Result<Vec<ExportRow>, StoreError> {
        q::export_page(&self.pool, campaign, Some(status), after, limit)
            .await
            .map_err(classify)
    }

    async fn set_opt_outs(&self, changes: &[OptOutChange]) -> Result<(), StoreError> {
        q::set_opt_outs(&self.pool, changes).await.map_err(classify)
    }

    async fn is_opted_out(
        &self,
        project: &ProjectId,
        phone: &PhoneNumber,
    ) -> Result<bool, StoreError> {
        q::is_opted_out(&self.pool, project, phone)
            .await
            .map_err(classify)
    }

    async fn provider_settings(
        &self,
        project: &ProjectId,
        provider: SendProvider,
    ) -> Result<Option<ProviderSettings>, StoreError> {
        q::provider_settings(&self.pool, project, provider, &self.sealer)
            .await
            .map_err(classify)
    }

    async fn put_provider_settings(
        &self,
        project: &ProjectId,
        provider: SendProvider,
        settings: &ProviderSettings,
    ) -> Result<(), StoreError> {
        q::put_provider_settings(
            &self.pool,
            project,
            provider,
            settings,
            Timestamp::now(),
            &self.sealer,
        )
        .await
        .map_err(classify)
    }
}
