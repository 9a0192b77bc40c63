//! Acting on deliveries: a signed test ping, retrying one delivery, redriving an endpoint's
//! dead letters. (Reading endpoints and delivery logs is in `webhooks`.)

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::ProjectAuth;
use super::openapi::ErrorBody;
use super::openapi::schemas::{DeliveryOut, EndpointRedriven, TestPing};
use super::webhooks::{delivery_json, endpoint_id, not_found};
use crate::domain::delivery::headers;
use crate::domain::endpoint::WebhookDeliveryId;
use crate::domain::signing::SigningSecret;
use crate::domain::time::Timestamp;

/// The event type of a test ping; no endpoint subscribes to it, so it is only ever sent here.
pub const PING: &str = "webhook.test";

/// Send a signed test ping
///
/// Sends one signed `webhook.test` event now, past the breaker and the queue, and says what
/// came back: the status code and the latency, never the body (the receiver's answer is the
/// customer's own, and could be anything).
#[utoipa::path(post, path = "/webhook/config/{id}/test", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    responses(
        (status = 200, description = "What the endpoint answered", body = TestPing),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody)))]
pub async fn test(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = s
        .endpoints
        .get(&project, &endpoint_id(&id)?)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let now = Timestamp::now();
    let event_id = format!("evt_test_{}", uuid::Uuid::now_v7().simple());
    let body = serde_json::to_vec(&json!({
        "event_type": PING,
        "event_id": event_id,
        "timestamp": now.to_rfc3339(),
        "data": {"endpoint_id": endpoint.id, "message": "test ping from wagate"},
        "message": null,
    }))
    .expect("JSON values serialize");
    let secrets: Vec<SigningSecret> = endpoint
        .signing_secrets(now)
        .into_iter()
        .map(|s| s.signing())
        .collect();
    let headers = headers(PING, &event_id, 1, &body, &secrets, now);
    let sent = s
        .forwarding
        .client
        .post(endpoint.url.as_str(), &headers, Bytes::from(body))
        .await;
    Ok(Json(json!({
        "event_id": event_id,
        "delivered": sent.status.is_some_and(|c| (200..300).contains(&c)),
        "status_code": sent.status,
        "latency_ms": u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX),
        "error": sent.error.map(|(_, text)| text),
    })))
}

/// Retry one delivery
///
/// The delivery is due again now, with a fresh retry budget, whatever its status (a delivered
/// one is sent once more: the customer asked).
#[utoipa::path(post, path = "/webhook/deliveries/{id}/retry", tag = "webhooks", security(("project_key" = [])),
    params(("id" = String, Path, description = "The delivery id")),
    responses(
        (status = 200, description = "The delivery, pending again", body = DeliveryOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody)))]
pub async fn retry(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let missing = || ApiError::not_found(format!("no delivery {id}"));
    let delivery = WebhookDeliveryId::parse(&id).map_err(|_| missing())?;
    let view = s
        .forwarding
        .deliveries
        .retry(&project, &delivery, Timestamp::now())
        .await?
        .ok_or_else(missing)?;
    Ok(Json(delivery_json(&view)))
}

/// Redrive an endpoint's dead letters
///
/// Every dead delivery of the endpoint is due again now, with a fresh retry budget; the
/// forwarders' sweeper queues them within a second.
#[utoipa::path(post, path = "/webhook/config/{id}/redrive", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    responses(
        (status = 200, description = "How many are due again", body = EndpointRedriven),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody)))]
pub async fn redrive(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = endpoint_id(&id)?;
    if s.endpoints.get(&project, &endpoint).await?.is_none() {
        return Err(not_found(&id));
    }
    let n = s
        .forwarding
        .deliveries
        .redrive(&project, &endpoint, Timestamp::now())
        .await?;
    Ok(Json(json!({ "redriven": n })))
}
