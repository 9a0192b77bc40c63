//! Operator endpoints (admin token): quarantine and its replay, queue depth, dead-letter redrive.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{AdminAuth, JsonBody, QueryParams};
use super::page;
use crate::domain::phone::PhoneNumber;
use crate::domain::task::queues;
use crate::domain::time::Timestamp;
use crate::ports::store::{QuarantineFilter, QuarantineView};
use crate::services::Replayer;
use crate::services::replay::ReplayError;

#[derive(Deserialize)]
pub struct QuarantineQuery {
    limit: Option<u32>,
    #[serde(alias = "before")]
    cursor: Option<String>,
}

/// `GET /v1/admin/quarantine?cursor=&limit=`: newest first, bodies as the provider sent them
/// (see `page`).
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    reason: Option<String>,
    business_number: Option<String>,
    /// RFC 3339; items received at or after.
    from: Option<String>,
    /// RFC 3339; items received before.
    to: Option<String>,
    limit: Option<u64>,
}

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

/// `POST /v1/admin/quarantine/replay` `{"reason"?, "business_number"?, "from"?, "to"?,
/// "limit"?}`: queues matching items again, oldest first. Replaying an event that was applied
/// meanwhile changes nothing; one that still cannot be applied is quarantined again.
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
    let replayer = Replayer {
        store: s.store.clone(),
        queue: s.queue.clone(),
    };
    let report = replayer
        .replay(filter, r.limit.unwrap_or(10_000).max(1))
        .await
        .map_err(|e| match e {
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

/// `GET /v1/admin/queues/{queue}`: messages waiting and dead letters.
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

#[derive(Deserialize)]
pub struct RedriveQuery {
    limit: Option<u64>,
}

/// `POST /v1/admin/queues/{queue}/redrive?limit=`: dead letters back onto the queue.
pub async fn redrive(
    State(s): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
    QueryParams(q): QueryParams<RedriveQuery>,
) -> Result<Json<Value>, ApiError> {
    let queue = known_queue(&name)?;
    let moved = s.queue.redrive(queue, q.limit.unwrap_or(1000)).await?;
    Ok(Json(json!({"queue": queue, "moved": moved})))
}
