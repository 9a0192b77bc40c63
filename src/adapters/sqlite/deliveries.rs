//! `Deliveries` on SQLite: every write is a short transaction on the one writer, so a claim
//! or a record is never interleaved with another.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::store::{SqliteStore, insert_deliveries};
use crate::adapters::sql::classify;
use crate::adapters::sql::deliveries::{
    PendingRow, attempt_number, follow_up_columns, lite as q, pending_columns, pending_from,
    rounds, storable,
};
use crate::adapters::sql::replay;
use crate::domain::endpoint::{Endpoint, EndpointId, WebhookDeliveryId};
use crate::domain::project::ProjectId;
use crate::domain::time::Timestamp;
use crate::ports::StoreError;
use crate::ports::deliveries::{AttemptRecord, Deliveries, Pending, ReplayWindow, Replayed};
use crate::ports::endpoints::DeliveryView;

/// Ids (or rows) as one JSON array bound to `json_each`: one statement shape whatever their
/// number.
fn json_ids<T: serde::Serialize>(ids: &[T]) -> String {
    serde_json::to_string(ids).expect("ids serialize")
}

/// In the caller's transaction: moves each delivery still pending at the attempt before its
/// record's, then records those attempts. Two statements per round, whatever its size: every
/// statement is a round trip to SQLite's connection thread, and one pair per attempt made
/// those hand-offs most of the embedded forwarder's writer time.
async fn record_round(
    tx: &mut SqliteConnection,
    round: &[&AttemptRecord],
) -> Result<Vec<WebhookDeliveryId>, sqlx::Error> {
    let updates: Vec<_> = round
        .iter()
        .map(|r| {
            let (status, next) = follow_up_columns(r.follow_up);
            (
                r.delivery.as_str(),
                attempt_number(r.attempt) - 1,
                status,
                next,
                r.status_code,
                r.error.as_deref(),
                r.attempted_at.millis(),
            )
        })
        .collect();
    let moved: HashSet<String> = sqlx::query_scalar(
        "UPDATE deliveries SET attempts = attempts + 1, status = u.status, \
         next_attempt_at = COALESCE(u.next, deliveries.next_attempt_at), \
         last_status_code = u.code, last_error = u.err, updated_at = u.at \
         FROM (SELECT value ->> 0 AS id, value ->> 1 AS previous, value ->> 2 AS status, \
         value ->> 3 AS next, value ->> 4 AS code, value ->> 5 AS err, value ->> 6 AS at \
         FROM json_each($1)) AS u \
         WHERE deliveries.id = u.id AND deliveries.status = 'pending' \
         AND deliveries.attempts = u.previous \
         RETURNING id",
    )
    .bind(json_ids(&updates))
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let recorded: Vec<&AttemptRecord> = round
        .iter()
        .copied()
        .filter(|r| moved.contains(r.delivery.as_str()))
        .collect();
    if recorded.is_empty() {
        return Ok(Vec::new());
    }
    let attempts: Vec<_> = recorded
        .iter()
        .map(|r| {
            (
                r.delivery.as_str(),
                attempt_number(r.attempt),
                r.status_code,
                r.latency_ms.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
                r.error.as_deref(),
                r.response_snippet.as_deref(),
                r.attempted_at.millis(),
            )
        })
        .collect();
    // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt, status_code, latency_ms, error, \
         response_snippet, attempted_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
         value ->> 6 FROM json_each($1) WHERE true ON CONFLICT DO NOTHING",
    )
    .bind(json_ids(&attempts))
    .execute(&mut *tx)
    .await?;
    Ok(recorded.iter().map(|r| r.delivery.clone()).collect())
}

#[async_trait]
impl Deliveries for SqliteStore {
    async fn load(&self, ids: &[WebhookDeliveryId]) -> Result<Vec<Pending>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<PendingRow> = sqlx::query_as(concat!(
            "SELECT ",
            pending_columns!(),
            " FROM deliveries WHERE id IN (SELECT value FROM json_each($1))"
        ))
        .bind(json_ids(ids))
        .fetch_all(&self.db.read)
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
        let mut tx = self.db.begin_relaxed().await.map_err(classify)?;
        let mut moved = Vec::new();
        // Rounds keep a delivery's records in order; within one, order does not matter.
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
        let mut tx = self.db.begin_relaxed().await.map_err(classify)?;
        sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $2 \
             WHERE id IN (SELECT value FROM json_each($1)) AND status = 'pending'",
        )
        .bind(json_ids(ids))
        .bind(at.millis())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookDeliveryId>, StoreError> {
        let mut tx = self.db.begin_relaxed().await.map_err(classify)?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now.millis())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        if !ids.is_empty() {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $2 \
                 WHERE id IN (SELECT value FROM json_each($1))",
            )
            .bind(json_ids(&ids))
            .bind(lease_until.millis())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
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
        let mut tx = self.db.begin_write().await.map_err(classify)?;
        let view = q::retry(&mut tx, project, id, now)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(view)
    }

    async fn redrive(
        &self,
        project: &ProjectId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.begin_write().await.map_err(classify)?;
        let n = q::redrive(&mut tx, project, endpoint, now)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(n)
    }

    async fn replay(
        &self,
        endpoint: &Endpoint,
        window: &ReplayWindow,
        now: Timestamp,
    ) -> Result<Replayed, StoreError> {
        let mut tx = self.db.begin_relaxed().await.map_err(classify)?;
        let Some((revived, new)) = replay::lite::revive_and_plan(&mut tx, endpoint, window, now)
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
        let mut tx = self.db.begin_write().await.map_err(classify)?;
        let n = q::hasten(&mut tx, endpoint, now).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(n)
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        q::pending_count(&self.db.read).await.map_err(classify)
    }

    async fn dead_count(&self) -> Result<u64, StoreError> {
        q::dead_count(&self.db.read).await.map_err(classify)
    }

    async fn prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        // One writer: both statements see the same rows.
        let bound = WebhookDeliveryId::bound_before(before);
        let mut tx = self.db.begin_write().await.map_err(classify)?;
        sqlx::query(
            "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries \
             WHERE id < $1 AND status <> 'pending' ORDER BY id LIMIT $2)",
        )
        .bind(&bound)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let n = sqlx::query(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
             WHERE id < $1 AND status <> 'pending' ORDER BY id LIMIT $2)",
        )
        .bind(&bound)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        tx.commit().await.map_err(classify)?;
        Ok(n)
    }
}
