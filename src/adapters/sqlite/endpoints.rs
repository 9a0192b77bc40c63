//! `Endpoints` on SQLite: the shared queries, writes on the one writer connection.

use async_trait::async_trait;

use super::store::SqliteStore;
use crate::adapters::sql::classify;
use crate::adapters::sql::endpoints::lite as q;
use crate::domain::endpoint::{
    Endpoint, EndpointId, EndpointPatch, SharedSecret, Topic, WebhookDeliveryId,
};
use crate::domain::project::ProjectId;
use crate::domain::time::Timestamp;
use crate::ports::StoreError;
use crate::ports::endpoints::{DeliveryDetail, DeliveryQuery, DeliveryView, Endpoints};

#[async_trait]
impl Endpoints for SqliteStore {
    async fn create(&self, e: &Endpoint) -> Result<(), StoreError> {
        q::insert(&self.db.write, e, &self.sealer)
            .await
            .map_err(classify)
    }

    async fn get(&self, p: &ProjectId, id: &EndpointId) -> Result<Option<Endpoint>, StoreError> {
        q::get(&self.db.read, p, id, &self.sealer)
            .await
            .map_err(classify)
    }

    async fn by_id(&self, id: &EndpointId) -> Result<Option<Endpoint>, StoreError> {
        q::by_id(&self.db.read, id, &self.sealer)
            .await
            .map_err(classify)
    }

    async fn list(&self, p: &ProjectId) -> Result<Vec<Endpoint>, StoreError> {
        q::list(&self.db.read, p, false, &self.sealer)
            .await
            .map_err(classify)
    }

    async fn update(
        &self,
        p: &ProjectId,
        id: &EndpointId,
        patch: &EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        q::update(&self.db.write, p, id, patch, now, &self.sealer)
            .await
            .map_err(classify)
    }

    async fn disable(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        q::disable(&self.db.write, id, reason, now)
            .await
            .map_err(classify)
    }

    async fn delete(&self, p: &ProjectId, id: &EndpointId) -> Result<bool, StoreError> {
        let mut tx = self.db.begin_write().await.map_err(classify)?;
        let deleted = q::delete(&mut tx, p, id).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(deleted)
    }

    async fn rotate_secret(
        &self,
        p: &ProjectId,
        id: &EndpointId,
        new: &SharedSecret,
        previous_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        q::rotate_secret(
            &self.db.write,
            p,
            id,
            new,
            previous_expires_at,
            now,
            &self.sealer,
        )
        .await
        .map_err(classify)
    }

    async fn for_project_topic(
        &self,
        p: &ProjectId,
        topic: Topic,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let enabled = q::list(&self.db.read, p, true, &self.sealer)
            .await
            .map_err(classify)?;
        Ok(enabled
            .into_iter()
            .filter(|e| e.topics.accepts(topic))
            .collect())
    }

    async fn deliveries(
        &self,
        p: &ProjectId,
        endpoint: &EndpointId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        q::deliveries(&self.db.read, p, endpoint, query)
            .await
            .map_err(classify)
    }

    async fn delivery(
        &self,
        p: &ProjectId,
        id: &WebhookDeliveryId,
    ) -> Result<Option<DeliveryDetail>, StoreError> {
        q::delivery(&self.db.read, p, id).await.map_err(classify)
    }
}
