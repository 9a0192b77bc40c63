//! `Deliveries` on SQLite: every write is a short transaction on the one writer, so a claim
//! or a record is never interleaved with another.

use async_trait::async_trait;

use super::store::SqliteStore;
use crate::adapters::delivery_queries::{
    PendingRow, lite as q, pending_columns, pending_from, rounds,
};
use crate::adapters::sql::classify;
use crate::domain::endpoint::{EndpointId, WebhookDeliveryId};
use crate::domain::project::ProjectId;
use crate::domain::time::Timestamp;
use crate::ports::StoreError;
use crate::ports::deliveries::{AttemptRecord, Deliveries, Pending};
use crate::ports::endpoints::DeliveryView;

/// Ids as one JSON array bound to `json_each`: one statement shape whatever their number.
fn json_ids<T: serde::Serialize>(ids: &[T]) -> String {
    serde_json::to_string(ids).expect("ids serialize")
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
        let mut tx = self.db.begin_write().await.map_err(classify)?;
        let mut moved = Vec::new();
        // Rounds keep a delivery's records in order; within one, order does not matter.
        for round in rounds(attempts) {
            for r in round {
                if q::record_one(&mut tx, r).await.map_err(classify)? {
                    moved.push(r.delivery.clone());
                }
            }
        }
        tx.commit().await.map_err(classify)?;
        Ok(moved)
    }

    async fn defer(&self, ids: &[WebhookDeliveryId], at: Timestamp) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write().await.map_err(classify)?;
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
        let mut tx = self.db.begin_write().await.map_err(classify)?;
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
