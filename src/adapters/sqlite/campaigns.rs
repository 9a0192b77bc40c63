//! `Campaigns` on SQLite: every write is one transaction on the single writer, so a claim, a
//! record or a repair is never interleaved with another and its conditions hold until commit.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::store::{SqliteStore, padded};
use crate::adapters::sql::campaigns::{
    self as cq, ChangedRow, ClaimedRow, RecordColumns, SentMessage, lite as q,
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

/// Values as one JSON array bound to `json_each`: one statement shape whatever their number.
fn json_array<T: serde::Serialize>(rows: &[T]) -> String {
    serde_json::to_string(rows).expect("rows serialize")
}

/// Stores accepted sends' messages, merged with what status events stored first.
async fn upsert_messages(
    tx: &mut SqliteConnection,
    messages: &[SentMessage],
) -> Result<(), sqlx::Error> {
    let merge = cq::message_merge("MAX");
    // Padding repeats a row whose upsert changes nothing the second time.
    for (chunk, _) in padded(messages, Clone::clone) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (wamid, project_id, provider, status_rank, business_number, \
             phone, campaign_id, event_count, created_at, updated_at) ",
        );
        q.push_values(&chunk, |mut b, m| {
            b.push_bind(m.wamid.as_str())
                .push_bind(m.project_id.as_str())
                .push_bind(m.provider)
                .push_bind(0i64)
                .push_bind(m.business_number.as_str())
                .push_bind(m.phone.as_str())
                .push_bind(m.campaign_id.as_str())
                .push_bind(0i64)
                .push_bind(m.at)
                .push_bind(m.at);
        });
        q.push(merge.as_str());
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// After a record or repair: the message rows of the recipients that became `sent` with an id.
async fn store_sent(tx: &mut SqliteConnection, changed: &[ChangedRow]) -> Result<(), sqlx::Error> {
    let ids = cq::campaign_ids(changed.iter().filter(|c| c.5.is_some()).map(|c| &c.1));
    let campaigns = q::by_ids(&mut *tx, &ids).await?;
    upsert_messages(tx, &cq::sent_messages(changed, &campaigns)).await
}

impl SqliteStore {
    async fn add_chunks(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
        rows: &[NewRecipient],
    ) -> Result<Option<ImportCounts>, sqlx::Error> {
        let now = Timestamp::now().millis();
        let mut tx = self.db.begin_write().await?;
        let mut counts = ImportCounts::default();
        let owned: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM campaigns WHERE id = $1 AND project_id = $2")
                .bind(campaign.as_str())
                .bind(project.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if owned.is_none() {
            return Ok(None);
        }
        let prepared: Vec<(&str, &str, String)> = rows
            .iter()
            .map(|r| {
                let vars = serde_json::to_string(&r.variables).expect("variables serialize");
                (r.id.as_str(), r.phone.as_str(), vars)
            })
            .collect();
        // Padding repeats the last row: it conflicts with its original and is not inserted.
        for (chunk, real) in padded(&prepared, Clone::clone) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO campaign_recipients (id, campaign_id, project_id, phone, variables, \
                 status, attempts, due_at, updated_at) SELECT v.column1, ",
            );
            q.push_bind(campaign.as_str()).push(", ");
            q.push_bind(project.as_str());
            q.push(
                ", v.column2, v.column3, CASE WHEN EXISTS (SELECT 1 FROM opt_outs o \
                 WHERE o.project_id = ",
            );
            q.push_bind(project.as_str());
            q.push(
                " AND o.phone = v.column2 AND o.opted_out) THEN 'opted_out' ELSE 'queued' END, 0, ",
            );
            q.push_bind(now).push(", ").push_bind(now);
            q.push(" FROM (VALUES ");
            let mut values = q.separated(", ");
            for (id, phone, vars) in &chunk {
                values.push("(");
                values.push_bind_unseparated(*id);
                values.push_unseparated(", ");
                values.push_bind_unseparated(*phone);
                values.push_unseparated(", ");
                values.push_bind_unseparated(vars.as_str());
                values.push_unseparated(")");
            }
            // `WHERE true` settles SQLite's parse of INSERT … SELECT … ON CONFLICT.
            q.push(") AS v WHERE true ON CONFLICT DO NOTHING RETURNING status");
            let inserted: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await?;
            let opted = inserted
                .iter()
                .filter(|s| s.as_str() == RecipientStatus::OptedOut.as_str())
                .count();
            counts.opted_out += opted as u64;
            counts.accepted += (inserted.len() - opted) as u64;
            counts.duplicates += (real - inserted.len()) as u64;
        }
        tx.commit().await?;
        Ok(Some(counts))
    }

    async fn claim_due_tx(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<RecipientId>, sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        let running: Vec<String> =
            sqlx::query_scalar("SELECT id FROM campaigns WHERE state = 'running' ORDER BY id")
                .fetch_all(&mut *tx)
                .await?;
        // Each running campaign's oldest due rows through its own index range, merged here:
        // one query over all of them would sort every due row of every campaign.
        let mut due: Vec<(i64, String)> = Vec::new();
        for campaign in &running {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT due_at, id FROM campaign_recipients WHERE campaign_id = $1 \
                 AND status = 'queued' AND due_at <= $2 ORDER BY due_at, id LIMIT $3",
            )
            .bind(campaign)
            .bind(now.millis())
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            due.extend(rows);
        }
        due.sort();
        due.truncate(limit as usize);
        let ids: Vec<String> = due.into_iter().map(|(_, id)| id).collect();
        if !ids.is_empty() {
            sqlx::query(
                "UPDATE campaign_recipients SET due_at = $2 \
                 WHERE id IN (SELECT value FROM json_each($1))",
            )
            .bind(json_array(&ids))
            .bind(lease_until.millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids.into_iter().map(RecipientId::from_trusted).collect())
    }

    async fn claim_tx(
        &self,
        ids: &[RecipientId],
        now: Timestamp,
    ) -> Result<Vec<SendJob>, sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        // A STOP that arrived after the import (a campaign scheduled for tomorrow) wins over
        // the send: checked here, in the claim's transaction, not only when the row was loaded.
        sqlx::query(
            "UPDATE campaign_recipients SET status = 'opted_out', updated_at = $2 \
             WHERE id IN (SELECT value FROM json_each($1)) AND status = 'queued' \
             AND EXISTS (SELECT 1 FROM opt_outs o WHERE o.project_id = \
             campaign_recipients.project_id AND o.phone = campaign_recipients.phone \
             AND o.opted_out)",
        )
        .bind(json_array(ids))
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        let claimed: Vec<ClaimedRow> = sqlx::query_as(
            "UPDATE campaign_recipients SET status = 'sending', attempts = attempts + 1, \
             sending_since = $2, updated_at = $2 \
             WHERE id IN (SELECT value FROM json_each($1)) AND status = 'queued' \
             AND EXISTS (SELECT 1 FROM campaigns c \
                         WHERE c.id = campaign_recipients.campaign_id AND c.state = 'running') \
             RETURNING id, campaign_id, project_id, phone, variables, attempts",
        )
        .bind(json_array(ids))
        .bind(now.millis())
        .fetch_all(&mut *tx)
        .await?;
        let campaigns = q::by_ids(&mut tx, &cq::campaign_ids(claimed.iter().map(|c| &c.1))).await?;
        let jobs = cq::jobs(claimed, &campaigns)?;
        tx.commit().await?;
        Ok(jobs)
    }

    async fn record_tx(&self, results: &[SendRecord]) -> Result<u64, sqlx::Error> {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|r| RecordColumns::of(r).json())
            .collect();
        let mut tx = self.db.begin_write().await?;
        let changed: Vec<ChangedRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(cq::record_sql(cq::RECORD_ROWS_SQLITE)))
                .bind(json_array(&rows))
                .fetch_all(&mut *tx)
                .await?;
        store_sent(&mut tx, &changed).await?;
        tx.commit().await?;
        Ok(changed.len() as u64)
    }

    async fn repair_tx(&self, echoes: &[EchoedReference]) -> Result<u64, sqlx::Error> {
        let rows: Vec<serde_json::Value> = echoes
            .iter()
            .map(|e| {
                serde_json::json!([
                    e.recipient.as_str(),
                    e.project_id.as_str(),
                    e.provider_message_id,
                    e.at.millis()
                ])
            })
            .collect();
        let mut tx = self.db.begin_write().await?;
        let changed: Vec<ChangedRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(cq::repair_sql(cq::REPAIR_ROWS_SQLITE)))
                .bind(json_array(&rows))
                .fetch_all(&mut *tx)
                .await?;
        store_sent(&mut tx, &changed).await?;
        tx.commit().await?;
        Ok(changed.len() as u64)
    }
}

#[async_trait]
impl Campaigns for SqliteStore {
    async fn create(&self, c: &NewCampaign) -> Result<(), StoreError> {
        q::create(&self.db.write, c).await
    }

    async fn get(
        &self,
        project: &ProjectId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError> {
        q::get(&self.db.read, project, id).await.map_err(classify)
    }

    async fn list(
        &self,
        project: &ProjectId,
        before: Option<&CampaignId>,
        limit: u32,
    ) -> Result<Vec<Campaign>, StoreError> {
        q::list(&self.db.read, project, before, limit)
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
        q::transition(&self.db.write, id, from, to, at)
            .await
            .map_err(classify)
    }

    async fn set_schedule(&self, id: &CampaignId, at: Option<Timestamp>) -> Result<(), StoreError> {
        q::set_schedule(&self.db.write, id, at)
            .await
            .map_err(classify)
    }

    async fn set_last_error(&self, id: &CampaignId, error: Option<&str>) -> Result<(), StoreError> {
        q::set_last_error(&self.db.write, id, error)
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
        self.add_chunks(project, campaign, rows)
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
        self.claim_due_tx(now, now.plus(lease), limit)
            .await
            .map_err(classify)
    }

    async fn claim(&self, ids: &[RecipientId], now: Timestamp) -> Result<Vec<SendJob>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.claim_tx(ids, now).await.map_err(classify)
    }

    async fn record(&self, results: &[SendRecord]) -> Result<u64, StoreError> {
        if results.is_empty() {
            return Ok(0);
        }
        self.record_tx(results).await.map_err(classify)
    }

    async fn expire_sending(
        &self,
        before: Timestamp,
        limit: u32,
        max_attempts: u32,
    ) -> Result<Expired, StoreError> {
        let (unknown, resent) = q::expire_sending(
            &self.db.write,
            before,
            limit,
            max_attempts,
            Timestamp::now(),
        )
        .await
        .map_err(classify)?;
        Ok(Expired { unknown, resent })
    }

    async fn release(&self, ids: &[RecipientId], now: Timestamp) -> Result<u64, StoreError> {
        q::release(&self.db.write, ids, now).await.map_err(classify)
    }

    async fn retry_failed(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
    ) -> Result<u64, StoreError> {
        q::retry_failed(&self.db.write, project, campaign, Timestamp::now())
            .await
            .map_err(classify)
    }

    async fn due_scheduled(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<CampaignId>, StoreError> {
        q::due_scheduled(&self.db.read, now, limit)
            .await
            .map_err(classify)
    }

    async fn finish_done(&self, now: Timestamp, limit: u32) -> Result<Vec<CampaignId>, StoreError> {
        q::finish_done(&self.db.write, now, limit)
            .await
            .map_err(classify)
    }

    async fn repair(&self, echoes: &[EchoedReference]) -> Result<u64, StoreError> {
        if echoes.is_empty() {
            return Ok(0);
        }
        self.repair_tx(echoes).await.map_err(classify)
    }

    async fn retry_unknown(
        &self,
        project: &ProjectId,
        campaign: &CampaignId,
    ) -> Result<u64, StoreError> {
        q::retry_unknown(&self.db.write, project, campaign, Timestamp::now())
            .await
            .map_err(classify)
    }

    async fn cancel_queued(&self, campaign: &CampaignId) -> Result<u64, StoreError> {
        q::cancel_queued(&self.db.write, campaign, Timestamp::now())
            .await
            .map_err(classify)
    }

    async fn make_due(&self, campaign: &CampaignId, now: Timestamp) -> Result<u64, StoreError> {
        q::make_due(&self.db.write, campaign, now)
            .await
            .map_err(classify)
    }

    async fn counts(&self, campaign: &CampaignId) -> Result<CampaignCounts, StoreError> {
        q::counts(&self.db.read, campaign).await.map_err(classify)
    }

    async fn lanes(
        &self,
        recipients: &[RecipientId],
    ) -> Result<Vec<(RecipientId, PhoneNumber, Option<u32>)>, StoreError> {
        q::lanes(&self.db.read, recipients).await.map_err(classify)
    }

    async fn has_outstanding(&self, campaign: &CampaignId) -> Result<bool, StoreError> {
        q::has_outstanding(&self.db.read, campaign)
            .await
            .map_err(classify)
    }

    async fn sent_since(&self, campaign: &CampaignId, since: Timestamp) -> Result<u64, StoreError> {
        q::sent_since(&self.db.read, campaign, since)
            .await
            .map_err(classify)
    }

    async fn count_by_state(&self) -> Result<Vec<(CampaignState, u64)>, StoreError> {
        q::count_by_state(&self.db.read).await.map_err(classify)
    }

    async fn in_state(
        &self,
        state: CampaignState,
        limit: u32,
    ) -> Result<Vec<Campaign>, StoreError> {
        q::in_state(&self.db.read, state, limit)
            .await
            .map_err(classify)
    }

    async fn export_page(
        &self,
        campaign: &CampaignId,
        after: Option<&RecipientId>,
        limit: u32,
    ) -> Result<Vec<ExportRow>, StoreError> {
        q::export_page(&self.db.read, campaign, None, after, limit)
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
        q::export_page(&self.db.read, campaign, Some(status), after, limit)
            .await
            .map_err(classify)
    }

    async fn set_opt_outs(&self, changes: &[OptOutChange]) -> Result<(), StoreError> {
        q::set_opt_outs(&self.db.write, changes)
            .await
            .map_err(classify)
    }

    async fn is_opted_out(
        &self,
        project: &ProjectId,
        phone: &PhoneNumber,
    ) -> Result<bool, StoreError> {
        q::is_opted_out(&self.db.read, project, phone)
            .await
            .map_err(classify)
    }

    async fn provider_settings(
        &self,
        project: &ProjectId,
        provider: SendProvider,
    ) -> Result<Option<ProviderSettings>, StoreError> {
        q::provider_settings(&self.db.read, project, provider, &self.sealer)
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
            &self.db.write,
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
