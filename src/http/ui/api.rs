//! The dashboard acts through the API itself: each page calls the API router in-process, as
//! the signed-in project (or the admin), so it has exactly the API's authorization, validation
//! and errors, and no second path to the stores.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tower::ServiceExt;

use super::session::Who;
use crate::http::extract::InProcess;

#[derive(Clone)]
pub struct Api {
    router: Router,
}

/// An API answer that was not a success: its status and the sentence from its error body.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl Api {
    pub fn new(router: Router) -> Api {
        Api { router }
    }

    /// The API's raw response to one request (for streaming a CSV through).
    pub async fn raw(
        &self,
        who: &Who,
        method: Method,
        path: &str,
        content_type: &str,
        body: Body,
    ) -> Response {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .expect("a path the dashboard built");
        req.extensions_mut().insert(match who {
            Who::Project(p) => InProcess::Project(p.clone()),
            Who::Admin => InProcess::Admin,
        });
        match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// A JSON call: the body of a 2xx, or the API's error.
    pub async fn call(
        &self,
        who: &Who,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refused> {
        let body = match body {
            Some(v) => Body::from(v.to_string()),
            None => Body::empty(),
        };
        let resp = self.raw(who, method, path, "application/json", body).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        Err(Refused {
            status,
            message: value["error"]["message"]
                .as_str()
                .unwrap_or("the request failed")
                .to_owned(),
        })
    }

    pub async fn get(&self, who: &Who, path: &str) -> Result<Value, Refused> {
        self.call(who, Method::GET, path, None).await
    }

    pub async fn post(&self, who: &Who, path: &str, body: Value) -> Result<Value, Refused> {
        self.call(who, Method::POST, path, Some(body)).await
    }
}

/// Percent-encodes one path segment (a wamid holds `+ / =`).
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
