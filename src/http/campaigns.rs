//! Campaigns (the seed's `/project/campaign` paths): create, list, read with counts, and move
//! through their states (start or schedule, pause, resume, cancel, retry the unknown or the
//! failed).
//!
//! Recipients are loaded by `campaign_import`; sending is the sender role's. A move is one
//! conditional write, so two clicks on "pause" pause once, and the second gets 409.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::campaign_import::{self, Source};
use super::error::ApiError;
use super::extract::{JsonBody, ProjectAuth, QueryParams};
use super::openapi::ErrorBody;
use super::openapi::campaign_schemas::{
    CampaignIn as CampaignInDoc, CampaignOut, CampaignPage, RecipientPage,
};
use super::page;
use crate::domain::campaign::new::{CampaignIn, number_or_text, schedule_time};
use crate::domain::campaign::{
    Campaign, CampaignCounts, CampaignError, CampaignId, CampaignState, ExportRow, RecipientId,
    ReportedStatus, Transition,
};
use crate::domain::project::ProjectId;
use crate::domain::providers::send::SendProvider;
use crate::domain::time::Timestamp;

pub(super) fn invalid(e: CampaignError) -> ApiError {
    ApiError::bad_request(e.code(), e.to_string())
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// The campaign of this project with this id, or 404 (another project's looks the same as
/// none at all).
pub(super) async fn owned(
    s: &AppState,
    project: &ProjectId,
    id: &str,
) -> Result<Campaign, ApiError> {
    let not_found = || ApiError::not_found("no campaign with this id");
    let id = CampaignId::parse(id).map_err(|_| not_found())?;
    s.campaigning
        .campaigns
        .get(project, &id)
        .await?
        .ok_or_else(not_found)
}

fn time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

fn view(c: &Campaign) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "template_id": c.template_id,
        "language": c.language,
        "provider": c.provider.as_str(),
        "sender": c.sender,
        "params": c.params,
        "media": c.media,
        "schedule_time": time(c.schedule_time),
        "rate_limit_per_second": c.rate_limit_per_second,
        "unknown_policy": c.unknown_policy.as_str(),
        "state": c.state.as_str(),
        "last_error": c.last_error,
        "created_at": c.created_at.to_rfc3339(),
        "started_at": time(c.started_at),
        "finished_at": time(c.finished_at),
    })
}

/// The campaign with its counts per status and its send rate over the last minute.
async fn full_view(s: &AppState, c: &Campaign) -> Result<Value, ApiError> {
    let counts: CampaignCounts = s.campaigning.campaigns.counts(&c.id).await?;
    let now = Timestamp::now();
    let minute_ago = Timestamp::from_millis(now.millis() - 60_000);
    let recent = s
        .campaigning
        .campaigns
        .sent_since(&c.id, minute_ago)
        .await?;
    let mut v = view(c);
    v["total"] = json!(counts.total());
    v["counts"] = json!(counts);
    v["send_rate_per_second"] = json!((recent as f64 / 60.0 * 10.0).round() / 10.0);
    Ok(v)
}

/// Create a campaign
///
/// A new campaign in `draft`: load its recipients, then start it.
#[utoipa::path(post, path = "/project/campaign", operation_id = "create_campaign", tag = "campaigns", security(("project_key" = [])),
    request_body = CampaignInDoc,
    responses(
        (status = 201, description = "The draft campaign", body = CampaignOut),
        (status = 400, description = "Not JSON, or a field is wrong (its own code: `unknown_sender`, `invalid_template_id`, …)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 422, description = "A field has the wrong type, or is unknown", body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody<CampaignIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = Timestamp::now();
    let new = body
        .parse(
            project.clone(),
            now,
            s.campaigning.default_country_code.as_deref(),
        )
        .map_err(invalid)?;
    let owner = s
        .store
        .project(&project)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown project"))?;
    let Some(number) = owner.numbers.iter().find(|n| n.number == new.sender) else {
        return Err(ApiError::bad_request(
            "unknown_sender",
            format!(
                "sender {} is not one of this project's business numbers",
                new.sender
            ),
        ));
    };
    if new.provider == SendProvider::Meta && number.meta_phone_number_id.is_none() {
        return Err(ApiError::bad_request(
            "meta_phone_number_id_missing",
            "sending through Meta needs the number's meta_phone_number_id: add the number \
             again as {\"number\",\"meta_phone_number_id\"}",
        ));
    }
    s.campaigning.campaigns.create(&new).await?;
    let stored = s
        .campaigning
        .campaigns
        .get(&project, &new.id)
        .await?
        .ok_or_else(|| ApiError::unavailable("store_unavailable", "campaign not readable yet"))?;
    Ok((StatusCode::CREATED, Json(full_view(&s, &stored).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The `next_cursor` of the previous page.
    #[serde(alias = "before")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// List campaigns
///
/// Newest first, each with its counts.
#[utoipa::path(get, path = "/project/campaign", operation_id = "list_campaigns", tag = "campaigns", security(("project_key" = [])), params(ListQuery),
    responses(
        (status = 200, description = "A page of campaigns", body = CampaignPage),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let before = page::cursor(q.cursor)
        .map(|b| CampaignId::parse(&b).map_err(|_| page::bad_cursor()))
        .transpose()?;
    let limit = page::limit(q.limit)?;
    let found = s
        .campaigning
        .campaigns
        .list(&project, before.as_ref(), limit)
        .await?;
    let mut data = Vec::with_capacity(found.len());
    for c in &found {
        data.push(full_view(&s, c).await?);
    }
    let next = page::next(&found, limit, |c| c.id.to_string());
    Ok(page::body(data, next))
}

/// A campaign
///
/// State, counts per status, send rate, times.
#[utoipa::path(get, path = "/project/campaign/{id}", operation_id = "get_campaign", tag = "campaigns", security(("project_key" = [])), params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF")),
    responses(
        (status = 200, description = "The campaign", body = CampaignOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody)))]
pub async fn one(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = owned(&s, &project, &id).await?;
    Ok(Json(full_view(&s, &c).await?))
}

/// Applies `t` to the campaign if its state allows, else 409 naming both.
async fn apply(
    s: &AppState,
    c: &Campaign,
    t: Transition,
    now: Timestamp,
) -> Result<CampaignState, ApiError> {
    let to = c
        .state
        .after(t)
        .map_err(|e| conflict("invalid_transition", e.to_string()))?;
    if !s
        .campaigning
        .campaigns
        .transition(&c.id, &[c.state], to, now)
        .await?
    {
        return Err(conflict(
            "invalid_transition",
            "the campaign changed state meanwhile; read it again",
        ));
    }
    Ok(to)
}

async fn reread(s: &AppState, project: &ProjectId, c: &Campaign) -> Result<Json<Value>, ApiError> {
    let c = owned(s, project, c.id.as_str()).await?;
    Ok(Json(full_view(s, &c).await?))
}

/// Pause a campaign
///
/// Senders stop claiming its recipients at once; requests already in flight finish.
#[utoipa::path(post, path = "/project/campaign/{id}/pause", operation_id = "pause_campaign", tag = "campaigns", security(("project_key" = [])), params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF")),
    responses(
        (status = 200, description = "The campaign", body = CampaignOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody),
        (status = 409, description = "The campaign's state does not allow it (`invalid_transition`)", body = ErrorBody)))]
pub async fn pause(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = owned(&s, &project, &id).await?;
    apply(&s, &c, Transition::Pause, Timestamp::now()).await?;
    reread(&s, &project, &c).await
}

/// Resume a campaign
///
/// Its queued recipients are due again at once.
#[utoipa::path(post, path = "/project/campaign/{id}/resume", operation_id = "resume_campaign", tag = "campaigns", security(("project_key" = [])), params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF")),
    responses(
        (status = 200, description = "The campaign", body = CampaignOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody),
        (status = 409, description = "The campaign's state does not allow it (`invalid_transition`)", body = ErrorBody)))]
pub async fn resume(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = owned(&s, &project, &id).await?;
    let now = Timestamp::now();
    apply(&s, &c, Transition::Resume, now).await?;
    s.campaigning.campaigns.make_due(&c.id, now).await?;
    reread(&s, &project, &c).await
}

/// Cancel a campaign
///
/// Its queued recipients become `cancelled`.
#[utoipa::path(post, path = "/project/campaign/{id}/cancel", operation_id = "cancel_campaign", tag = "campaigns", security(("project_key" = [])), params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF")),
    responses(
        (status = 200, description = "The campaign", body = CampaignOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody),
        (status = 409, description = "The campaign's state does not allow it (`invalid_transition`)", body = ErrorBody)))]
pub async fn cancel(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = owned(&s, &project, &id).await?;
    apply(&s, &c, Transition::Cancel, Timestamp::now()).await?;
    let cancelled = s.campaigning.campaigns.cancel_queued(&c.id).await?;
    tracing::info!(campaign = %c.id, project = %project, cancelled, "campaign cancelled");
    reread(&s, &project, &c).await
}

/// Queue the unknown sends again
///
/// The recipients whose send is `unknown` (no answer, no webhook) are queued again. They may have received the message already, which is why this is never automatic.
#[utoipa::path(post, path = "/project/campaign/{id}/retry-unknown", operation_id = "retry_unknown_recipients", tag = "campaigns", security(("project_key" = [])), params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF")),
    responses(
        (status = 200, description = "The campaign, with `requeued`", body = CampaignOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody),
        (status = 409, description = "The campaign's state does not allow it (`invalid_transition`)", body = ErrorBody)))]
pub async fn retry_unknown(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = owned(&s, &project, &id).await?;
    retryable(&c, "unknown sends")?;
    let requeued = s
        .campaigning
        .campaigns
        .retry_unknown(&project, &c.id)
        .await?;
    requeued_view(&s, &project, &c, requeued).await
}

/// Queue the retryable failures again
///
/// The recipients that failed for a cause that may go otherwise next time are queued again with a fresh attempt budget; none of them reached the BSP.
#[utoipa::path(post, path = "/project/campaign/{id}/retry-failed", operation_id = "retry_failed_recipients", tag = "campaigns", security(("project_key" = [])), params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF")),
    responses(
        (status = 200, description = "The campaign, with `requeued`", body = CampaignOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody),
        (status = 409, description = "The campaign's state does not allow it (`invalid_transition`)", body = ErrorBody)))]
pub async fn retry_failed(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = owned(&s, &project, &id).await?;
    retryable(&c, "failed sends")?;
    let requeued = s
        .campaigning
        .campaigns
        .retry_failed(&project, &c.id)
        .await?;
    requeued_view(&s, &project, &c, requeued).await
}

fn retryable(c: &Campaign, what: &str) -> Result<(), ApiError> {
    if matches!(
        c.state,
        CampaignState::Draft | CampaignState::Scheduled | CampaignState::Cancelled
    ) {
        return Err(conflict(
            "invalid_transition",
            format!("a {} campaign has no {what} to retry", c.state.as_str()),
        ));
    }
    Ok(())
}

/// After recipients were queued again: a finished campaign runs again. Tried whatever state
/// was read before, since the runner may have finished the campaign in between (its finish
/// is conditional on nothing queued, so it either saw these or finished just before them).
async fn requeued_view(
    s: &AppState,
    project: &ProjectId,
    c: &Campaign,
    requeued: u64,
) -> Result<Json<Value>, ApiError> {
    if requeued > 0 {
        let to = CampaignState::Finished
            .after(Transition::Reopen)
            .expect("finished campaigns reopen");
        s.campaigning
            .campaigns
            .transition(&c.id, &[CampaignState::Finished], to, Timestamp::now())
            .await?;
    }
    let mut v = reread(s, project, c).await?.0;
    v["requeued"] = json!(requeued);
    Ok(Json(v))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"campaign_id": "cmp_01JABCDEF", "csv_url": "https://example.com/recipients.csv"}))]
pub struct SendBody {
    campaign_id: String,
    /// Recipients to load first.
    csv_url: Option<String>,
    /// When given, must be the campaign's.
    template_id: Option<String>,
    /// Unix seconds or RFC 3339: start then instead of now.
    #[serde(default, deserialize_with = "number_or_text")]
    #[schema(value_type = Option<super::openapi::campaign_schemas::NumberOrText>)]
    schedule_time: Option<Value>,
}

/// Start a campaign (the seed's one-shot)
///
/// Loads recipients from `csv_url` when given, then starts the campaign, or schedules it when
/// its start time is ahead.
#[utoipa::path(post, path = "/project/campaign/event/send", operation_id = "start_campaign", tag = "campaigns", security(("project_key" = [])),
    request_body = SendBody,
    responses(
        (status = 202, description = "Started or scheduled", body = CampaignOut),
        (status = 400, description = "Not JSON, a bad `csv_url`, CSV or schedule", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody),
        (status = 409, description = "Not a draft, no recipients, or the provider not configured", body = ErrorBody),
        (status = 413, description = "The CSV is too large", body = ErrorBody),
        (status = 422, description = "A field has the wrong type, or is unknown", body = ErrorBody)))]
pub async fn send(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(b): JsonBody<SendBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = owned(&s, &project, &b.campaign_id).await?;
    if c.state != CampaignState::Draft {
        return Err(conflict(
            "invalid_transition",
            format!("a {} campaign cannot start", c.state.as_str()),
        ));
    }
    if let Some(t) = &b.template_id
        && t != &c.template_id
    {
        return Err(ApiError::bad_request(
            "template_mismatch",
            format!(
                "the campaign sends template `{}`; create a campaign for another template",
                c.template_id
            ),
        ));
    }
    provider_configured(&s, &c).await?;
    let now = Timestamp::now();
    let schedule = match &b.schedule_time {
        Some(v) => schedule_time(Some(v)).map_err(invalid)?,
        None => c.schedule_time,
    };
    if schedule != c.schedule_time {
        s.campaigning
            .campaigns
            .set_schedule(&c.id, schedule)
            .await?;
    }
    let import = match &b.csv_url {
        Some(url) => Some(campaign_import::load(&s, &c, Source::Url(url)).await?),
        None => None,
    };
    let counts = s.campaigning.campaigns.counts(&c.id).await?;
    if counts.queued == 0 {
        return Err(conflict(
            "no_recipients",
            "the campaign has no recipients to send to; load a CSV first",
        ));
    }
    let future = schedule.is_some_and(|t| t > now);
    let state = apply(
        &s,
        &c,
        Transition::Start {
            scheduled_for_future: future,
        },
        now,
    )
    .await?;
    if state == CampaignState::Running {
        s.campaigning.campaigns.make_due(&c.id, now).await?;
        tracing::info!(campaign = %c.id, project = %project, recipients = counts.queued, "campaign started");
    } else {
        tracing::info!(campaign = %c.id, project = %project, recipients = counts.queued, start_at = ?schedule.map(Timestamp::to_rfc3339), "campaign scheduled");
    }
    let mut v = reread(&s, &project, &c).await?.0;
    if let Some(import) = import {
        v["import"] = import;
    }
    Ok((StatusCode::ACCEPTED, Json(v)))
}

/// 409 `provider_not_configured` when the project's settings over the server's cannot build a
/// request for the campaign's provider: checked before anything is loaded or moved, so such a
/// campaign stays a draft, its recipients untouched, until the settings are put.
async fn provider_configured(s: &AppState, c: &Campaign) -> Result<(), ApiError> {
    let own = s
        .campaigning
        .campaigns
        .provider_settings(&c.project_id, c.provider)
        .await?
        .unwrap_or_default();
    let server = s
        .campaigning
        .provider_defaults
        .get(&c.provider)
        .cloned()
        .unwrap_or_default();
    let merged = crate::domain::providers::send::for_project(c.provider, &server, &own)
        .map_err(|e| e.to_string());
    merged
        .and_then(|settings| {
            crate::domain::providers::send::check(c.provider, &settings).map_err(|e| e.to_string())
        })
        .map_err(|e| {
            conflict(
                "provider_not_configured",
                format!(
                    "{e} ({}): put it with PUT /v1/providers/{} or the server's settings, then \
                 start the campaign",
                    c.provider.as_str(),
                    c.provider.as_str()
                ),
            )
        })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecipientsQuery {
    /// A status of the counts (`queued`, `sent`, `failed`, `unknown`, …); default `unknown`.
    status: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(alias = "after")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A campaign's recipients by status
///
/// The recipients the counts put under `status` (default `unknown`), in id order. A sent recipient is under
/// its message's merged status, so `failed` lists refused sends and failed messages both.
#[utoipa::path(get, path = "/project/campaign/{id}/recipients", operation_id = "list_campaign_recipients", tag = "campaigns", security(("project_key" = [])),
    params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF"), RecipientsQuery),
    responses(
        (status = 200, description = "A page of recipients", body = RecipientPage),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody)))]
pub async fn recipients(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<RecipientsQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = owned(&s, &project, &id).await?;
    let status = match q.status.as_deref() {
        None => ReportedStatus::Unknown,
        Some(w) => ReportedStatus::parse(w).ok_or_else(|| {
            let words: Vec<&str> = ReportedStatus::ALL.iter().map(|r| r.as_str()).collect();
            ApiError::bad_request(
                "invalid_query",
                format!("status must be one of {}", words.join(", ")),
            )
        })?,
    };
    let after = page::cursor(q.cursor)
        .map(|a| RecipientId::parse(&a).map_err(|_| page::bad_cursor()))
        .transpose()?;
    let limit = page::limit(q.limit)?;
    let rows = s
        .campaigning
        .campaigns
        .recipients_in(&c.id, status, after.as_ref(), limit)
        .await?;
    let show = |r: &ExportRow| {
        json!({
            "id": r.recipient,
            "phone": r.phone,
            "wamid": r.provider_message_id,
            "status": r.status,
            "updated_at": r.updated_at.to_rfc3339(),
            "error": r.error,
        })
    };
    Ok(page::page(&rows, limit, show, |r| r.recipient.to_string()))
}
