//! A project's webhook endpoints (the seed's `/webhook/config` paths) and their delivery logs.
//!
//! The shared secret appears in two responses only: creation and rotation. A URL whose host is
//! or resolves to an internal address is refused unless `allow_private_targets` is set; the
//! forwarder checks again when it connects, since DNS can change in between.

use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{Body, JsonBody, ProjectAuth, QueryParams};
use super::openapi::ErrorBody;
use super::openapi::schemas::{
    DeliveryDetail, DeliveryPage, EndpointCreated, EndpointOut, EndpointPage, SecretRotated,
};
use super::page;
use crate::domain::endpoint::{
    DeliveryStatus, Endpoint, EndpointError, EndpointId, EndpointIn, EndpointPatch, SharedSecret,
    WebhookDeliveryId, WebhookUrl, is_forbidden_target,
};
use crate::domain::project::ProjectId;
use crate::domain::time::Timestamp;
use crate::ports::endpoints::{AttemptView, DeliveryQuery, DeliveryView};

/// How long resolving a webhook's host may take when it is configured.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the old secret keeps signing after a rotation, unless the request says.
const DEFAULT_OVERLAP_SECS: u64 = 86_400;
const MAX_OVERLAP_SECS: u64 = 30 * 86_400;

fn invalid(e: EndpointError) -> ApiError {
    match e {
        EndpointError::InvalidUrl(_) => ApiError::bad_request("url_not_allowed", e.to_string()),
        EndpointError::UnknownTopic(_) | EndpointError::TopicCount => {
            ApiError::bad_request("invalid_topic", e.to_string())
        }
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            e.to_string(),
        ),
    }
}

/// Refuses a URL whose host is, or resolves to, anything but public addresses; every address
/// the name resolves to must be allowed, or a second record could point inside. A host that
/// does not resolve is refused too, with the same words, so the answer does not tell a caller
/// which internal names exist.
pub(super) async fn check_target(
    field: &'static str,
    url: &WebhookUrl,
    allow_private: bool,
) -> Result<(), ApiError> {
    match vet_target(url, allow_private).await {
        Target::Allowed => Ok(()),
        Target::Unresolved | Target::Internal => Err(internal_target(field)),
    }
}

/// The `url_not_allowed` refusal of a URL whose host is internal.
pub(super) fn internal_target(field: &'static str) -> ApiError {
    ApiError::bad_request(
        "url_not_allowed",
        format!(
            "{field} must name a host that resolves to public internet addresses only \
             (loopback, private, link-local, CGNAT and metadata addresses are refused)"
        ),
    )
}

/// What the address guard makes of a URL's host.
pub(super) enum Target {
    Allowed,
    /// The name did not resolve (in time).
    Unresolved,
    /// Some address is internal.
    Internal,
}

pub(super) async fn vet_target(url: &WebhookUrl, allow_private: bool) -> Target {
    if allow_private {
        return Target::Allowed;
    }
    let Some((host, port)) = url.host_and_port() else {
        return Target::Internal;
    };
    let addresses: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![ip.into()],
        url::Host::Ipv6(ip) => vec![ip.into()],
        url::Host::Domain(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                Ok(Err(_)) | Err(_) => return Target::Unresolved,
            }
        }
    };
    if addresses.is_empty() {
        Target::Unresolved
    } else if addresses.iter().any(|ip| is_forbidden_target(*ip)) {
        Target::Internal
    } else {
        Target::Allowed
    }
}

pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook endpoint {id}"))
}

/// The project's endpoint `id`, or the 404 for it (another project's is not found either).
pub(super) async fn owned(
    s: &AppState,
    project: &ProjectId,
    id: &str,
) -> Result<Endpoint, ApiError> {
    s.endpoints
        .get(project, &endpoint_id(id)?)
        .await?
        .ok_or_else(|| not_found(id))
}

/// An endpoint id from the path; one that cannot be an id is as absent as any other.
pub(super) fn endpoint_id(id: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(id).map_err(|_| not_found(id))
}

/// An endpoint without its secrets, with its URL's circuit breaker as this process sees it
/// (shared by all forwarders when Redis is configured).
async fn view(s: &AppState, e: &Endpoint, now: Timestamp) -> Value {
    let b = s.forwarding.breakers.view(e.url.as_str()).await;
    json!({
        "id": e.id,
        "webhook_url": e.url.as_str(),
        "topics": e.topics.as_slice(),
        "description": e.description,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "breaker": super::forwarding::breaker_json(&b),
        "previous_secret_expires_at": e.active_previous(now).map(|p| p.expires_at.to_rfc3339()),
        "created_at": e.created_at.to_rfc3339(),
        "updated_at": e.updated_at.to_rfc3339(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"webhook_url": "https://example.com/hooks/wagate",
    "topics": ["meta.delivery", "meta.user_message"], "description": "CRM"}))]
pub struct EndpointBody {
    /// `https://` (or `http://`), to a host with public addresses only.
    webhook_url: String,
    /// 1 to 10.
    #[schema(value_type = Vec<super::openapi::schemas::Topic>, min_items = 1, max_items = 10)]
    topics: Vec<String>,
    /// Chosen by the customer; else a `whsec_` secret is generated.
    shared_secret: Option<String>,
    description: Option<String>,
}

/// Register a webhook endpoint
///
/// 201 with the endpoint and its `shared_secret` (shown here and at rotation only).
#[utoipa::path(post, path = "/webhook/config", operation_id = "create_webhook_endpoint", tag = "webhooks", security(("project_key" = [])),
    request_body = EndpointBody,
    responses(
        (status = 201, description = "Created, with its secret", body = EndpointCreated),
        (status = 400, description = "Not JSON, a refused URL (`url_not_allowed`) or topic (`invalid_topic`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 422, description = "A field is wrong", body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(b): JsonBody<EndpointBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = EndpointIn::parse(
        &b.webhook_url,
        &b.topics,
        b.description.as_deref(),
        b.shared_secret.as_deref(),
    )
    .map_err(invalid)?;
    check_target("webhook_url", &input.url, s.allow_private_targets).await?;
    let now = Timestamp::now();
    let endpoint = Endpoint::create(project, input, now);
    s.endpoints.create(&endpoint).await?;
    let mut body = view(&s, &endpoint, now).await;
    body["shared_secret"] = json!(endpoint.secret.expose());
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// List webhook endpoints
///
/// Oldest first, without secrets.
#[utoipa::path(get, path = "/webhook/config", operation_id = "list_webhook_endpoints", tag = "webhooks", security(("project_key" = [])), params(ListQuery),
    responses(
        (status = 200, description = "A page of endpoints", body = EndpointPage),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page::limit(q.limit)?;
    let after = page::cursor(q.cursor);
    let now = Timestamp::now();
    let mut all = s.endpoints.list(&project).await?;
    // The cursor is an id: the page starts past it in id order (ids are made in creation
    // order, the list's).
    all.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let found: Vec<Endpoint> = all
        .into_iter()
        .filter(|e| after.as_deref().is_none_or(|a| e.id.as_str() > a))
        .take(limit as usize)
        .collect();
    let mut data = Vec::with_capacity(found.len());
    for e in &found {
        data.push(view(&s, e, now).await);
    }
    let next = page::next(&found, limit, |e| e.id.to_string());
    Ok(page::body(data, next))
}

/// A webhook endpoint and its state
#[utoipa::path(get, path = "/webhook/config/{id}", operation_id = "get_webhook_endpoint", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    responses(
        (status = 200, description = "The endpoint, with its breaker", body = EndpointOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody)))]
pub async fn one(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = owned(&s, &project, &id).await?;
    Ok(Json(view(&s, &endpoint, Timestamp::now()).await))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"topics": ["meta.delivery"], "enabled": true}))]
pub struct PatchBody {
    webhook_url: Option<String>,
    /// 1 to 10.
    #[schema(value_type = Option<Vec<super::openapi::schemas::Topic>>, min_items = 1, max_items = 10)]
    topics: Option<Vec<String>>,
    /// `""` clears it.
    description: Option<String>,
    enabled: Option<bool>,
    /// Refused with a pointer to rotation, which keeps the old secret valid for a while.
    #[schema(value_type = Option<String>)]
    shared_secret: Option<IgnoredAny>,
}

/// Change a webhook endpoint
///
/// Changes the fields given; `"enabled": true` re-enables an endpoint the forwarder disabled.
#[utoipa::path(put, path = "/webhook/config/{id}", operation_id = "update_webhook_endpoint", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The endpoint", body = EndpointOut),
        (status = 400, description = "Not JSON, a refused URL or topic", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody),
        (status = 422, description = "A field is wrong", body = ErrorBody)))]
pub async fn update(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = endpoint_id(&id)?;
    if b.shared_secret.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "shared_secret is changed with POST /webhook/config/{id}/rotate-secret",
        ));
    }
    let patch = EndpointPatch::parse(
        b.webhook_url.as_deref(),
        b.topics.as_deref(),
        b.description.as_deref(),
        b.enabled,
    )
    .map_err(invalid)?;
    if let Some(url) = &patch.url {
        check_target("webhook_url", url, s.allow_private_targets).await?;
    }
    let now = Timestamp::now();
    let updated = s.endpoints.update(&project, &endpoint, &patch, now).await?;
    let updated = updated.ok_or_else(|| not_found(&id))?;
    s.forwarding.cache.invalidate(&endpoint).await;
    Ok(Json(view(&s, &updated, now).await))
}

/// Delete a webhook endpoint
///
/// Its deliveries go with it.
#[utoipa::path(delete, path = "/webhook/config/{id}", operation_id = "delete_webhook_endpoint", tag = "webhooks", security(("project_key" = [])), params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody)))]
pub async fn remove(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let endpoint = endpoint_id(&id)?;
    if s.endpoints.delete(&project, &endpoint).await? {
        s.forwarding.cache.invalidate(&endpoint).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"overlap_secs": 3600}))]
pub struct RotateBody {
    /// How long the old secret keeps signing beside the new one: 0 to 2,592,000 (30 days);
    /// default 86,400.
    #[schema(minimum = 0, maximum = 2_592_000)]
    overlap_secs: Option<u64>,
    /// The new secret, when the customer chooses it; else one is generated.
    shared_secret: Option<String>,
}

/// Rotate an endpoint's secret
///
/// A new secret (shown in this response only); the old one keeps signing beside it for
/// `overlap_secs` (default a day). The body is optional.
#[utoipa::path(post, path = "/webhook/config/{id}/rotate-secret", operation_id = "rotate_endpoint_secret", tag = "webhooks", security(("project_key" = [])),
    params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF")),
    request_body(content = Option<RotateBody>, content_type = "application/json",
        example = json!({"overlap_secs": 3600})),
    responses(
        (status = 200, description = "The new secret", body = SecretRotated),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody),
        (status = 422, description = "A field is wrong", body = ErrorBody)))]
pub async fn rotate_secret(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let endpoint = endpoint_id(&id)?;
    let b: RotateBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        super::extract::parse_json(&bytes)?
    };
    let overlap = b.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("overlap_secs must be at most {MAX_OVERLAP_SECS} (30 days)"),
        ));
    }
    let secret = match b.shared_secret.as_deref() {
        Some(given) => SharedSecret::parse(given).map_err(invalid)?,
        None => SharedSecret::generate(),
    };
    let now = Timestamp::now();
    // At most 30 days in ms: far inside i64.
    let until = Timestamp::from_millis(now.millis() + overlap as i64 * 1000);
    let rotated = s
        .endpoints
        .rotate_secret(&project, &endpoint, &secret, until, now)
        .await?
        .ok_or_else(|| not_found(&id))?;
    s.forwarding.cache.invalidate(&endpoint).await;
    Ok(Json(json!({
        "id": rotated.id,
        "shared_secret": rotated.secret.expose(),
        "previous_secret_expires_at": rotated.active_previous(now).map(|p| p.expires_at.to_rfc3339()),
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// `pending`, `succeeded` or `dead`.
    status: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(alias = "after")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

pub(super) fn delivery_json(d: &DeliveryView) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "endpoint_id": d.endpoint_id,
        "event_type": d.event_type,
        "status": d.status.as_str(),
        "attempt_count": d.attempts,
        "next_attempt_at": (d.status == DeliveryStatus::Pending)
            .then(|| d.next_attempt_at.to_rfc3339()),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": d.created_at.to_rfc3339(),
        "updated_at": d.updated_at.to_rfc3339(),
    })
}

fn attempt_json(a: &AttemptView) -> Value {
    json!({
        "attempt": a.attempt,
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "response_snippet": a.response_snippet,
        "attempted_at": a.attempted_at.to_rfc3339(),
    })
}

/// An endpoint's delivery log
///
/// In creation order.
#[utoipa::path(get, path = "/webhook/config/{id}/deliveries", operation_id = "list_endpoint_deliveries", tag = "webhooks", security(("project_key" = [])),
    params(("id" = String, Path, description = "The endpoint id", example = "ep_01JABCDEF"), DeliveriesQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such endpoint (or another project's)", body = ErrorBody)))]
pub async fn deliveries(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<DeliveriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = endpoint_id(&id)?;
    let bad = |m: &str| ApiError::bad_request("invalid_query", m.to_owned());
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(word) => Some(
            DeliveryStatus::parse(word)
                .ok_or_else(|| bad("status must be one of pending, succeeded, dead"))?,
        ),
    };
    let after = page::cursor(q.cursor)
        .map(|a| WebhookDeliveryId::parse(&a).map_err(|_| page::bad_cursor()))
        .transpose()?;
    let limit = page::limit(q.limit)?;
    if s.endpoints.get(&project, &endpoint).await?.is_none() {
        return Err(not_found(&id));
    }
    let query = DeliveryQuery {
        status,
        after,
        limit,
    };
    let found = s.endpoints.deliveries(&project, &endpoint, &query).await?;
    Ok(page::page(&found, limit, delivery_json, |d| {
        d.id.to_string()
    }))
}

/// The body a delivery sends, shown byte for byte when it is JSON (as the forwarder writes
/// it), so a client can check a signature against it.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum Payload {
    Json(Box<RawValue>),
    Text(String),
}

#[derive(serde::Serialize)]
pub struct DeliveryOut {
    #[serde(flatten)]
    delivery: Value,
    payload: Payload,
    attempts: Vec<Value>,
}

/// A delivery with its body and attempts
#[utoipa::path(get, path = "/webhook/deliveries/{id}", operation_id = "get_delivery", tag = "webhooks", security(("project_key" = [])),
    params(("id" = String, Path, description = "The delivery id")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody)))]
pub async fn delivery(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    let missing = || ApiError::not_found(format!("no delivery {id}"));
    let delivery = WebhookDeliveryId::parse(&id).map_err(|_| missing())?;
    let detail = s
        .endpoints
        .delivery(&project, &delivery)
        .await?
        .ok_or_else(missing)?;
    let payload = match serde_json::from_str::<&RawValue>(&detail.payload) {
        Ok(raw) => Payload::Json(raw.to_owned()),
        Err(_) => Payload::Text(detail.payload.clone()),
    };
    Ok(Json(DeliveryOut {
        delivery: delivery_json(&detail.delivery),
        payload,
        attempts: detail.attempts.iter().map(attempt_json).collect(),
    }))
}
