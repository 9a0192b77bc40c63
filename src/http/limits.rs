//! What every request passes through before a handler: a URI length limit, a cap on requests
//! served at once, a time limit, and one JSON shape for the errors made below the handlers;
//! and after it, the access log, the request metrics and the JSON newline (`observe`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

use super::error::ApiError;
use super::observe::{self, Observer};
use crate::config::Config;
use crate::metrics::Metrics;

/// Longest request target (path and query) answered by a handler. hyper refuses targets over
/// 64 KiB with an empty 414 before any of this code runs; this limit answers the rest in JSON.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The HTTP limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub body_bytes: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_concurrent: usize,
    /// Access log lines at `info` rather than `debug` (not a limit, but read at the same edge).
    pub access_log: bool,
}

impl HttpLimits {
    pub fn from_config(c: &Config) -> HttpLimits {
        HttpLimits {
            body_bytes: c.body_limit_bytes,
            header_timeout: Config::ms(c.http_header_timeout_ms),
            request_timeout: Config::ms(c.http_request_timeout_ms),
            max_concurrent: c.http_max_concurrent_requests,
            access_log: c.access_log,
        }
    }
}

/// Wraps every route and the fallbacks: `edge` outside, then the time limit. The time limit
/// covers reading the body, so a client that sends half a body gets a 408 and its connection
/// closed.
///
/// `bulk` routes (a recipients CSV up or down: minutes for a million rows) get
/// [`BULK_TIMEOUT`] instead of the request timeout.
pub fn apply(router: Router, bulk: Router, limits: &HttpLimits, metrics: Metrics) -> Router {
    let shared = Arc::new(Edge {
        permits: Semaphore::new(limits.max_concurrent),
        observer: Observer {
            metrics,
            access_info: limits.access_log,
        },
    });
    timed(router, bulk, limits).layer(middleware::from_fn_with_state(shared, edge))
}

/// `router` under the request timeout, `bulk` under [`BULK_TIMEOUT`], as one router.
fn timed(router: Router, bulk: Router, limits: &HttpLimits) -> Router {
    let timeout = |t| TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, t);
    router
        .layer(timeout(limits.request_timeout))
        .merge(bulk.layer(timeout(BULK_TIMEOUT)))
}

/// The dashboard's edge: the API's URI limit, time limits, access log and request metrics, but
/// not its cap on requests at once. A page makes its own calls into the API, which take their
/// places under that cap; a page holding one as well could leave a full process waiting on
/// itself. `uploads` (a CSV streamed on to the API's bulk route) get [`BULK_TIMEOUT`].
pub fn apply_ui(pages: Router, uploads: Router, limits: &HttpLimits, metrics: Metrics) -> Router {
    let observer = Arc::new(Observer {
        metrics,
        access_info: limits.access_log,
    });
    timed(pages, uploads, limits).layer(middleware::from_fn_with_state(observer, ui_edge))
}

async fn ui_edge(State(observer): State<Arc<Observer>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = match uri_too_long(&req) {
        Some(refused) => refused,
        None => next.run(req).await,
    };
    observer.record(&method, route.as_ref(), &resp, started);
    observe::end_json_with_newline(resp)
}

/// The 414 for a request target over [`MAX_URI_BYTES`].
fn uri_too_long(req: &Request) -> Option<Response> {
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    (len > MAX_URI_BYTES).then(|| {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request path and query exceed {MAX_URI_BYTES} bytes"),
        )
        .into_response()
    })
}

/// What the edge middleware holds.
struct Edge {
    permits: Semaphore,
    observer: Observer,
}

/// The largest JSON body a bulk route takes (`event/send`, a `{"csv_url"}` upload): the
/// bulk routes lift the general body limit for CSVs, not for JSON.
pub const BULK_JSON_BODY_BYTES: usize = 64 * 1024;

/// How long a bulk transfer may take, body included.
pub const BULK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// One middleware (one boxed future per request, not several): the URI limit, the concurrency
/// cap, the JSON shape for errors made below the handlers; then every response, refused here
/// or not, is counted, logged and, if JSON, ended with a newline.
async fn edge(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = limited(&edge.permits, req, next).await;
    edge.observer
        .record(&method, route.as_ref(), &resp, started);
    observe::end_json_with_newline(resp)
}

async fn limited(permits: &Semaphore, req: Request, next: Next) -> Response {
    if let Some(refused) = uri_too_long(&req) {
        return refused;
    }
    // Over the cap, a request is refused at once: queueing it would only move the wait into
    // memory. `/healthz` is exempt, so a busy process is not mistaken for a dead one.
    let _permit = if req.uri().path() == "/healthz" {
        None
    } else {
        match permits.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let mut resp = ApiError::unavailable(
                    "overloaded",
                    "too many requests in progress; retry shortly",
                )
                .into_response();
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return resp;
            }
        }
    };
    json_errors(next.run(req).await).await
}

/// Error responses made outside our handlers (axum's extractor rejections, the timeout layer)
/// are plain text or empty; this gives them the API's JSON shape. A 5xx body is not echoed,
/// as it may hold internals.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (code, default) = describe(status);
    let message = if text.is_empty() || status.is_server_error() {
        default.to_owned()
    } else {
        text
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The error code and a default message for a status.
fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "the request is malformed"),
        401 => ("unauthorized", "authentication is required"),
        403 => ("forbidden", "not allowed"),
        404 => ("not_found", "no such resource"),
        405 => ("method_not_allowed", "method not allowed on this route"),
        408 => (
            "request_timeout",
            "the request was not received and answered in time",
        ),
        413 => ("payload_too_large", "request body exceeds the size limit"),
        414 => ("uri_too_long", "the request path and query are too long"),
        415 => ("unsupported_media_type", "unsupported content type"),
        422 => ("invalid_request", "the request cannot be processed"),
        429 => ("too_many_requests", "too many requests; retry later"),
        503 => ("unavailable", "the service is unavailable; retry later"),
        500..=599 => ("internal", "internal error"),
        _ => ("error", "the request failed"),
    }
}
