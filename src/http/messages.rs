//! Reading a project's messages, their histories, counts and inbound messages.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ProjectAuth, QueryParams};
use crate::domain::status::Status;
use crate::ports::store::{InboundView, MessageQuery, MessageView};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_LIMIT}"),
        )),
    }
}

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
    after: Option<String>,
}

/// `GET /v1/messages?campaign_id=&status=&limit=&after=`: ordered by wamid; `next_cursor` is
/// the `after` of the next page, `null` on the last.
pub async fn list(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(word) => Some(parse_status(word)?),
    };
    let limit = limit(q.limit)?;
    let query = MessageQuery {
        campaign_id: q.campaign_id,
        status,
        after: q.after,
        limit,
    };
    let page = s.store.messages(&project, &query).await?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|m| m.wamid.clone()))
        .flatten();
    Ok(Json(json!({
        "data": page.iter().map(message_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
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
    after: Option<i64>,
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

/// `GET /v1/inbound?limit=&after=`: user messages in arrival order.
pub async fn inbound(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    QueryParams(q): QueryParams<InboundQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(q.limit)?;
    let page = s.store.inbound(&project, q.after, limit).await?;
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|m| m.seq))
        .flatten();
    Ok(Json(json!({
        "data": page.iter().map(inbound_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}
