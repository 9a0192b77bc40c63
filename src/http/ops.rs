//! `/healthz`, `/readyz`, `/metrics`, and the JSON 404/405.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::holds_admin_token;
use super::openapi::schemas::{Health, Readiness};

/// The process is up and serving HTTP
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "ops",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe<E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

/// The store and the queue answer
///
/// 200 when the store and the queue answer; 503 naming the one that does not. Redis is
/// reported but never makes the process unready: without it wagate reads through to the store.
/// A backend's own error text (hosts, users, versions) is shown only to the admin token.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "ops", security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A backend is down", body = Readiness, example = json!({
            "status": "unavailable",
            "error": {"code": "backend_unavailable", "message": "unreachable: queue (rabbitmq)"},
            "checks": {"store": {"backend": "postgres", "status": "ok"},
                "queue": {"backend": "rabbitmq", "status": "down"},
                "cache": {"backend": "redis", "status": "ok"}}}))))]
pub async fn readyz(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let admin = holds_admin_token(&headers, &s);
    let (store, queue) = tokio::join!(probe(s.store.ping()), probe(s.queue.ping()));
    let cache = match &s.shared_cache {
        Some(c) => Some((c.layer(), probe(c.ping()).await)),
        None => None,
    };
    let failed = |backend: &str, status: &str, e: &str| {
        let mut v = json!({"backend": backend, "status": status});
        if admin {
            v["error"] = json!(e);
        }
        v
    };
    let check = |backend: &str, r: &Result<(), String>| match r {
        Ok(()) => json!({"backend": backend, "status": "ok"}),
        Err(e) => failed(backend, "down", e),
    };
    let mut checks = json!({
        "store": check(s.store.backend(), &store),
        "queue": check(s.queue.backend(), &queue),
    });
    checks["cache"] = match &cache {
        None => json!({"backend": "memory", "status": "ok"}),
        Some((name, Ok(()))) => json!({"backend": name, "status": "ok"}),
        Some((name, Err(e))) => failed(name, "degraded", e),
    };
    let down: Vec<String> = [
        ("store", s.store.backend(), &store),
        ("queue", s.queue.backend(), &queue),
    ]
    .into_iter()
    .filter(|(_, _, r)| r.is_err())
    .map(|(role, backend, _)| format!("{role} ({backend})"))
    .collect();
    if down.is_empty() {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "checks": checks})),
        )
            .into_response()
    } else {
        let body = json!({
            "status": "unavailable",
            "error": {"code": "backend_unavailable", "message": format!("unreachable: {}", down.join(", "))},
            "checks": checks,
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// Prometheus metrics
///
/// OpenMetrics text: requests, ingress, queues, deliveries, sends.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text",
        content_type = "application/openmetrics-text", body = String,
        example = json!("# TYPE wagate_http_requests counter\n# EOF\n"))))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
