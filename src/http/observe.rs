//! What the edge does for every response: the access log line, the request counters and
//! latency by route, and the newline every JSON body ends with.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::metrics::{HttpLabel, Metrics, RouteLabel};

/// The route label of a request no route matched (a 404 from the fallback): raw paths would
/// make one series per path a scanner tries.
pub const UNMATCHED: &str = "unmatched";

/// Records each request once its response is made.
pub struct Observer {
    pub metrics: Metrics,
    /// Access log lines at `info` (`WAGATE_ACCESS_LOG=true`), else at `debug`.
    pub access_info: bool,
}

impl Observer {
    /// Counts the request and logs it: method, the route's template (`/v1/messages/{wamid}`,
    /// never the path, which holds ids), status and the time to the response's head (a
    /// streamed body, a CSV export, goes on after it).
    pub fn record(
        &self,
        method: &Method,
        route: Option<&MatchedPath>,
        resp: &Response,
        started: Instant,
    ) {
        let elapsed = started.elapsed();
        let route = route.map_or(UNMATCHED, MatchedPath::as_str);
        let status = resp.status().as_u16();
        self.metrics
            .http
            .requests
            .get_or_create(&HttpLabel {
                route: route.to_owned(),
                status,
            })
            .inc();
        self.metrics
            .http
            .request_seconds
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        let latency_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        if self.access_info {
            tracing::info!(target: "wagate::access", %method, route, status, latency_ms, "request");
        } else {
            tracing::debug!(target: "wagate::access", %method, route, status, latency_ms, "request");
        }
    }
}

/// Ends a JSON body with `\n`, as every JSON response does (so `curl` output ends its line,
/// and JSON-lines tools read a response as one line). The body is not buffered: the newline
/// is one more frame after the last, and the length hint grows by one, so a sized body keeps
/// its `Content-Length`.
pub fn end_json_with_newline(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // A length set by hand would no longer be the body's; hyper derives it from the hint.
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        axum::body::Body::new(TrailingNewline {
            inner: body,
            sent: false,
        }),
    )
}

struct TrailingNewline {
    inner: axum::body::Body,
    sent: bool,
}

impl HttpBody for TrailingNewline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.sent {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.sent = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"\n")))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.sent
    }

    fn size_hint(&self) -> SizeHint {
        if self.sent {
            return SizeHint::with_exact(0);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + 1);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + 1);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn json_bodies_get_a_newline_and_a_length_to_match() {
        let resp = end_json_with_newline(axum::Json(serde_json::json!({"a": 1})).into_response());
        assert_eq!(resp.body().size_hint().exact(), Some(8));
        let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"{\"a\":1}\n");
        let text = end_json_with_newline("plain".into_response());
        let bytes = axum::body::to_bytes(text.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"plain");
    }
}
