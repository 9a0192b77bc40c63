//! Acting on deliveries: a signed test ping, closing an endpoint's breaker, retrying one
//! delivery, redriving an endpoint's dead letters, replaying a window of its events. (Reading
//! endpoints and delivery logs is in `webhooks`.)

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, ProjectAuth};
use super::openapi::ErrorBody;
use super::openapi::schemas::{BreakerOut, DeliveryOut, EndpointRedriven, ReplayOut, TestPing};
use super::webhooks::{delivery_json, endpoint_id, not_found, owned};
use crate::domain::delivery::headers;
use crate::domain::endpoint::{Endpoint, WebhookDeliveryId};
use crate::domain::signing::SigningSecret;
use crate::domain::time::Timestamp;
use crate::ports::deliveries::{ReplayWindow, Replayed};
use crate::services::BreakerView;

/// The event type of a test ping; no endpoint subscribes to it, so it is only ever sent here.
pub const PING: &str = "webhook.test";

/// Send a signed test ping
///
/// Sends one signed `webhook.test` event now, past the breaker and the queue, and says what
/// came back: the status code and the latency, never the body (the receiver's answer is the
/// customer's own, and could be anything). A 2xx closes the URL's breaker (the endpoint is
/// back: what it held goes now); `breaker` is its state after.
#[utoipa::path(post, path = "/webhook/config/{id}/test", operation_id = "test_webhook_endpoint", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    responses(
        (status = 200, description = "What the endpoint answered", body = TestPing),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody)))]
pub async fn test(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = owned(&s, &project, &id).await?;
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
    let delivered = sent.status.is_some_and(|c| (200..300).contains(&c));
    let breaker = if delivered {
        close_breaker(&s, &endpoint).await?
    } else {
        s.forwarding.breakers.view(endpoint.url.as_str()).await
    };
    Ok(Json(json!({
        "event_id": event_id,
        "delivered": delivered,
        "status_code": sent.status,
        "latency_ms": u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX),
        "error": sent.error.map(|(_, text)| text),
        "breaker": breaker_json(&breaker),
    })))
}

/// Close an endpoint's circuit breaker
///
/// Closes the endpoint URL's breaker in every forwarder; the deliveries it held (and retries
/// waiting out a backoff) are due now.
#[utoipa::path(post, path = "/webhook/config/{id}/breaker/reset", operation_id = "reset_endpoint_breaker", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    responses(
        (status = 200, description = "The breaker, closed", body = BreakerOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody)))]
pub async fn reset_breaker(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = owned(&s, &project, &id).await?;
    let view = close_breaker(&s, &endpoint).await?;
    Ok(Json(breaker_json(&view)))
}

/// Closes the breaker, then makes the endpoint's deferred deliveries due, in that order: one
/// picked up in between must find the breaker closed, or it is deferred once more.
async fn close_breaker(s: &AppState, endpoint: &Endpoint) -> Result<BreakerView, ApiError> {
    let view = s.forwarding.breakers.reset(endpoint.url.as_str()).await;
    let hastened = s
        .forwarding
        .deliveries
        .hasten(&endpoint.id, Timestamp::now())
        .await?;
    // The close itself is logged by the breakers when it was open.
    tracing::debug!(endpoint = %endpoint.id.as_str(), hastened, "webhook breaker reset");
    Ok(view)
}

/// A breaker as the API shows it.
pub(super) fn breaker_json(b: &BreakerView) -> Value {
    json!({
        "state": b.state.as_str(),
        "consecutive_failures": b.consecutive_failures,
        "open_until": b.open_until.map(Timestamp::to_rfc3339),
    })
}

/// Retry one delivery
///
/// The delivery is due again now, with a fresh retry budget, whatever its status (a delivered
/// one is sent once more: the customer asked).
#[utoipa::path(post, path = "/webhook/deliveries/{id}/retry", operation_id = "retry_delivery", tag = "webhooks", security(("project_key" = [])),
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
#[utoipa::path(post, path = "/webhook/config/{id}/redrive", operation_id = "redrive_endpoint_deliveries", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
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

/// The longest window one replay covers.
pub const MAX_REPLAY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most events one replay looks at; a larger window is refused, to be split.
pub const MAX_REPLAY_EVENTS: u32 = 10_000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"since": "2026-01-31T09:00:00Z", "until": "2026-01-31T12:00:00Z"}))]
pub struct ReplayIn {
    /// Start of the window (RFC 3339).
    since: String,
    /// End of the window (RFC 3339); now if absent. At most 7 days after `since`.
    until: Option<String>,
}

/// Replay a window of an endpoint's events
///
/// `{"since", "until"?}` (RFC 3339; `until` defaults to now): revives the endpoint's dead deliveries created in the window and makes a delivery for
/// every stored event received in it that the endpoint subscribes to and has none for (events
/// that arrived while it was disabled), all due now. Replaying a window again creates nothing
/// new. The endpoint is read from the store, not a cache: a replay often follows re-enabling it.
#[utoipa::path(post, path = "/webhook/config/{id}/replay", operation_id = "replay_endpoint_events", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    request_body = ReplayIn,
    responses(
        (status = 200, description = "How many deliveries are due now", body = ReplayOut),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody),
        (status = 409, description = "The endpoint is disabled (`endpoint_disabled`)", body = ErrorBody),
        (status = 422, description = "A field is wrong, the window is over 7 days (`window_too_large`) or holds over 10,000 events (`too_many_events`)", body = ErrorBody)))]
pub async fn replay(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReplayIn>,
) -> Result<Json<Value>, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m);
    let time = |field: &str, v: &str| {
        Timestamp::parse_rfc3339(v)
            .ok_or_else(|| invalid(format!("{field}: not an RFC 3339 time: {v:?}")))
    };
    let now = Timestamp::now();
    let since = time("since", &body.since)?;
    let until = match body.until.as_deref() {
        Some(v) => time("until", v)?,
        None => now,
    };
    if since >= until {
        return Err(invalid("since must be before until".into()));
    }
    if until.millis() - since.millis() > MAX_REPLAY_WINDOW.as_millis() as i64 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "window_too_large",
            "a replay covers at most 7 days: replay a longer outage in several windows",
        ));
    }
    let endpoint = owned(&s, &project, &id).await?;
    if !endpoint.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_disabled",
            "the endpoint is disabled: enable it (PUT with \"enabled\": true), then replay",
        ));
    }
    let window = ReplayWindow {
        since,
        until,
        max_events: MAX_REPLAY_EVENTS,
    };
    match s
        .forwarding
        .deliveries
        .replay(&endpoint, &window, now)
        .await?
    {
        Replayed::Done { revived, created } => Ok(Json(json!({
            "replayed": revived + created,
            "revived": revived,
            "created": created,
        }))),
        Replayed::TooMany => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_events",
            format!(
                "the window holds more than {MAX_REPLAY_EVENTS} events: replay shorter windows"
            ),
        )),
    }
}
