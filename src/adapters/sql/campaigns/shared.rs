//! The campaign statements that read the same on SQLite and PostgreSQL, written once and
//! instantiated per database (as `sql/store.rs` does for the store's).

macro_rules! campaign_shared {
    ($db:ty, $conn:ty) => {
        use std::collections::HashMap;

        use sqlx::{AssertSqlSafe, Pool, QueryBuilder};

        use crate::adapters::sql::campaigns::{
            CAMPAIGN_COLUMNS, EXPORT_SELECT, campaign_from, corrupt, counts_from, export_from,
            latest_opt_outs,
        };
        use crate::adapters::sql;
        use crate::domain::campaign::{
            Campaign, CampaignCounts, CampaignId, CampaignState, ExportRow, NewCampaign,
            OptOutChange, RETRYABLE_FAILURES, RecipientId, ReportedStatus,
        };
        use crate::domain::phone::PhoneNumber;
        use crate::domain::project::ProjectId;
        use crate::domain::providers::send::{ProviderSettings, SendProvider};
        use crate::domain::time::Timestamp;
        use crate::ports::StoreError;

        pub async fn create(pool: &Pool<$db>, c: &NewCampaign) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO campaigns (id, project_id, name, template_id, language, provider, \
                 sender, params, media, schedule_time, rate_limit_per_second, unknown_policy, \
                 state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, 'draft', $12, $12)",
            )
            .bind(c.id.as_str())
            .bind(c.project_id.as_str())
            .bind(&c.name)
            .bind(&c.template_id)
            .bind(&c.language)
            .bind(c.provider.as_str())
            .bind(c.sender.as_str())
            .bind(serde_json::to_string(&c.params).expect("params serialize"))
            .bind(c.media.as_ref().map(|m| serde_json::to_string(m).expect("media serializes")))
            .bind(c.schedule_time.map(Timestamp::millis))
            .bind(c.rate_limit_per_second.map(i64::from))
            .bind(c.created_at.millis())
            .bind(c.unknown_policy.as_str())
            .execute(pool)
            .await
            .map_err(sql::or_conflict(|| format!("campaign `{}` already exists", c.id)))?;
            Ok(())
        }

        pub async fn get(
            pool: &Pool<$db>,
            project: &ProjectId,
            id: &CampaignId,
        ) -> Result<Option<Campaign>, sqlx::Error> {
            let sql =
                format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1 AND project_id = $2");
            sqlx::query(AssertSqlSafe(sql))
                .bind(id.as_str())
                .bind(project.as_str())
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(campaign_from)
                .transpose()
        }

        pub async fn list(
            pool: &Pool<$db>,
            project: &ProjectId,
            before: Option<&CampaignId>,
            limit: u32,
        ) -> Result<Vec<Campaign>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE project_id = "
            ));
            q.push_bind(project.as_str());
            if let Some(before) = before {
                q.push(" AND id < ").push_bind(before.as_str());
            }
            q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
            q.build().fetch_all(pool).await?.iter().map(campaign_from).collect()
        }

        /// The state is written into the statement (it is one of six fixed words), so the
        /// partial index on active states applies to every plan.
        pub async fn in_state(
            pool: &Pool<$db>,
            state: CampaignState,
            limit: u32,
        ) -> Result<Vec<Campaign>, sqlx::Error> {
            let sql = format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE state = '{}' ORDER BY id LIMIT $1",
                state.as_str()
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(campaign_from)
                .collect()
        }

        /// Campaigns by id, within the caller's transaction.
        pub async fn by_ids(
            conn: &mut $conn,
            ids: &[&str],
        ) -> Result<HashMap<String, Campaign>, sqlx::Error> {
            if ids.is_empty() {
                return Ok(HashMap::new());
            }
            let mut q = QueryBuilder::<$db>::new(format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id IN ("
            ));
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(*id);
            }
            q.push(")");
            q.build()
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| campaign_from(r).map(|c| (c.id.as_str().to_owned(), c)))
                .collect()
        }

        pub async fn transition(
            pool: &Pool<$db>,
            id: &CampaignId,
            from: &[CampaignState],
            to: CampaignState,
            at: Timestamp,
        ) -> Result<bool, sqlx::Error> {
            if from.is_empty() {
                return Ok(false);
            }
            let mut q = QueryBuilder::<$db>::new("UPDATE campaigns SET state = ");
            q.push_bind(to.as_str());
            q.push(", last_error = NULL, updated_at = ").push_bind(at.millis());
            if to == CampaignState::Running {
                q.push(", started_at = COALESCE(started_at, ")
                    .push_bind(at.millis())
                    .push(")");
            }
            if to.is_final() {
                q.push(", finished_at = ").push_bind(at.millis());
            }
            q.push(" WHERE id = ").push_bind(id.as_str());
            q.push(" AND state IN (");
            let mut sep = q.separated(", ");
            for s in from {
                sep.push_bind(s.as_str());
            }
            q.push(")");
            Ok(q.build().execute(pool).await?.rows_affected() == 1)
        }

        pub async fn set_last_error(
            pool: &Pool<$db>,
            id: &CampaignId,
            error: Option<&str>,
        ) -> Result<(), sqlx::Error> {
            sqlx::query("UPDATE campaigns SET last_error = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(error)
                .execute(pool)
                .await?;
            Ok(())
        }

        /// Only while the campaign is a draft: a started one keeps the time it started by.
        pub async fn set_schedule(
            pool: &Pool<$db>,
            id: &CampaignId,
            at: Option<Timestamp>,
        ) -> Result<(), sqlx::Error> {
            sqlx::query("UPDATE campaigns SET schedule_time = $2 WHERE id = $1 AND state = 'draft'")
                .bind(id.as_str())
                .bind(at.map(Timestamp::millis))
                .execute(pool)
                .await?;
            Ok(())
        }

        /// The sender number and campaign rate of each recipient found, in one read.
        pub async fn lanes(
            pool: &Pool<$db>,
            ids: &[RecipientId],
        ) -> Result<Vec<(RecipientId, PhoneNumber, Option<u32>)>, sqlx::Error> {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut q = QueryBuilder::<$db>::new(
                "SELECT r.id, c.sender, c.rate_limit_per_second FROM campaign_recipients r \
                 JOIN campaigns c ON c.id = r.campaign_id WHERE r.id IN (",
            );
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(id.as_str());
            }
            q.push(")");
            let rows: Vec<(String, String, Option<i64>)> =
                q.build_query_as().fetch_all(pool).await?;
            Ok(rows
                .into_iter()
                .map(|(id, sender, rate)| {
                    (
                        RecipientId::from_trusted(id),
                        PhoneNumber::from_trusted(sender),
                        rate.and_then(|r| u32::try_from(r).ok()),
                    )
                })
                .collect())
        }

        /// Queued recipients among `ids` due later than `now` become due now: a lease handed
        /// back. Only `queued` rows move, so nothing claimed or sent is touched.
        pub async fn release(
            pool: &Pool<$db>,
            ids: &[RecipientId],
            now: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            if ids.is_empty() {
                return Ok(0);
            }
            let mut q = QueryBuilder::<$db>::new("UPDATE campaign_recipients SET due_at = ");
            q.push_bind(now.millis());
            q.push(" WHERE status = 'queued' AND due_at > ").push_bind(now.millis());
            q.push(" AND id IN (");
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(id.as_str());
            }
            q.push(")");
            Ok(q.build().execute(pool).await?.rows_affected())
        }

        /// Scheduled campaigns whose start time has come, earliest first, through the
        /// `campaigns_scheduled_at` index: however many wait for later, the due ones are found.
        pub async fn due_scheduled(
            pool: &Pool<$db>,
            now: Timestamp,
            limit: u32,
        ) -> Result<Vec<CampaignId>, sqlx::Error> {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM campaigns WHERE state = 'scheduled' AND schedule_time <= $1 \
                 ORDER BY schedule_time, id LIMIT $2",
            )
            .bind(now.millis())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            Ok(ids.into_iter().map(CampaignId::from_trusted).collect())
        }

        /// Running campaigns with no recipient queued or sending become `finished`, in one
        /// statement whose condition is the move's own, so a recipient queued again by a retry
        /// is either seen (no finish) or queued after (and the retry reopens the campaign).
        pub async fn finish_done(
            pool: &Pool<$db>,
            now: Timestamp,
            limit: u32,
        ) -> Result<Vec<CampaignId>, sqlx::Error> {
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE campaigns SET state = 'finished', last_error = NULL, finished_at = $1, \
                 updated_at = $1 WHERE state = 'running' AND id IN (SELECT c.id FROM campaigns c \
                 WHERE c.state = 'running' AND NOT EXISTS (SELECT 1 FROM campaign_recipients r \
                 WHERE r.campaign_id = c.id AND r.status IN ('queued', 'sending')) \
                 ORDER BY c.id LIMIT $2) \
                 AND NOT EXISTS (SELECT 1 FROM campaign_recipients r \
                 WHERE r.campaign_id = campaigns.id AND r.status IN ('queued', 'sending')) \
                 RETURNING id",
            )
            .bind(now.millis())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            Ok(ids.into_iter().map(CampaignId::from_trusted).collect())
        }

        pub async fn has_outstanding(
            pool: &Pool<$db>,
            campaign: &CampaignId,
        ) -> Result<bool, sqlx::Error> {
            let found: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM campaign_recipients WHERE campaign_id = $1 \
                 AND status IN ('queued', 'sending') LIMIT 1",
            )
            .bind(campaign.as_str())
            .fetch_optional(pool)
            .await?;
            Ok(found.is_some())
        }

        pub async fn counts(
            pool: &Pool<$db>,
            campaign: &CampaignId,
        ) -> Result<CampaignCounts, sqlx::Error> {
            let rows: Vec<(String, Option<i32>, i64)> = sqlx::query_as(
                "SELECT r.status, m.status_rank, COUNT(*) FROM campaign_recipients r \
                 LEFT JOIN messages m ON r.status = 'sent' AND m.wamid = r.provider_message_id \
                 AND m.project_id = r.project_id \
                 WHERE r.campaign_id = $1 GROUP BY r.status, m.status_rank",
            )
            .bind(campaign.as_str())
            .fetch_all(pool)
            .await?;
            counts_from(rows)
        }

        pub async fn count_by_state(
            pool: &Pool<$db>,
        ) -> Result<Vec<(CampaignState, u64)>, sqlx::Error> {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, COUNT(*) FROM campaigns GROUP BY state")
                    .fetch_all(pool)
                    .await?;
            rows.into_iter()
                .map(|(state, n)| {
                    let state = CampaignState::parse(&state)
                        .ok_or_else(|| corrupt(format!("campaign state `{state}`")))?;
                    Ok((state, u64::try_from(n).unwrap_or(0)))
                })
                .collect()
        }

        pub async fn sent_since(
            pool: &Pool<$db>,
            campaign: &CampaignId,
            since: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = $1 \
                 AND status IN ('sent', 'failed') AND updated_at >= $2",
            )
            .bind(campaign.as_str())
            .bind(since.millis())
            .fetch_one(pool)
            .await?;
            Ok(u64::try_from(n).unwrap_or(0))
        }

        pub async fn export_page(
            pool: &Pool<$db>,
            campaign: &CampaignId,
            status: Option<ReportedStatus>,
            after: Option<&RecipientId>,
            limit: u32,
        ) -> Result<Vec<ExportRow>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(format!("{EXPORT_SELECT} WHERE r.campaign_id = "));
            q.push_bind(campaign.as_str());
            if let Some(s) = status {
                // The recipients the counts put under `s`: see `ReportedStatus::members`.
                let m = s.members();
                q.push(" AND (");
                if let Some(whole) = m.whole {
                    q.push("r.status = ").push_bind(whole.as_str());
                }
                if !m.sent_with.is_empty() {
                    if m.whole.is_some() {
                        q.push(" OR ");
                    }
                    q.push("(r.status = 'sent' AND (");
                    for (i, message) in m.sent_with.iter().enumerate() {
                        if i > 0 {
                            q.push(" OR ");
                        }
                        match message {
                            None => q.push("m.status_rank IS NULL"),
                            Some(st) => q.push("m.status_rank = ").push_bind(i32::from(st.rank())),
                        };
                    }
                    q.push("))");
                }
                q.push(")");
            }
            q.push(" AND r.id > ").push_bind(after.map_or("", |a| a.as_str()));
            q.push(" ORDER BY r.id LIMIT ").push_bind(i64::from(limit));
            q.build().fetch_all(pool).await?.iter().map(export_from).collect()
        }

        pub async fn retry_unknown(
            pool: &Pool<$db>,
            project: &ProjectId,
            campaign: &CampaignId,
            now: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE campaign_recipients SET status = 'queued', due_at = $3, \
                 sending_since = NULL, updated_at = $3 \
                 WHERE campaign_id = $1 AND project_id = $2 AND status = 'unknown'",
            )
            .bind(campaign.as_str())
            .bind(project.as_str())
            .bind(now.millis())
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        }

        /// Failed recipients whose cause wagate recorded itself (see `RETRYABLE_FAILURES`) are
        /// queued again with a fresh attempt budget.
        pub async fn retry_failed(
            pool: &Pool<$db>,
            project: &ProjectId,
            campaign: &CampaignId,
            now: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(
                "UPDATE campaign_recipients SET status = 'queued', attempts = 0, \
                 error_code = NULL, error_title = NULL, sending_since = NULL, due_at = ",
            );
            q.push_bind(now.millis());
            q.push(", updated_at = ").push_bind(now.millis());
            q.push(" WHERE campaign_id = ").push_bind(campaign.as_str());
            q.push(" AND project_id = ").push_bind(project.as_str());
            q.push(" AND status = 'failed' AND error_code IN (");
            let mut sep = q.separated(", ");
            for code in RETRYABLE_FAILURES {
                sep.push_bind(code);
            }
            q.push(")");
            Ok(q.build().execute(pool).await?.rows_affected())
        }

        pub async fn cancel_queued(
            pool: &Pool<$db>,
            campaign: &CampaignId,
            now: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE campaign_recipients SET status = 'cancelled', updated_at = $2 \
                 WHERE campaign_id = $1 AND status = 'queued'",
            )
            .bind(campaign.as_str())
            .bind(now.millis())
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        }

        /// Only rows due later are rewritten: those already due need nothing.
        pub async fn make_due(
            pool: &Pool<$db>,
            campaign: &CampaignId,
            now: Timestamp,
        ) -> Result<u64, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE campaign_recipients SET due_at = $2 \
                 WHERE campaign_id = $1 AND status = 'queued' AND due_at > $2",
            )
            .bind(campaign.as_str())
            .bind(now.millis())
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        }

        /// Recipients `sending` since before `before` settle without an operator: queued again
        /// (due now) when their campaign's policy is `resend` and attempts are left, else
        /// `unknown`. Returns (unknown, queued again).
        pub async fn expire_sending(
            pool: &Pool<$db>,
            before: Timestamp,
            limit: u32,
            max_attempts: u32,
            now: Timestamp,
        ) -> Result<(u64, u64), sqlx::Error> {
            let statuses: Vec<String> = sqlx::query_scalar(
                "UPDATE campaign_recipients SET \
                 status = CASE WHEN attempts < $4 AND EXISTS (SELECT 1 FROM campaigns c \
                   WHERE c.id = campaign_recipients.campaign_id AND c.unknown_policy = 'resend') \
                   THEN 'queued' ELSE 'unknown' END, \
                 due_at = $3, updated_at = $3 \
                 WHERE id IN (SELECT id FROM campaign_recipients WHERE status = 'sending' \
                 AND sending_since < $1 ORDER BY sending_since LIMIT $2) AND status = 'sending' \
                 RETURNING status",
            )
            .bind(before.millis())
            .bind(i64::from(limit))
            .bind(now.millis())
            .bind(i64::from(max_attempts))
            .fetch_all(pool)
            .await?;
            let queued = statuses.iter().filter(|s| s.as_str() == "queued").count() as u64;
            Ok((statuses.len() as u64 - queued, queued))
        }

        pub async fn set_opt_outs(
            pool: &Pool<$db>,
            changes: &[OptOutChange],
        ) -> Result<(), sqlx::Error> {
            for chunk in latest_opt_outs(changes).chunks(500) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO opt_outs (project_id, phone, opted_out, changed_at) ",
                );
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(c.project_id.as_str())
                        .push_bind(c.phone.as_str())
                        .push_bind(c.opted_out)
                        .push_bind(c.at.millis());
                });
                q.push(
                    " ON CONFLICT (project_id, phone) DO UPDATE SET \
                     opted_out = excluded.opted_out, changed_at = excluded.changed_at \
                     WHERE excluded.changed_at > opt_outs.changed_at",
                );
                q.build().execute(pool).await?;
            }
            Ok(())
        }

        pub async fn is_opted_out(
            pool: &Pool<$db>,
            project: &ProjectId,
            phone: &PhoneNumber,
        ) -> Result<bool, sqlx::Error> {
            let found: Option<bool> = sqlx::query_scalar(
                "SELECT opted_out FROM opt_outs WHERE project_id = $1 AND phone = $2",
            )
            .bind(project.as_str())
            .bind(phone.as_str())
            .fetch_optional(pool)
            .await?;
            Ok(found.unwrap_or(false))
        }

        pub async fn provider_settings(
            pool: &Pool<$db>,
            project: &ProjectId,
            provider: SendProvider,
            sealer: &crate::services::Sealer,
        ) -> Result<Option<ProviderSettings>, sqlx::Error> {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT settings FROM provider_settings WHERE project_id = $1 AND provider = $2",
            )
            .bind(project.as_str())
            .bind(provider.as_str())
            .fetch_optional(pool)
            .await?;
            found
                .map(|s| sql::secrets::open_settings(sealer, project, provider, &s))
                .transpose()
        }

        pub async fn put_provider_settings(
            pool: &Pool<$db>,
            project: &ProjectId,
            provider: SendProvider,
            settings: &ProviderSettings,
            now: Timestamp,
            sealer: &crate::services::Sealer,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO provider_settings (project_id, provider, settings, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, provider) DO UPDATE SET \
                 settings = excluded.settings, updated_at = excluded.updated_at",
            )
            .bind(project.as_str())
            .bind(provider.as_str())
            .bind(sql::secrets::seal_settings(sealer, project, provider, settings))
            .bind(now.millis())
            .execute(pool)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use campaign_shared;
