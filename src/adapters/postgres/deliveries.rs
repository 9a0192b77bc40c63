//! `Deliveries` on PostgreSQL: attempts recorded in batches through `unnest`, and claims that
//! several sweepers can make at once (`FOR UPDATE SKIP LOCKED`).

use std::collections::HashSet;

use async_trait::async_trait;

use super::PgStore;
use super::store::insert_deliveries;
use crate::adapters::sql::classify;
use crate::adapters::sql::deliveries::{
    PendingRow, attempt_number, follow_up_columns, pending_columns, pending_from, pg as q, rounds,
    storable,
};
use crate::adapters::sql::replay;
use crate::domain::endpoint::{Endpoint, EndpointId, WebhookDeliveryId};
use crate::domain::project::ProjectId;
use crate::domain::time::Timestamp;
use crate::ports::StoreError;
use crate::ports::deliveries::{AttemptRecord, Deliveries, Pending, ReplayWindow, Replayed};
use crate::ports::endpoints::DeliveryView;

fn strs(ids: &[WebhookDeliveryId]) -> Vec<&str> {
    ids.iter().map(WebhookDeliveryId::as_str).collect()
}

/// One round of records (one per delivery): the conditional update decides which moved, and
/// only those get their attempt row.
async fn record_round(
    tx: &mut sqlx::PgConnection,
    round: &[&AttemptRecord],
) -> Result<Vec<WebhookDeliveryId>, sqlx::Error> {
    let follow: Vec<(&str, Option<i64>)> = round
        .iter()
        .map(|r| follow_up_columns(r.follow_up))
        .collect();
    let moved: HashSet<String> = sqlx::query_scalar(
        "UPDATE deliveries d SET attempts = d.attempts + 1, status = u.status, \
         next_attempt_at = COALESCE(u.next, d.next_attempt_at), last_status_code = u.code, \
         last_error = u.err, updated_at = u.at \
         FROM unnest($1::text[], $2::int[], $3::text[], $4::int8[], $5::int[], $6::text[], \
         $7::int8[]) AS u(id, previous, status, next, code, err, at) \
         WHERE d.id = u.id AND d.status = 'pending' AND d.attempts = u.previous \
         RETURNING d.id",
    )
    .bind(
        round
            .iter()
            .map(|r| r.delivery.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        round
            .iter()
            .map(|r| attempt_number(r.attempt) - 1)
            .collect::<Vec<_>>(),
    )
    .bind(follow.iter().map(|f| f.0).collect::<Vec<_>>())
    .bind(follow.iter().map(|f| f.1).collect::<Vec<_>>())
    .bind(
        round
            .iter()
            .map(|r| r.status_code.map(i32::from))
            .collect::<Vec<_>>(),
    )
    .bind(round.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
    .bind(
        round
            .iter()
            .map(|r| r.attempted_at.millis())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let done: Vec<&AttemptRecord> = round
        .iter()
        .copied()
        .filter(|r| moved.contains(r.delivery.as_str()))
        .collect();
    if done.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt, status_code, latency_ms, error, \
         response_snippet, attempted_at) \
         SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::int8[], $5::text[], \
         $6::text[], $7::int8[]) ON CONFLICT (delivery_id, attempt) DO NOTHING",
    )
    .bind(done.iter().map(|r| r.delivery.as_str()).collect::<Vec<_>>())
    .bind(
        done.iter()
            .map(|r| attempt_number(r.attempt))
            .collect::<Vec<_>>(),
    )
    .bind(
        done.iter()
            .map(|r| r.status_code.map(i32::from))
            .collect::<Vec<_>>(),
    )
    .bind(
        done.iter()
            .map(|r| r.latency_ms.map(|l| i64::try_from(l).unwrap_or(i64::MAX)))
            .collect::<Vec<_>>(),
    )
    .bind(done.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
    .bind(
        done.iter()
            .map(|r| r.response_snippet.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        done.iter()
            .map(|r| r.attempted_at.millis())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(done.iter().map(|r| r.delivery.clone()).collect())
}

#[async_trait]
impl Deliveries for PgStore {
    async fn load(&self, ids: &[WebhookDeliveryId]) -> Result<Vec<Pending>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<PendingRow> = sqlx::query_as(concat!(
            "SELECT ",
            pending_columns!(),
            " FROM deliveries WHERE id = ANY($1)"
        ))
        .bind(strs(ids))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.into_iter()
            .map(pending_from)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn record(
        &self,
        attempts: &[AttemptRecord],
    ) -> Result<Vec<WebhookDeliveryId>, StoreError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut moved = Vec::new();
        let attempts = storable(attempts);
        for round in rounds(&attempts) {
            moved.extend(record_round(&mut tx, &round).await.map_err(classify)?);
        }
        tx.commit().await.map_err(classify)?;
        Ok(moved)
    }

    async fn defer(&self, ids: &[WebhookDeliveryId], at: Timestamp) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $2 \
             WHERE id = ANY($1) AND status = 'pending'",
        )
        .bind(strs(ids))
        .bind(at.millis())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookDeliveryId>, StoreError> {
        // SKIP LOCKED: a second sweeper passes over the rows this one is claiming and takes
        // the next ones, instead of waiting and then finding them no longer due.
        let ids: Vec<String> = sqlx::query_scalar(
            "WITH due AS (SELECT id, next_attempt_at FROM deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
             claimed AS (UPDATE deliveries d SET next_attempt_at = $2 FROM due \
             WHERE d.id = due.id RETURNING d.id, due.next_attempt_at AS was) \
             SELECT id FROM claimed ORDER BY was, id",
        )
        .bind(now.millis())
        .bind(lease_until.millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(ids
            .into_iter()
            .map(WebhookDeliveryId::from_trusted)
            .collect())
    }

    async fn retry(
        &self,
        project: &ProjectId,
        id: &WebhookDeliveryId,
        now: Timestamp,
    ) -> Result<Option<DeliveryView>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        q::retry(&mut conn, project, id, now)
            .await
            .map_err(classify)
    }

    async fn redrive(
        &self,
        project: &ProjectId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        q::redrive(&mut conn, project, endpoint, now)
            .await
            .map_err(classify)
    }

    async fn replay(
        &self,
        endpoint: &Endpoint,
        window: &ReplayWindow,
        now: Timestamp,
    ) -> Result<Replayed, StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let Some((revived, new)) = replay::pg::revive_and_plan(&mut tx, endpoint, window, now)
            .await
            .map_err(classify)?
        else {
            return Ok(Replayed::TooMany);
        };
        let created = insert_deliveries(&mut tx, &new).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Replayed::Done {
            revived,
            created: created.len() as u64,
        })
    }

    async fn hasten(&self, endpoint: &EndpointId, now: Timestamp) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        q::hasten(&mut conn, endpoint, now).await.map_err(classify)
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        q::pending_count(&self.pool).await.map_err(classify)
    }

    async fn dead_count(&self) -> Result<u64, StoreError> {
        q::dead_count(&self.pool).await.map_err(classify)
    }

    async fn prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
             WHERE id < $1 AND status <> 'pending' ORDER BY id LIMIT $2) RETURNING id), \
             attempts AS (DELETE FROM delivery_attempts a USING gone \
             WHERE a.delivery_id = gone.id) \
             SELECT COUNT(*) FROM gone",
        )
        .bind(WebhookDeliveryId::bound_before(before))
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
