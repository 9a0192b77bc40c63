//! Reading a project's messages, their histories, counts and inbound messages.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ProjectAuth, QueryParams};
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

/// `GET /v1/messages/{wamid}`: 404 when the message does not exist *or* is another project's.
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

#[derive(Deserialize)]
pub struct ListQuery {
    campaign_id: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    #[serde(alias = "after")]
    cursor: Option<String>,
}

/// `GET /v1/messages?campaign_id=&status=&cursor=&limit=`: ordered by wamid (see `page`).
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

/// `GET /v1/stats`: counts for the caller's project.
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

#[derive(Deserialize)]
pub struct InboundQuery {
    limit: Option<u32>,
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

/// `GET /v1/inbound?cursor=&limit=`: user messages in arrival order (see `page`).
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
