//! The endpoints port: a project's webhook endpoints and the read side of their deliveries.
//!
//! Implemented by both SQL stores, beside `Store`, on the same connection pools. Every call
//! that takes a project only sees that project's rows: another project's id reads as absent.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::endpoint::{
    DeliveryStatus, Endpoint, EndpointId, EndpointPatch, SharedSecret, Topic, WebhookDeliveryId,
};
use crate::domain::project::ProjectId;
use crate::domain::time::Timestamp;

/// One delivery as its log shows it (the body it sends is in [`DeliveryDetail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryView {
    pub id: WebhookDeliveryId,
    pub event_id: String,
    pub endpoint_id: EndpointId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptView {
    pub attempt: u32,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    /// At most 1 KB of the response body.
    pub response_snippet: Option<String>,
    pub attempted_at: Timestamp,
}

/// A delivery with the exact body it sends and its attempts, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryDetail {
    pub delivery: DeliveryView,
    pub payload: String,
    pub attempts: Vec<AttemptView>,
}

/// Which deliveries of an endpoint to list: ordered by id (creation order).
#[derive(Debug, Clone)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    /// Cursor: the last id of the previous page.
    pub after: Option<WebhookDeliveryId>,
    pub limit: u32,
}

#[async_trait]
pub trait Endpoints: Send + Sync + 'static {
    /// Stores a new endpoint (made by [`Endpoint::create`]).
    async fn create(&self, endpoint: &Endpoint) -> Result<(), StoreError>;

    async fn get(
        &self,
        project: &ProjectId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// An endpoint whatever its project: the forwarder's read, which knows only the id a
    /// delivery names.
    async fn by_id(&self, id: &EndpointId) -> Result<Option<Endpoint>, StoreError>;

    /// The project's endpoints, oldest first.
    async fn list(&self, project: &ProjectId) -> Result<Vec<Endpoint>, StoreError>;

    /// Applies the patch in one statement (so it cannot undo a concurrent disable it did not
    /// ask about). Enabling clears `disabled_reason`; disabling an enabled endpoint records
    /// `DISABLED_BY_REQUEST`. `None`: no such endpoint in this project.
    async fn update(
        &self,
        project: &ProjectId,
        id: &EndpointId,
        patch: &EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// Disables an endpoint whatever its project (the forwarder, on a `410 Gone`), recording
    /// why. `false`: no such endpoint.
    async fn disable(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Deletes the endpoint with its deliveries and their attempts. `false`: no such endpoint
    /// in this project.
    async fn delete(&self, project: &ProjectId, id: &EndpointId) -> Result<bool, StoreError>;

    /// Makes `new` the secret; the current one becomes the previous secret, signing beside the
    /// new one until `previous_expires_at`.
    async fn rotate_secret(
        &self,
        project: &ProjectId,
        id: &EndpointId,
        new: &SharedSecret,
        previous_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// The project's enabled endpoints that take events of type `topic` (subscribed to it or
    /// to `*`): what the outbox writes a delivery for.
    async fn for_project_topic(
        &self,
        project: &ProjectId,
        topic: Topic,
    ) -> Result<Vec<Endpoint>, StoreError>;

    /// An endpoint's deliveries (empty when the endpoint is not this project's).
    async fn deliveries(
        &self,
        project: &ProjectId,
        endpoint: &EndpointId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryView>, StoreError>;

    async fn delivery(
        &self,
        project: &ProjectId,
        id: &WebhookDeliveryId,
    ) -> Result<Option<DeliveryDetail>, StoreError>;
}
