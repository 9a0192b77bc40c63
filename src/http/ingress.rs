//! BSP webhooks in: parse, quarantine what cannot be read, make the rest durable, then 200.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use super::extract::{Body, IngressAuth, QueryParams};
use super::openapi::ErrorBody;
use super::openapi::schemas::Accepted;
use crate::domain::event::Provider;
use crate::domain::providers::{self, Parsed};
use crate::domain::signing::{constant_time_eq, verify_meta_signature};
use crate::domain::time::Timestamp;
use crate::metrics::{ProviderLabel, ReasonLabel};
use crate::ports::store::Quarantined;

/// Datagen/Karix status webhooks (the seed's path)
///
/// One Karix event object, or an array of them (a batch). Answers once every event is durably
/// queued; parts that cannot be read are quarantined, not refused.
#[utoipa::path(post, path = "/datagen-webhook", operation_id = "ingest_datagen_webhook", tag = "ingress",
    security((), ("ingress_token" = []), ("ingress_token_query" = [])),
    request_body(content = Value, description = "A Karix event object, or an array of them",
        content_type = "application/json", example = json!({"events": {"mid": "410123751001143816805212",
        "eventType": "DELIVERY EVENTS", "timestamp": "1706691600000",
        "status": "delivered"}, "recipient": {"to": "919812345678", "reference": {"cust_ref": "cmp_01J"}},
        "notificationAttributes": {"status": "delivered", "reason": "none", "code": "000"}})),
    responses(
        (status = 200, description = "Durably queued", body = Accepted),
        (status = 400, description = "Not JSON (`invalid_json`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong ingress token", body = ErrorBody)))]
pub async fn datagen(
    State(s): State<AppState>,
    _auth: IngressAuth,
    body: Result<Body, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let body = rejected(&s, Provider::Datagen, body)?;
    let raw = parse_json(&s, Provider::Datagen, &body.0)?;
    ingest(&s, Provider::Datagen, providers::datagen::parse(&raw)).await
}

/// Datagen/Karix status webhooks
///
/// The same as `POST /datagen-webhook`, under `/v1/ingest/{provider}`.
#[utoipa::path(post, path = "/v1/ingest/datagen", operation_id = "ingest_datagen", tag = "ingress",
    security((), ("ingress_token" = []), ("ingress_token_query" = [])),
    request_body(content = Value, description = "A Karix event object, or an array of them",
        content_type = "application/json", example = json!([{"events": {"mid": "410123751001143816805212",
        "eventType": "DELIVERY EVENTS", "timestamp": "1706691600000"},
        "notificationAttributes": {"status": "read"}}])),
    responses(
        (status = 200, description = "Durably queued", body = Accepted),
        (status = 400, description = "Not JSON (`invalid_json`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong ingress token", body = ErrorBody)))]
pub async fn datagen_v1(
    s: State<AppState>,
    auth: IngressAuth,
    body: Result<Body, ApiError>,
) -> Result<Json<Value>, ApiError> {
    datagen(s, auth, body).await
}

/// Meta Cloud API webhooks
///
/// `entry[].changes[].value` with `statuses` and `messages`. With `WAGATE_META_APP_SECRET`
/// set, `X-Hub-Signature-256` must be the HMAC of the body.
#[utoipa::path(post, path = "/v1/ingest/meta", operation_id = "ingest_meta", tag = "ingress",
    security((), ("ingress_token" = []), ("ingress_token_query" = [])),
    params(("X-Hub-Signature-256" = Option<String>, Header,
        description = "`sha256=<hex HMAC-SHA256 of the body>`, keyed with the app secret; required when one is configured")),
    request_body(content = Value, description = "Meta's webhook notification; any other JSON is quarantined, not refused",
        content_type = "application/json", example = json!({"object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "918000000001",
        "phone_number_id": "106540352242922"}, "statuses": [{"id": "wamid.HBgM", "status": "delivered",
        "timestamp": "1706691600", "recipient_id": "919812345678"}]}}]}]})),
    responses(
        (status = 200, description = "Durably queued", body = Accepted),
        (status = 400, description = "Not JSON (`invalid_json`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong ingress token or signature", body = ErrorBody)))]
pub async fn meta(
    State(s): State<AppState>,
    _auth: IngressAuth,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let body = rejected(&s, Provider::Meta, body)?;
    if let Some(secret) = &s.meta_app_secret {
        let signature = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        if !verify_meta_signature(secret.as_bytes(), &body.0, signature) {
            count_rejected(&s, Provider::Meta, "bad_signature");
            return Err(ApiError::unauthorized(
                "missing or wrong X-Hub-Signature-256",
            ));
        }
    }
    let raw = parse_json(&s, Provider::Meta, &body.0)?;
    ingest(&s, Provider::Meta, providers::meta::parse(&raw)).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription check
///
/// Echoes `hub.challenge` when `hub.mode` is `subscribe` and `hub.verify_token` is
/// `WAGATE_META_VERIFY_TOKEN`.
#[utoipa::path(get, path = "/v1/ingest/meta", operation_id = "verify_meta_webhook", tag = "ingress", params(Handshake),
    responses(
        (status = 200, description = "The challenge, as sent", content_type = "text/plain",
            body = String, example = json!("1158201444")),
        (status = 400, description = "A query that cannot be read", body = ErrorBody),
        (status = 403, description = "Verification disabled or failed", body = ErrorBody)))]
pub async fn meta_handshake(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<Handshake>,
) -> Result<Response, ApiError> {
    let Some(expected) = &s.meta_verify_token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "verification_disabled",
            "set WAGATE_META_VERIFY_TOKEN to enable Meta's webhook verification",
        ));
    };
    let token_ok = q
        .verify_token
        .as_deref()
        .is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()));
    match (q.mode.as_deref(), token_ok, q.challenge) {
        (Some("subscribe"), true, Some(challenge)) => {
            Ok((StatusCode::OK, challenge).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "verification_failed",
            "hub.mode, hub.verify_token or hub.challenge is wrong",
        )),
    }
}

/// Any other provider: 404 naming the known ones
#[utoipa::path(post, path = "/v1/ingest/{provider}", operation_id = "ingest_unknown_provider", tag = "ingress",
    params(("provider" = String, Path, description = "Not `datagen` or `meta`, which have their own routes")),
    responses((status = 404, description = "Unknown provider", body = ErrorBody,
        example = json!({"error": {"code": "not_found", "message": "unknown provider `karix` (known: datagen, meta)"}}))))]
pub async fn unknown_provider(Path(provider): Path<String>) -> ApiError {
    ApiError::not_found(format!(
        "unknown provider `{provider}` (known: datagen, meta)"
    ))
}

fn rejected(
    s: &AppState,
    provider: Provider,
    body: Result<Body, ApiError>,
) -> Result<Body, ApiError> {
    body.inspect_err(|e| {
        let reason = if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_body"
        };
        count_rejected(s, provider, reason);
    })
}

fn parse_json(
    s: &AppState,
    provider: Provider,
    body: &[u8],
) -> Result<Box<serde_json::value::RawValue>, ApiError> {
    providers::raw_json(body).map_err(|e| {
        count_rejected(s, provider, "invalid_json");
        ApiError::bad_request("invalid_json", e.to_string())
    })
}

fn count_rejected(s: &AppState, provider: Provider, reason: &'static str) {
    s.metrics
        .ingress_rejected
        .get_or_create(&ReasonLabel {
            provider: provider.as_str(),
            reason,
        })
        .inc();
}

/// Quarantines the unreadable parts and enqueues the events; answers only when both are durable.
async fn ingest(s: &AppState, provider: Provider, parsed: Parsed) -> Result<Json<Value>, ApiError> {
    let publisher = s.publisher.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "ingress_disabled",
            "this process does not run the ingress role",
        )
    })?;
    let received_at = Timestamp::now();
    let accepted = parsed.events.len();
    let quarantined: Vec<Quarantined> = parsed
        .rejected
        .iter()
        .map(|r| Quarantined {
            provider: r.provider.as_str().to_owned(),
            reason: r.reason.to_owned(),
            body: r.raw.get().to_owned(),
            // A BSP retries what it thinks failed: the same bytes are kept once.
            dedupe_key: Some(format!(
                "body:{}:{}",
                r.provider.as_str(),
                hex::encode(Sha256::digest(r.raw.get().as_bytes()))
            )),
            business_number: None,
            event: None,
            received_at,
        })
        .collect();
    let (queued, kept) = tokio::join!(
        publisher.submit(parsed.events, received_at),
        s.store.quarantine(&quarantined)
    );
    if let Err(e) = queued {
        count_rejected(s, provider, "queue_unavailable");
        return Err(e.into());
    }
    kept?;
    let p = provider.as_str();
    if accepted > 0 {
        s.metrics
            .ingress_accepted
            .get_or_create(&ProviderLabel { provider: p })
            .inc_by(accepted as u64);
    }
    for r in &parsed.rejected {
        s.metrics
            .quarantined
            .get_or_create(&ReasonLabel {
                provider: p,
                reason: r.reason,
            })
            .inc();
    }
    Ok(Json(
        json!({"accepted": accepted, "quarantined": quarantined.len()}),
    ))
}
