//! API errors: one JSON shape, the right status, and no internals leaked on a 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ports::{QueueError, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

/// Longest message sent: messages may quote the request (a path, a parameter), and a client
/// sending 10,000 characters must not get them back.
const MAX_MESSAGE_BYTES: usize = 300;

fn shorten(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": shorten(self.message)}});
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            StoreError::Unavailable(msg) | StoreError::Contention(msg) => {
                tracing::warn!(error = %msg, "store unavailable");
                ApiError::unavailable("store_unavailable", "the store is unavailable; retry later")
            }
            // Handlers validate what they store, so a refusal here is a bug in that
            // validation: say it is this request's data, never echo the database's words.
            StoreError::Rejected(msg) => {
                tracing::error!(error = %msg, "store rejected a request");
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    "the request holds a value that cannot be stored",
                )
            }
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        tracing::warn!(error = %e, "queue unavailable");
        ApiError::unavailable(
            "queue_unavailable",
            "the queue cannot take events right now; retry later",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        assert_eq!(shorten("short".into()), "short");
        let long = format!("no message {}", "é".repeat(5000));
        let cut = shorten(long);
        assert!(
            cut.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8(),
            "{}",
            cut.len()
        );
        assert!(cut.starts_with("no message é") && cut.ends_with('…'));
    }
}
