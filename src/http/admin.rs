//! Operator endpoints (admin token): quarantine and its replay, queue depth, dead-letter redrive.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{AdminAuth, JsonBody, QueryParams};
use super::openapi::ErrorBody;
use super::openapi::schemas::{QuarantinePage, QueueDepth, QueueRedriven, Replayed};
use super::page;
use crate::domain::phone::PhoneNumber;
use crate::domain::task::queues;
use crate::domain::time::Timestamp;
use crate::ports::store::{QuarantineFilter, QuarantineView};
use crate::services::Replayer;
use crate::services::replay::ReplayError;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineQuery {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(alias = "before")]
    cursor: Option<String>,
}

/// Quarantined webhook parts
///
/// Newest first, bodies as the provider sent them.
#[utoipa::path(get, path = "/v1/admin/quarantine", operation_id = "list_quarantine", tag = "admin", security(("admin_token" = [])), params(QuarantineQuery),
    responses(
        (status = 200, description = "A page of quarantined items", body = QuarantinePage),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody)))]
pub async fn quarantine(
    State(s): State<AppState>,
    _admin: AdminAuth,
    QueryParams(q): QueryParams<QuarantineQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page::limit(q.limit)?;
    let found = s
        .store
        .quarantined(page::numeric_cursor(q.cursor)?, limit)
        .await?;
    let show = |r: &QuarantineView| {
        // Bodies were valid JSON when quarantined; embed them as JSON, not as a string.
        let body = RawValue::from_string(r.body.clone())
            .ok()
            .and_then(|raw| serde_json::to_value(raw).ok())
            .unwrap_or_else(|| Value::String(r.body.clone()));
        json!({
            "id": r.id,
            "provider": r.provider,
            "reason": r.reason,
            "business_number": r.business_number,
            "body": body,
            "received_at": r.received_at.to_rfc3339(),
        })
    };
    Ok(page::page(&found, limit, show, |r| r.id.to_string()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "unknown_number", "business_number": "+918000000001",
    "from": "2026-01-31T00:00:00Z", "limit": 1000}))]
pub struct ReplayIn {
    reason: Option<String>,
    business_number: Option<String>,
    /// RFC 3339; items received at or after.
    from: Option<String>,
    /// RFC 3339; items received before.
    to: Option<String>,
    /// 1 to 1,000,000; default 10,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    limit: Option<u64>,
}

/// The most items one replay or redrive moves: a bound a store can count to (a `u64` past
/// `i64::MAX` made the SQL fail), and a batch an operator can still reason about.
pub const MAX_MOVE: u64 = 1_000_000;

fn time(field: &str, v: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    v.map(|t| {
        Timestamp::parse_rfc3339(t).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("`{field}` must be an RFC 3339 time, like 2026-01-31T09:00:00Z"),
            )
        })
    })
    .transpose()
}

/// Replay quarantined items
///
/// Queues matching items again, oldest first. Replaying an event that was applied meanwhile
/// changes nothing; one that still cannot be applied is quarantined again.
#[utoipa::path(post, path = "/v1/admin/quarantine/replay", operation_id = "replay_quarantine", tag = "admin", security(("admin_token" = [])),
    request_body = ReplayIn,
    responses(
        (status = 200, description = "How many were queued again", body = Replayed),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 422, description = "A field is wrong", body = ErrorBody)))]
pub async fn replay(
    State(s): State<AppState>,
    _admin: AdminAuth,
    JsonBody(r): JsonBody<ReplayIn>,
) -> Result<Json<Value>, ApiError> {
    let numbers = match &r.business_number {
        Some(n) => vec![
            PhoneNumber::parse(n)
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_request",
                        e.to_string(),
                    )
                })?
                .to_string(),
        ],
        None => Vec::new(),
    };
    let filter = QuarantineFilter {
        reason: r.reason,
        business_numbers: numbers,
        from: time("from", r.from.as_deref())?,
        to: time("to", r.to.as_deref())?,
        after_id: 0,
    };
    let limit = r.limit.unwrap_or(10_000);
    if !(1..=MAX_MOVE).contains(&limit) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("limit must be 1 to {MAX_MOVE}"),
        ));
    }
    let replayer = Replayer {
        store: s.store.clone(),
        queue: s.queue.clone(),
    };
    let report = replayer.replay(filter, limit).await.map_err(|e| match e {
        ReplayError::Store(e) => ApiError::from(e),
        ReplayError::Queue(e) => ApiError::from(e),
    })?;
    Ok(Json(
        json!({"replayed": report.replayed, "unreadable": report.unreadable}),
    ))
}

fn known_queue(name: &str) -> Result<&'static str, ApiError> {
    [queues::EVENTS, queues::FORWARD, queues::SEND]
        .into_iter()
        .find(|q| *q == name)
        .ok_or_else(|| ApiError::not_found(format!("no queue `{name}`")))
}

/// A queue's depth and dead letters
#[utoipa::path(get, path = "/v1/admin/queues/{queue}", operation_id = "get_queue", tag = "admin", security(("admin_token" = [])),
    params(("queue" = String, Path, description = "`events`, `forward` or `send`", example = "events")),
    responses(
        (status = 200, description = "Messages waiting and dead letters", body = QueueDepth),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody)))]
pub async fn queue(
    State(s): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let q = known_queue(&name)?;
    let depth = s.queue.depth(q).await?;
    let dead = s.queue.dead_count(q).await?;
    Ok(Json(
        json!({"queue": q, "backend": s.queue.backend(), "depth": depth, "dead_letters": dead}),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedriveQuery {
    /// 1 to 1,000,000; default 1000.
    #[param(minimum = 1, maximum = 1_000_000)]
    limit: Option<u64>,
}

/// Move dead letters back onto their queue
#[utoipa::path(post, path = "/v1/admin/queues/{queue}/redrive", operation_id = "redrive_queue", tag = "admin", security(("admin_token" = [])),
    params(("queue" = String, Path, example = "events"), RedriveQuery),
    responses(
        (status = 200, description = "How many were moved", body = QueueRedriven),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody)))]
pub async fn redrive(
    State(s): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
    QueryParams(q): QueryParams<RedriveQuery>,
) -> Result<Json<Value>, ApiError> {
    let queue = known_queue(&name)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=MAX_MOVE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_MOVE}"),
        ));
    }
    let moved = s.queue.redrive(queue, limit).await?;
    Ok(Json(json!({"queue": queue, "moved": moved})))
}
