//! Reading a project's messages, their histories, counts and inbound messages.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ProjectAuth, QueryParams};
use super::openapi::ErrorBody;
use super::openapi::schemas::{InboundPage, MessageOut, MessagePage, Stats};
use super::page::{self, cursor, numeric_cursor};
use crate::domain::status::Status;
use crate::ports::store::{InboundView, MessageQuery, MessageView};

pub fn message_json(m: &MessageView) -> Value {
    json!({
        "wamid": m.wamid,
        "project_id": m.project_id,
        "phone": m.phone,
        "business_number": m.business_number,
        "campaign_id": m.campaign_id,
        "provider": m.provider,
        "status": m.status,
        "created_at": m.created_at.to_rfc3339(),
        "updated_at": m.updated_at.to_rfc3339(),
        "events": m.events.iter().map(|e| json!({
            "status": e.status,
            "occurred_at": e.occurred_at.map(|t| t.to_rfc3339()),
            "received_at": e.received_at.to_rfc3339(),
            "error": e.error.as_ref().map(|x| json!({"code": x.code, "message": x.message})),
        })).collect::<Vec<_>>(),
    })
}

/// A message with its history
///
/// 404 when the message does not exist *or* is another project's.
#[utoipa::path(get, path = "/v1/messages/{wamid}", operation_id = "get_message", tag = "messages", security(("project_key" = [])),
    params(("wamid" = String, Path, example = "wamid.HBgM")),
    responses(
        (status = 200, description = "The message, events oldest first", body = MessageOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody)))]
pub async fn one(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(wamid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match s.store.message(&project, &wamid).await? {
        Some(m) => Ok(Json(message_json(&m))),
        None => Err(ApiError::not_found(format!("no message {wamid}"))),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    campaign_id: Option<String>,
    /// `sent`, `failed`, `delivered` or `read`.
    status: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(alias = "after")]
    cursor: Option<String>,
}

/// List messages
///
/// Ordered by wamid; filtered by campaign and merged status.
#[utoipa::path(get, path = "/v1/messages", operation_id = "list_messages", tag = "messages", security(("project_key" = [])), params(ListQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(word) => Some(parse_status(word)?),
    };
    let limit = page::limit(q.limit)?;
    let query = MessageQuery {
        campaign_id: q.campaign_id,
        status,
        after: cursor(q.cursor),
        limit,
    };
    let found = s.store.messages(&project, &query).await?;
    Ok(page::page(&found, limit, message_json, |m| m.wamid.clone()))
}

fn parse_status(word: &str) -> Result<Status, ApiError> {
    Status::ALL
        .into_iter()
        .find(|s| s.as_str() == word)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "status must be one of sent, failed, delivered, read",
            )
        })
}

/// Counts for the caller's project
#[utoipa::path(get, path = "/v1/stats", operation_id = "get_stats", tag = "messages", security(("project_key" = [])),
    responses(
        (status = 200, description = "Messages per status, history events, inbound messages", body = Stats),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn stats(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
) -> Result<Json<Value>, ApiError> {
    let st = s.store.stats(&project).await?;
    let mut messages = json!({"total": st.messages_by_status.iter().map(|(_, n)| n).sum::<u64>()});
    for status in Status::ALL {
        let n = st
            .messages_by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        messages[status.as_str()] = json!(n);
    }
    Ok(Json(json!({
        "messages": messages,
        "history_events": st.history_events,
        "inbound_messages": st.inbound_messages,
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboundQuery {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(alias = "after")]
    cursor: Option<String>,
}

fn inbound_json(m: &InboundView) -> Value {
    json!({
        "seq": m.seq,
        "message_id": m.message_id,
        "provider": m.provider,
        "business_number": m.business_number,
        "from": m.from,
        "profile_name": m.profile_name,
        "type": m.kind,
        "text": m.text,
        "occurred_at": m.occurred_at.map(|t| t.to_rfc3339()),
        "received_at": m.received_at.to_rfc3339(),
    })
}

/// Inbound user messages
///
/// In arrival order.
#[utoipa::path(get, path = "/v1/inbound", operation_id = "list_inbound_messages", tag = "messages", security(("project_key" = [])), params(InboundQuery),
    responses(
        (status = 200, description = "A page of inbound messages", body = InboundPage),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn inbound(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    QueryParams(q): QueryParams<InboundQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page::limit(q.limit)?;
    let found = s
        .store
        .inbound(&project, numeric_cursor(q.cursor)?, limit)
        .await?;
    Ok(page::page(&found, limit, inbound_json, |m| {
        m.seq.to_string()
    }))
}
