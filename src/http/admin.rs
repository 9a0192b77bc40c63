//! Operator endpoints (admin token): quarantine, queue depth and dead-letter redrive.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{AdminAuth, QueryParams};
use crate::domain::task::queues;

#[derive(Deserialize)]
pub struct QuarantineQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

/// `GET /v1/admin/quarantine?limit=&before=`: newest first, bodies as the provider sent them.
pub async fn quarantine(
    State(s): State<AppState>,
    _admin: AdminAuth,
    QueryParams(q): QueryParams<QuarantineQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = s.store.quarantined(q.before, limit).await?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|r| r.id))
        .flatten();
    let data: Vec<Value> = page
        .into_iter()
        .map(|r| {
            // Bodies were valid JSON when quarantined; embed them as JSON, not as a string.
            let body = RawValue::from_string(r.body.clone())
                .ok()
                .and_then(|raw| serde_json::to_value(raw).ok())
                .unwrap_or(Value::String(r.body));
            json!({
                "id": r.id,
                "provider": r.provider,
                "reason": r.reason,
                "body": body,
                "received_at": r.received_at.to_rfc3339(),
            })
        })
        .collect();
    Ok(Json(json!({"data": data, "next_cursor": next})))
}

fn known_queue(name: &str) -> Result<&'static str, ApiError> {
    [queues::EVENTS]
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
