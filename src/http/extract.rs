//! Request extractors with JSON errors: bodies, query strings, and the two kinds of auth.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use std::borrow::Cow;

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::domain::project::{ApiKeyHash, ProjectId};
use crate::domain::signing::constant_time_eq;

/// The raw body, or 413/400 as JSON.
pub struct Body(pub Bytes);

pub fn body_error(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body exceeds the size limit",
        )
    } else {
        ApiError::bad_request("bad_request", r.body_text())
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(body_error)
    }
}

/// A JSON body of type `T`: 400 `invalid_json` if it is not JSON, 422 `invalid_request` if it
/// is JSON of the wrong shape (a value of the wrong type, a missing or an unknown field). Any
/// content type is accepted.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Body(bytes) = Body::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Reads a JSON request body, for every route that takes one, so that all of them answer alike:
/// 400 `invalid_json` for bytes that are not JSON, 422 `invalid_request` for JSON that does not
/// fit, with a message that names the field (`params[0].column: invalid type: …`).
///
/// Every body the API takes is an object: serde would read a struct from an array too, field
/// by field in order (`["acme","Acme",[]]` made a project), so anything else is refused first.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let not_json = |e: serde_json::Error| {
        ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(not_json)?;
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "the request body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return not_json(inner);
        }
        // `.` is the body itself (a missing field, an unknown one: serde names those).
        let message = if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    })?;
    // Bytes after the value make the body malformed JSON, whatever the value was.
    de.end().map_err(not_json)?;
    Ok(value)
}

/// A query string of type `T`, or 400 `invalid_query`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The project whose API key authenticated the request.
pub struct ProjectAuth(pub ProjectId);

/// Who a request made in-process by the dashboard (`http::ui`) acts as, once its session was
/// checked there. It travels as a request extension, which only code in this process can set:
/// a header could be forged by any client.
#[derive(Debug, Clone)]
pub enum InProcess {
    Project(ProjectId),
    Admin,
}

impl FromRequestParts<AppState> for ProjectAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(InProcess::Project(project)) = parts.extensions.get::<InProcess>() {
            return Ok(ProjectAuth(project.clone()));
        }
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <api key>`"))?;
        match state.lookup.by_key(&ApiKeyHash::of(token)).await? {
            Some(project) => Ok(ProjectAuth(project)),
            None => Err(ApiError::unauthorized("unknown API key")),
        }
    }
}

/// The webhook carries the ingress token, when one is configured: as a bearer token, or as
/// `?token=` for BSPs that can only be given a URL.
pub struct IngressAuth;

impl FromRequestParts<AppState> for IngressAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.ingress_token else {
            return Ok(IngressAuth);
        };
        let presented = match bearer(&parts.headers) {
            Some(token) => Cow::Borrowed(token),
            None => parts.uri.query().and_then(query_token).unwrap_or_default(),
        };
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(IngressAuth)
        } else {
            Err(ApiError::unauthorized("missing or wrong ingress token"))
        }
    }
}

/// The `token` parameter of a query string, percent-decoded (a token with `/`, `+` or `=` is
/// given to a BSP escaped). `+` stays a plus: tokens are not form text.
fn query_token(query: &str) -> Option<Cow<'_, str>> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
}

/// Whether the request carries the admin token, for routes that show admins more.
pub fn holds_admin_token(headers: &HeaderMap, state: &AppState) -> bool {
    bearer(headers).is_some_and(|t| constant_time_eq(t.as_bytes(), state.admin_token.as_bytes()))
}

/// The request carries the admin token.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(InProcess::Admin) = parts.extensions.get::<InProcess>() {
            return Ok(AdminAuth);
        }
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("missing `Authorization: Bearer <admin token>`")
        })?;
        if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
            Ok(AdminAuth)
        } else {
            Err(ApiError::unauthorized("wrong admin token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_token_is_percent_decoded() {
        assert_eq!(query_token("token=abc").as_deref(), Some("abc"));
        assert_eq!(
            query_token("a=1&token=s%2Fk%3D%2B+x&b=2").as_deref(),
            Some("s/k=++x")
        );
        assert_eq!(query_token("tokens=abc"), None);
        assert_eq!(query_token("x=token=abc"), None);
    }
}
